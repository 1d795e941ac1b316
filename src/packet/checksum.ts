/**
 * Internet checksums (RFC 1071) and their incremental update (RFC 1624).
 *
 * The checksum is the one's complement of the one's complement sum of the 16-bit big-endian
 * words. One's complement arithmetic has two zeros, 0x0000 and 0xffff; the carry-folding sum of
 * words that are not all zero never yields 0x0000, so full recomputation of a checksum over data
 * that is not all zero gives a value in 0x0000–0xfffe and never 0xffff. That holds for every
 * IPv4 header (the version nibble is 4) and for TCP and UDP (the pseudo-header holds the
 * protocol number). An ICMP message can be all zero (echo reply, id 0, seq 0, no data): its
 * checksum is 0xffff. tshark flags 0xffff where 0x0000 is due (`tcp.checksum.ffff`).
 *
 * The functions that compute a checksum to store skip the checksum field itself, so the caller
 * does not have to zero it first.
 */

/**
 * Sum of the 16-bit big-endian words of buf[off, off+len), an odd last byte padded with a zero
 * byte (RFC 1071 §4.1), plus `initial`. Not folded (chain calls through `initial`); the result
 * is an integer below 2^32 that is 0 only when every word and `initial` are 0, so folding it
 * later keeps the distinction RFC 1624 needs.
 */
export function onesSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  // High and low bytes summed apart: a word is hi*256+lo, and sums commute.
  let hi = 0;
  let lo = 0;
  const end = off + (len & ~1);
  let i = off;
  for (; i < end; i += 2) {
    hi += buf[i]!;
    lo += buf[i + 1]!;
  }
  if (len & 1) hi += buf[i]!;
  let s = hi * 256 + lo + initial;
  // Fold only if the sum would leave 32 bits (a very large `initial` or buffer); folding keeps
  // the value mod 0xffff and keeps a non-zero sum non-zero.
  while (s > 0xffffffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/**
 * onesSum through a DataView of the same bytes (dv offsets = buffer offsets): 32-bit big-endian
 * loads, four per step, each split into its two words. Same result as onesSum, about twice as
 * fast on 40–100-byte headers (Node 20: 15 ns vs 30 ns per 40 B), so the per-packet checks
 * (IPv4 header, conntrack's L4 checksum) use it.
 */
export function onesSumDv(dv: DataView, off: number, len: number, initial = 0): number {
  let s = initial;
  let i = off;
  const end16 = off + len - 16;
  for (; i <= end16; i += 16) {
    const a = dv.getUint32(i);
    const b = dv.getUint32(i + 4);
    const c = dv.getUint32(i + 8);
    const d = dv.getUint32(i + 12);
    s += (a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff) + (c >>> 16) + (c & 0xffff) + (d >>> 16) + (d & 0xffff);
  }
  const end4 = off + (len & ~3);
  for (; i < end4; i += 4) {
    const w = dv.getUint32(i);
    s += (w >>> 16) + (w & 0xffff);
  }
  if (len & 2) {
    s += dv.getUint16(i);
    i += 2;
  }
  if (len & 1) s += dv.getUint8(i) << 8;
  while (s > 0xffffffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** Fold a sum from onesSum (< 2^32) to 16 bits with end-around carry and complement it. */
export function foldComplement(sum: number): number {
  let s = sum;
  if (s > 0xffffffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** The checksum an IPv4 header at ipOff of ihlBytes should carry (bytes 10–11 skipped). */
export function ipv4HeaderChecksum(buf: Uint8Array, ipOff: number, ihlBytes: number): number {
  return foldComplement(onesSum(buf, ipOff + 12, ihlBytes - 12, onesSum(buf, ipOff, 10)));
}

/** True when the IPv4 header's stored checksum is right (the whole header sums to zero). */
export function ipv4HeaderChecksumOk(buf: Uint8Array, ipOff: number, ihlBytes: number, dv?: DataView): boolean {
  if (dv !== undefined && ihlBytes === 20) {
    // The usual header (no options): its five 32-bit words, straight.
    const a = dv.getUint32(ipOff);
    const b = dv.getUint32(ipOff + 4);
    const c = dv.getUint32(ipOff + 8);
    const d = dv.getUint32(ipOff + 12);
    const e = dv.getUint32(ipOff + 16);
    return foldComplement((a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff) + (c >>> 16) + (c & 0xffff) + (d >>> 16) + (d & 0xffff) + (e >>> 16) + (e & 0xffff)) === 0;
  }
  return foldComplement(dv === undefined ? onesSum(buf, ipOff, ihlBytes) : onesSumDv(dv, ipOff, ihlBytes)) === 0;
}

/** Offset of the checksum inside an L4 header, -1 when dpemu does not know it. */
function csumOffset(proto: number): number {
  return proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 ? 2 : -1;
}

/** Sum of the TCP/UDP pseudo-header (RFC 793 §3.1, RFC 768): addresses, protocol, length. */
export function pseudoHeaderSum(srcIp: number, dstIp: number, proto: number, l4Len: number): number {
  return (srcIp >>> 16) + (srcIp & 0xffff) + (dstIp >>> 16) + (dstIp & 0xffff) + proto + l4Len;
}

/**
 * The checksum to store in the TCP (proto 6) or UDP (17) header at l4Off, over l4Len bytes
 * and the pseudo-header. For UDP, l4Len is the UDP length field (the datagram may be shorter
 * than the IP payload), and a computed 0 is returned as 0xffff because 0 on the wire means
 * "no checksum" (RFC 768). For ICMP (1) this is icmpChecksum (no pseudo-header). The stored
 * checksum field is skipped; for another protocol the caller zeroes it first.
 */
export function l4Checksum(buf: Uint8Array, l4Off: number, l4Len: number, proto: number, srcIp: number, dstIp: number): number {
  if (proto === 1) return icmpChecksum(buf, l4Off, l4Len);
  const c = csumOffset(proto);
  let s = pseudoHeaderSum(srcIp, dstIp, proto, l4Len);
  if (c < 0 || l4Len < c + 2) {
    s = onesSum(buf, l4Off, l4Len, s);
  } else {
    s = onesSum(buf, l4Off, c, s);
    s = onesSum(buf, l4Off + c + 2, l4Len - c - 2, s);
  }
  const r = foldComplement(s);
  return proto === 17 && r === 0 ? 0xffff : r;
}

/**
 * True when the stored TCP/UDP/ICMP checksum is right. A UDP checksum of 0 (none) is right.
 * For UDP pass the UDP length field as l4Len. `dv`, a DataView of `buf`, makes it faster.
 */
export function l4ChecksumOk(buf: Uint8Array, l4Off: number, l4Len: number, proto: number, srcIp: number, dstIp: number, dv?: DataView): boolean {
  const initial = proto === 1 ? 0 : pseudoHeaderSum(srcIp, dstIp, proto, l4Len);
  if (proto === 17 && l4Len >= 8 && buf[l4Off + 6] === 0 && buf[l4Off + 7] === 0) return true;
  return foldComplement(dv === undefined ? onesSum(buf, l4Off, l4Len, initial) : onesSumDv(dv, l4Off, l4Len, initial)) === 0;
}

/**
 * l4ChecksumOk for TCP (proto 6) or UDP (17, whose checksum is not 0: the caller has looked)
 * through a DataView, in one piece: the pseudo-header, then the segment's 32-bit words. What
 * conntrack checks on every TCP and UDP packet at PREROUTING. The loop is onesSumDv's, written
 * out again on purpose: with onesSumDv called from here, the full node pipeline executes ~200
 * more instructions per frame (5,161 vs ~5,000: cachegrind, 300k − 100k frames), as V8 does not
 * inline that call into conntrack's tcpPacket.
 */
export function tcpUdpChecksumOk(dv: DataView, l4Off: number, l4Len: number, proto: number, srcIp: number, dstIp: number): boolean {
  let s = (srcIp >>> 16) + (srcIp & 0xffff) + (dstIp >>> 16) + (dstIp & 0xffff) + proto + l4Len;
  let i = l4Off;
  const end16 = l4Off + l4Len - 16;
  for (; i <= end16; i += 16) {
    const a = dv.getUint32(i);
    const b = dv.getUint32(i + 4);
    const c = dv.getUint32(i + 8);
    const d = dv.getUint32(i + 12);
    s += (a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff) + (c >>> 16) + (c & 0xffff) + (d >>> 16) + (d & 0xffff);
  }
  const end4 = l4Off + (l4Len & ~3);
  for (; i < end4; i += 4) {
    const w = dv.getUint32(i);
    s += (w >>> 16) + (w & 0xffff);
  }
  if (l4Len & 2) {
    s += dv.getUint16(i);
    i += 2;
  }
  if (l4Len & 1) s += dv.getUint8(i) << 8;
  // Below 2^32 for any IPv4 segment (at most 32,768 words of 0xffff plus the pseudo-header).
  return foldComplement(s) === 0;
}

/** The checksum to store in the ICMP message at off of len bytes (bytes 2–3 skipped; RFC 792). */
export function icmpChecksum(buf: Uint8Array, off: number, len: number): number {
  if (len < 4) return foldComplement(onesSum(buf, off, len));
  return foldComplement(onesSum(buf, off + 4, len - 4, onesSum(buf, off, 2)));
}

/**
 * RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): the checksum after one aligned 16-bit word of the
 * covered data changes from oldWord to newWord.
 *
 * Equals full recomputation whenever the covered data is not all zero (always true for IPv4,
 * TCP and UDP; see the file comment), also when HC is 0xffff (the other zero) or the result is
 * 0x0000: the sum gets an extra 0xffff (a one's complement zero) so that it folds to the
 * non-zero representative, like full recomputation, instead of to 0x0000, which would give a
 * 0xffff checksum (the RFC 1624 §3 pitfall of eqn. 2).
 */
export function csumReplace16(csum: number, oldWord: number, newWord: number): number {
  let s = (~csum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff) + 0xffff;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** csumReplace16 for an aligned 32-bit value (an IPv4 address): both of its words change. */
export function csumReplace32(csum: number, oldVal: number, newVal: number): number {
  let s =
    (~csum & 0xffff) +
    (~oldVal >>> 16) +
    (~oldVal & 0xffff) +
    (newVal >>> 16) +
    (newVal & 0xffff) +
    0xffff;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * Several word replacements folded into one: csumDelta16/32 give the one's complement difference
 * of each replaced word (or address), csumAddDelta sums them, csumApplyDelta applies the sum.
 * Applying the sum equals applying csumReplace16/32 one after the other, in any order, as long
 * as at least one replacement is applied: each of them leaves the sum as the representative in
 * [1, 0xffff] of its residue modulo 0xffff (the extra 0xffff term), and replacement is addition
 * of the difference modulo 0xffff, so only the residue of the summed differences matters
 * (property-tested in packet-checksum.test.ts). A difference of a word with itself is 0xffff,
 * the other zero. For the flow memo, which replays a walk's rewrites with one update per checksum.
 */
export function csumDelta16(oldWord: number, newWord: number): number {
  const s = (~oldWord & 0xffff) + (newWord & 0xffff);
  return (s & 0xffff) + (s >>> 16);
}

/** csumDelta16 of an aligned 32-bit value (an IPv4 address): both of its words. */
export function csumDelta32(oldVal: number, newVal: number): number {
  let s = (~oldVal >>> 16) + (~oldVal & 0xffff) + (newVal >>> 16) + (newVal & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}

/** The sum of two differences (each in 0..0xffff), in 0..0xffff. */
export function csumAddDelta(a: number, b: number): number {
  const s = a + b;
  return (s & 0xffff) + (s >>> 16);
}

/** The checksum after the replacements whose summed difference is `delta` (see csumDelta16). */
export function csumApplyDelta(csum: number, delta: number): number {
  let s = (~csum & 0xffff) + delta + 0xffff;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** csumApplyDelta for a UDP checksum: 0 (none) stays 0, a result of 0 is stored as 0xffff. */
export function udpCsumApplyDelta(csum: number, delta: number): number {
  if (csum === 0) return 0;
  const r = csumApplyDelta(csum, delta);
  return r === 0 ? 0xffff : r;
}

/**
 * csumReplace16 for a UDP checksum: a stored 0 means "no checksum" and stays 0; a result of 0
 * is stored as 0xffff (RFC 768), which is what full recomputation stores.
 */
export function udpCsumReplace16(csum: number, oldWord: number, newWord: number): number {
  if (csum === 0) return 0;
  const r = csumReplace16(csum, oldWord, newWord);
  return r === 0 ? 0xffff : r;
}

/** csumReplace32 for a UDP checksum (see udpCsumReplace16). */
export function udpCsumReplace32(csum: number, oldVal: number, newVal: number): number {
  if (csum === 0) return 0;
  const r = csumReplace32(csum, oldVal, newVal);
  return r === 0 ? 0xffff : r;
}
