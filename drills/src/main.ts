/**
 * `npm run drills`: the fault-injection drills, with real processes, and their figures.
 *
 *   npm run drills -- [--only kill-edge,kill-gateway,...] [--cycles N] [--seed S] [--quick] [--json]
 *
 * Each drill prints a line of figures and writes drills/results/<drill>.json (not with --quick: a smoke run does not
 * replace the figures benchmarks/README.md quotes); the exit code is 1 when a drill
 * counted anything lost, stuck or doubled (the figures that must be zero), 2 for a usage error.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { drills } from './drills/index.js';
import type { DrillReport } from './report.js';

const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        only: { type: 'string' },
        cycles: { type: 'string' },
        seed: { type: 'string' },
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`drills: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`npm run drills -- [--only NAME,...] [--cycles N] [--seed S] [--quick] [--json]\n\n${drills.map((d) => `  ${d.name.padEnd(16)} ${d.summary}`).join('\n')}\n`);
    return 0;
  }
  const names = values.only?.split(',').map((n) => n.trim()) ?? drills.map((d) => d.name);
  const unknown = names.filter((n) => !drills.some((d) => d.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`drills: no drill named ${unknown.join(', ')}; there are ${drills.map((d) => d.name).join(', ')}\n`);
    return 2;
  }
  const cycles = values.cycles === undefined ? undefined : Number(values.cycles);
  if (cycles !== undefined && (!Number.isInteger(cycles) || cycles < 1)) {
    process.stderr.write('drills: --cycles takes a whole number of at least 1\n');
    return 2;
  }
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!values.quick) mkdirSync(resultsDir, { recursive: true });
  const reports: DrillReport[] = [];
  for (const drill of drills.filter((d) => names.includes(d.name))) {
    const workDir = mkdtempSync(path.join(tmpdir(), `cxr-drill-${drill.name}-`));
    process.stderr.write(`drill ${drill.name} (seed ${seed}): ${drill.summary}\n`);
    try {
      const result = await drill.run({ ...(cycles ? { cycles } : {}), seed, quick: values.quick, workDir, progress: (line) => process.stderr.write(`  ${line}\n`) });
      reports.push(result);
      if (!values.quick) writeFileSync(path.join(resultsDir, `${drill.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
      if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(`${result.ok ? 'ok  ' : 'FAIL'} ${drill.name}: ${Object.entries(result.figures).map(([k, v]) => `${k} ${v}`).join(', ')} (${result.elapsedS} s)\n${result.problems.slice(0, 20).map((p) => `     ${p}\n`).join('')}`);
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  }
  return reports.every((r) => r.ok) ? 0 : 1;
}

process.exitCode = await main();
