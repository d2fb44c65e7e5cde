import { CxrError } from '../errors/index.js';
import type { ImageInfo } from './image-info.js';
import type { ParsedDicom } from './parse.js';
import { Tag } from './tags.js';

/** The first frame's bytes, before decoding: native pixels or one compressed codestream. */
export type EncodedFrame =
  | { readonly encapsulated: false; readonly bytes: Uint8Array; readonly littleEndian: boolean }
  | { readonly encapsulated: true; readonly codestream: Uint8Array };

export function firstFrame(parsed: ParsedDicom, info: ImageInfo): EncodedFrame {
  const pixelData = parsed.pixelData;
  if (!pixelData) throw new CxrError('CXR_NO_PIXEL_DATA');
  if (!pixelData.encapsulated) {
    const frameBits = info.rows * info.columns * info.samplesPerPixel * info.bitsAllocated;
    const frameBytes = Math.ceil(frameBits / 8);
    const littleEndian = parsed.dataset.littleEndian;
    // Explicit VR Big Endian writes OW as 16-bit words: 8-bit (and 1-bit) samples come byte-swapped in pairs.
    const wordSwapped = !littleEndian && info.bitsAllocated <= 8 && pixelData.vr === 'OW';
    const needed = wordSwapped ? frameBytes + (frameBytes % 2) : frameBytes;
    if (pixelData.bytes.length < needed) {
      throw new CxrError(
        'CXR_PIXEL_DATA_SHORT',
        `${pixelData.bytes.length} bytes for ${info.rows} x ${info.columns} x ${info.samplesPerPixel} at ${info.bitsAllocated} bits (${needed} needed)`,
      );
    }
    if (wordSwapped) return { encapsulated: false, bytes: swapPairs(pixelData.bytes.subarray(0, needed)).subarray(0, frameBytes), littleEndian };
    return { encapsulated: false, bytes: pixelData.bytes.subarray(0, frameBytes), littleEndian };
  }
  const fragments = pixelData.fragments;
  if (fragments.length === 0) throw new CxrError('CXR_NO_PIXEL_DATA', 'encapsulated Pixel Data has no fragments');
  const frameFragments = info.numberOfFrames <= 1 ? fragments : firstFrameFragments(parsed, fragments, info.numberOfFrames);
  return { encapsulated: true, codestream: concat(frameFragments) };
}

function firstFrameFragments(parsed: ParsedDicom, fragments: readonly Uint8Array[], frames: number): readonly Uint8Array[] {
  const first = fragments[0];
  if (!first) return fragments;
  // Offsets in the offset tables count from the first fragment's item tag.
  const itemOffset = (fragment: Uint8Array): number => fragment.byteOffset - first.byteOffset;
  // A usable table starts at 0 and grows; writers that fill it with zeros (or garbage) are ignored.
  const offsets = frameOffsets(parsed);
  const secondFrameOffset = offsets[0] === 0 ? offsets[1] : undefined;
  if (secondFrameOffset !== undefined && secondFrameOffset > 0) return fragments.filter((f) => itemOffset(f) < secondFrameOffset);
  if (fragments.length === frames) return [first];
  // No offset table: a frame starts where a fragment opens with the codec's start marker.
  const startsFrame = (f: Uint8Array): boolean =>
    f[0] === 0xff && (f[1] === 0xd8 /* JPEG SOI */ || f[1] === 0x4f /* J2K SOC */);
  const out = [first];
  for (const fragment of fragments.slice(1)) {
    if (startsFrame(fragment)) break;
    out.push(fragment);
  }
  return out;
}

function frameOffsets(parsed: ParsedDicom): number[] {
  const extended = parsed.dataset.bytes(Tag.ExtendedOffsetTable);
  if (extended && extended.length >= 16) {
    const view = new DataView(extended.buffer, extended.byteOffset, extended.byteLength);
    const out: number[] = [];
    for (let i = 0; i + 8 <= extended.length; i += 8) out.push(Number(view.getBigUint64(i, true)));
    return out;
  }
  const pixelData = parsed.pixelData;
  if (!pixelData?.encapsulated || pixelData.basicOffsetTable.length < 8) return [];
  const bot = pixelData.basicOffsetTable;
  const view = new DataView(bot.buffer, bot.byteOffset, bot.byteLength);
  const out: number[] = [];
  for (let i = 0; i + 4 <= bot.length; i += 4) out.push(view.getUint32(i, true));
  return out;
}

/** A copy with each pair of bytes swapped (OW words to bytes in file order). */
function swapPairs(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    out[i] = bytes[i + 1] as number;
    out[i + 1] = bytes[i] as number;
  }
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1 && parts[0]) return parts[0];
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
