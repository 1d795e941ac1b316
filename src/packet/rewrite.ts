/**
 * In-place header rewrites for NAT, forwarding and ICMP error translation, each with RFC 1624
 * incremental checksum updates (as the kernel's csum_replace2/4 and inet_proto_csum_replace4).
 *
 * Preconditions: `v` was parsed over `buf`/`dv` and returned PARSE_OK, or PARSE_TRUNCATED with
 * REASON_PAYLOAD_TRUNCATED (headers complete; incremental updates need no payload). Each
 * mutator updates the field of `v` it changes, so `v` stays a true view of the bytes.
 *
 * Which checksums change:
 *  - IP address: IPv4 header checksum, plus the TCP or UDP checksum (pseudo-header) of a
 *    first or unfragmented packet. ICMP has no pseudo-header.
 *  - TCP/UDP port, ICMP query id: the L4 checksum.
 *  - A UDP checksum of 0 means "none" (RFC 768) and stays 0; a result of 0 is stored as 0xffff.
 *  - Quoted headers of an ICMP error (NAT of RELATED errors, like nf_nat_icmp_reply_translation):
 *    the quoted IP header checksum, the quoted L4 checksum when the quote holds it (a quote of
 *    IP header + 8 bytes holds UDP's and ICMP's but not TCP's, which is at byte 16), and the
 *    outer ICMP checksum, which covers the whole quote. A quoted checksum cut by the end of
 *    the quote (17 bytes of TCP) cannot be updated, its other byte being unknown, and is left
 *    as it is. (Linux updates the quoted TCP checksum only when all 20 header bytes are
 *    quoted; dpemu also does with 18 or 19, so that the quote stays the prefix of the
 *    translated packet. Linux's own errors quote IP header + 8 bytes or the whole packet up
 *    to 576 bytes, where both agree.)
 * All the words are at even offsets from the start of the message each checksum covers, so a
 * 16/32-bit replacement in the data is the same replacement in the checksummed word sequence.
 *
 * Functions return true when they changed the packet (false when the packet has no such field).
 * They never throw.
 */
import { csumReplace16, csumReplace32, udpCsumReplace16, udpCsumReplace32 } from './checksum.js';
import type { PacketView } from './view.js';

/** Rewrite the IPv4 source address. */
export function setSrcIp(v: PacketView, buf: Uint8Array, dv: DataView, ip: number): boolean {
  return setAddr(v, buf, dv, ip >>> 0, 12);
}

/** Rewrite the IPv4 destination address. */
export function setDstIp(v: PacketView, buf: Uint8Array, dv: DataView, ip: number): boolean {
  return setAddr(v, buf, dv, ip >>> 0, 16);
}

function setAddr(v: PacketView, _buf: Uint8Array, dv: DataView, ip: number, at: number): boolean {
  const ipOff = v.ipOff;
  if (ipOff < 0) return false;
  const old = at === 12 ? v.srcIp : v.dstIp;
  dv.setUint32(ipOff + at, ip);
  dv.setUint16(ipOff + 10, csumReplace32(dv.getUint16(ipOff + 10), old, ip));
  if (at === 12) v.srcIp = ip;
  else v.dstIp = ip;
  const l4 = v.l4Off;
  if (l4 < 0) return true;
  const proto = v.ipProto;
  // The pseudo-header (RFC 793 §3.1, RFC 768) holds both addresses.
  if (proto === 6) {
    if (v.l4Captured >= 18) dv.setUint16(l4 + 16, csumReplace32(dv.getUint16(l4 + 16), old, ip));
  } else if (proto === 17) {
    if (v.l4Captured >= 8) dv.setUint16(l4 + 6, udpCsumReplace32(dv.getUint16(l4 + 6), old, ip));
  }
  return true;
}

/** Rewrite the TCP or UDP source port. */
export function setSrcPort(v: PacketView, buf: Uint8Array, dv: DataView, port: number): boolean {
  return setPort(v, buf, dv, port & 0xffff, 0);
}

/** Rewrite the TCP or UDP destination port. */
export function setDstPort(v: PacketView, buf: Uint8Array, dv: DataView, port: number): boolean {
  return setPort(v, buf, dv, port & 0xffff, 2);
}

function setPort(v: PacketView, _buf: Uint8Array, dv: DataView, port: number, at: number): boolean {
  const l4 = v.l4Off;
  const proto = v.ipProto;
  if (l4 < 0) return false;
  if (proto === 6) {
    if (v.l4Captured < 18) return false;
    const old = dv.getUint16(l4 + at);
    dv.setUint16(l4 + at, port);
    dv.setUint16(l4 + 16, csumReplace16(dv.getUint16(l4 + 16), old, port));
  } else if (proto === 17) {
    if (v.l4Captured < 8) return false;
    const old = dv.getUint16(l4 + at);
    dv.setUint16(l4 + at, port);
    dv.setUint16(l4 + 6, udpCsumReplace16(dv.getUint16(l4 + 6), old, port));
  } else {
    return false;
  }
  if (at === 0) v.srcPort = port;
  else v.dstPort = port;
  return true;
}

/** Rewrite the identifier of an ICMP query (echo, timestamp, info, address mask). */
export function setIcmpId(v: PacketView, buf: Uint8Array, dv: DataView, id: number): boolean {
  const l4 = v.l4Off;
  if (l4 < 0 || v.ipProto !== 1 || v.icmpId < 0 || v.l4Captured < 8) return false;
  id &= 0xffff;
  const old = v.icmpId;
  dv.setUint16(l4 + 4, id);
  let c = csumReplace16(dv.getUint16(l4 + 2), old, id);
  // The one ICMP message that sums to 0x0000 is all zero (echo reply, id 0, seq 0, no data);
  // full recomputation gives it 0xffff (see checksum.ts), the incremental update 0x0000.
  if (c === 0 && id === 0 && isZeroExceptChecksum(buf, l4, v.l4Len, v.l4Captured)) c = 0xffff;
  dv.setUint16(l4 + 2, c);
  v.icmpId = id;
  return true;
}

function isZeroExceptChecksum(buf: Uint8Array, off: number, len: number, captured: number): boolean {
  if (len < 8 || captured < len) return false; // cannot know; keep the incremental result
  for (let i = 0; i < len; i++) if (i !== 2 && i !== 3 && buf[off + i] !== 0) return false;
  return true;
}

/**
 * Forwarding's TTL decrement (RFC 1812 §5.3.1): TTL - 1 and the header checksum, nothing else
 * (as the kernel's ip_decrease_ttl). The caller checks TTL > 1 first (else ICMP time exceeded);
 * a TTL of 0 is left alone. Returns the new TTL.
 */
export function decrementTtl(v: PacketView, dv: DataView): number {
  const ipOff = v.ipOff;
  const ttl = v.ttl;
  if (ipOff < 0 || ttl === 0) return ttl;
  const proto = v.ipProto;
  // TTL and protocol share the word at byte 8.
  dv.setUint8(ipOff + 8, ttl - 1);
  dv.setUint16(ipOff + 10, csumReplace16(dv.getUint16(ipOff + 10), (ttl << 8) | proto, ((ttl - 1) << 8) | proto));
  v.ttl = ttl - 1;
  return ttl - 1;
}

// ---- ICMP error quotes ----

/** Rewrite the source address of the IP header quoted in an ICMP error. */
export function setInnerSrcIp(v: PacketView, buf: Uint8Array, dv: DataView, ip: number): boolean {
  return setInnerAddr(v, buf, dv, ip >>> 0, 12);
}

/** Rewrite the destination address of the IP header quoted in an ICMP error. */
export function setInnerDstIp(v: PacketView, buf: Uint8Array, dv: DataView, ip: number): boolean {
  return setInnerAddr(v, buf, dv, ip >>> 0, 16);
}

function setInnerAddr(v: PacketView, _buf: Uint8Array, dv: DataView, ip: number, at: number): boolean {
  const q = v.innerIpOff;
  if (q < 0) return false;
  const icmpCs = v.l4Off + 2;
  let icmp = dv.getUint16(icmpCs);
  const old = at === 12 ? v.innerSrcIp : v.innerDstIp;
  // The address, in the quoted header and in the outer ICMP sum.
  dv.setUint32(q + at, ip);
  icmp = csumReplace32(icmp, old, ip);
  // The quoted IP header checksum, which the outer ICMP sum covers too.
  const oldHc = dv.getUint16(q + 10);
  const newHc = csumReplace32(oldHc, old, ip);
  dv.setUint16(q + 10, newHc);
  icmp = csumReplace16(icmp, oldHc, newHc);
  // The quoted L4 checksum (pseudo-header), when quoted.
  const l4 = v.innerL4Off;
  if (l4 >= 0) {
    const proto = v.innerProto;
    let at2 = -1;
    let oldC = 0;
    let newC = 0;
    if (proto === 6 && v.innerL4Len >= 18) {
      at2 = l4 + 16;
      oldC = dv.getUint16(at2);
      newC = csumReplace32(oldC, old, ip);
    } else if (proto === 17 && v.innerL4Len >= 8) {
      at2 = l4 + 6;
      oldC = dv.getUint16(at2);
      newC = udpCsumReplace32(oldC, old, ip);
    }
    if (at2 >= 0 && newC !== oldC) {
      dv.setUint16(at2, newC);
      icmp = csumReplace16(icmp, oldC, newC);
    }
  }
  dv.setUint16(icmpCs, icmp);
  if (at === 12) v.innerSrcIp = ip;
  else v.innerDstIp = ip;
  return true;
}

/** Rewrite the source port of the TCP/UDP header quoted in an ICMP error. */
export function setInnerSrcPort(v: PacketView, buf: Uint8Array, dv: DataView, port: number): boolean {
  return setInnerWord(v, buf, dv, port & 0xffff, 0);
}

/** Rewrite the destination port of the TCP/UDP header quoted in an ICMP error. */
export function setInnerDstPort(v: PacketView, buf: Uint8Array, dv: DataView, port: number): boolean {
  return setInnerWord(v, buf, dv, port & 0xffff, 2);
}

/** Rewrite the identifier of the ICMP query quoted in an ICMP error (NAT of a ping's id). */
export function setInnerIcmpId(v: PacketView, buf: Uint8Array, dv: DataView, id: number): boolean {
  return setInnerWord(v, buf, dv, id & 0xffff, 4);
}

/** A 16-bit field at innerL4Off+at: ports (TCP/UDP, at 0/2) or the ICMP query id (at 4). */
function setInnerWord(v: PacketView, buf: Uint8Array, dv: DataView, val: number, at: number): boolean {
  const l4 = v.innerL4Off;
  if (l4 < 0) return false;
  const proto = v.innerProto;
  let csAt: number; // offset of the quoted L4 checksum inside the L4 header
  if (at === 4) {
    if (proto !== 1 || v.innerIcmpId < 0) return false;
    csAt = 2;
  } else {
    if (proto === 6) csAt = 16;
    else if (proto === 17) csAt = 6;
    else return false;
  }
  if (v.innerL4Len < at + 2) return false;
  const icmpCs = v.l4Off + 2;
  let icmp = dv.getUint16(icmpCs);
  const old = dv.getUint16(l4 + at);
  dv.setUint16(l4 + at, val);
  icmp = csumReplace16(icmp, old, val);
  if (v.innerL4Len >= csAt + 2) {
    const oldC = dv.getUint16(l4 + csAt);
    let newC = proto === 17 ? udpCsumReplace16(oldC, old, val) : csumReplace16(oldC, old, val);
    // An all-zero quoted echo reply: full recomputation gives 0xffff (see setIcmpId). Decidable
    // only when the quote holds the whole message.
    if (newC === 0 && proto === 1 && val === 0) {
      const msgLen = dv.getUint16(v.innerIpOff + 2) - v.innerIpHdrLen;
      if (isZeroExceptChecksum(buf, l4, msgLen, v.innerL4Len)) newC = 0xffff;
    }
    if (newC !== oldC) {
      dv.setUint16(l4 + csAt, newC);
      icmp = csumReplace16(icmp, oldC, newC);
    }
  }
  dv.setUint16(icmpCs, icmp);
  if (at === 0) v.innerSrcPort = val;
  else if (at === 2) v.innerDstPort = val;
  else v.innerIcmpId = val;
  return true;
}
