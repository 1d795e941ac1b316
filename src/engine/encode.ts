/**
 * Serialising records into file bytes: pcap records and pcapng Enhanced Packet Blocks, exactly
 * as CaptureWriter writes them (writeRecord, writeBatch; SEMANTICS.md §7.1, §7.2), but into a
 * caller's buffer and as pure functions of the record, so that any thread can encode any batch
 * and the bytes do not depend on which thread did it or how the records were batched.
 *
 * Comments travel between threads as a comment block: for each comment a u16 (little endian)
 * byte length and that many UTF-8 bytes, already cut to the 65535 bytes an option can hold (on a
 * character boundary, as CaptureWriter cuts them). putComments() makes the block from strings;
 * every path (one thread or many) goes through it.
 */
import { OPT_ENDOFOPT, pad4, putCommentOptions, putEpbFlags, putEpbHead, putPcapRecordHeader } from '../pcap/records.js';
import { copyBytes } from '../util/bytes.js';
import { FMT_PCAPNG, FMT_PCAP_NS } from './slots.js';

/** An output problem found while encoding (bad timestamp, undefined interface): the writer's kind of error. */
export class EncodeError extends Error {
  override readonly name = 'EncodeError';
}

const MAX_OPT_LEN = 0xffff;

/** Upper bound of the bytes putComments() needs for these comments. */
export function commentsBound(comments: readonly string[]): number {
  let n = 0;
  for (const c of comments) {
    const u = c.length * 3;
    n += 2 + (u < MAX_OPT_LEN ? u : MAX_OPT_LEN);
  }
  return n;
}

/**
 * Write the comment block of `comments` at dst[pos..]; returns its length, or -1 if it might not
 * fit in `room` bytes (nothing is written then). `dst` must be a Buffer (utf8 write).
 */
export function putComments(dst: Buffer, pos: number, room: number, comments: readonly string[]): number {
  if (commentsBound(comments) > room) return -1;
  let p = pos;
  for (const c of comments) {
    // Buffer.write stops before a character that does not fit, as CaptureWriter's does.
    // The room checked above holds the whole string or 65535 bytes of it: the cut depends on the string only.
    const room2 = dst.length - p - 2;
    const len = c.length === 0 ? 0 : dst.write(c, p + 2, room2 < MAX_OPT_LEN ? room2 : MAX_OPT_LEN, 'utf8');
    dst[p] = len & 0xff;
    dst[p + 1] = len >>> 8;
    p += 2 + len;
  }
  return p - pos;
}

/** Number of comments in a comment block. */
export function commentCount(cmt: Uint8Array, off: number, len: number): number {
  let n = 0;
  const end = off + len;
  for (let p = off; p < end; n++) p += 2 + (cmt[p]! | (cmt[p + 1]! << 8));
  return n;
}

/** Encoded size of one record. */
export function encodedSize(fmt: number, caplen: number, flags: number, cmt: Uint8Array, cmtOff: number, cmtLen: number): number {
  if (fmt !== FMT_PCAPNG) return 16 + caplen;
  const padded = pad4(caplen);
  if (cmtLen === 0) return (flags !== 0 ? 44 : 32) + padded;
  let n = 32 + padded + 4 + (flags !== 0 ? 8 : 0);
  const end = cmtOff + cmtLen;
  for (let p = cmtOff; p < end; ) {
    const l = cmt[p]! | (cmt[p + 1]! << 8);
    n += 4 + pad4(l);
    p += 2 + l;
  }
  return n;
}

/**
 * Encode one record at enc[p..] (room checked by the caller with encodedSize); returns the
 * position after it. `nIf` is the number of output interfaces (pcapng), 1 for pcap.
 */
export function encodeRecord(
  fmt: number,
  enc: Uint8Array,
  edv: DataView,
  p: number,
  src: Uint8Array,
  sdv: DataView,
  off: number,
  caplen: number,
  origlen: number,
  tsSec: number,
  tsNsec: number,
  iface: number,
  flags: number,
  cmt: Uint8Array,
  cdv: DataView,
  cmtOff: number,
  cmtLen: number,
  nIf: number,
): number {
  if (origlen < caplen) origlen = caplen;
  if (off + caplen > src.length || off < 0) throw new EncodeError(`bytes ${off}..${off + caplen} are outside the ${src.length}-byte source buffer`);
  if (fmt !== FMT_PCAPNG) {
    if (iface !== 0) throw new EncodeError(`interface ${iface} is not defined (1 interface)`);
    const bad = putPcapRecordHeader(edv, p, tsSec, tsNsec, caplen, origlen, fmt === FMT_PCAP_NS);
    if (bad !== null) throw new EncodeError(`timestamp ${tsSec} s: ${bad}`);
    copyBytes(enc, edv, p + 16, src, sdv, off, caplen);
    return p + 16 + caplen;
  }
  if (!(iface >= 0 && iface < nIf)) throw new EncodeError(`interface ${iface} is not defined (${nIf} interface${nIf === 1 ? '' : 's'})`);
  const padded = pad4(caplen);
  // The total length is patched below, once the options are written.
  const bad = putEpbHead(edv, p, 0, iface, tsSec, tsNsec, caplen, origlen);
  if (bad !== null) throw new EncodeError(`timestamp ${tsSec} s: ${bad}`);
  copyBytes(enc, edv, p + 28, src, sdv, off, caplen);
  let q = p + 28 + padded;
  if (cmtLen !== 0) q = putCommentOptions(enc, edv, q, cmt, cdv, cmtOff, cmtLen);
  if (flags !== 0) q = putEpbFlags(edv, q, flags);
  if (flags !== 0 || cmtLen !== 0) {
    edv.setUint32(q, OPT_ENDOFOPT, true);
    q += 4;
  }
  const blockLen = q + 4 - p;
  edv.setUint32(p + 4, blockLen, true);
  edv.setUint32(q, blockLen, true);
  return q + 4;
}

