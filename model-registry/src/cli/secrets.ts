/**
 * Where `cxr-registry` takes a password or a token from. A value on the command line (`--password`, `--token`) is
 * visible to every user of the machine in `ps` and stays in the shell's history, so each secret can also come from
 * a file (`-` for standard input) or the environment.
 */
import { stat, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';

/** A command used wrongly (exit code 2). */
export class UsageError extends Error {
  readonly code = 'CXR_USAGE';
}

export interface SecretSpec {
  /** the option holding the value itself (`password`, `token`) */
  readonly key: string;
  /** the option holding a file to read it from (`passwordFile`, `tokenFile`) */
  readonly fileKey: string;
  readonly flag: string;
  readonly fileFlag: string;
  /** its environment variables, for the message when none is given */
  readonly env: string;
  readonly fileEnv: string;
  /** what is read from a file: one line (a password), or the last line that is not empty (login's output ends with the token) */
  readonly lines: 'one' | 'last';
  readonly what: string;
}

export const PASSWORD: SecretSpec = {
  key: 'password',
  fileKey: 'passwordFile',
  flag: '--password',
  fileFlag: '--password-file',
  env: 'CXR_REGISTRY_PASSWORD',
  fileEnv: 'CXR_REGISTRY_PASSWORD_FILE',
  lines: 'one',
  what: 'password',
};

export const TOKEN: SecretSpec = {
  key: 'token',
  fileKey: 'tokenFile',
  flag: '--token',
  fileFlag: '--token-file',
  env: 'CXR_REGISTRY_TOKEN',
  fileEnv: 'CXR_REGISTRY_TOKEN_FILE',
  lines: 'last',
  what: 'token',
};

/** Standard input: to its end when it is a pipe or a file, one line when someone types at a terminal. */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin, terminal: false });
    try {
      for await (const line of rl) return `${line}\n`;
      return '';
    } finally {
      rl.close();
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function readSecretFile(spec: SecretSpec, file: string): Promise<string> {
  const where = `${spec.fileFlag} ${file === '-' ? '- (standard input)' : file}`;
  let text: string;
  if (file === '-') {
    text = await readStdin();
  } else {
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as { code?: string }).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not allowed to read it' : code === 'EISDIR' ? 'a folder, not a file' : (err as Error).message;
      throw new UsageError(`${where}: ${why}`);
    }
    // Said, not refused: the secret still works; the owner should know who else can read it.
    if (((await stat(file)).mode & 0o077) !== 0) process.stderr.write(`cxr-registry: warning: ${where} can be read by other users (chmod 600 it)\n`);
  }
  if (spec.lines === 'one') {
    const value = text.replace(/\r?\n$/u, '');
    if (value === '') throw new UsageError(`${where}: the file is empty`);
    if (/[\r\n]/u.test(value)) throw new UsageError(`${where}: the ${spec.what} must be on one line`);
    return value;
  }
  const value = text.split(/\r?\n/u).map((l) => l.trim()).filter((l) => l !== '').at(-1);
  if (value === undefined) throw new UsageError(`${where}: the file is empty`);
  return value;
}

/**
 * The secret of `spec` for `command`, set as the option `spec.key`: from the command line if given there (one way
 * only), else from the environment (one variable only). Throws a UsageError when there are two ways, none, or the
 * file cannot be read or is empty.
 */
export async function resolveSecret(command: Command, spec: SecretSpec): Promise<void> {
  const opts = command.opts<Record<string, string | undefined>>();
  const given = (source: 'cli' | 'env'): { key: string; flag: string }[] =>
    [
      { key: spec.key, flag: source === 'cli' ? spec.flag : spec.env },
      { key: spec.fileKey, flag: source === 'cli' ? spec.fileFlag : spec.fileEnv },
    ].filter((o) => opts[o.key] !== undefined && opts[o.key] !== '' && command.getOptionValueSource(o.key) === source);
  const cli = given('cli');
  const chosen = cli.length > 0 ? cli : given('env');
  if (chosen.length > 1) throw new UsageError(`give the ${spec.what} one way, not both ${chosen.map((c) => c.flag).join(' and ')}`);
  const [one] = chosen;
  if (!one) {
    throw new UsageError(`no ${spec.what}: give ${spec.fileFlag} FILE (- for standard input), or ${spec.fileEnv}=FILE, or ${spec.env}, or ${spec.flag} (visible to other users in ps)`);
  }
  const value = one.key === spec.key ? (opts[spec.key] ?? '') : await readSecretFile(spec, opts[spec.fileKey] ?? '');
  command.setOptionValueWithSource(spec.key, value, 'cli');
}
