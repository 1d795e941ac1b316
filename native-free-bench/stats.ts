/** Order statistics of a few runs: the median and the spread (min–max, IQR). */

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** First and third quartiles (linear interpolation between order statistics). */
  q1: number;
  q3: number;
  n: number;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function spread(values: readonly number[]): Spread {
  const s = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return { median: quantile(s, 0.5), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, q1: quantile(s, 0.25), q3: quantile(s, 0.75), n: s.length };
}

/** Spread of 1/x (a rate from a time): the median maps to the median, min and max swap. */
export function invert(s: Spread, k = 1): Spread {
  return { median: k / s.median, min: k / s.max, max: k / s.min, q1: k / s.q3, q3: k / s.q1, n: s.n };
}

/** Relative half-width of the min–max spread around the median, in percent. */
export function spreadPct(s: Spread): number {
  return s.median > 0 ? (100 * (s.max - s.min)) / 2 / s.median : NaN;
}
