/**
 * The layout of one record, shared by CaptureWriter and the engine's encoders so that both write
 * the same bytes: the pcap record header, the head of a pcapng Enhanced Packet Block, the
 * epb_flags option and the 64-bit pcapng timestamp. Each returns null, or what is wrong (and
 * then writes nothing), so each caller throws its own error type.
 */

import { copyBytes } from '../util/bytes.js';

export const BT_EPB = 0x00000006;
export const OPT_ENDOFOPT = 0;
export const OPT_COMMENT = 1;
export const OPT_EPB_FLAGS = 2;
export const pad4 = (n: number): number => (n + 3) & ~3;

const TWO_32 = 4294967296;

/**
 * The 16-byte pcap record header at `p`: ts_sec, ts_usec (or ts_nsec), incl_len, orig_len.
 * A nanosecond part of 1e9 or more is carried into the seconds.
 */
export function putPcapRecordHeader(dv: DataView, p: number, tsSec: number, tsNsec: number, caplen: number, origlen: number, ns: boolean): string | null {
  if (tsNsec >= 1e9 || tsNsec < 0) {
    tsSec += Math.floor(tsNsec / 1e9);
    tsNsec -= Math.floor(tsNsec / 1e9) * 1e9;
  }
  if (!(tsSec >= 0 && tsSec < TWO_32)) return 'a pcap timestamp is an unsigned 32-bit count of seconds';
  dv.setUint32(p, tsSec, true);
  // µs: floor(nsec / 1000); ToUint32 of a positive number truncates, which is floor.
  dv.setUint32(p + 4, ns ? tsNsec : tsNsec / 1000, true);
  dv.setUint32(p + 8, caplen, true);
  dv.setUint32(p + 12, origlen, true);
  return null;
}

/**
 * The first 28 bytes of an EPB at `p` (type, total length, interface, timestamp, captured and
 * original lengths) and the zeroed last word of the padded packet data (the frame copy then
 * overwrites its data bytes). The caller copies the frame to p + 28 and writes the options
 * and the trailing length.
 */
export function putEpbHead(dv: DataView, p: number, blockLen: number, iface: number, tsSec: number, tsNsec: number, caplen: number, origlen: number): string | null {
  const bad = putNgTimestamp(dv, p + 12, tsSec, tsNsec);
  if (bad !== null) return bad;
  dv.setUint32(p, BT_EPB, true);
  dv.setUint32(p + 4, blockLen, true);
  dv.setUint32(p + 8, iface, true);
  dv.setUint32(p + 20, caplen, true);
  dv.setUint32(p + 24, origlen, true);
  const padded = pad4(caplen);
  if (padded !== caplen) dv.setUint32(p + 24 + padded, 0, true);
  return null;
}

/**
 * The comment options of a comment block (per comment: its UTF-8 length, u16 little endian, and
 * bytes) at `q`: code 1, length, the bytes, zero padding. Returns the position after them.
 */
export function putCommentOptions(out: Uint8Array, dv: DataView, q: number, blk: Uint8Array, blkDv: DataView, bOff: number, bLen: number): number {
  const end = bOff + bLen;
  for (let c = bOff; c < end; ) {
    const l = blkDv.getUint16(c, true);
    dv.setUint16(q, OPT_COMMENT, true);
    dv.setUint16(q + 2, l, true);
    const lp = pad4(l);
    if (lp !== l) dv.setUint32(q + lp, 0, true); // zero the padding (q + 4 + lp - 4)
    copyBytes(out, dv, q + 4, blk, blkDv, c + 2, l);
    q += 4 + lp;
    c += 2 + l;
  }
  return q;
}

/** The epb_flags option at `q`; returns the position after it. */
export function putEpbFlags(dv: DataView, q: number, flags: number): number {
  dv.setUint16(q, OPT_EPB_FLAGS, true);
  dv.setUint16(q + 2, 4, true);
  dv.setUint32(q + 4, flags, true);
  return q + 8;
}
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
