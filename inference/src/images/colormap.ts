/**
 * Turbo, Google's perceptually smooth rainbow colour map (Anton Mikhailov, 2019), as a 256-entry RGB table computed
 * from the published polynomial approximation (Ruofei Du, Apache-2.0): dark blue at 0, through cyan, green and
 * yellow, to dark red at 1. No data file: the table is built once when the module loads.
 * https://ai.googleblog.com/2019/08/turbo-improved-rainbow-colormap-for.html
 */

const RED = [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943] as const;
const GREEN = [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604] as const;
const BLUE = [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973] as const;

type Coefficients = readonly [number, number, number, number, number, number];

function polynomial(c: Coefficients, x: number): number {
  // c0 + c1 x + c2 x^2 + c3 x^3 + c4 x^4 + c5 x^5, in Horner form.
  return c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * (c[4] + x * c[5]))));
}

function toByte(v: number): number {
  return Math.round(255 * (v < 0 ? 0 : v > 1 ? 1 : v));
}

/** Turbo at `x` in [0, 1] (clamped), as 0..1 floats straight from the polynomial. */
export function turbo(x: number): [number, number, number] {
  const t = Number.isFinite(x) ? (x < 0 ? 0 : x > 1 ? 1 : x) : 0;
  return [polynomial(RED, t), polynomial(GREEN, t), polynomial(BLUE, t)];
}

/** A colour map: 256 entries, RGB interleaved (768 bytes); entry i is the colour of i / 255. */
export type ColourMap = Readonly<Uint8Array>;

function buildTable(map: (x: number) => readonly [number, number, number]): Uint8Array {
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = map(i / 255);
    table[i * 3] = toByte(r);
    table[i * 3 + 1] = toByte(g);
    table[i * 3 + 2] = toByte(b);
  }
  return table;
}

export const TURBO: ColourMap = buildTable(turbo);

/** The entry of `map` for `x` in [0, 1] (clamped, NaN as 0), as [r, g, b] bytes. */
export function colourAt(map: ColourMap, x: number): [number, number, number] {
  const i = Number.isFinite(x) ? Math.round((x < 0 ? 0 : x > 1 ? 1 : x) * 255) : 0;
  return [map[i * 3] ?? 0, map[i * 3 + 1] ?? 0, map[i * 3 + 2] ?? 0];
}
