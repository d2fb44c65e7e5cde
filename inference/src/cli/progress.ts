import cliProgress from 'cli-progress';
import type { CliIo } from './output.js';

export interface Progress {
  update(done: number, failed: number): void;
  stop(): void;
}

/** A progress bar on stderr when it is a terminal; nothing otherwise (logs and pipes stay clean). */
export function imageProgress(io: CliIo, command: string, total: number): Progress {
  if (!io.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { stream: io.stderr, format: `${command} [{bar}] {value}/{total} images | {eta_formatted} left | {failed} failed`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { failed: 0 });
  return { update: (done, failed) => bar.update(done, { failed }), stop: () => bar.stop() };
}
