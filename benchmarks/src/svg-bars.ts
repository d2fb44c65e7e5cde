/**
 * A horizontal stacked-bar chart as a standalone SVG string: groups of bars (one group per file, one bar per
 * configuration), each bar split into segments (one per stage). Written by hand: it is small and needs no browser.
 */

export interface Segment {
  readonly name: string;
  readonly colour: string;
}

export interface Bar {
  readonly label: string;
  /** One value per segment, in the chart's unit. */
  readonly values: readonly number[];
}

export interface BarGroup {
  readonly label: string;
  readonly bars: readonly Bar[];
}

export interface StackedBarChart {
  readonly title: string;
  readonly subtitle: string;
  /** Short, for each segment's tooltip ("ms"). */
  readonly unit: string;
  readonly axisLabel: string;
  readonly segments: readonly Segment[];
  readonly groups: readonly BarGroup[];
}

const font = 'font-family="DejaVu Sans, Arial, sans-serif"';
const barHeight = 10;
const barGap = 2;
const groupGap = 9;
// Rough advance of a 11 px sans-serif character, enough to size the label column.
const charWidth = 6.2;

export function stackedBarsSvg(chart: StackedBarChart): string {
  const groupLabelWidth = Math.ceil(Math.max(...chart.groups.map((g) => g.label.length)) * charWidth) + 12;
  const barLabelWidth = Math.ceil(Math.max(...chart.groups.flatMap((g) => g.bars.map((b) => b.label.length))) * charWidth * 0.9) + 10;
  const plotLeft = groupLabelWidth + barLabelWidth;
  const plotWidth = 560;
  const width = plotLeft + plotWidth + 70;
  const top = 84;
  const maxTotal = Math.max(...chart.groups.flatMap((g) => g.bars.map((b) => sum(b.values))));
  const ticks = niceTicks(maxTotal);
  const scaleMax = ticks[ticks.length - 1] ?? maxTotal;
  const x = (v: number): number => plotLeft + (v / scaleMax) * plotWidth;

  const parts: string[] = [];
  let y = top;
  chart.groups.forEach((group, gi) => {
    const groupHeight = group.bars.length * (barHeight + barGap) - barGap;
    if (gi % 2 === 1) parts.push(`<rect x="0" y="${y - groupGap / 2}" width="${width}" height="${groupHeight + groupGap}" fill="#f4f4f4"/>`);
    parts.push(`<text x="${groupLabelWidth - 8}" y="${y + groupHeight / 2 + 4}" text-anchor="end" font-size="11" ${font}>${escape(group.label)}</text>`);
    for (const bar of group.bars) {
      parts.push(`<text x="${plotLeft - 5}" y="${y + barHeight - 1}" text-anchor="end" font-size="9.5" fill="#555" ${font}>${escape(bar.label)}</text>`);
      let start = 0;
      bar.values.forEach((value, si) => {
        const segment = chart.segments[si];
        if (value <= 0 || !segment) return;
        parts.push(`<rect x="${x(start).toFixed(1)}" y="${y}" width="${Math.max(0.5, x(start + value) - x(start)).toFixed(1)}" height="${barHeight}" fill="${segment.colour}"><title>${escape(`${group.label}, ${bar.label}: ${segment.name} ${value.toFixed(1)} ${chart.unit}`)}</title></rect>`);
        start += value;
      });
      parts.push(`<text x="${(x(start) + 4).toFixed(1)}" y="${y + barHeight - 1}" font-size="9.5" ${font}>${formatValue(start)}</text>`);
      y += barHeight + barGap;
    }
    y += groupGap - barGap;
  });
  const plotBottom = y;
  const height = plotBottom + 40;

  const axis: string[] = [];
  for (const tick of ticks) {
    axis.push(`<line x1="${x(tick).toFixed(1)}" y1="${top - 6}" x2="${x(tick).toFixed(1)}" y2="${plotBottom}" stroke="#ccc" stroke-width="0.6"/>`);
    axis.push(`<text x="${x(tick).toFixed(1)}" y="${top - 10}" text-anchor="middle" font-size="10" fill="#444" ${font}>${formatValue(tick)}</text>`);
    axis.push(`<text x="${x(tick).toFixed(1)}" y="${plotBottom + 14}" text-anchor="middle" font-size="10" fill="#444" ${font}>${formatValue(tick)}</text>`);
  }
  axis.push(`<text x="${plotLeft + plotWidth / 2}" y="${plotBottom + 30}" text-anchor="middle" font-size="11" ${font}>${escape(chart.axisLabel)}</text>`);

  const legend: string[] = [];
  let lx = plotLeft;
  for (const segment of chart.segments) {
    legend.push(`<rect x="${lx}" y="44" width="12" height="12" fill="${segment.colour}"/>`);
    legend.push(`<text x="${lx + 16}" y="54" font-size="11" ${font}>${escape(segment.name)}</text>`);
    lx += 28 + segment.name.length * charWidth;
  }

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="20" font-size="14" font-weight="bold" ${font}>${escape(chart.title)}</text>`,
    `<text x="12" y="36" font-size="10.5" fill="#444" ${font}>${escape(chart.subtitle)}</text>`,
    ...legend,
    ...parts,
    ...axis,
    '</svg>',
    '',
  ].join('\n');
}

/** Round tick values (1, 2 or 5 times a power of ten) from 0 to at least `max`. */
export function niceTicks(max: number, target = 6): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power);
  const ticks: number[] = [];
  for (let v = 0; v < max + step; v += step) {
    ticks.push(Number(v.toPrecision(12)));
    if (v >= max) break;
  }
  return ticks;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function formatValue(v: number): string {
  return v >= 100 || v === 0 ? v.toFixed(0) : v.toFixed(1);
}

function escape(text: string): string {
  return text.replace(/&/gu, '&amp;').replace(/</gu, '&lt;').replace(/>/gu, '&gt;').replace(/"/gu, '&quot;');
}
