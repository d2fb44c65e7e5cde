/**
 * Node flags for a process that runs models: the edge agent, `cxr`, the benchmarks.
 *
 * `--single-threaded-gc`: ONNX Runtime splits each operator evenly between its two threads, so a pass takes as long
 * as the slower half. V8's concurrent marking threads start every few images (the decoded 2k images are large
 * ArrayBuffers, and their allocation asks for an old-space collection) and run while the model does: measured on the
 * 2-core machines (`npm run gc-threads -w benchmarks`), during 26 to 35 % of DenseNet-121 passes, with 13 to 19 ms of
 * one core, pushing the pass from 33 to 35 ms toward the one-thread 55 ms. With the flag V8 marks on the thread that
 * runs JavaScript, which is inside ONNX Runtime during a pass. Launch flag only: V8 aborts when it is set at run time.
 */
export const inferenceNodeFlags = ['--single-threaded-gc'] as const;

/** Whether this process was started with `inferenceNodeFlags` (V8 also accepts underscores in flag names). */
export function startedWithInferenceFlags(execArgv: readonly string[] = process.execArgv): boolean {
  const given = new Set(execArgv.map((arg) => arg.replaceAll('_', '-')));
  return inferenceNodeFlags.every((flag) => given.has(flag));
}
