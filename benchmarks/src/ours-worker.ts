/**
 * Our side of the peer comparison, one model at one thread count in a process of its own (so that its peak RSS is
 * its own). Same line protocol as the Python peer (`benchmarks/peer/peer.py serve`): it prints a `ready` line, then
 * for each `{"file": PATH}` line on stdin runs that file once and prints its stage times; `{"done": true}` prints
 * the peak RSS and ends. Started by peer-compare.ts.
 *
 *   node dist/ours-worker.js --model DIR --threads 2
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadModel } from '@cxr/inference';
import { timeOurs } from './ours.js';

const { values: args } = parseArgs({ options: { model: { type: 'string' }, threads: { type: 'string', default: '2' } } });
if (!args.model) throw new Error('--model DIR is required');
const threads = Number(args.threads);
const model = await loadModel(args.model, { intraOpThreads: threads });
// One pass over a blank input so that the first timed file does not pay for the runtime's lazy set-up.
const { channels, height, width } = model.manifest.input;
await model.run(new Float32Array(channels * height * width));

const say = (message: object): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`);
};
say({ ready: true, threads, node: process.version });
for await (const line of createInterface({ input: process.stdin })) {
  const request = JSON.parse(line) as { file?: string; done?: boolean };
  if (request.done) {
    await model.close();
    say({ maxRssKiB: process.resourceUsage().maxRSS });
    break;
  }
  if (request.file) {
    const { times, decoder } = await timeOurs(model, request.file, threads);
    say({ decoder, ...times });
  }
}
