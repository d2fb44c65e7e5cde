export { DEFAULT_PREVIEW_MAX_SIDE, previewSize, renderPreview, type Preview, type PreviewOptions, type PreviewSize } from './preview.js';
export {
  DEFAULT_HEATMAP_ALPHA,
  DEFAULT_HEATMAP_THRESHOLD,
  pickHeatmapLabel,
  renderHeatmap,
  type HeatmapOptions,
} from './heatmap.js';
export { TURBO, colourAt, turbo, type ColourMap } from './colormap.js';
