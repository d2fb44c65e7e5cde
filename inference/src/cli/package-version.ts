import { readFileSync } from 'node:fs';

/**
 * The `version` of a package.json, for a command's `--version`. Pass `new URL('../package.json', import.meta.url)`:
 * the relative path is the same from src/ and from dist/.
 */
export function readPackageVersion(packageJson: URL): string {
  return (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;
}
