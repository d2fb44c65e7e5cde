/**
 * Error messages never carry values from the file (issue 15, defect 6). A message reaches the edge's log, the
 * quarantine's reason files and the page; it names a tag, a length, an offset, never bytes or a string value. Once
 * a Transfer Syntax UID element with a huge length put 64 KB of the header (patient name, birth date) into one.
 *
 * A file whose identifying elements hold marker strings is damaged in every way a header can be (each element's
 * length made huge or cut, each VR replaced by marker bytes, File Meta's Transfer Syntax UID made to swallow the
 * dataset), and every error on the way to a decoded frame is checked.
 */
import { describe, expect, it } from 'vitest';
import { CxrError } from '../errors/index.js';
import { readSourceImage } from '../pipeline/source-image.js';
import * as W from '../test-support/dicom-writer.js';

const MARKERS = ['QXNAME', 'QXPID7731', '18870123', 'QXACC7731', 'QXINST7731'];

function identity(): W.WriterElement[] {
  return [
    W.text(0x00080050, 'SH', 'QXACC7731'),
    W.text(0x00080080, 'LO', 'QXINST7731'),
    W.text(0x00100010, 'PN', 'QXNAME^PLANTED'),
    W.text(0x00100020, 'LO', 'QXPID7731'),
    W.text(0x00100030, 'DA', '18870123'),
  ];
}

function dataset(): W.WriterNode[] {
  const elements = [...W.imageModule({ rows: 16, columns: 16, bitsAllocated: 16 }), ...identity()].sort((a, b) => a.tag - b.tag);
  return [...elements, W.pixelWords(new Array(256).fill(100))];
}

/** Offsets in `bytes` of every element header of the Explicit VR LE dataset that starts at `start`. */
function elementOffsets(bytes: Uint8Array, start: number): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let pos = start; pos + 8 <= bytes.length; ) {
    out.push(pos);
    const vr = String.fromCharCode(bytes[pos + 4] ?? 0, bytes[pos + 5] ?? 0);
    if (['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr)) pos += 12 + view.getUint32(pos + 8, true);
    else pos += 8 + view.getUint16(pos + 6, true);
  }
  return out;
}

async function messageOf(bytes: Uint8Array): Promise<string | undefined> {
  try {
    await readSourceImage(bytes);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(CxrError);
    return (err as CxrError).message;
  }
}

describe('error messages name tags, lengths and offsets, never values', () => {
  it('a Transfer Syntax UID whose length swallows the dataset', async () => {
    const meta = W.writeDataset(
      [W.bytes(0x00020001, 'OB', Uint8Array.of(0, 1)), W.text(0x00020002, 'UI', '1.2.840.10008.5.1.4.1.1.1'), { ...W.text(0x00020010, 'UI', ''), lengthOverride: 0x0200 }],
      W.explicitLE,
    );
    const message = await messageOf(W.part10Raw(meta, W.writeDataset(dataset(), W.explicitLE)));
    expect(message).toMatch(/^The transfer syntax is not supported: an invalid transfer syntax UID \(5\d\d characters\)/u);
    for (const marker of MARKERS) expect(message).not.toContain(marker);
  });

  it('every element of the header with a huge, a cut or an odd length, or marker bytes for its VR', async () => {
    const clean = W.writePart10(dataset(), { transferSyntaxUid: W.Syntax.ExplicitLE });
    const metaEnd = 132 + 12 + new DataView(clean.buffer).getUint32(140, true);
    const messages: string[] = [];
    for (const at of elementOffsets(clean, metaEnd)) {
      const long = ['OB', 'OW'].includes(String.fromCharCode(clean[at + 4] ?? 0, clean[at + 5] ?? 0));
      const variants: ((b: Uint8Array, v: DataView) => void)[] = [
        (b, v) => (long ? v.setUint32(at + 8, 0x7ffffff0, true) : v.setUint16(at + 6, 0xfff0, true)),
        (b, v) => (long ? v.setUint32(at + 8, 3, true) : v.setUint16(at + 6, 3, true)),
        (b) => b.set([0x51, 0x58], at + 4), // "QX": the start of every marker
      ];
      for (const damage of variants) {
        const bytes = clean.slice();
        damage(bytes, new DataView(bytes.buffer));
        const message = await messageOf(bytes);
        if (message !== undefined) messages.push(message);
      }
    }
    expect(messages.length).toBeGreaterThan(20);
    for (const message of messages) {
      expect(message.length, message).toBeLessThan(300);
      for (const marker of MARKERS) expect(message, message).not.toContain(marker);
      expect(message, message).not.toMatch(/"QX"/u);
    }
  });
});
