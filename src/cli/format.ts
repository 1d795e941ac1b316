/** Small formatting helpers for the human-readable summaries on stderr. */

/**
 * An integer with thousands separators, like toLocaleString('en-US') (which costs 20–40 ms on
 * its first call in a process, to load ICU's locale data: a tenth of a 1M-frame replay).
 */
export function int(n: number): string {
  const r = Math.round(n);
  if (!Number.isFinite(r)) return String(r);
  const digits = String(Math.abs(r));
  let out = '';
  for (let i = digits.length; i > 0; i -= 3) out = digits.slice(Math.max(0, i - 3), i) + (out === '' ? '' : ',' + out);
  return (r < 0 ? '-' : '') + out;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function rate(count: number, ns: number): string {
  if (ns <= 0) return '-';
  const perSec = (count * 1e9) / ns;
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)} M`;
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)} k`;
  return perSec.toFixed(0);
}

/** Labels up to this long set the value column; a longer one is followed by its value. */
const LABEL_COLUMN = 72;
const COUNT = /^-?[\d,]+$/;

/**
 * Two columns: labels left-aligned, values from one column on; counts right-aligned among
 * themselves (so they line up by digit), other values (sizes, rates, sentences) left-aligned,
 * so that one sentence does not push every number to the far right.
 */
export function table(rows: [string, string][], indent = '  '): string {
  const w = Math.min(LABEL_COLUMN, Math.max(...rows.map((r) => r[0].length)));
  const v = Math.max(0, ...rows.filter((r) => COUNT.test(r[1])).map((r) => r[1].length));
  return rows.map(([a, b]) => `${indent}${a.padEnd(w)}  ${COUNT.test(b) ? b.padStart(v) : b}`).join('\n');
}

export function isoTime(sec: number): string {
  const ms = Math.floor(sec * 1000);
  const iso = new Date(ms).toISOString();
  const frac = (sec - Math.floor(sec)).toFixed(9).slice(1); // ".123456789"
  return iso.slice(0, 19) + frac + 'Z';
}
