/** Entry point of `cxr-datasets`; returns the exit code. */
export async function main(_argv: readonly string[]): Promise<number> {
  console.error('cxr-datasets: not implemented yet');
  return 1;
}
