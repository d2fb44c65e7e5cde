import type { Finding, Label, Priority } from '../contracts/index.js';

const rank: Record<Priority, number> = { routine: 0, urgent: 1, stat: 2 };

export function higherPriority(a: Priority, b: Priority): Priority {
  return rank[a] >= rank[b] ? a : b;
}

/** Place in a queue that serves the most urgent first: stat 0, urgent 1, routine 2. */
export function urgencyRank(priority: Priority): number {
  return rank.stat - rank[priority];
}

/** Per-site overrides of a label's threshold (the registry stores them with each deployment). */
export type ThresholdOverrides = Readonly<Record<string, number>>;

/**
 * `probabilities[i]` belongs to `labels[i]`. Only labels with role `finding` become findings; one is positive at
 * or above its threshold. The priority is the highest among positive findings, `routine` when none is.
 */
export function triage(
  labels: readonly Label[],
  probabilities: readonly number[],
  overrides: ThresholdOverrides = {},
): { findings: Finding[]; priority: Priority } {
  const findings: Finding[] = [];
  let priority: Priority = 'routine';
  labels.forEach((label, i) => {
    if (label.role !== 'finding') return;
    const probability = probabilities[i] ?? 0;
    const threshold = overrides[label.code] ?? label.threshold;
    const positive = probability >= threshold;
    if (positive) priority = higherPriority(priority, label.priority);
    findings.push({
      code: label.code,
      display: label.display,
      displayVi: label.displayVi,
      probability: round6(probability),
      threshold,
      positive,
      priority: label.priority,
    });
  });
  return { findings, priority };
}

export function round6(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}
