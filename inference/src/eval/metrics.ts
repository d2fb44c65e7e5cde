/**
 * Binary classification metrics for a score against 0/1 truth: ROC AUC with DeLong's confidence interval,
 * confusion counts at a decision, Wilson intervals of proportions, and the ROC curve.
 */

/** Two-sided 95%: the standard normal quantile at 0.975. */
export const z95 = 1.959963984540054;

export type Interval = [number, number];

export interface AucResult {
  /** P(score of a positive > score of a negative), ties counting one half (the Mann-Whitney statistic). */
  readonly auc: number;
  /** DeLong's estimate of the variance of the AUC; null with fewer than two positives or two negatives. */
  readonly variance: number | null;
  /** auc ± z·sqrt(variance), clipped to [0, 1]; null when the variance is. */
  readonly ci: Interval | null;
}

/**
 * Midranks (1-based, ties get the mean of the ranks they span), as in Sun and Xu's fast DeLong algorithm
 * ("Fast implementation of DeLong's algorithm", IEEE Signal Processing Letters 21(11), 2014).
 */
export function midranks(values: readonly number[]): Float64Array {
  const order = values.map((_, i) => i).sort((a, b) => (values[a] ?? 0) - (values[b] ?? 0));
  const ranks = new Float64Array(values.length);
  let i = 0;
  while (i < order.length) {
    let j = i;
    const value = values[order[i] ?? 0];
    while (j + 1 < order.length && values[order[j + 1] ?? 0] === value) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k] ?? 0] = rank;
    i = j + 1;
  }
  return ranks;
}

/**
 * ROC AUC and DeLong's variance (DeLong, DeLong and Clarke-Pearson, Biometrics 44, 1988) in O(N log N) by midranks.
 * Exact and deterministic, unlike a bootstrap. Throws when either class is empty (the AUC is undefined).
 */
export function aucDeLong(positives: readonly number[], negatives: readonly number[], z = z95): AucResult {
  const m = positives.length;
  const n = negatives.length;
  if (m === 0 || n === 0) throw new RangeError('the AUC needs at least one positive and one negative');
  const ranksX = midranks(positives);
  const ranksY = midranks(negatives);
  const ranksZ = midranks([...positives, ...negatives]);
  // Structural components: V10[i] is the share of negatives that positive i outscores (ties half), V01[j] the
  // share of positives that outscore negative j.
  const v10 = new Float64Array(m);
  const v01 = new Float64Array(n);
  let rankSum = 0;
  for (let i = 0; i < m; i++) {
    const rz = ranksZ[i] ?? 0;
    rankSum += rz;
    v10[i] = (rz - (ranksX[i] ?? 0)) / n;
  }
  for (let j = 0; j < n; j++) v01[j] = 1 - ((ranksZ[m + j] ?? 0) - (ranksY[j] ?? 0)) / m;
  const auc = rankSum / (m * n) - (m + 1) / (2 * n);
  if (m < 2 || n < 2) return { auc, variance: null, ci: null };
  const variance = sampleVariance(v10) / m + sampleVariance(v01) / n;
  const half = z * Math.sqrt(variance);
  return { auc, variance, ci: [Math.max(0, auc - half), Math.min(1, auc + half)] };
}

function sampleVariance(values: Float64Array): number {
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let sum = 0;
  for (const v of values) sum += (v - mean) ** 2;
  return sum / (values.length - 1);
}

export interface Confusion {
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
}

export function confusion(predicted: readonly boolean[], truth: readonly boolean[]): Confusion {
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  predicted.forEach((p, i) => {
    const t = truth[i] ?? false;
    if (p && t) tp++;
    else if (p) fp++;
    else if (t) fn++;
    else tn++;
  });
  return { tp, fp, tn, fn };
}

/** k / n, null when n is 0. */
export function proportion(k: number, n: number): number | null {
  return n === 0 ? null : k / n;
}

/**
 * Wilson score interval of a proportion k / n (Wilson 1927): stays inside [0, 1] and keeps its coverage near
 * 0 and 1, where the normal (Wald) interval collapses. Null when n is 0.
 */
export function wilsonInterval(k: number, n: number, z = z95): Interval | null {
  if (n === 0) return null;
  const p = k / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denominator;
  // At k = 0 and k = n the bound is exactly 0 or 1; float arithmetic would land a hair inside it.
  return [k === 0 ? 0 : Math.max(0, centre - half), k === n ? 1 : Math.min(1, centre + half)];
}

export interface OperatingPoint extends Confusion {
  readonly sensitivity: number | null;
  readonly specificity: number | null;
  readonly sensitivity95: Interval | null;
  readonly specificity95: Interval | null;
  readonly ppv: number | null;
  readonly npv: number | null;
}

/** Sensitivity, specificity (Wilson 95% intervals), PPV and NPV of a decision against the truth. */
export function operatingPoint(predicted: readonly boolean[], truth: readonly boolean[]): OperatingPoint {
  const counts = confusion(predicted, truth);
  const { tp, fp, tn, fn } = counts;
  return {
    ...counts,
    sensitivity: proportion(tp, tp + fn),
    sensitivity95: wilsonInterval(tp, tp + fn),
    specificity: proportion(tn, tn + fp),
    specificity95: wilsonInterval(tn, tn + fp),
    ppv: proportion(tp, tp + fp),
    npv: proportion(tn, tn + fn),
  };
}

export interface RocCurve {
  /** Points from (0, 0) to (1, 1): at `thresholds[k]`, an image is positive when its score >= the threshold. */
  readonly fpr: number[];
  readonly tpr: number[];
  /** `thresholds[0]` is +Infinity (nothing positive); the rest are the distinct scores, descending. */
  readonly thresholds: number[];
}

export function rocCurve(scores: readonly number[], truth: readonly boolean[]): RocCurve {
  const order = scores.map((_, i) => i).sort((a, b) => (scores[b] ?? 0) - (scores[a] ?? 0));
  const positives = truth.filter(Boolean).length;
  const negatives = truth.length - positives;
  const fpr = [0];
  const tpr = [0];
  const thresholds = [Number.POSITIVE_INFINITY];
  let tp = 0;
  let fp = 0;
  let k = 0;
  while (k < order.length) {
    const value = scores[order[k] ?? 0] ?? 0;
    // Every image tied at this score changes class together.
    while (k < order.length && scores[order[k] ?? 0] === value) {
      if (truth[order[k] ?? 0]) tp++;
      else fp++;
      k++;
    }
    fpr.push(negatives === 0 ? 0 : fp / negatives);
    tpr.push(positives === 0 ? 0 : tp / positives);
    thresholds.push(value);
  }
  return { fpr, tpr, thresholds };
}
