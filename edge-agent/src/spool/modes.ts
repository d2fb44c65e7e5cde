import { chmodSync, statSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';

/**
 * Modes of everything the spool writes: radiographs and patient data are for the agent's account alone. Given at
 * creation (never left to the umask, which can only take bits away) and set again on what an older agent left open.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates a private folder (and its missing parents), or makes an existing one private. */
export async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await chmod(dir, PRIVATE_DIR_MODE);
}

/**
 * Makes an existing file private. Another account (a technician's `cxr-edge check`) may not change a file it does
 * not own: that is left as it is.
 */
export function tightenFile(file: string): void {
  try {
    if ((statSync(file).mode & 0o777) !== PRIVATE_FILE_MODE) chmodSync(file, PRIVATE_FILE_MODE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOENT') throw err;
  }
}
