import { readFile } from 'node:fs/promises';
import { thresholdsFromJson, type ThresholdMap } from '../contracts/index.js';
import { CxrError } from '../errors/index.js';

/** `--thresholds FILE`: a flat `{code: threshold}` object, a `cxr calibrate` file, or a registry deployment. */
export async function readThresholdsFile(file: string): Promise<ThresholdMap> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new CxrError('CXR_USAGE', `--thresholds ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return thresholdsFromJson(json, `--thresholds ${file}`);
}
