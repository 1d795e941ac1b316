/**
 * IP-in-IP (RFC 2003 §3.1) as Linux's ipip/tunl0 does it (net/ipv4/ip_tunnel.c ip_tunnel_xmit,
 * ip_tunnel_core.c iptunnel_xmit): outer TOS from the device (inherit = the inner TOS) with the
 * inner ECN propagated, TTL from the device or inherited from the inner (0 = inherit, tunl0's
 * default), DF copied from the inner header (pmtudisc off only drops the *device's* DF), protocol 4.
 */
import { ecnEncapsulate, IP_DF, writeIpv4Header } from './ipv4-header.js';

export const IPIP_OVERHEAD = 20;

export interface IpipParams {
  ttl: number;
  tos: number | 'inherit';
}

/** Write the outer header in front of the inner IPv4 packet at `innerOff`; returns the outer offset. */
export function ipipEncap(
  buf: Uint8Array,
  dv: DataView,
  innerOff: number,
  innerLen: number,
  p: IpipParams,
  src: number,
  dst: number,
  innerTos: number,
  innerTtl: number,
  innerDf: boolean,
  ipId: number,
): number {
  const off = innerOff - IPIP_OVERHEAD;
  const tos = ecnEncapsulate(p.tos === 'inherit' ? innerTos : p.tos, innerTos);
  const ttl = p.ttl === 0 ? innerTtl : p.ttl;
  writeIpv4Header(buf, dv, off, tos, IPIP_OVERHEAD + innerLen, ipId, innerDf ? IP_DF : 0, ttl, 4, src, dst);
  return off;
}
