import type { ModelIdentity, ModelManifest } from '../contracts/index.js';

export interface ClassActivationMaps {
  /** [labels, height, width], row-major. */
  readonly data: Float32Array;
  readonly labels: number;
  readonly height: number;
  readonly width: number;
}

export interface ModelOutput {
  /** The raw `probabilities` output, before the manifest's activation. */
  readonly raw: Float32Array;
  readonly cam: ClassActivationMaps | undefined;
}

/** A model ready to run: loaded once, reused for every image. */
export interface LoadedModel {
  readonly manifest: ModelManifest;
  readonly identity: ModelIdentity;
  readonly directory: string;
  run(tensor: Float32Array): Promise<ModelOutput>;
  close(): Promise<void>;
}

/** What each runtime (ONNX Runtime, TensorFlow.js) gives `loadModel`: one session, reused for every image. */
export interface RuntimeSession {
  run(tensor: Float32Array): Promise<ModelOutput>;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /**
   * Threads ONNX Runtime uses inside one operator. Default 2 (the station PCs have two cores). The TF.js runtime
   * ignores it: its WebAssembly backend runs single-threaded in Node.
   */
  readonly intraOpThreads?: number;
  /**
   * Let ONNX Runtime's threads spin-wait for the next operator instead of sleeping. Default true: measured here,
   * DenseNet-121 takes 35.6 ms at the median with spinning and 52.6 ms without (its ~400 operators each wake the
   * threads), far more than the spinning after a run costs the next image's decode.
   */
  readonly spinWait?: boolean;
}
