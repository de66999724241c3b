/** Summaries of benchmark trials: median, minimum, maximum, percentiles and ratios. */

export interface Summary {
  readonly median: number | null;
  readonly min: number | null;
  readonly max: number | null;
  /** Trials with a value (a null figure means the trial could not measure it, e.g. no recovery). */
  readonly n: number;
}

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The p-th percentile (0-100) by nearest rank. */
export function percentile(xs: ArrayLike<number>, p: number): number | null {
  if (xs.length === 0) return null;
  const s = Float64Array.from(xs).sort();
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

export function summarize(values: readonly (number | null | undefined)[]): Summary {
  const xs = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (xs.length === 0) return { median: null, min: null, max: null, n: 0 };
  return { median: round(median(xs)!), min: round(Math.min(...xs)), max: round(Math.max(...xs)), n: xs.length };
}

/** a / b of two medians; null when either is missing or b is 0 (0 / 0 is 1: both lost nothing). */
export function ratio(a: Summary | undefined, b: Summary | undefined): number | null {
  const x = a?.median;
  const y = b?.median;
  if (x === null || x === undefined || y === null || y === undefined) return null;
  if (y === 0) return x === 0 ? 1 : null;
  return round(x / y, 3);
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** "412 (380-450)" for a table cell. */
export function cell(s: Summary | undefined, unit = ""): string {
  if (!s || s.median === null) return "n/a";
  const r = (x: number) => `${Number.isInteger(x) ? x : Math.abs(x) >= 10 ? Math.round(x) : x.toFixed(1)}`;
  return s.min === s.max ? `${r(s.median)}${unit}` : `${r(s.median)}${unit} (${r(s.min!)}-${r(s.max!)})`;
}
