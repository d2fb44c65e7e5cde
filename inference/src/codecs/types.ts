export type SampleArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array;

/** The first frame's samples, interleaved (pixel-major) whatever the planar configuration was. */
export interface DecodedFrame {
  readonly samples: SampleArray;
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  /**
   * `native`: uncompressed stored words, so bits above HighBit may hold overlay or garbage and must be masked.
   * `decoded`: a codec's output, already at BitsStored, which a lossy decoder may overshoot by a step (clamp it).
   */
  readonly origin: 'native' | 'decoded';
  /** Which decoder produced the samples, for timings and the README's codec table. */
  readonly decoder: string;
}

/** What a codec needs to know besides the codestream. */
export interface FrameGeometry {
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly pixelRepresentation: 0 | 1;
  readonly planarConfiguration: number;
  readonly photometricInterpretation: string;
}
