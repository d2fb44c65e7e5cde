import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EncodeError } from '../errors.js';

const run = promisify(execFile);

/** The compressed syntaxes made by DCMTK's command-line encoders (lossless settings only). */
export const dcmtkEncoders = {
  rle: { tool: 'dcmcrle', args: [] as string[] },
  'jpeg-ls': { tool: 'dcmcjpls', args: ['+el'] },
  // Process 14, first-order prediction (selection value 1): the JPEG Lossless syntax every reader knows.
  'jpeg-lossless': { tool: 'dcmcjpeg', args: ['+e1'] },
} as const;

export type DcmtkSyntax = keyof typeof dcmtkEncoders;

const versions = new Map<string, string>();

/** "dcmcrle 3.6.7" from `dcmcrle --version`, once per tool. */
async function toolVersion(tool: string): Promise<string> {
  const known = versions.get(tool);
  if (known) return known;
  const { stdout } = await run(tool, ['--version']);
  const match = /v(\d+\.\d+\.\d+)/u.exec(stdout);
  const version = `${tool} ${match?.[1] ?? 'unknown version'} (DCMTK)`;
  versions.set(tool, version);
  return version;
}

/**
 * Compresses a Part 10 file with DCMTK, keeping its UIDs (these encoders only make new UIDs for lossy output).
 * Returns the new file's bytes and the encoder's name and version.
 */
export async function encodeWithDcmtk(part10: Uint8Array, syntax: DcmtkSyntax): Promise<{ bytes: Uint8Array; encoder: string }> {
  const { tool, args } = dcmtkEncoders[syntax];
  const dir = await mkdtemp(join(tmpdir(), 'cxr-datasets-'));
  try {
    const input = join(dir, 'native.dcm');
    const output = join(dir, 'encoded.dcm');
    await writeFile(input, part10);
    try {
      await run(tool, [...args, input, output], { maxBuffer: 1 << 20 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT') throw new EncodeError(`${tool} is not installed (Debian package dcmtk)`, { cause: err });
      throw new EncodeError(`${tool} failed: ${(e.stderr ?? e.message).trim()}`, { cause: err });
    }
    return { bytes: await readFile(output), encoder: await toolVersion(tool) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface EncodeContext {
  getEncodedBuffer(): Uint8Array | undefined;
}
interface DcmjsCodecsModule {
  NativeCodecs: {
    initializeAsync(opts?: { logCodecsInfo?: boolean; logCodecsTrace?: boolean }): Promise<void>;
    isInitialized(): boolean;
    encodeJpeg2000(ctx: EncodeContext, params?: { lossy?: boolean }): EncodeContext;
  };
  Context: new (attrs: Record<string, unknown>) => EncodeContext;
  version: string;
}

const require = createRequire(import.meta.url);
let codecs: Promise<DcmjsCodecsModule> | undefined;

function loadCodecs(): Promise<DcmjsCodecsModule> {
  codecs ??= (async () => {
    const mod = require('dcmjs-codecs') as DcmjsCodecsModule;
    if (!mod.NativeCodecs.isInitialized()) await mod.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
    return mod;
  })();
  return codecs;
}

export interface FramePixels {
  readonly stored: Uint8Array | Uint16Array;
  readonly rows: number;
  readonly columns: number;
  readonly bitsAllocated: 8 | 16;
  readonly bitsStored: number;
  readonly photometricInterpretation: string;
}

/** Little-endian sample bytes, as a native Pixel Data value holds them. */
export function littleEndianBytes(stored: Uint8Array | Uint16Array): Uint8Array {
  if (stored instanceof Uint8Array) return stored;
  const bytes = new Uint8Array(stored.length * 2);
  const view = new DataView(bytes.buffer);
  stored.forEach((v, i) => view.setUint16(i * 2, v, true));
  return bytes;
}

/**
 * JPEG 2000 lossless (reversible 5/3 wavelet) with dcmjs-codecs' WebAssembly OpenJPEG: DCMTK's free toolkit has
 * no JPEG 2000 encoder. Returns one codestream for the frame.
 */
export async function encodeJpeg2000Lossless(frame: FramePixels): Promise<{ codestream: Uint8Array; encoder: string }> {
  const mod = await loadCodecs();
  let encoded: Uint8Array | undefined;
  try {
    const context = new mod.Context({
      width: frame.columns,
      height: frame.rows,
      bitsAllocated: frame.bitsAllocated,
      bitsStored: frame.bitsStored,
      samplesPerPixel: 1,
      pixelRepresentation: 0,
      planarConfiguration: 0,
      photometricInterpretation: frame.photometricInterpretation,
      decodedBuffer: littleEndianBytes(frame.stored),
    });
    encoded = mod.NativeCodecs.encodeJpeg2000(context, { lossy: false }).getEncodedBuffer();
  } catch (err) {
    codecs = undefined;
    throw new EncodeError(`JPEG 2000: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (!encoded || encoded.length === 0) throw new EncodeError('JPEG 2000: the encoder returned no data');
  // Copied out of the WebAssembly heap, which the next call may reuse; a fragment must have even length, and a
  // zero byte after the codestream's end marker is the padding PS3.5 A.4 allows.
  const codestream = new Uint8Array(encoded.length + (encoded.length % 2));
  codestream.set(encoded);
  return { codestream, encoder: `dcmjs-codecs ${mod.version} (OpenJPEG, WebAssembly)` };
}
