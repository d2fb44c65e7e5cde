import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { CxrError, toCxrError } from '../errors/index.js';

/** One row of a labelled set: an image and its CSV values by column. */
export interface LabelledRow {
  /** The image as the CSV names it (relative to the CSV's folder, or absolute). */
  readonly image: string;
  /** The image's path to open. */
  readonly file: string;
  /** The data row's number, from 1 (the header is not counted). */
  readonly row: number;
  readonly values: Readonly<Record<string, string>>;
}

export interface LabelledSet {
  readonly csv: string;
  readonly columns: readonly string[];
  readonly rows: readonly LabelledRow[];
}

/**
 * Reads a labelled set: a CSV with a header row, an image column (paths relative to the CSV's folder) and 0/1
 * truth columns. Structural problems fail with CXR_LABELS_INVALID; truth values are checked by `truthOf`.
 */
export async function readLabelledSet(csv: string, imageColumn = 'image'): Promise<LabelledSet> {
  let text: string;
  try {
    text = await readFile(csv, 'utf8');
  } catch (err) {
    throw toCxrError(err, 'CXR_IO');
  }
  let records: string[][];
  try {
    records = parse(text, { bom: true, trim: true, skip_empty_lines: true });
  } catch (err) {
    throw new CxrError('CXR_LABELS_INVALID', `${csv}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const [header, ...body] = records;
  if (!header) throw new CxrError('CXR_LABELS_INVALID', `${csv}: no header row`);
  const columns = header;
  const duplicate = columns.find((c, i) => columns.indexOf(c) !== i);
  if (duplicate !== undefined) throw new CxrError('CXR_LABELS_INVALID', `${csv}: column "${duplicate}" appears twice`);
  if (!columns.includes(imageColumn)) {
    throw new CxrError('CXR_LABELS_INVALID', `${csv}: no image column "${imageColumn}" (columns: ${columns.join(', ')}; see --image-column)`);
  }
  const folder = path.dirname(csv);
  const rows: LabelledRow[] = [];
  const problems: string[] = [];
  body.forEach((record, i) => {
    const values = Object.fromEntries(columns.map((c, k) => [c, record[k] ?? '']));
    const image = values[imageColumn] ?? '';
    if (image === '') problems.push(`row ${i + 1}: empty ${imageColumn}`);
    else rows.push({ image, file: path.resolve(folder, image), row: i + 1, values });
  });
  if (problems.length) throw new CxrError('CXR_LABELS_INVALID', `${csv}: ${summarise(problems)}`);
  if (!rows.length) throw new CxrError('CXR_LABELS_INVALID', `${csv}: no rows`);
  return { csv, columns, rows };
}

/**
 * The 0/1 truth of every row in `column`. Every bad value is reported at once (CXR_LABELS_INVALID): a row
 * without a truth would otherwise vanish from the metrics without a word.
 */
export function truthOf(set: LabelledSet, column: string): boolean[] {
  if (!set.columns.includes(column)) {
    throw new CxrError('CXR_USAGE', `${set.csv}: no truth column "${column}" (columns: ${set.columns.join(', ')})`);
  }
  const problems: string[] = [];
  const truth = set.rows.map((row) => {
    const value = row.values[column];
    if (value !== '0' && value !== '1') problems.push(`row ${row.row} (${row.image}): ${column} is ${JSON.stringify(value)}, expected 0 or 1`);
    return value === '1';
  });
  if (problems.length) throw new CxrError('CXR_LABELS_INVALID', `${set.csv}: ${summarise(problems)}`);
  return truth;
}

/** The truth column for a label code: the column of the same name, ignoring case (NIH's "Pleural_Thickening"). */
export function columnForCode(set: LabelledSet, code: string): string | undefined {
  return set.columns.find((c) => c.toLowerCase() === code.toLowerCase());
}

function summarise(problems: readonly string[]): string {
  const shown = problems.slice(0, 10).join('; ');
  return problems.length > 10 ? `${shown}; and ${problems.length - 10} more` : shown;
}
