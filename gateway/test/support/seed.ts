import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { analyzeBytes, loadModel, pickHeatmapLabel, renderHeatmap, renderPreview, type LoadedModel, type Priority, type TriageResult } from '@cxr/inference';
import { sharedDir } from './gateway.js';

export const dicomFile = (name: string): string => path.join(sharedDir, 'dicom', name);
export const modelDir = path.join(sharedDir, 'models', 'densenet121-cxr18-random');

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** What a station holds for one image after the AI ran: the result, the preview, and the heatmap when there is one. */
export interface StationImage {
  readonly file: string;
  readonly contentSha256: string;
  readonly result: TriageResult;
  readonly preview: Buffer | null;
  readonly heatmap: Buffer | null;
}

/** Runs the model on a file as the edge agent's worker does: result, preview, heatmap of the top positive finding. */
export async function analyze(file: string, model: LoadedModel): Promise<StationImage> {
  const bytes = new Uint8Array(await readFile(file));
  const analysis = await analyzeBytes(bytes, model, { decodeAlways: true });
  const { result } = analysis;
  let preview: Buffer | null = null;
  let heatmap: Buffer | null = null;
  if (analysis.source) {
    const rendered = await renderPreview(analysis.source);
    preview = Buffer.from(rendered.png);
    if (analysis.cam && result.applicable && result.probabilities) {
      const label = pickHeatmapLabel(
        result.probabilities,
        model.manifest.labels.map((l) => result.findings.some((f) => f.code === l.code && f.positive)),
      );
      heatmap = await renderHeatmap(analysis.cam, label, rendered, { crop: model.manifest.input.crop });
    }
  }
  return { file, contentSha256: sha256(bytes), result, preview, heatmap };
}

export async function loadTestModel(): Promise<LoadedModel> {
  return loadModel(modelDir);
}

export interface Seeded extends StationImage {
  readonly consultId: string;
  readonly studyInstanceUid: string;
  readonly priority: Priority;
}

/** A station's side of the API, with its own token. */
export class Station {
  constructor(
    readonly baseUrl: string,
    readonly stationId: string,
    readonly token: string,
  ) {}

  async call(method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
    const isBytes = body instanceof Uint8Array;
    const res = await fetch(`${this.baseUrl}${route}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined && !isBytes ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : isBytes ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  }

  async expect(status: number[], method: string, route: string, body?: unknown, headers?: Record<string, string>): Promise<unknown> {
    const res = await this.call(method, route, body, headers);
    if (!status.includes(res.status)) throw new Error(`${method} ${route}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    return res.json;
  }

  /** Uploads one image's result, preview and heatmap, as the edge agent does after the AI ran. */
  async upload(image: StationImage): Promise<{ studyInstanceUid: string }> {
    const studyUid = image.result.studyInstanceUid;
    const sopUid = image.result.sopInstanceUid;
    if (!studyUid || !sopUid) throw new Error(`${image.file}: no study or SOP Instance UID`);
    const base = `/api/v1/stations/${this.stationId}/studies/${studyUid}/instances/${sopUid}/${image.contentSha256}`;
    await this.expect([200, 201], 'PUT', `${base}/result`, { result: image.result });
    for (const [kind, png] of [['preview', image.preview], ['heatmap', image.heatmap]] as const) {
      if (png) await this.expect([200, 201], 'PUT', `${base}/${kind}`, new Uint8Array(png), { 'content-type': 'image/png', 'x-content-sha256': sha256(png) });
    }
    return { studyInstanceUid: studyUid };
  }

  /** Uploads the images of one study (the first one's study), then asks for a consult on it. */
  async send(images: readonly [StationImage, ...StationImage[]], consult: { priority: Priority; reason: 'policy' | 'requested'; note?: string }): Promise<Seeded> {
    const [first] = images;
    const { studyInstanceUid } = await this.upload(first);
    for (const other of images.slice(1)) {
      if (other.result.studyInstanceUid !== studyInstanceUid) throw new Error(`${other.file} is not of study ${studyInstanceUid}`);
      await this.upload(other);
    }
    const { consultId } = (await this.expect([200, 201], 'POST', `/api/v1/stations/${this.stationId}/consults`, {
      studyInstanceUid,
      priority: consult.priority,
      reason: consult.reason,
      ...(consult.note ? { note: consult.note } : {}),
    })) as { consultId: string };
    return { ...first, consultId, studyInstanceUid, priority: consult.priority };
  }
}
