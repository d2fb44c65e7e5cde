import { readFile } from 'node:fs/promises';
import type { ModelInput, TriageResult } from '../contracts/index.js';
import type { DecodeOptions } from '../codecs/index.js';
import { toCxrError } from '../errors/index.js';
import { activate, checkApplicability, round6, triage, type ImageFacts, type ThresholdOverrides } from '../findings/index.js';
import { toInputTensor, type IntensityApplied } from '../preprocess/index.js';
import type { ClassActivationMaps, LoadedModel } from '../runtime/types.js';
import type { ImageInfo } from '../dicom/image-info.js';
import type { RasterFormat } from '../images/raster.js';
import { decodeSourceImage, intensitySource, isColourDicom, readSourceHeader, readSourceImage, type SourceImage } from './source-image.js';

export interface AnalyzeOptions {
  /** Run the model on an image outside the model's applicability; the result stays marked not applicable. */
  readonly force?: boolean;
  /** Per-site thresholds by label code, overriding the manifest's. */
  readonly thresholds?: ThresholdOverrides;
  readonly decode?: DecodeOptions;
  /** Decode an image even when the model does not apply to it (the edge still shows it to the radiographer). */
  readonly decodeAlways?: boolean;
  /** Told just before the model runs (the image is decoded and preprocessed): the edge knows which phase a slow analysis is in. */
  readonly onModelRun?: () => void;
}

export interface Analysis {
  readonly result: TriageResult;
  /** The decoded image; undefined when it was not decoded (not applicable, and neither forced nor decodeAlways). */
  readonly source: SourceImage | undefined;
  /** Present when the model ran and has a `cam` output. */
  readonly cam: ClassActivationMaps | undefined;
  readonly intensity: IntensityApplied | undefined;
}

const ms = (from: number): number => Math.round((performance.now() - from) * 100) / 100;

export async function analyzeFile(file: string, model: LoadedModel, options: AnalyzeOptions = {}): Promise<Analysis> {
  const t0 = performance.now();
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw toCxrError(err, 'CXR_IO');
  }
  const read = ms(t0);
  const analysis = await analyzeBytes(bytes, model, options);
  const { timingsMs } = analysis.result;
  return {
    ...analysis,
    result: { file, ...analysis.result, timingsMs: { ...timingsMs, read, total: Math.round((timingsMs.total + read) * 100) / 100 } },
  };
}

/**
 * One image to a triage result: read the header, gate on applicability, decode, preprocess by the manifest, run,
 * find, prioritise. An image outside the model's applicability is not decoded unless `force` or `decodeAlways`.
 */
export async function analyzeBytes(bytes: Uint8Array, model: LoadedModel, options: AnalyzeOptions = {}): Promise<Analysis> {
  const start = performance.now();
  const { manifest, identity } = model;
  const header = readSourceHeader(bytes);
  const gate = checkApplicability(manifest, header.kind === 'dicom' ? dicomFacts(header.info) : rasterFacts(header.format));
  const base = {
    schemaVersion: 1 as const,
    sopInstanceUid: header.kind === 'dicom' ? (header.info.sopInstanceUid ?? null) : null,
    studyInstanceUid: header.kind === 'dicom' ? (header.info.studyInstanceUid ?? null) : null,
    applicable: gate.applicable,
    ...(gate.reason ? { reason: gate.reason } : {}),
    applicability: gate.applicability,
    model: identity,
  };
  if (!gate.applicable && !options.force && !options.decodeAlways) {
    const result: TriageResult = { ...base, findings: [], priority: 'routine', timingsMs: { decode: ms(start), preprocess: 0, infer: 0, total: ms(start) } };
    return { result, source: undefined, cam: undefined, intensity: undefined };
  }
  const source = header.kind === 'dicom' ? await decodeSourceImage(header, options.decode) : await readSourceImage(bytes, options.decode);
  const decode = ms(start);
  const decoder = source.kind === 'dicom' ? { decoder: source.frame.decoder } : {};
  if (!gate.applicable && !options.force) {
    const result: TriageResult = { ...base, ...decoder, findings: [], priority: 'routine', timingsMs: { decode, preprocess: 0, infer: 0, total: ms(start) } };
    return { result, source, cam: undefined, intensity: undefined };
  }

  const t1 = performance.now();
  const { tensor, intensity } = preprocessSource(source, manifest.input);
  const preprocess = ms(t1);

  const t2 = performance.now();
  options.onModelRun?.();
  const output = await model.run(tensor);
  const probabilities = activate(output.raw, manifest.outputs.probabilities.activation).map(round6);
  const infer = ms(t2);

  const triaged = gate.applicable ? triage(manifest.labels, probabilities, options.thresholds) : { findings: [], priority: 'routine' as const };
  const result: TriageResult = {
    ...base,
    ...decoder,
    ...(gate.applicable ? {} : { forced: true }),
    probabilities,
    findings: triaged.findings,
    priority: triaged.priority,
    timingsMs: { decode, preprocess, infer, total: ms(start) },
  };
  return { result, source, cam: output.cam, intensity };
}

/** The model's input tensor for an image (contract steps 1 to 8). */
export function preprocessSource(source: SourceImage, input: ModelInput): { tensor: Float32Array; intensity: IntensityApplied | undefined } {
  const { pixels, applied } = intensitySource(source, input.intensity);
  return { tensor: toInputTensor(pixels, input), intensity: applied };
}

export async function preprocessBytes(bytes: Uint8Array, input: ModelInput, decode?: DecodeOptions): Promise<Float32Array> {
  return preprocessSource(await readSourceImage(bytes, decode), input).tensor;
}

export function imageFacts(source: SourceImage): ImageFacts {
  return source.kind === 'raster' ? rasterFacts(source.raster.format) : dicomFacts(source.info);
}

/** PNG/JPEG colour is made grey by the contract's luma step, so it does not gate. */
function rasterFacts(format: RasterFormat): ImageFacts {
  return { modality: undefined, bodyPart: undefined, view: undefined, colour: false, format };
}

function dicomFacts(info: ImageInfo): ImageFacts {
  return { modality: info.modality, bodyPart: info.bodyPartExamined, view: info.viewPosition, colour: isColourDicom(info), format: 'dicom' };
}
