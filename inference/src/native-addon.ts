import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Absolute path of a built addon of inference/native (the same relative location from src/ and dist/). */
export function nativeAddonPath(name: string): string {
  return fileURLToPath(new URL(`../native/build/Release/${name}.node`, import.meta.url));
}

const loaded = new Map<string, unknown>();

/**
 * One optional addon of inference/native, or null when `disableEnv` is set to 1 (checked on every call), it is not
 * built, does not load, or fails `accept`. A successful load is cached; a failed one is retried on the next call
 * (cheap: one existsSync). Never throws.
 */
export function loadOptionalAddon<T>(name: string, disableEnv: string, accept: (raw: unknown) => T | null): T | null {
  try {
    if (process.env[disableEnv] === '1') return null;
    if (loaded.has(name)) return loaded.get(name) as T;
    const addonPath = nativeAddonPath(name);
    if (!existsSync(addonPath)) return null;
    const addon = accept(createRequire(import.meta.url)(addonPath));
    if (addon !== null) loaded.set(name, addon);
    return addon;
  } catch {
    return null;
  }
}
