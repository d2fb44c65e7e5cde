import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TriageResult } from '@cxr/inference';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutboxDb } from '../outbox/outbox-db.js';
import { SpoolDb } from './db.js';
import { checkInvariants } from './invariants.js';
import { InstanceStages } from './stages.js';

let dir: string;
let db: SpoolDb;
let outbox: OutboxDb;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'cxr-stages-'));
  db = new SpoolDb(path.join(dir, 'edge.db'));
  outbox = new OutboxDb(db);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const model = { name: 'm', version: '1.0.0', sha256: 'a'.repeat(64) };
function result(overrides: Partial<TriageResult> = {}): TriageResult {
  return {
    schemaVersion: 1,
    sopInstanceUid: '1.2.3.4',
    studyInstanceUid: '1.2.3',
    applicable: true,
    applicability: { verified: true, notes: [] },
    probabilities: [0.9],
    findings: [{ code: 'pneumothorax', display: 'Pneumothorax', displayVi: 'Tràn khí màng phổi', probability: 0.9, threshold: 0.5, positive: true, priority: 'urgent' }],
    priority: 'urgent',
    model,
    timingsMs: { decode: 10, preprocess: 5, infer: 30, total: 45 },
    ...overrides,
  };
}

function receive(sop = '1.2.3.4', study = '1.2.3'): number {
  const outcome = db.insert(
    {
      sopInstanceUid: sop, contentSha256: sop.replace(/\./gu, '').padEnd(64, '0'), file: `objects/${sop}.dcm`, size: 1, studyInstanceUid: study,
      seriesInstanceUid: null, sopClassUid: null, transferSyntaxUid: null, modality: 'CR', bodyPart: 'CHEST', viewPosition: 'PA',
      patientName: null, patientId: null, patientSex: null, patientBirthDate: null, studyDate: null, studyTime: null, accessionNumber: null,
      studyDescription: null, source: 'dicom', callingAe: null,
    },
    new Date(),
  );
  return outcome.record.id;
}

const kinds = (id: number | null, study = '1.2.3'): string[] => outbox.itemsOf(id, study).map((i) => i.kind).sort();
const images = { preview: 'derived/1/preview.png', heatmap: 'derived/1/heatmap.png', heatmapLabel: 'pneumothorax' };

describe('instance stages and the outbox items they imply', () => {
  it('queues the result and an urgent consult with the early result, the images and DICOM with the final stage', () => {
    const stages = new InstanceStages({ db, outbox }, { enabled: true, consultPriorities: ['stat', 'urgent'] });
    const id = receive();
    expect(stages.unfinished().map((r) => r.id)).toEqual([id]);
    expect(stages.earlyResult(id, result())?.status).toBe('inferred');
    expect(kinds(id)).toEqual(['result']);
    expect(kinds(null)).toEqual(['consult']);
    // Still to finish: a restart takes it up again.
    expect(stages.unfinished().map((r) => r.id)).toEqual([id]);
    expect(stages.complete(id, result(), images)?.complete).toBe(true);
    expect(kinds(id)).toEqual(['dicom', 'heatmap', 'preview', 'result']);
    expect(stages.unfinished()).toEqual([]);
  });

  it('keeps the early result when the instance is run again after a crash: the hospital holds it already', () => {
    const stages = new InstanceStages({ db, outbox }, { enabled: true, consultPriorities: ['stat', 'urgent'] });
    const id = receive();
    const first = result();
    stages.earlyResult(id, first);
    // The run after the restart: same model, other timings (the gateway would refuse a second, different result).
    const again = stages.complete(id, result({ timingsMs: { decode: 99, preprocess: 9, infer: 60, total: 168 } }), images);
    expect(again?.result).toEqual(first);
    expect(again?.heatmapFile).toBe(images.heatmap);
    // Run again on another model (swapped meanwhile): the result stays, its heatmap would not match it.
    const other = receive('1.2.3.5');
    stages.earlyResult(other, first);
    const swapped = stages.complete(other, result({ model: { ...model, version: '1.1.0', sha256: 'b'.repeat(64) } }), images);
    expect(swapped?.result).toEqual(first);
    expect(swapped?.heatmapFile).toBeNull();
  });

  it('never lets a late early result overwrite a final record', () => {
    const stages = new InstanceStages({ db, outbox }, { enabled: true, consultPriorities: ['stat', 'urgent'] });
    const id = receive();
    stages.complete(id, result(), images);
    expect(stages.earlyResult(id, result({ priority: 'routine' }))).toBeUndefined();
    expect(db.get(id)?.priority).toBe('urgent');
  });

  it('queues nothing when the agent works alone, and everything owed once it is linked (reconcile)', () => {
    const alone = new InstanceStages({ db, outbox }, { enabled: false, consultPriorities: ['stat', 'urgent'] });
    const id = receive();
    alone.earlyResult(id, result());
    alone.complete(id, result(), images);
    expect(outbox.pendingCount()).toBe(0);
    const linked = new InstanceStages({ db, outbox }, { enabled: true, consultPriorities: ['stat', 'urgent'] });
    const absolute = (f: string): string => path.join(dir, f);
    expect(checkInvariants({ db, outbox, absolute }, { enabled: true, consultPriorities: ['stat', 'urgent'] }).map((v) => v.rule)).toEqual(
      expect.arrayContaining(['not-forwarded', 'no-consult']),
    );
    expect(linked.reconcile()).toBe(1);
    expect(linked.reconcile()).toBe(0);
    expect(kinds(id)).toEqual(['dicom', 'heatmap', 'preview', 'result']);
    expect(kinds(null)).toEqual(['consult']);
    // The files are not on disk in this test: only that rule is left.
    expect(new Set(checkInvariants({ db, outbox, absolute }, { enabled: true, consultPriorities: ['stat', 'urgent'] }).map((v) => v.rule))).toEqual(new Set(['file-missing']));
  });

  it('sends an urgent study before a routine one that came first, its DICOM included', () => {
    const stages = new InstanceStages({ db, outbox }, { enabled: true, consultPriorities: [] });
    const routine = receive('1.2.3.4', '1.2.3');
    const urgent = receive('1.2.4.4', '1.2.4');
    stages.complete(routine, result({ priority: 'routine', findings: [] }), images);
    stages.complete(urgent, result(), images);
    const order: string[] = [];
    for (let item = outbox.next(Date.now()); item; item = outbox.next(Date.now())) {
      order.push(`${item.studyInstanceUid}:${item.kind}`);
      outbox.done(item.id);
    }
    expect(order).toEqual(['1.2.4:result', '1.2.4:preview', '1.2.4:heatmap', '1.2.4:dicom', '1.2.3:result', '1.2.3:preview', '1.2.3:heatmap', '1.2.3:dicom']);
  });

  it('asks the gateway about a bounded number of open consults a round, those asked least recently first', () => {
    for (const study of ['1.1', '1.2', '1.3']) {
      outbox.requestConsult({ studyInstanceUid: study, reason: 'policy', note: null, priority: 'urgent' });
      outbox.updateConsult(study, { consultId: `c-${study}`, status: 'queued' });
    }
    outbox.updateConsult('1.3', { status: 'reported', report: { impression: 'x' } });
    const round = (): string[] => outbox.consultsToCheck(1).map((c) => c.studyInstanceUid);
    const asked: string[] = [];
    // Every check within one millisecond (the clock stands still), as happens on a fast machine: the order still holds.
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-01-01T00:00:00Z') });
    try {
      for (let i = 0; i < 4; i++) {
        const [study] = round();
        if (study) {
          asked.push(study);
          outbox.markChecked(study);
        }
      }
    } finally {
      vi.useRealTimers();
    }
    // Reported consults are not asked about; the two open ones take turns.
    expect(asked).toEqual(['1.1', '1.2', '1.1', '1.2']);
  });

  it('leaves the schema version of a database written by a newer agent as it is', () => {
    db.raw.pragma('user_version = 999');
    db.close();
    db = new SpoolDb(path.join(dir, 'edge.db'));
    outbox = new OutboxDb(db);
    expect(db.raw.pragma('user_version', { simple: true })).toBe(999);
  });
});
