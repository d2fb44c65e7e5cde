import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { hashPassword, passwordProblem } from '@cxr/inference';
import type { Command } from 'commander';
import { AccountStore, normalizeUsername, usernameProblem } from './store.js';

/** Where a command's words go, and how it ends; passed in so the commands are the same in a test. */
export interface AdminIo {
  readonly stdin: NodeJS.ReadStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  setExitCode(code: number): void;
}

class AdminProblem extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

/**
 * `cxr-edge admin ...`: the radiographers' accounts for the page when it is open to the station's network. Run it as
 * the user the agent runs as (the accounts file is private to that user); it works while the agent runs, and the
 * agent sees a change at its next request. Passwords come from a file or standard input, never the command line
 * (where `ps` shows them to every user of the PC).
 */
export function registerAdminCommands(program: Command, io: AdminIo): void {
  const admin = program.command('admin').description("Manage the radiographers' accounts for the station's page (sign-in when the page is open to the network).");

  /** Opens the accounts file of `dataDir` for one command; a refusal is said on stderr with its exit code. */
  const withStore = async (dataDir: string | undefined, action: (store: AccountStore) => Promise<void> | void): Promise<void> => {
    const dir = dataDir ?? io.env.CXR_EDGE_DATA_DIR;
    try {
      if (!dir) throw new AdminProblem('--data-dir is required (or CXR_EDGE_DATA_DIR): the folder the agent runs on', 2);
      // Private from the start, as the agent makes it: the accounts file is in it.
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const store = new AccountStore(path.resolve(dir));
      try {
        await action(store);
      } finally {
        store.close();
      }
    } catch (err) {
      if (!(err instanceof AdminProblem)) throw err;
      // Codes: CXR_USAGE (the core's registry), CXR_ADMIN_REFUSED (web/errors.ts EdgeCommandErrors).
      io.stderr.write(`cxr-edge admin: ${err.exitCode === 2 ? 'CXR_USAGE' : 'CXR_ADMIN_REFUSED'}: ${err.message}\n`);
      io.setExitCode(err.exitCode);
    }
  };

  const checkName = (name: string): string => {
    const problem = usernameProblem(name);
    if (problem) throw new AdminProblem(problem, 2);
    return normalizeUsername(name);
  };

  const dataDirOption = ['--data-dir <dir>', "the agent's data folder (env CXR_EDGE_DATA_DIR)"] as const;
  const passwordFileOption = ['--password-file <file>', 'read the password from this file (its first line); without it, from standard input'] as const;
  type Opts = { dataDir?: string; passwordFile?: string; json?: boolean };

  admin
    .command('add-user')
    .description('Add a radiographer account; the password is read from --password-file or standard input.')
    .argument('<name>', 'user name: 2 to 64 letters, digits, dots, dashes or underscores (kept in lower case)')
    .option(...dataDirOption)
    .option(...passwordFileOption)
    .action((name: string, opts: Opts) =>
      withStore(opts.dataDir, async (store) => {
        const username = checkName(name);
        if (store.get(username)) throw new AdminProblem(`user ${username} exists already (set-password changes a password)`, 1);
        const hash = await hashPassword(await readPassword(io, opts.passwordFile));
        if (!store.add(username, hash)) throw new AdminProblem(`user ${username} exists already`, 1);
        io.stdout.write(`added user ${username}\n`);
      }),
    );

  admin
    .command('set-password')
    .description("Change an account's password (read from --password-file or standard input); its sessions end at once.")
    .argument('<name>', 'user name')
    .option(...dataDirOption)
    .option(...passwordFileOption)
    .action((name: string, opts: Opts) =>
      withStore(opts.dataDir, async (store) => {
        const username = checkName(name);
        if (!store.get(username)) throw new AdminProblem(`no user ${username}`, 1);
        const hash = await hashPassword(await readPassword(io, opts.passwordFile));
        store.setPassword(username, hash);
        io.stdout.write(`password of ${username} changed; its sessions are ended\n`);
      }),
    );

  for (const [command, disabled] of [
    ['disable-user', true],
    ['enable-user', false],
  ] as const) {
    admin
      .command(command)
      .description(disabled ? 'Disable an account: it can no longer sign in, and its open sessions are refused at once.' : 'Enable a disabled account again.')
      .argument('<name>', 'user name')
      .option(...dataDirOption)
      .action((name: string, opts: Opts) =>
        withStore(opts.dataDir, (store) => {
          const username = checkName(name);
          if (!store.setDisabled(username, disabled)) throw new AdminProblem(`no user ${username}`, 1);
          io.stdout.write(disabled ? `disabled ${username}; its sessions are ended\n` : `enabled ${username}\n`);
        }),
      );
  }

  admin
    .command('list-users')
    .description('List the accounts: name, enabled or disabled, when made, when the password last changed, last sign-in.')
    .option(...dataDirOption)
    .option('--json', 'one JSON object per account', false)
    .action((opts: Opts) =>
      withStore(opts.dataDir, (store) => {
        for (const a of store.list()) {
          const row = { username: a.username, state: a.disabled ? 'disabled' : 'enabled', createdAt: a.createdAt, passwordChangedAt: a.passwordChangedAt, lastSignInAt: a.lastSignInAt };
          io.stdout.write(opts.json ? `${JSON.stringify(row)}\n` : `${row.username}\t${row.state}\tcreated ${row.createdAt}\tpassword ${row.passwordChangedAt}\tlast sign-in ${row.lastSignInAt ?? '-'}\n`);
        }
      }),
    );
}

/**
 * The password: the first line of `--password-file`, else standard input (typed twice, without echo, on a terminal;
 * else its first line, as from a pipe). Never an argument.
 */
async function readPassword(io: AdminIo, file: string | undefined): Promise<string> {
  let password: string;
  if (typeof file === 'string') {
    try {
      password = firstLine(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new AdminProblem(`cannot read the password file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 2);
    }
  } else if (io.stdin.isTTY) {
    password = await promptHidden(io, 'Mật khẩu / Password: ');
    const again = await promptHidden(io, 'Nhập lại / Again: ');
    if (again !== password) throw new AdminProblem('the two passwords differ', 2);
  } else {
    password = firstLine(await readAll(io.stdin));
  }
  const problem = passwordProblem(password);
  if (problem) throw new AdminProblem(problem, 2);
  return password;
}

function firstLine(text: string): string {
  return text.split(/\r?\n/u)[0] ?? '';
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads one line from the terminal with echo off. */
function promptHidden(io: AdminIo, prompt: string): Promise<string> {
  const { stdin } = io;
  io.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let typed = '';
    stdin.setRawMode(true);
    stdin.resume();
    const done = (error?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      io.stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (data: Buffer): void => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(new AdminProblem('cancelled', 2));
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}
