export { storedValues, type StoredValueModule } from './stored-values.js';
export { applyIntensity, applyWindow, type IntensityApplied, type IntensityMode, type IntensityModule } from './intensity.js';
export { crop, cropRegion, resize, resizeRegion, type CropMode, type GreyImage, type PixelSource, type Region, type ResizeMode } from './resize.js';
export { intensityByLookup } from './intensity-lut.js';
export { toInputTensor } from './tensor.js';
