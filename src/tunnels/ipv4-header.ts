/**
 * Writing a fresh IPv4 header (for headers the node builds: tunnel outer headers, ICMP errors,
 * TCP resets, fragments). No options; checksum computed.
 */
import { ipv4HeaderChecksum } from '../packet/checksum.js';

export const IP_DF = 0x4000;
export const IP_MF = 0x2000;

/** Write a 20-byte IPv4 header at `off`; returns 20. */
export function writeIpv4Header(
  buf: Uint8Array,
  dv: DataView,
  off: number,
  tos: number,
  totalLen: number,
  id: number,
  fragField: number,
  ttl: number,
  proto: number,
  src: number,
  dst: number,
): number {
  dv.setUint8(off, 0x45);
  dv.setUint8(off + 1, tos);
  dv.setUint16(off + 2, totalLen);
  dv.setUint16(off + 4, id & 0xffff);
  dv.setUint16(off + 6, fragField);
  dv.setUint8(off + 8, ttl);
  dv.setUint8(off + 9, proto);
  dv.setUint16(off + 10, 0);
  dv.setUint32(off + 12, src);
  dv.setUint32(off + 16, dst);
  dv.setUint16(off + 10, ipv4HeaderChecksum(buf, off, 20));
  return 20;
}

/**
 * ECN on encapsulation (INET_ECN_encapsulate, include/net/inet_ecn.h): the outer header takes
 * the inner ECN bits, except that CE becomes ECT(0).
 */
export function ecnEncapsulate(outerTos: number, innerTos: number): number {
  let ecn = innerTos & 3;
  if (ecn === 3) ecn = 2;
  return (outerTos & ~3) | ecn;
}

/** Write an Ethernet II header at `off`; returns 14. */
export function writeEthernet(buf: Uint8Array, off: number, dst: Uint8Array, src: Uint8Array, etherType: number): number {
  for (let i = 0; i < 6; i++) buf[off + i] = dst[i]!;
  for (let i = 0; i < 6; i++) buf[off + 6 + i] = src[i]!;
  buf[off + 12] = etherType >>> 8;
  buf[off + 13] = etherType & 255;
  return 14;
}
