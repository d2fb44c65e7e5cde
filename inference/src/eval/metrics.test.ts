import { describe, expect, it } from 'vitest';
import { thresholdsFromJson } from '../contracts/index.js';
import { thresholdForTarget } from './calibrate.js';
import { aucDeLong, confusion, midranks, operatingPoint, rocCurve, wilsonInterval, z95 } from './metrics.js';

/** DeLong by its definition, O(m·n): the oracle for the midrank implementation. */
function deLongByPairs(x: number[], y: number[]): { auc: number; variance: number } {
  const psi = (a: number, b: number): number => (a > b ? 1 : a === b ? 0.5 : 0);
  const v10 = x.map((a) => y.reduce((s, b) => s + psi(a, b), 0) / y.length);
  const v01 = y.map((b) => x.reduce((s, a) => s + psi(a, b), 0) / x.length);
  const mean = (v: number[]): number => v.reduce((s, a) => s + a, 0) / v.length;
  const variance = (v: number[]): number => v.reduce((s, a) => s + (a - mean(v)) ** 2, 0) / (v.length - 1);
  return { auc: mean(v10), variance: variance(v10) / x.length + variance(v01) / y.length };
}

/** A small deterministic generator (LCG), so the random cases are the same every run. */
function lcg(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1664525 + 1013904223) % 2 ** 32;
    return state / 2 ** 32;
  };
}

describe('ROC AUC and the DeLong interval', () => {
  it('gives the hand-computed answer with a tie between classes', () => {
    // Positives 0.8 0.7 0.4 0.3, negatives 0.6 0.4 0.2 0.1. Pairs won: 4 + 4 + (2 + 0.5 tie) + 2 = 12.5 of 16.
    // V10 = [1, 1, 0.625, 0.5] and V01 = [0.5, 0.625, 1, 1]: each has mean 0.78125 and sample variance
    // (2·0.21875² + 0.15625² + 0.28125²) / 3 = 0.06640625, so var(AUC) = 0.06640625/4 + 0.06640625/4 = 0.033203125.
    const r = aucDeLong([0.8, 0.7, 0.4, 0.3], [0.6, 0.4, 0.2, 0.1]);
    expect(r.auc).toBe(0.78125);
    expect(r.variance).toBeCloseTo(0.033203125, 15);
    const half = z95 * Math.sqrt(0.033203125);
    expect(r.ci?.[0]).toBeCloseTo(0.78125 - half, 12);
    expect(r.ci?.[1]).toBe(1); // 0.78125 + 0.357 is clipped to 1
  });

  it('gives the hand-computed answer for a second small set', () => {
    // Positives 0.9 0.6 0.4, negatives 0.6 0.3 0.2 0.1: 4 + 3.5 + 3 = 10.5 of 12 pairs, AUC 0.875.
    // V10 = [1, 0.875, 0.75] (variance 0.015625), V01 = [0.5, 1, 1, 1] (variance 0.0625): 0.015625/3 + 0.0625/4 = 1/48.
    const r = aucDeLong([0.9, 0.6, 0.4], [0.6, 0.3, 0.2, 0.1]);
    expect(r.auc).toBe(0.875);
    expect(r.variance).toBeCloseTo(1 / 48, 15);
  });

  it('is 1 for perfect separation, 0.5 when every score ties, 0 when reversed', () => {
    expect(aucDeLong([3, 4], [1, 2]).auc).toBe(1);
    expect(aucDeLong([3, 4], [1, 2]).variance).toBe(0);
    expect(aucDeLong([0.5, 0.5, 0.5], [0.5, 0.5]).auc).toBe(0.5);
    expect(aucDeLong([1, 2], [3, 4]).auc).toBe(0);
  });

  it('has no interval with a single positive or negative, and no AUC with an empty class', () => {
    expect(aucDeLong([0.9], [0.1, 0.2])).toEqual({ auc: 1, variance: null, ci: null });
    expect(() => aucDeLong([], [0.1])).toThrow(RangeError);
  });

  it('equals DeLong by pairs on random sets with many ties', () => {
    const random = lcg(7);
    for (let trial = 0; trial < 20; trial++) {
      const x = Array.from({ length: 5 + Math.floor(random() * 40) }, () => Math.round((random() + 0.3) * 10) / 10);
      const y = Array.from({ length: 5 + Math.floor(random() * 40) }, () => Math.round(random() * 10) / 10);
      const fast = aucDeLong(x, y);
      const oracle = deLongByPairs(x, y);
      expect(fast.auc).toBeCloseTo(oracle.auc, 12);
      expect(fast.variance).toBeCloseTo(oracle.variance, 12);
    }
  });

  it('gives midranks to ties', () => {
    expect([...midranks([0.3, 0.1, 0.3, 0.2, 0.3])]).toEqual([4, 1, 4, 2, 4]);
  });
});

describe('operating point', () => {
  it('counts the confusion matrix', () => {
    expect(confusion([true, true, false, false, true], [true, false, false, true, true])).toEqual({ tp: 2, fp: 1, tn: 1, fn: 1 });
  });

  it('gives sensitivity, specificity, PPV, NPV and their intervals', () => {
    // 8 of 10 positives found, 18 of 20 negatives cleared.
    const truth = [...Array<boolean>(10).fill(true), ...Array<boolean>(20).fill(false)];
    const predicted = [...Array<boolean>(8).fill(true), false, false, ...Array<boolean>(18).fill(false), true, true];
    const p = operatingPoint(predicted, truth);
    expect(p).toMatchObject({ tp: 8, fn: 2, tn: 18, fp: 2, sensitivity: 0.8, specificity: 0.9, ppv: 0.8, npv: 0.9 });
    // Wilson 95% for 8/10 is 0.490-0.943 (Newcombe 1998, table I gives 0.4902-0.9433).
    expect(p.sensitivity95?.[0]).toBeCloseTo(0.4902, 4);
    expect(p.sensitivity95?.[1]).toBeCloseTo(0.9433, 4);
  });

  it('keeps Wilson intervals inside [0, 1] at the edges', () => {
    const [lo, hi] = wilsonInterval(10, 10) ?? [NaN, NaN];
    expect(hi).toBe(1);
    expect(lo).toBeCloseTo(10 / (10 + z95 ** 2), 12); // the Wilson lower bound for k = n is n / (n + z²)
    expect(wilsonInterval(0, 0)).toBeNull();
  });
});

describe('ROC curve', () => {
  it('moves once per distinct score, ties together, from (0, 0) to (1, 1)', () => {
    const roc = rocCurve([0.9, 0.8, 0.8, 0.3], [true, true, false, false]);
    expect(roc.thresholds).toEqual([Number.POSITIVE_INFINITY, 0.9, 0.8, 0.3]);
    expect(roc.tpr).toEqual([0, 0.5, 1, 1]);
    expect(roc.fpr).toEqual([0, 0, 0.5, 1]);
  });
});

describe('threshold for a target', () => {
  const values = [0.9, 0.8, 0.7, 0.7, 0.4, 0.6, 0.5, 0.3, 0.2, 0.1];
  const truth = [true, true, true, true, true, false, false, false, false, false];

  it('takes the highest threshold whose sensitivity reaches the target', () => {
    // 0.8 of 5 positives is 4: the 4th highest positive is 0.7 (tied with the 3rd), which keeps 4.
    expect(thresholdForTarget(values, truth, { metric: 'sensitivity', value: 0.8 })).toBe(0.7);
    expect(thresholdForTarget(values, truth, { metric: 'sensitivity', value: 1 })).toBe(0.4);
    expect(thresholdForTarget(values, truth, { metric: 'sensitivity', value: 0.2 })).toBe(0.9);
  });

  it('takes the lowest threshold whose specificity reaches the target', () => {
    // Negatives 0.1 0.2 0.3 0.5 0.6; 0.8 of 5 is 4 below t, so t is the lowest value above 0.5: 0.6 (the 5th negative
    // is then called positive). For all 5, t is the lowest value above 0.6: 0.7.
    expect(thresholdForTarget(values, truth, { metric: 'specificity', value: 0.8 })).toBe(0.6);
    expect(thresholdForTarget(values, truth, { metric: 'specificity', value: 1 })).toBe(0.7);
  });

  it('goes just above every value when only that reaches the specificity', () => {
    expect(thresholdForTarget([0.2, 0.9], [true, false], { metric: 'specificity', value: 1 })).toBe(0.900001);
    expect(() => thresholdForTarget([0.2, 1], [true, false], { metric: 'specificity', value: 1 })).toThrow(/above 1/u);
  });
});

describe('thresholds files', () => {
  it('reads a flat map, a calibrate file and a registry deployment', () => {
    expect(thresholdsFromJson({ pneumothorax: 0.4 }, 'x')).toEqual({ pneumothorax: 0.4 });
    expect(thresholdsFromJson({ kind: 'cxr-model-deployment', thresholds: { edema: 0.3 } }, 'x')).toEqual({ edema: 0.3 });
  });

  it('names every problem', () => {
    expect(() => thresholdsFromJson({ pneumothorax: 1.5, Edema: 0.2 }, 'f.json')).toThrow(/f\.json: expected an object of label code/u);
    expect(() => thresholdsFromJson({ kind: 'cxr-thresholds', thresholds: {} }, 'f.json')).toThrow(/a cxr calibrate file/u);
    expect(() => thresholdsFromJson([0.5], 'f.json')).toThrow(/CXR_USAGE|Invalid command line usage/u);
  });
});
