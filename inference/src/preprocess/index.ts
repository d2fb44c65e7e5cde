export { storedValues, type StoredValueModule } from './stored-values.js';
export { applyIntensity, applyWindow, type IntensityApplied, type IntensityMode, type IntensityModule } from './intensity.js';
export { crop, resize, type CropMode, type GreyImage, type ResizeMode } from './resize.js';
export { toInputTensor } from './tensor.js';
