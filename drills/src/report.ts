/** What one drill found: its figures, which of them must be zero, and the details of anything that went wrong. */
export interface DrillReport {
  readonly drill: string;
  /** when it ran (ISO 8601) */
  readonly date: string;
  readonly seed: number;
  /** true when every figure named in `mustBeZero` is 0 and nothing else went wrong */
  readonly ok: boolean;
  readonly figures: Readonly<Record<string, number | string>>;
  readonly mustBeZero: readonly string[];
  /** what went wrong, by instance, study or consult id (never patient data) */
  readonly problems: readonly string[];
  readonly elapsedS: number;
}

export interface DrillOptions {
  /** how many rounds of the fault (kills, fills, outages...); each drill has its own default */
  readonly cycles?: number;
  readonly seed: number;
  /** the bounded form that runs in `npm test` */
  readonly quick: boolean;
  /** a scratch folder of its own, removed after */
  readonly workDir: string;
  /** progress, one line at a time (stderr) */
  readonly progress: (line: string) => void;
}

export interface Drill {
  readonly name: string;
  /** one line: the fault and what is counted */
  readonly summary: string;
  run(options: DrillOptions): Promise<DrillReport>;
}

/** Builds a report: `ok` when every must-be-zero figure is 0 and no problem was recorded. */
export function report(drill: string, options: DrillOptions, started: number, figures: Record<string, number | string>, mustBeZero: readonly string[], problems: readonly string[]): DrillReport {
  const zeros = mustBeZero.every((name) => figures[name] === 0);
  return {
    drill,
    date: new Date(started).toISOString(),
    seed: options.seed,
    ok: zeros && problems.length === 0,
    figures,
    mustBeZero,
    problems: problems.slice(0, 200),
    elapsedS: Math.round((Date.now() - started) / 100) / 10,
  };
}
