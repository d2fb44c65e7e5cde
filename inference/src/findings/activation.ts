export type Activation = 'none' | 'sigmoid' | 'softmax';

export function activate(raw: Float32Array | readonly number[], activation: Activation): number[] {
  const values = Array.from(raw);
  if (activation === 'sigmoid') return values.map((v) => 1 / (1 + Math.exp(-v)));
  if (activation === 'softmax') {
    const max = Math.max(...values);
    const exps = values.map((v) => Math.exp(v - max));
    const sum = exps.reduce((a, b) => a + b, 0);
    return exps.map((v) => v / sum);
  }
  return values;
}
