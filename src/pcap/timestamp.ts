/**
 * The 64-bit pcapng timestamp (ns since 1970, if_tsresol=9) as ts_high, ts_low, shared by the
 * writer and the engine's encoders so both produce the same bytes.
 */

const TWO_32 = 4294967296;
/** Largest second whose ns count still fits the pcapng 64-bit timestamp. */
export const MAX_NG_SEC = Math.floor(Number(0xffffffffffffffffn / 1_000_000_000n)) - 1;

/**
 * Store the timestamp at `p` (little endian, high word first as pcapng wants). Returns null, or
 * what is wrong with the timestamp (nothing is written then).
 *
 * tsSec * 1e9 exceeds 2^53, so: 1e9 = 2^9 * 1953125 and, for tsSec < 2^32,
 * q = tsSec * 1953125 < 2^53 is exact; total = q * 2^9 + ns = qHi * 2^32 + qLo * 2^9 + ns with
 * q = qHi * 2^23 + qLo. Every step is an exact integer in a double; no BigInt on the fast path.
 */
export function putNgTimestamp(dv: DataView, p: number, tsSec: number, tsNsec: number): string | null {
  let hi: number;
  let lo: number;
  if (tsSec >= 0 && tsSec < TWO_32 && tsNsec >= 0 && tsNsec < 1e9) {
    const q = tsSec * 1953125;
    hi = Math.floor(q / 8388608);
    lo = (q - hi * 8388608) * 512 + tsNsec;
    if (lo >= TWO_32) {
      lo -= TWO_32;
      hi += 1;
    }
  } else {
    if (!Number.isFinite(tsSec) || !Number.isFinite(tsNsec)) return 'not a finite timestamp';
    const sec = Math.floor(tsSec) + Math.floor(tsNsec / 1e9);
    const nsec = tsNsec - Math.floor(tsNsec / 1e9) * 1e9;
    if (sec < 0 || sec > MAX_NG_SEC) return 'outside the 64-bit nanosecond range of pcapng (1970..2554)';
    const t = BigInt(sec) * 1_000_000_000n + BigInt(Math.floor(nsec));
    hi = Number(t >> 32n);
    lo = Number(t & 0xffffffffn);
  }
  dv.setUint32(p, hi, true);
  dv.setUint32(p + 4, lo, true);
  return null;
}
