import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { Tag, parseDicom } from '@cxr/inference';
import { corruptCodestream } from '../../test/support/dicom.js';
import { dicomDir } from '../../test/harness/agent-process.js';
import { compareInstances } from './equivalence.js';
import { datasetOffset, fileMetaHeader } from './part10.js';

const run = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), 'cxr-equivalence-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const shared = (name: string): Buffer => readFileSync(path.join(dicomDir, name));
/** The RG1 chest, native Explicit VR Little Endian, with nested sequences (7 MB). */
const rg1ExplicitFile = path.join(dicomDir, 'derived', 'derived_cr_chest_pa_RG1_explicitLE.dcm');
const rg1Explicit = readFileSync(rg1ExplicitFile);

/** DCMTK's dcmconv (or dcmodify) on a copy of `source`; returns the new file's bytes. */
async function dcmtk(tool: 'dcmconv' | 'dcmodify', source: string, args: readonly string[]): Promise<Buffer> {
  const target = path.join(work, `${tool}-${Math.random().toString(36).slice(2)}.dcm`);
  if (tool === 'dcmconv') await run('dcmconv', [...args, source, target]);
  else {
    copyFileSync(source, target);
    await run('dcmodify', ['-nb', ...args, target]);
  }
  return readFileSync(target);
}

/**
 * A Part 10 file with the attributes of `attributes` and the Pixel Data element of `pixels`, in the transfer syntax
 * of `pixels` (both Explicit VR Little Endian datasets): the same image in another codec, with equal attributes.
 */
function withPixelDataOf(attributes: Buffer, pixels: Buffer): Buffer {
  const pixelElement = (bytes: Buffer): { start: number; end: number } => {
    const value = parseDicom(bytes).dataset.element(Tag.PixelData)?.value;
    if (!value) throw new Error('no Pixel Data');
    const valueStart = value.byteOffset - bytes.byteOffset;
    // (7FE0,0010) OB/OW in Explicit VR: tag, VR, two reserved bytes, 4-byte length.
    return { start: valueStart - 12, end: valueStart + value.length };
  };
  const parsed = parseDicom(attributes);
  const header = fileMetaHeader({
    sopClassUid: parsed.dataset.string(Tag.SopClassUid) ?? '',
    sopInstanceUid: parsed.dataset.string(Tag.SopInstanceUid) ?? '',
    transferSyntaxUid: parseDicom(pixels).transferSyntaxUid,
  });
  const from = pixelElement(pixels);
  return Buffer.concat([header, attributes.subarray(datasetOffset(attributes), pixelElement(attributes).start), pixels.subarray(from.start, from.end)]);
}

describe('the same instance in another encoding', () => {
  it('the headerless Barre chest and its Part 10 Implicit VR twin', async () => {
    const result = await compareInstances(shared('cr_chest_CR-MONO1-10-chest.dcm'), shared('derived/derived_cr_chest_CR-MONO1-10-chest_part10_implicitLE.dcm'));
    expect(result).toEqual({ same: true, differences: [] });
  });

  it.each([
    ['Implicit VR Little Endian', ['+ti']],
    ['Explicit VR Big Endian', ['+tb']],
    ['Deflated Explicit VR Little Endian', ['+td']],
    ['defined lengths in sequences, group lengths and trailing padding', ['+e', '+g', '+p', '512', '64']],
  ])('explicit VR and its %s conversion by dcmconv', async (_name, args) => {
    const converted = await dcmtk('dcmconv', rg1ExplicitFile, args);
    expect(converted.equals(rg1Explicit)).toBe(false);
    expect(await compareInstances(rg1Explicit, converted)).toEqual({ same: true, differences: [] });
  });

  it.each(['derived_cr_chest_pa_RG1_J2KR.dcm', 'derived_cr_chest_pa_RG1_RLE.dcm', 'derived_cr_chest_pa_RG1_JLSL.dcm', 'derived_cr_chest_pa_RG1_JPLL.dcm'])(
    'the RG1 chest native and its lossless re-encoding %s (equal attributes, bit-identical pixels)',
    async (name) => {
      expect(await compareInstances(rg1Explicit, shared(`derived/${name}`))).toEqual({ same: true, differences: [] });
    },
  );

  it.each(['cr_extremity_RG3_J2KR.dcm', 'cr_extremity_RG3_RLE.dcm', 'cr_extremity_RG3_JLSL.dcm', 'cr_extremity_RG3_JPLL.dcm'])(
    'RG3 uncompressed and its lossless %s pixels under the same attributes',
    async (name) => {
      const unc = shared('cr_extremity_RG3_UNC.dcm');
      const encoded = withPixelDataOf(unc, shared(name));
      expect(parseDicom(encoded).pixelData?.encapsulated).toBe(true);
      expect(await compareInstances(unc, encoded)).toEqual({ same: true, differences: [] });
    },
  );

  it('values equal once parsed: a decimal string written another way, a person name with its empty components', async () => {
    const rewritten = await dcmtk('dcmodify', rg1ExplicitFile, ['-m', '(0018,115e)=1.2', '-m', '(0008,0090)=ward^^^']);
    // (0018,115E) Image and Fluoroscopy Area Dose Product, DS; (0008,0090) Referring Physician's Name, PN.
    const values = (bytes: Buffer): (string | undefined)[] => [0x0018115e, 0x00080090].map((tag) => parseDicom(bytes).dataset.string(tag));
    expect(values(rg1Explicit)).toEqual(['1.200', 'ward']);
    expect(values(rewritten)).toEqual(['1.2', 'ward^^^']);
    expect(await compareInstances(rg1Explicit, rewritten)).toEqual({ same: true, differences: [] });
    // Both in Implicit VR: the VRs come from the data dictionary.
    const rewrittenFile = path.join(work, 'rewritten.dcm');
    writeFileSync(rewrittenFile, rewritten);
    const [implicitA, implicitB] = await Promise.all([dcmtk('dcmconv', rg1ExplicitFile, ['+ti']), dcmtk('dcmconv', rewrittenFile, ['+ti'])]);
    expect(await compareInstances(implicitA, implicitB)).toEqual({ same: true, differences: [] });
  });
});

describe('not the same instance', () => {
  it('a lossy JPEG of the same image under the same attributes: its samples differ', async () => {
    const unc = shared('cr_extremity_RG3_UNC.dcm');
    expect(await compareInstances(unc, withPixelDataOf(unc, shared('cr_extremity_RG3_JPLY.dcm')))).toEqual({ same: false, differences: ['Pixel Data'] });
  });

  it('one attribute changed, at the top or inside a sequence item, after a change of transfer syntax', async () => {
    const implicitFile = path.join(work, 'rg1-implicit.dcm');
    writeFileSync(implicitFile, await dcmtk('dcmconv', rg1ExplicitFile, ['+ti']));
    const top = await dcmtk('dcmodify', implicitFile, ['-m', '(0020,0013)=8']);
    expect(await compareInstances(rg1Explicit, top)).toEqual({ same: false, differences: ['(0020,0013)'] });
    const nested = await dcmtk('dcmodify', implicitFile, ['-m', '(0008,2112)[0].(0040,a170)[0].(0008,0104)=Other predecessor']);
    expect(await compareInstances(rg1Explicit, nested)).toEqual({ same: false, differences: ['(0008,2112)[0](0040,A170)[0](0008,0104)'] });
    const added = await dcmtk('dcmodify', implicitFile, ['-i', '(0028,2110)=00']);
    expect(await compareInstances(rg1Explicit, added)).toEqual({ same: false, differences: ['(0028,2110)'] });
  });

  it('the RG1 JPEG-LS original and its re-encodings: the transcoder added Lossy Image Compression Method', async () => {
    expect(await compareInstances(shared('cr_chest_pa_RG1_JLSN.dcm'), rg1Explicit)).toEqual({ same: false, differences: ['(0028,2114)'] });
  });

  it('other instances of one image (the WG04 RG3 set): their UIDs and derivation differ', async () => {
    const result = await compareInstances(shared('cr_extremity_RG3_UNC.dcm'), shared('cr_extremity_RG3_J2KR.dcm'));
    expect(result.same).toBe(false);
    expect(result.differences).toEqual(expect.arrayContaining(['(0008,0018)', '(0008,2112)', '(0028,2110)']));
  });

  it('a codestream that does not decode is not the same as one that does', async () => {
    const damagedFile = path.join(work, 'damaged.dcm');
    corruptCodestream(path.join(dicomDir, 'derived', 'derived_cr_chest_pa_RG1_JLSL.dcm'), damagedFile);
    expect(await compareInstances(rg1Explicit, readFileSync(damagedFile))).toEqual({ same: false, differences: ['Pixel Data (not decodable: CXR_DECODE_FAILED)'] });
  });
});
