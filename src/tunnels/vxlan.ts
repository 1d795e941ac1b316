/**
 * VXLAN (RFC 7348 §5) framing as the Linux vxlan driver does it (drivers/net/vxlan/vxlan_core.c,
 * vxlan_xmit_one): outer IPv4 / UDP (dst port from the device, source port a hash of the inner
 * flow: udp_flow_src_port) / 8-byte VXLAN header (I flag, VNI) / inner Ethernet frame.
 */
import { l4Checksum } from '../packet/checksum.js';
import { ecnEncapsulate, writeIpv4Header } from './ipv4-header.js';

export const VXLAN_HEADER_LEN = 8;
/** Outer IPv4 + UDP + VXLAN: what the encapsulation adds in front of the inner Ethernet frame. */
export const VXLAN_OVERHEAD = 20 + 8 + VXLAN_HEADER_LEN;
export const VXLAN_FLAG_I = 0x08;

export interface VxlanParams {
  vni: number;
  local: number;
  remote: number;
  dstport: number;
  udpcsum: boolean;
  /** 0 = default (64). */
  ttl: number;
  ttlInherit: boolean;
  tos: number | 'inherit';
  srcPortMin: number;
  srcPortMax: number;
}

/**
 * udp_flow_src_port (include/net/udp.h): hash ^= hash << 16; port = (hash * (max - min)) >> 32 + min.
 * `hash` is the inner flow hash (skb_get_hash); the kernel keys it randomly per boot, dpemu from
 * its seed, so only the properties match the kernel: same flow → same port, in [min, max).
 */
export function udpFlowSrcPort(hash: number, min: number, max: number): number {
  let h = hash >>> 0;
  h = (h ^ (h << 16)) >>> 0;
  return Math.floor((h * (max - min)) / 4294967296) + min;
}

/**
 * A keyed 32-bit hash of the inner flow (the role of skb_get_hash / flow dissector): addresses and
 * protocol, and ports only for unfragmented TCP/UDP (the flow dissector does not read L4 of
 * fragments, and ICMP contributes no ports), so every fragment of a datagram gets the same port.
 */
export function innerFlowHash(key: number, src: number, dst: number, proto: number, ports: number): number {
  let h = key ^ 0x9e3779b9;
  h = mix(h, src);
  h = mix(h, dst);
  h = mix(h, proto);
  h = mix(h, ports);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/**
 * Write outer IPv4 + UDP + VXLAN headers in front of an inner Ethernet frame that starts at
 * `innerOff` and is `innerLen` bytes long. Returns the offset of the outer IPv4 header
 * (innerOff - VXLAN_OVERHEAD). `innerTos`/`innerTtl` are of the inner IPv4 packet.
 */
export function vxlanEncap(
  buf: Uint8Array,
  dv: DataView,
  innerOff: number,
  innerLen: number,
  p: VxlanParams,
  srcPort: number,
  innerTos: number,
  innerTtl: number,
  ipId: number,
): number {
  const ipOff = innerOff - VXLAN_OVERHEAD;
  const udpOff = ipOff + 20;
  const vxOff = udpOff + 8;
  // VXLAN header: flags (I), 24 reserved bits, VNI, 8 reserved bits.
  dv.setUint32(vxOff, VXLAN_FLAG_I << 24);
  dv.setUint32(vxOff + 4, (p.vni & 0xffffff) << 8);
  const udpLen = 8 + VXLAN_HEADER_LEN + innerLen;
  dv.setUint16(udpOff, srcPort);
  dv.setUint16(udpOff + 2, p.dstport);
  dv.setUint16(udpOff + 4, udpLen);
  dv.setUint16(udpOff + 6, 0);
  // vxlan_xmit_one: tos = ip_tunnel_ecn_encap(RT_TOS(tos), old_iph, skb); ttl defaults to the route's hop limit (64).
  const tos = ecnEncapsulate(p.tos === 'inherit' ? innerTos : p.tos, innerTos);
  const ttl = p.ttlInherit ? innerTtl : p.ttl || 64;
  writeIpv4Header(buf, dv, ipOff, tos, 20 + udpLen, ipId, 0, ttl, 17, p.local, p.remote);
  if (p.udpcsum) {
    let c = l4Checksum(buf, udpOff, udpLen, 17, p.local, p.remote);
    if (c === 0) c = 0xffff; // RFC 768: a computed zero is sent as all ones
    dv.setUint16(udpOff + 6, c);
  }
  return ipOff;
}
