/**
 * Packets the kernel builds in answer to a packet: ICMP errors (icmp_send, net/ipv4/icmp.c) and
 * TCP resets (nf_send_reset, net/ipv4/netfilter/nf_reject_ipv4.c). They are written into a
 * scratch buffer at a given offset; no allocation.
 */
import { icmpChecksum, l4Checksum } from '../../packet/checksum.js';
import { icmpIsError, type PacketView } from '../../packet/view.js';
import { IP_DF, writeIpv4Header } from '../../tunnels/ipv4-header.js';

/** icmp_send quotes as much of the offending packet as fits in 576 bytes: 576 - 20 - 8. */
export const ICMP_QUOTE_MAX = 548;
/** sysctl net.ipv4.ip_default_ttl. */
export const DEFAULT_TTL = 64;
/** IPTOS_PREC_INTERNETCONTROL: icmp_send marks errors with it. */
const TOS_INTERNETCONTROL = 0xc0;
/** IPTOS_TOS_MASK (RT_TOS keeps these bits of the offending packet's TOS). */
const TOS_MASK = 0x1e;

/**
 * May the kernel send an ICMP error about this packet? (icmp_send's early checks:)
 * never about ICMP errors, non-first fragments, or packets to/from broadcast, multicast or 0.0.0.0.
 */
export function icmpErrorAllowed(v: PacketView, dstIsBroadcast: boolean): boolean {
  if (v.fragOffset !== 0) return false;
  if (dstIsBroadcast) return false;
  if (v.dstIp >>> 28 === 0xe || v.srcIp === 0 || v.srcIp >>> 28 >= 0xe) return false;
  if (v.ipProto === 1) {
    if (v.l4Off < 0) return false;
    if (icmpIsError(v.icmpType)) return false;
  }
  return true;
}

/**
 * Write an ICMP error about the packet `v` (over `src`) at `off` in `dst`. `info` is the 32-bit
 * rest-of-header (the next-hop MTU for frag-needed in its low 16 bits). Returns the packet length.
 */
export function writeIcmpError(
  dst: Uint8Array,
  dv: DataView,
  off: number,
  v: PacketView,
  srcBuf: Uint8Array,
  type: number,
  code: number,
  info: number,
  saddr: number,
  ipId: number,
): number {
  const quote = Math.min(v.ipTotalLen, v.dataEnd - v.ipOff, ICMP_QUOTE_MAX);
  const total = 20 + 8 + quote;
  const icmpOff = off + 20;
  for (let i = 0; i < quote; i++) dst[icmpOff + 8 + i] = srcBuf[v.ipOff + i]!;
  dv.setUint8(icmpOff, type);
  dv.setUint8(icmpOff + 1, code);
  dv.setUint16(icmpOff + 2, 0);
  dv.setUint32(icmpOff + 4, info >>> 0);
  dv.setUint16(icmpOff + 2, icmpChecksum(dst, icmpOff, 8 + quote));
  const tos = (v.tos & TOS_MASK) | TOS_INTERNETCONTROL;
  // The ICMP socket does not set DF (SEMANTICS §10: "TTL 64, TOS 0xc0, no DF").
  writeIpv4Header(dst, dv, off, tos, total, ipId, 0, DEFAULT_TTL, 1, saddr, v.srcIp);
  return total;
}

/** nf_send_reset's RST for the TCP segment `v`; returns the packet length (40). */
export function writeTcpReset(dst: Uint8Array, dv: DataView, off: number, v: PacketView): number {
  const tcp = off + 20;
  for (let i = 0; i < 20; i++) dst[tcp + i] = 0;
  dv.setUint16(tcp, v.dstPort);
  dv.setUint16(tcp + 2, v.srcPort);
  let flags = 0x04; // RST
  if (v.tcpFlags & 0x10) {
    dv.setUint32(tcp + 4, v.tcpAck);
  } else {
    const segLen = v.ipTotalLen - v.ipHdrLen - v.tcpDataOff;
    const seqAdd = (v.tcpFlags & 0x02 ? 1 : 0) + (v.tcpFlags & 0x01 ? 1 : 0) + segLen;
    dv.setUint32(tcp + 8, (v.tcpSeq + seqAdd) >>> 0);
    flags |= 0x10;
  }
  dv.setUint8(tcp + 12, 5 << 4);
  dv.setUint8(tcp + 13, flags);
  // nf_reject_iphdr_put: tos 0, id 0, DF, ttl = the route's hop limit.
  writeIpv4Header(dst, dv, off, 0, 40, 0, IP_DF, DEFAULT_TTL, 6, v.dstIp, v.srcIp);
  dv.setUint16(tcp + 16, l4Checksum(dst, tcp, 20, 6, v.dstIp, v.srcIp));
  return 40;
}
