import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { SignedEnvelopeSchema } from '@cxr/inference';

/** A registry model on this station's disk, with the signed documents it was verified against. */
export const StoredModelSchema = Type.Object({
  name: Type.String(),
  version: Type.String(),
  /** sha256 of the model file (as in its manifest and the results it gives) */
  sha256: Type.String(),
  /** folder under DATA_DIR/models/ */
  folder: Type.String(),
  deploymentId: Type.String(),
  thresholds: Type.Record(Type.String(), Type.Number()),
  /** kept to verify the folder again at every start */
  release: SignedEnvelopeSchema,
  deployment: SignedEnvelopeSchema,
  /** when it started serving */
  since: Type.String(),
});
export type StoredModel = Static<typeof StoredModelSchema>;

/** A deployment this station refused for good (not a passing failure): not downloaded or loaded again for a while. */
export const RefusedDeploymentSchema = Type.Object({
  /** sha256 of the signed documents, the model running when they were refused and the registry key trusted then */
  fingerprint: Type.String(),
  code: Type.String(),
  message: Type.String(),
  name: Type.String(),
  version: Type.String(),
  /** when it was refused (ISO 8601) */
  at: Type.String(),
});
export type RefusedDeployment = Static<typeof RefusedDeploymentSchema>;

export const SyncStateSchema = Type.Object({
  schemaVersion: Type.Literal(1),
  /** the registry key pinned on first use (null until then, or when --registry-key is given) */
  pinnedKey: Type.Union([Type.String(), Type.Null()]),
  /** the registry model serving now (null: the station's own --model folder) */
  current: Type.Union([StoredModelSchema, Type.Null()]),
  /** the verified model that served before the current one: the fallback, kept on disk */
  lastGood: Type.Union([StoredModelSchema, Type.Null()]),
  /** refusals kept across restarts (absent in files written before they were kept) */
  refused: Type.Optional(Type.Array(RefusedDeploymentSchema)),
});
export type SyncState = Static<typeof SyncStateSchema>;

export const emptySyncState = (): SyncState => ({ schemaVersion: 1, pinnedKey: null, current: null, lastGood: null });

/**
 * The model sync's durable state, one small JSON file written whole (temporary file, fsync, rename, fsync of the
 * folder): after a power cut it is the old state or the new one, never half of each.
 */
export class SyncStateFile {
  readonly #file: string;

  constructor(file: string) {
    this.#file = file;
  }

  /** The state on disk; the empty state when there is none. Throws on a file that is not a valid state. */
  async read(): Promise<SyncState> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptySyncState();
      throw err;
    }
    const parsed: unknown = JSON.parse(text);
    if (!Value.Check(SyncStateSchema, parsed)) {
      const first = [...Value.Errors(SyncStateSchema, parsed)][0];
      throw new Error(`${this.#file} is not a model sync state: ${first ? `${first.path} ${first.message}` : 'schema'}`);
    }
    return parsed;
  }

  async write(state: SyncState): Promise<void> {
    await writeDurably(this.#file, JSON.stringify(state, null, 1));
  }
}

/** Writes a whole file so that it survives a power cut: temporary file, fsync, rename over, fsync of the folder. */
export async function writeDurably(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  await syncDir(path.dirname(file));
}

/** fsync of a folder, so that a rename in it is on disk. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
