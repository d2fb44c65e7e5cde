/**
 * Every decoder that can read a file, on the same files in the same run: the dispatcher uses the fastest correct
 * one. Median of several runs of the first frame's decode (no parsing, no preprocessing).
 *
 *   npm run codecs -w benchmarks -- [--runs 5]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  TransferSyntax,
  decodeWithCharls,
  decodeWithDcmjs,
  firstFrame,
  loadNativeDcmjpeg,
  loadNativeOpenJpeg,
  parseDicom,
  readImageInfo,
  type DecodedFrame,
  type ImageInfo,
} from '@cxr/inference';
import { machineDescription, resultsDir, sharedDicomFiles } from './corpus.js';
import { fmt, median } from './stats.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(args.runs);
const files = sharedDicomFiles();

type Decoder = { name: string; decode: (codestream: Uint8Array, info: ImageInfo) => Promise<DecodedFrame | unknown> };
const native = loadNativeOpenJpeg();
const nativeJpeg = loadNativeDcmjpeg();
const decodersFor = (ts: string): Decoder[] => {
  switch (ts) {
    case TransferSyntax.RLELossless:
      return [{ name: 'dcmjs-codecs rle', decode: (c, i) => decodeWithDcmjs('rle', c, i) }];
    case TransferSyntax.JPEGBaseline8Bit:
    case TransferSyntax.JPEGExtended12Bit:
      return [{ name: 'dcmjs-codecs jpeg', decode: (c, i) => decodeWithDcmjs('jpeg', c, i) }];
    case TransferSyntax.JPEGLossless:
    case TransferSyntax.JPEGLosslessSV1:
      return [
        ...(nativeJpeg ? [{ name: 'dcmtk native (thread pool)', decode: (c: Uint8Array, i: ImageInfo) => nativeJpeg.decodeLossless(c, i.columns, i.rows, i.pixelRepresentation === 1) }] : []),
        { name: 'dcmjs-codecs jpeg', decode: (c, i) => decodeWithDcmjs('jpeg', c, i) },
      ];
    case TransferSyntax.JPEGLSLossless:
    case TransferSyntax.JPEGLSNearLossless:
      return [
        { name: 'charls', decode: (c, i) => decodeWithCharls(c, i) },
        { name: 'dcmjs-codecs jpeg-ls', decode: (c, i) => decodeWithDcmjs('jpeg-ls', c, i) },
      ];
    case TransferSyntax.JPEG2000Lossless:
    case TransferSyntax.JPEG2000:
      return [
        ...(native
          ? [
              { name: 'openjpeg native, 2 threads', decode: (c: Uint8Array, i: ImageInfo) => native.decode(c, { threads: 2, maxPixels: i.rows * i.columns }) },
              { name: 'openjpeg native, 1 thread', decode: (c: Uint8Array, i: ImageInfo) => native.decode(c, { threads: 1, maxPixels: i.rows * i.columns }) },
            ]
          : []),
        { name: 'dcmjs-codecs openjpeg (wasm)', decode: (c, i) => decodeWithDcmjs('jpeg2000', c, i) },
      ];
    default:
      return [];
  }
};

const rows: { file: string; decoder: string; ms: number; ratio: number }[] = [];
for (const file of files) {
  const parsed = parseDicom(readFileSync(file));
  const info = readImageInfo(parsed);
  const frame = firstFrame(parsed, info);
  if (!frame.encapsulated) continue;
  const timings: { decoder: string; ms: number }[] = [];
  for (const d of decodersFor(info.transferSyntaxUid)) {
    await d.decode(frame.codestream, info);
    const samples: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      await d.decode(frame.codestream, info);
      samples.push(performance.now() - t0);
    }
    timings.push({ decoder: d.name, ms: median(samples) });
  }
  const best = Math.min(...timings.map((t) => t.ms));
  for (const t of timings) rows.push({ file: path.basename(file), decoder: t.decoder, ms: t.ms, ratio: t.ms / best });
}

const machine = machineDescription();
writeFileSync(path.join(resultsDir, 'codecs.json'), JSON.stringify({ date: new Date().toISOString(), machine, runs, rows }, null, 1));
console.log(`\n#### Decoders side by side (median of ${runs}; ${machine})\n`);
console.log('| file | decoder | ms | x fastest |');
console.log('|---|---|---:|---:|');
for (const r of rows) console.log(`| ${r.file} | ${r.decoder} | ${fmt(r.ms)} | ${r.ratio.toFixed(2)} |`);
