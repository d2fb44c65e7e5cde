import { readFile, writeFile } from 'node:fs/promises';
import { toCxrError } from '../../errors/index.js';
import { preprocessBytes } from '../../pipeline/index.js';
import { readManifest } from '../../runtime/index.js';

/** Writes the model's input tensor (float32, C x H x W, little endian) for one image. */
export async function preprocessCommand(file: string, options: { model: string; out: string }): Promise<{ shape: number[]; bytes: number }> {
  const manifest = await readManifest(options.model);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw toCxrError(err, 'CXR_IO');
  }
  const tensor = await preprocessBytes(bytes, manifest.input);
  const out = new Uint8Array(tensor.buffer, tensor.byteOffset, tensor.byteLength);
  // Float32Array is host-endian; every platform Node supports here is little endian.
  await writeFile(options.out, out);
  return { shape: [manifest.input.channels, manifest.input.height, manifest.input.width], bytes: out.length };
}
