import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseDicom, readSourceImage, type DicomDataset, type ParsedDicom } from '@cxr/inference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransferSyntaxUid, encodePart10, sequence, text, uint16, bytesElement, type DataElement } from '../dicom/writer.js';
import type { Manifest, ManifestEntry } from '../manifest.js';
import { cxrInfer, dcmdumpProblems, nihSample, runCli, shared } from '../test-support/tools.js';
import { defaultWrapOptions, wrapImage } from '../wrap/wrap.js';
import { standardVr } from '../dicom/dictionary.js';
import { shiftDate, shiftDateTime } from './deidentify.js';
import { basicProfile } from './profile.js';

const SHIFT_DAYS = -400;
const ROOT = '1.2.826.0.1.3680043.8.498.';
const planted = {
  studyUid: `${ROOT}100`,
  seriesUid: `${ROOT}200`,
  frameOfReferenceUid: `${ROOT}300`,
  irradiationEventUid: `${ROOT}400`,
  sopA: `${ROOT}1001`,
  sopB: `${ROOT}1002`,
  sopC: `${ROOT}1003`,
};
/** Every identifying value planted in the made files: none may be left anywhere in the outputs' bytes. */
const identifying = [
  'NGUYEN',
  'BN-0042-7731',
  '19800102',
  '12 Le Loi',
  'CCCD-079080001234',
  'OLD-ID-555',
  'Phu Hoa',
  'TRAN^THI',
  'ACC-99881',
  'ST-4455',
  '20240315',
  '20240316',
  'coughing',
  'LE^VAN',
  'SN-777',
  'ACME_PRIVATE',
  'RP-1',
  ROOT,
];

let dir: string;
const made: Record<'A' | 'B' | 'C', string> = { A: '', B: '', C: '' };

/** The elements of a parsed Explicit VR Little Endian dataset, values copied, sequences rebuilt item by item. */
function copyOf(dataset: DicomDataset, skip: ReadonlySet<number> = new Set()): DataElement[] {
  return dataset
    .tags()
    .filter((tag) => !skip.has(tag))
    .map((tag): DataElement => {
      const el = dataset.element(tag)!;
      if (el.items) return sequence(tag, el.items.map((item) => copyOf(item)));
      return { tag, vr: el.vr, value: { kind: 'bytes', bytes: el.value } };
    });
}

/**
 * A DX image of a made-up patient with every kind of identifier the profile covers: names, IDs, birth date,
 * address, institution, physicians, accession and study numbers, free text, dates, private attributes (one a
 * sequence hiding the name), an overlay, other UIDs and references between the instances of one study.
 */
async function plantedElements(sopInstanceUid: string, burnedIn: 'YES' | 'NO'): Promise<{ elements: DataElement[]; pixelData: DataElement }> {
  const wrapped = await wrapImage(await readFile(`${nihSample}00000129_000.png`), {
    ...defaultWrapOptions,
    burnedInAnnotation: burnedIn,
    pixelSpacingMm: 0.2,
  });
  const parsed = parseDicom(wrapped.bytes);
  const replaced = new Set([0x00080018, 0x0020000d, 0x0020000e, 0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00080050, 0x00080020, 0x00080021, 0x00080023, 0x00080030, 0x00200010, 0x00080090, 0x7fe00010]);
  const elements = copyOf(parsed.dataset, replaced);
  elements.push(
    text(0x00080018, 'UI', sopInstanceUid),
    text(0x0020000d, 'UI', planted.studyUid),
    text(0x0020000e, 'UI', planted.seriesUid),
    text(0x00200052, 'UI', planted.frameOfReferenceUid),
    text(0x00083010, 'UI', planted.irradiationEventUid),
    text(0x00100010, 'PN', 'NGUYEN^VAN AN'),
    text(0x00100020, 'LO', 'BN-0042-7731'),
    text(0x00100030, 'DA', '19800102'),
    text(0x00100040, 'CS', 'M'),
    text(0x00101010, 'AS', '044Y'),
    text(0x00101040, 'LO', '12 Le Loi, Hue'),
    text(0x00101000, 'LO', 'CCCD-079080001234'),
    sequence(0x00101002, [[text(0x00100020, 'LO', 'OLD-ID-555')]]),
    text(0x00080080, 'LO', 'Tram Y Te Xa Phu Hoa'),
    text(0x00081010, 'SH', 'XRAY Phu Hoa'),
    text(0x00080090, 'PN', 'TRAN^THI BINH'),
    text(0x00081070, 'PN', 'LE^VAN C'),
    text(0x00181000, 'LO', 'SN-777'),
    text(0x00080050, 'SH', 'ACC-99881'),
    text(0x00200010, 'SH', 'ST-4455'),
    text(0x00080020, 'DA', '20240315'),
    text(0x00080021, 'DA', '20240315'),
    text(0x00080023, 'DA', '20240316'),
    text(0x00080030, 'TM', '101010'),
    text(0x0008002a, 'DT', '20240315101010.123456+0700'),
    text(0x00081030, 'LO', 'CHEST PA for NGUYEN'),
    text(0x00204000, 'LT', 'patient NGUYEN coughing'),
    sequence(0x00400275, [[text(0x00401001, 'SH', 'RP-1'), text(0x00321060, 'LO', 'CHEST for NGUYEN')]]),
    text(0x00090010, 'LO', 'ACME_PRIVATE'),
    text(0x00091001, 'LO', 'hidden NGUYEN'),
    sequence(0x00091002, [[text(0x00100010, 'PN', 'NGUYEN^VAN AN')]]),
    uint16(0x60000010, true, 8),
    uint16(0x60000011, true, 8),
    text(0x60000040, 'CS', 'G'),
    bytesElement(0x60000050, 'SS', Uint8Array.of(1, 0, 1, 0)),
    uint16(0x60000100, true, 1),
    uint16(0x60000102, true, 0),
    bytesElement(0x60003000, 'OW', new Uint8Array(8).fill(0xff)),
  );
  if (sopInstanceUid !== planted.sopA) {
    // The other instances point at A: the reference must follow A's new UID.
    elements.push(sequence(0x00081140, [[text(0x00081150, 'UI', '1.2.840.10008.5.1.4.1.1.1.1'), text(0x00081155, 'UI', planted.sopA)]]));
  }
  const pixelData = parsed.dataset.element(0x7fe00010)!;
  return { elements, pixelData: { tag: 0x7fe00010, vr: pixelData.vr, value: { kind: 'bytes', bytes: pixelData.value } } };
}

async function makePlantedStudy(folder: string): Promise<void> {
  const meta = (sopInstanceUid: string, transferSyntaxUid: string) => ({ sopClassUid: '1.2.840.10008.5.1.4.1.1.1.1', sopInstanceUid, transferSyntaxUid });
  const a = await plantedElements(planted.sopA, 'NO');
  made.A = join(folder, 'patient-a-explicit.dcm');
  await writeFile(made.A, encodePart10(meta(planted.sopA, TransferSyntaxUid.ExplicitLittle), [...a.elements, a.pixelData]));

  // B: JPEG-LS by DCMTK, so its pixels are encapsulated; its Burned In Annotation says YES.
  const b = await plantedElements(planted.sopB, 'YES');
  const native = join(folder, 'b-native.tmp');
  await writeFile(native, encodePart10(meta(planted.sopB, TransferSyntaxUid.ExplicitLittle), [...b.elements, b.pixelData]));
  made.B = join(folder, 'patient-b-jpegls.dcm');
  const encoded = spawnSync('dcmcjpls', [native, made.B], { encoding: 'utf8' });
  expect(encoded.status, encoded.stderr).toBe(0);
  await rm(native);

  // C: Implicit VR Little Endian, where the VRs come from the data dictionary.
  const c = await plantedElements(planted.sopC, 'NO');
  made.C = join(folder, 'patient-c-implicit.dcm');
  await writeFile(made.C, encodePart10(meta(planted.sopC, TransferSyntaxUid.ImplicitLittle), [...c.elements, c.pixelData]));
}

/** Every (path, tag, element) of a dataset, items included. */
function* walk(dataset: DicomDataset, path = ''): Generator<{ path: string; tag: number; vr: string; value: Uint8Array; items?: readonly DicomDataset[] }> {
  for (const tag of dataset.tags()) {
    const el = dataset.element(tag)!;
    yield { path, tag, vr: el.vr, value: el.value, items: el.items };
    for (const item of el.items ?? []) yield* walk(item, `${path}${tag.toString(16)}>`);
  }
}

function str(value: Uint8Array): string {
  return Buffer.from(value).toString('latin1').replace(/[\0 ]+$/u, '');
}

let input: string;
let output: string;
let manifest: Manifest;
const outputs = new Map<string, { entry: ManifestEntry; parsed: ParsedDicom; bytes: Buffer }>();

function outputOf(source: string): { entry: ManifestEntry; parsed: ParsedDicom; bytes: Buffer } {
  const found = outputs.get(source);
  if (!found) throw new Error(`no output for ${source}`);
  return found;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cxr-deid-test-'));
  input = join(dir, 'in');
  output = join(dir, 'out');
  await mkdir(input);
  await makePlantedStudy(input);
  const run = await runCli('deidentify', input, join(shared, 'dicom'), '--out', output, '--shift-days', String(SHIFT_DAYS), '--salt', 'test-salt');
  expect(run.code, run.stderr).toBe(0);
  expect(run.stderr.split('\n').filter((l) => l.includes(input))).toEqual([]);
  manifest = JSON.parse(await readFile(join(output, 'manifest.json'), 'utf8')) as Manifest;
  for (const entry of manifest.files) {
    const bytes = await readFile(join(output, entry.output));
    outputs.set(entry.source, { entry, parsed: parseDicom(bytes), bytes });
  }
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('deidentify', () => {
  it('de-identifies every DICOM input and lists the one that is not DICOM', async () => {
    const sharedFiles = (await readdir(join(shared, 'dicom'), { recursive: true })).filter((f) => f.endsWith('.dcm'));
    expect(manifest.files).toHaveLength(sharedFiles.length + 3);
    expect(manifest.failed).toEqual([{ source: join(shared, 'dicom', 'README.md'), error: expect.objectContaining({ code: 'CXR_NOT_DICOM' }) }]);
    for (const entry of manifest.files) {
      expect(entry.output.startsWith(entry.sopInstanceUid) && /^(-\d+)?\.dcm$/u.test(entry.output.slice(entry.sopInstanceUid.length))).toBe(true);
      expect(entry.sha256).toBe(createHash('sha256').update(outputOf(entry.source).bytes).digest('hex'));
    }
    // The manifest names no planted identifier either.
    const text = JSON.stringify(manifest);
    for (const value of identifying.filter((v) => v !== ROOT)) expect(text).not.toContain(value);
  });

  it('leaves no planted identifier anywhere in the bytes of the outputs', async () => {
    const inputs = await Promise.all(Object.values(made).map(async (f) => (await readFile(f)).toString('latin1')));
    for (const value of identifying) expect(inputs.some((bytes) => bytes.includes(value)), `${value} was planted`).toBe(true);
    for (const file of Object.values(made)) {
      const bytes = outputOf(file).bytes.toString('latin1');
      for (const value of identifying) expect(bytes.includes(value), `${basename(file)} still holds ${value}`).toBe(false);
    }
  });

  it('applies the basic profile at every depth: X removed, Z empty, U mapped, no private or overlay attribute', () => {
    for (const { parsed } of outputs.values()) {
      for (const el of walk(parsed.dataset)) {
        const group = el.tag >>> 16;
        expect(group % 2, `private ${el.tag.toString(16)}`).toBe(0);
        expect(group & 0xff00, 'overlay or curve').not.toBe(0x6000);
        expect(group & 0xff00, 'overlay or curve').not.toBe(0x5000);
        const action = basicProfile.get(el.tag);
        if (action === undefined) continue;
        const isDate = ['DA', 'DT', 'TM'].includes(el.vr || standardVr(el.tag) || '') && el.tag !== 0x00100030;
        if (isDate) continue;
        const value = str(el.value);
        const where = `${el.path}${el.tag.toString(16).padStart(8, '0')} (${action})`;
        if (action === 'U') expect(value.split('\\').every((uid) => /^2\.25\.\d+$/u.test(uid)), where).toBe(true);
        else if (action === 'X/Z/U*') expect(el.items, where).toBeDefined();
        else if (el.tag === 0x00100010 || el.tag === 0x00100020) expect(value, where).toMatch(/^ANON[0-9A-F]{12}$/u);
        else if (action === 'D') expect(value === 'ANONYMIZED' || el.items?.length === 0, where).toBe(true);
        else if (el.tag === 0x00400555) expect(el.items, where).toEqual([]);
        else {
          // Z and Z/D leave nothing; the X choices are removed.
          expect(action === 'Z' || action === 'Z/D', `${where} left in the file`).toBe(true);
          expect(el.items ? el.items.length === 0 : value === '', `${where} not empty`).toBe(true);
        }
      }
    }
  });

  it('maps UIDs consistently across the files of one study, references included', () => {
    const [a, b, c] = [outputOf(made.A), outputOf(made.B), outputOf(made.C)];
    const studyUids = [a, b, c].map((o) => o.parsed.dataset.string(0x0020000d));
    expect(new Set(studyUids).size).toBe(1);
    expect(studyUids[0]).toMatch(/^2\.25\.\d+$/u);
    expect(new Set([a, b, c].map((o) => o.parsed.dataset.string(0x0020000e))).size).toBe(1);
    expect(new Set([a, b, c].map((o) => o.parsed.dataset.string(0x00200052))).size).toBe(1);
    expect(new Set([a, b, c].map((o) => o.parsed.dataset.string(0x00080018))).size).toBe(3);
    const aUid = a.parsed.dataset.string(0x00080018);
    for (const other of [b, c]) {
      const reference = other.parsed.dataset.sequence(0x00081140)[0];
      expect(reference?.string(0x00081155)).toBe(aUid);
      // SOP Class UIDs are not identifiers and stay.
      expect(reference?.string(0x00081150)).toBe('1.2.840.10008.5.1.4.1.1.1.1');
    }
    // The File Meta agrees with the dataset.
    expect(a.parsed.meta?.string(0x00020003)).toBe(aUid);
  });

  it('gives the patient one pseudonym in every file', () => {
    const names = Object.values(made).map((f) => outputOf(f).parsed.dataset);
    const pseudonym = names[0]?.string(0x00100020);
    expect(pseudonym).toMatch(/^ANON[0-9A-F]{12}$/u);
    for (const ds of names) {
      expect(ds.string(0x00100020)).toBe(pseudonym);
      expect(ds.string(0x00100010)).toBe(pseudonym);
      expect(ds.string(0x00100040)).toBeUndefined();
      expect(ds.has(0x00101010)).toBe(false);
      expect(ds.has(0x00101002)).toBe(false);
    }
  });

  it('shifts every date by the same number of days, keeps times, empties the birth date', () => {
    expect(shiftDate('20240315', SHIFT_DAYS)).toBe('20230209');
    for (const file of Object.values(made)) {
      const ds = outputOf(file).parsed.dataset;
      expect(ds.string(0x00080020)).toBe('20230209');
      expect(ds.string(0x00080021)).toBe('20230209');
      expect(ds.string(0x00080023)).toBe('20230210');
      expect(ds.string(0x0008002a)).toBe('20230209101010.123456+0700');
      expect(ds.string(0x00080030)).toBe('101010');
      expect(ds.string(0x00100030)).toBeUndefined();
      expect(ds.string(0x00280303)).toBe('MODIFIED');
    }
    // A shared file: its legacy "1993.02.24" acquisition date, 400 days earlier, in the standard form.
    const barre = outputOf(join(shared, 'dicom', 'cr_chest_CR-MONO1-10-chest.dcm')).parsed.dataset;
    expect(barre.string(0x00080022)).toBe('19920121');
  });

  it('records the method: Patient Identity Removed, the profile and option codes', () => {
    for (const { parsed } of outputs.values()) {
      const ds = parsed.dataset;
      expect(ds.string(0x00120062)).toBe('YES');
      expect(ds.string(0x00120063)).toContain('PS3.15');
      const codes = ds.sequence(0x00120064).map((item) => [item.string(0x00080100), item.string(0x00080102)]);
      expect(codes).toEqual([
        ['113100', 'DCM'],
        ['113107', 'DCM'],
      ]);
    }
  });

  it('flags the images whose pixels may carry text', () => {
    const review = new Set(manifest.needsReview);
    expect(review.has(outputOf(made.B).entry.output)).toBe(true);
    expect(outputOf(made.B).entry.reviewReasons).toEqual(['Burned In Annotation is YES']);
    expect(review.has(outputOf(made.A).entry.output)).toBe(false);
    expect(review.has(outputOf(made.C).entry.output)).toBe(false);
    const capture = outputOf(join(shared, 'dicom', 'dx_chest_nih_secondary_capture.dcm')).entry;
    expect(capture.needsReview).toBe(true);
    expect(capture.reviewReasons?.join(' ')).toMatch(/secondary capture/u);
  });

  it('keeps the pixels: every output decodes to its source pixels', async () => {
    for (const [source, { bytes }] of outputs) {
      const before = parseDicom(await readFile(source)).pixelData;
      const after = parseDicom(bytes).pixelData;
      if (before?.encapsulated) {
        expect(after?.encapsulated, source).toBe(true);
        if (after?.encapsulated) {
          expect(after.fragments.length).toBe(before.fragments.length);
          after.fragments.forEach((f, i) => expect(Buffer.compare(f, before.fragments[i]!), `${source} fragment ${i}`).toBe(0));
        }
      } else {
        expect(after?.encapsulated).toBe(false);
        if (before && after && !after.encapsulated) expect(Buffer.compare(after.bytes, before.bytes), source).toBe(0);
      }
    }
    // And decoded, on one file of each kind of encoding.
    const decodedSubset = [made.A, made.B, made.C, ...['cr_chest_CR-MONO1-10-chest.dcm', 'cr_chest_pa_RG1_J2KI.dcm', 'cr_extremity_RG3_JPLY.dcm', 'cr_hip_RG2_RLE.dcm', 'dx_chest_nih_secondary_capture.dcm'].map((f) => join(shared, 'dicom', f))];
    for (const source of decodedSubset) {
      const before = await readSourceImage(await readFile(source));
      const after = await readSourceImage(outputOf(source).bytes);
      if (before.kind !== 'dicom' || after.kind !== 'dicom') throw new Error('expected DICOM');
      expect(after.frame.samples.length, source).toBe(before.frame.samples.length);
      const bytesOf = (a: ArrayLike<number> & ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      expect(Buffer.compare(bytesOf(after.frame.samples), bytesOf(before.frame.samples)), source).toBe(0);
    }
  });

  it('writes files DCMTK reads, in the transfer syntax of their source', () => {
    for (const [source, { entry, parsed }] of outputs) {
      expect(parsed.transferSyntaxUid).toBe(entry.transferSyntaxUid);
      expect(dcmdumpProblems(join(output, entry.output)), source).toEqual([]);
    }
    expect(outputOf(made.C).parsed.transferSyntaxUid).toBe(TransferSyntaxUid.ImplicitLittle);
    expect(outputOf(made.B).parsed.transferSyntaxUid).toBe(TransferSyntaxUid.JpegLsLossless);
  });

  it('gives the same results to cxr infer as the originals', () => {
    const sources = [made.A, made.B, made.C, join(shared, 'dicom', 'cr_chest_pa_RG1_J2KI.dcm'), join(shared, 'dicom', 'cr_chest_CR-MONO1-10-chest.dcm')];
    const before = cxrInfer(sources);
    const after = cxrInfer(sources.map((s) => join(output, outputOf(s).entry.output)));
    expect(after).toHaveLength(sources.length);
    after.forEach((result, i) => {
      expect(result.error).toBeUndefined();
      expect(result.applicable).toBe(true);
      expect(result.probabilities).toEqual(before[i]?.probabilities);
      expect(result.priority).toBe(before[i]?.priority);
    });
  });

  it('maps the same way with the same salt, and differently with another', async () => {
    const again = join(dir, 'again');
    const other = join(dir, 'other');
    expect((await runCli('deidentify', made.A, '--out', again, '--salt', 'test-salt', '--shift-days', String(SHIFT_DAYS))).code).toBe(0);
    expect((await runCli('deidentify', made.A, '--out', other, '--salt', 'another-salt', '--shift-days', String(SHIFT_DAYS))).code).toBe(0);
    const first = outputOf(made.A).parsed.dataset.string(0x0020000d);
    const read = async (folder: string): Promise<Manifest> => JSON.parse(await readFile(join(folder, 'manifest.json'), 'utf8')) as Manifest;
    expect((await read(again)).files[0]?.studyInstanceUid).toBe(first);
    expect((await read(other)).files[0]?.studyInstanceUid).not.toBe(first);
    expect((await read(again)).files[0]?.sha256).toBe(outputOf(made.A).entry.sha256);
  });

  it('keeps sex, age, size and weight with --keep-patient-characteristics, and says so', async () => {
    const folder = join(dir, 'characteristics');
    expect((await runCli('deidentify', made.A, '--out', folder, '--keep-patient-characteristics', '--shift-days', '0')).code).toBe(0);
    const [file] = (await readdir(folder)).filter((f) => f.endsWith('.dcm'));
    const ds = parseDicom(await readFile(join(folder, file!))).dataset;
    expect(ds.string(0x00100040)).toBe('M');
    expect(ds.string(0x00101010)).toBe('044Y');
    expect(ds.has(0x00101040)).toBe(false);
    expect(ds.string(0x00080020)).toBe('20240315');
    expect(ds.string(0x00280303)).toBe('UNMODIFIED');
    expect(ds.sequence(0x00120064).map((item) => item.string(0x00080100))).toEqual(['113100', '113106', '113108']);
  });
});

describe('date shifting', () => {
  it('crosses leap days and years, reads the old dotted form, refuses partial dates', () => {
    expect(shiftDate('20240301', -1)).toBe('20240229');
    expect(shiftDate('20230301', -1)).toBe('20230228');
    expect(shiftDate('20231231', 1)).toBe('20240101');
    expect(shiftDate('1995.07.20', -400)).toBe('19940615');
    expect(shiftDate('202403', 5)).toBeUndefined();
    expect(shiftDate('20240231', 1)).toBeUndefined();
    expect(shiftDateTime('20240101000000', -1)).toBe('20231231000000');
    expect(shiftDateTime('2024', -1)).toBeUndefined();
  });
});

describe('the profile table', () => {
  it('has the actions of PS3.15 Table E.1-1 for the attributes a chest X-ray carries', () => {
    const expected: Record<string, string> = {
      '00100010': 'Z', // Patient's Name
      '00100020': 'Z/D', // Patient ID
      '00100030': 'Z', // Patient's Birth Date
      '00101040': 'X', // Patient's Address
      '00101000': 'X', // Other Patient IDs
      '00080080': 'X/Z/D', // Institution Name
      '00080090': 'Z', // Referring Physician's Name
      '00080050': 'Z', // Accession Number
      '0020000D': 'U', // Study Instance UID
      '00080018': 'U', // SOP Instance UID
      '00081155': 'U', // Referenced SOP Instance UID
      '00081140': 'X/Z/U*', // Referenced Image Sequence
      '00080020': 'Z', // Study Date
      '0008002A': 'X/Z/D', // Acquisition DateTime
      '00400555': 'X/Z', // Acquisition Context Sequence
      '00181000': 'X/Z/D', // Device Serial Number
      '00204000': 'X', // Image Comments
    };
    for (const [tag, action] of Object.entries(expected)) expect(basicProfile.get(parseInt(tag, 16)), tag).toBe(action);
    // Attributes the profile keeps are not in it.
    for (const kept of [0x00080060, 0x00180015, 0x00185101, 0x00280010, 0x00080016]) expect(basicProfile.has(kept)).toBe(false);
  });
});
