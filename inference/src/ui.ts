import { fileURLToPath } from 'node:url';

/**
 * Browser modules shared by the station's page and the radiologist's page (`inference/ui/`, plain ES modules, no
 * build step): each server serves this folder at `/shared/`. The same path from `src/` and `dist/`.
 */
export const sharedUiDir = fileURLToPath(new URL('../ui/', import.meta.url));
