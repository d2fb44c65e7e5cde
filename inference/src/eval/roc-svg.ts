import type { Interval, RocCurve } from './metrics.js';

export interface RocPlotCurve {
  readonly name: string;
  readonly roc: RocCurve;
  readonly auc: number | null;
  readonly auc95: Interval | null;
  /** The operating point's sensitivity and specificity; omitted when either is undefined. */
  readonly sensitivity: number | null;
  readonly specificity: number | null;
  /** How the operating point decides, e.g. "any label >= its threshold" (not always a point of this curve). */
  readonly pointRule: string;
}

export interface RocPlot {
  readonly title: string;
  readonly subtitle?: string;
  readonly curves: readonly RocPlotCurve[];
}

// Tableau 10: distinguishable, and still readable for the common colour blindnesses.
const palette = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const dashes = ['', '6 3', '2 2'];

const size = 420;
const left = 72;
const top = 64;
const legendX = left + size + 32;
const lineHeight = 17;

const fmt = (v: number, digits = 3): string => v.toFixed(digits);
const x = (fpr: number): string => (left + fpr * size).toFixed(2);
const y = (tpr: number): string => (top + (1 - tpr) * size).toFixed(2);

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/gu, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

/** A ROC plot as standalone SVG: axes with ticks, the chance diagonal, each curve, its operating point, a legend with AUC and CI. */
export function rocSvg(plot: RocPlot): string {
  const legendRows = plot.curves.length * 3;
  const width = legendX + 460;
  const height = Math.max(top + size + 64, top + legendRows * lineHeight + 16);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="24" font-size="15" font-weight="bold">${escapeXml(plot.title)}</text>`,
  );
  if (plot.subtitle) out.push(`<text x="${left}" y="44" fill="#444444">${escapeXml(plot.subtitle)}</text>`);

  // Grid and ticks every 0.1, labelled every 0.2.
  for (let k = 0; k <= 10; k++) {
    const v = k / 10;
    const labelled = k % 2 === 0;
    out.push(
      `<line x1="${x(v)}" y1="${y(0)}" x2="${x(v)}" y2="${y(1)}" stroke="#e6e6e6"/>`,
      `<line x1="${x(0)}" y1="${y(v)}" x2="${x(1)}" y2="${y(v)}" stroke="#e6e6e6"/>`,
      `<line x1="${x(v)}" y1="${y(0)}" x2="${x(v)}" y2="${(top + size + (labelled ? 6 : 3)).toFixed(2)}" stroke="#000000"/>`,
      `<line x1="${(left - (labelled ? 6 : 3)).toFixed(2)}" y1="${y(v)}" x2="${x(0)}" y2="${y(v)}" stroke="#000000"/>`,
    );
    if (labelled) {
      out.push(
        `<text x="${x(v)}" y="${(top + size + 20).toFixed(2)}" text-anchor="middle">${fmt(v, 1)}</text>`,
        `<text x="${(left - 10).toFixed(2)}" y="${(top + (1 - v) * size + 4).toFixed(2)}" text-anchor="end">${fmt(v, 1)}</text>`,
      );
    }
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${size}" height="${size}" fill="none" stroke="#000000"/>`,
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="#888888" stroke-dasharray="5 4"/>`,
    `<text x="${x(0.5)}" y="${(top + size + 42).toFixed(2)}" text-anchor="middle">1 − specificity (false positive rate)</text>`,
    `<text transform="translate(${left - 46} ${y(0.5)}) rotate(-90)" text-anchor="middle">sensitivity (true positive rate)</text>`,
  );

  plot.curves.forEach((curve, i) => {
    const colour = palette[i % palette.length] ?? '#000000';
    const dash = dashes[Math.floor(i / palette.length) % dashes.length] ?? '';
    const points = curve.roc.fpr.map((f, k) => `${x(f)},${y(curve.roc.tpr[k] ?? 0)}`).join(' ');
    out.push(`<polyline points="${points}" fill="none" stroke="${colour}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    const hasPoint = curve.sensitivity !== null && curve.specificity !== null;
    if (curve.sensitivity !== null && curve.specificity !== null) {
      out.push(`<circle cx="${x(1 - curve.specificity)}" cy="${y(curve.sensitivity)}" r="5" fill="${colour}" stroke="#000000" stroke-width="1.5"/>`);
    }
    const ly = top + i * 3 * lineHeight;
    const auc = curve.auc === null ? 'AUC undefined (one class only)' : `AUC ${fmt(curve.auc, 4)}`;
    const ci = curve.auc95 ? ` (95% CI ${fmt(curve.auc95[0])}–${fmt(curve.auc95[1])}, DeLong)` : '';
    out.push(
      `<line x1="${legendX}" y1="${ly + 8}" x2="${legendX + 24}" y2="${ly + 8}" stroke="${colour}" stroke-width="3"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      `<text x="${legendX + 32}" y="${ly + 12}" font-weight="bold">${escapeXml(curve.name)}</text>`,
      `<text x="${legendX + 32}" y="${ly + 12 + lineHeight}">${escapeXml(`${auc}${ci}`)}</text>`,
    );
    if (hasPoint) {
      const point = `● ${curve.pointRule}: sensitivity ${fmt(curve.sensitivity ?? 0)}, specificity ${fmt(curve.specificity ?? 0)}`;
      out.push(`<text x="${legendX + 32}" y="${ly + 12 + 2 * lineHeight}" fill="#444444">${escapeXml(point)}</text>`);
    }
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
