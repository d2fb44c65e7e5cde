/**
 * The radiographer's page is plain browser JavaScript with its own copy of the priority order (it loads nothing
 * from the library). This reads that copy from the page's source and holds it to the library's urgencyRank.
 */
import { readFileSync } from 'node:fs';
import { urgencyRank, type Priority } from '@cxr/inference';
import { describe, expect, it } from 'vitest';

const priorities: readonly Priority[] = ['stat', 'urgent', 'routine'];

describe("the page's priority order", () => {
  it('equals the library order, for every priority', () => {
    const source = readFileSync(new URL('../public/app.js', import.meta.url), 'utf8');
    const literal = /^const URGENCY_RANK = (\{[^}]*\});$/mu.exec(source)?.[1];
    expect(literal, 'app.js declares const URGENCY_RANK = { ... }; at top level').toBeDefined();
    // The literal is plain object syntax; keys are quoted to read it as JSON.
    const pageRank = JSON.parse((literal ?? '{}').replace(/(\w+):/gu, '"$1":')) as Record<string, number>;
    expect(Object.keys(pageRank).sort()).toEqual([...priorities].sort());
    for (const p of priorities) expect(pageRank[p], p).toBe(urgencyRank(p));
  });
});
