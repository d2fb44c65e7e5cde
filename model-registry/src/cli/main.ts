/** Entry point of `cxr-registry`; returns the exit code. */
export async function main(_argv: readonly string[]): Promise<number> {
  console.error('cxr-registry: not implemented yet');
  return 1;
}
