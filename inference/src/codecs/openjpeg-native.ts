// TEMPORARY STUB (helper-1 replaces this file)
export interface J2kDecodedFrame { width: number; height: number; components: number; precision: number; signed: boolean; data: Uint8Array | Uint16Array | Int16Array | Int32Array }
export interface NativeOpenJpeg { decode(codestream: Uint8Array, options: { threads: number; maxPixels: number }): Promise<J2kDecodedFrame>; readonly openjpegVersion: string }
export function loadNativeOpenJpeg(): NativeOpenJpeg | null { return null; }
