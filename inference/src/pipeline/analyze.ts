import { readFile } from 'node:fs/promises';
import type { ModelInput, TriageResult } from '../contracts/index.js';
import type { DecodeOptions } from '../codecs/index.js';
import { toCxrError } from '../errors/index.js';
import { activate, checkApplicability, round6, triage, type ImageFacts, type ThresholdOverrides } from '../findings/index.js';
import { toInputTensor, type IntensityApplied } from '../preprocess/index.js';
import type { ClassActivationMaps, LoadedModel } from '../runtime/types.js';
import { intensitySource, isColourDicom, readSourceImage, type SourceImage } from './source-image.js';

export interface AnalyzeOptions {
  /** Run the model on an image outside the model's applicability; the result stays marked not applicable. */
  readonly force?: boolean;
  /** Per-site thresholds by label code, overriding the manifest's. */
  readonly thresholds?: ThresholdOverrides;
  readonly decode?: DecodeOptions;
}

export interface Analysis {
  readonly result: TriageResult;
  readonly source: SourceImage;
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
    result: { ...analysis.result, file, timingsMs: { ...timingsMs, read, total: Math.round((timingsMs.total + read) * 100) / 100 } },
  };
}

/** One image to a triage result: decode, gate, preprocess by the manifest, run, find, prioritise. */
export async function analyzeBytes(bytes: Uint8Array, model: LoadedModel, options: AnalyzeOptions = {}): Promise<Analysis> {
  const start = performance.now();
  const source = await readSourceImage(bytes, options.decode);
  const decode = ms(start);
  const { manifest, identity } = model;
  const gate = checkApplicability(manifest, imageFacts(source));
  const base = {
    schemaVersion: 1 as const,
    sopInstanceUid: source.kind === 'dicom' ? (source.info.sopInstanceUid ?? null) : null,
    studyInstanceUid: source.kind === 'dicom' ? (source.info.studyInstanceUid ?? null) : null,
    applicable: gate.applicable,
    ...(gate.reason ? { reason: gate.reason } : {}),
    applicability: gate.applicability,
    model: identity,
    ...(source.kind === 'dicom' ? { decoder: source.frame.decoder } : {}),
  };
  if (!gate.applicable && !options.force) {
    const result: TriageResult = {
      ...base,
      findings: [],
      priority: 'routine',
      timingsMs: { decode, preprocess: 0, infer: 0, total: ms(start) },
    };
    return { result, source, cam: undefined, intensity: undefined };
  }

  const t1 = performance.now();
  const { tensor, intensity } = preprocessSource(source, manifest.input);
  const preprocess = ms(t1);

  const t2 = performance.now();
  const output = await model.run(tensor);
  const probabilities = activate(output.raw, manifest.outputs.probabilities.activation).map(round6);
  const infer = ms(t2);

  const triaged = gate.applicable ? triage(manifest.labels, probabilities, options.thresholds) : { findings: [], priority: 'routine' as const };
  const result: TriageResult = {
    ...base,
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
  if (source.kind === 'raster') {
    // PNG/JPEG colour is made grey by the contract's luma step, so it does not gate.
    return { modality: undefined, bodyPart: undefined, view: undefined, colour: false, format: source.raster.format };
  }
  const { info } = source;
  return {
    modality: info.modality,
    bodyPart: info.bodyPartExamined,
    view: info.viewPosition,
    colour: isColourDicom(info),
    format: 'dicom',
  };
}
