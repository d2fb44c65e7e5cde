import { Tag } from './tags.js';

/** One element as found in the byte stream: a view, never a copy. */
export interface DicomElement {
  readonly tag: number;
  /** The VR written in the file, or '' for Implicit VR files. */
  readonly vr: string;
  readonly value: Uint8Array;
  readonly items?: readonly DicomDataset[];
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

/** Read access to parsed elements. Accessors take the value type the caller expects, so Implicit VR files work. */
export class DicomDataset {
  readonly #elements: ReadonlyMap<number, DicomElement>;
  readonly littleEndian: boolean;
  readonly #utf8: boolean;

  constructor(elements: ReadonlyMap<number, DicomElement>, littleEndian: boolean, utf8Text = false) {
    this.#elements = elements;
    this.littleEndian = littleEndian;
    this.#utf8 = utf8Text;
  }

  has(tag: number): boolean {
    return this.#elements.has(tag);
  }

  element(tag: number): DicomElement | undefined {
    return this.#elements.get(tag);
  }

  tags(): number[] {
    return [...this.#elements.keys()];
  }

  /** The whole text value, trailing padding removed; undefined when absent or empty. */
  string(tag: number): string | undefined {
    const el = this.#elements.get(tag);
    if (!el || el.value.length === 0) return undefined;
    const text = (this.#utf8 ? utf8 : latin1).decode(el.value).replace(/[\0 ]+$/u, '').replace(/^ +/u, '');
    return text.length > 0 ? text : undefined;
  }

  /** Multi-valued text split on the DICOM value separator. */
  strings(tag: number): string[] {
    const text = this.string(tag);
    return text === undefined ? [] : text.split('\\').map((v) => v.trim());
  }

  /** Decimal String / Integer String values; empty and unparsable ones are dropped (Number('') would be 0). */
  decimals(tag: number): number[] {
    return this.strings(tag)
      .filter((v) => v !== '')
      .map((v) => Number(v))
      .filter((v) => Number.isFinite(v));
  }

  decimal(tag: number): number | undefined {
    return this.decimals(tag)[0];
  }

  uint16s(tag: number): number[] {
    const el = this.#elements.get(tag);
    if (!el) return [];
    const view = new DataView(el.value.buffer, el.value.byteOffset, el.value.byteLength);
    const out: number[] = [];
    for (let i = 0; i + 1 < el.value.length; i += 2) out.push(view.getUint16(i, this.littleEndian));
    return out;
  }

  uint16(tag: number): number | undefined {
    return this.uint16s(tag)[0];
  }

  bytes(tag: number): Uint8Array | undefined {
    return this.#elements.get(tag)?.value;
  }

  sequence(tag: number): readonly DicomDataset[] {
    return this.#elements.get(tag)?.items ?? [];
  }

  /** Code Value of the first item of a code sequence (View Code Sequence, Anatomic Region Sequence). */
  codeMeaning(tag: number): { value?: string; meaning?: string } | undefined {
    const item = this.sequence(tag)[0];
    if (!item) return undefined;
    return { value: item.string(Tag.CodeValue), meaning: item.string(Tag.CodeMeaning) };
  }
}
