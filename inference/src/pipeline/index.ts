export { analyzeBytes, analyzeFile, imageFacts, preprocessBytes, preprocessSource, type Analysis, type AnalyzeOptions } from './analyze.js';
export { decodeSourceImage, intensityImage, intensitySource, isColourDicom, readSourceHeader, readSourceImage, type SourceHeader, type SourceImage } from './source-image.js';
