export { analyzeBytes, analyzeFile, imageFacts, preprocessBytes, preprocessSource, type Analysis, type AnalyzeOptions } from './analyze.js';
export { intensityImage, intensitySource, isColourDicom, readSourceImage, type SourceImage } from './source-image.js';
