/**
 * Hashes for conntrack and NAT. 32-bit integer math only (Math.imul), no allocation.
 *
 *  - `tupleHash`: dpemu's hash of a conntrack tuple (src, dst, ports, protocol), a murmur3-style
 *    mix. The kernel uses jhash with a random per-boot seed (hash_conntrack_raw in
 *    net/netfilter/nf_conntrack_core.c), so bucket placement is not reproducible anyway; ours is
 *    seeded by configuration and therefore deterministic.
 *  - `jhash2Ip`: the kernel's jhash2 (include/linux/jhash.h) exactly as find_best_ips_proto
 *    (net/netfilter/nf_nat_core.c) calls it on an IPv4 tuple, so that an SNAT/DNAT to an address
 *    *range* picks the address a real x86 kernel picks (that hash has no random seed).
 */

/** Murmur3 fmix32. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

function mixIn(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/**
 * Hash of a conntrack tuple (ICMP: sport = id, dport = type << 8 | code). Returns an int32:
 * hot-path values are kept in int32 range so that passing them between functions never boxes
 * them (a uint32 above 2^31 is a heap number in V8).
 */
export function tupleHash(seed: number, src: number, dst: number, sport: number, dport: number, proto: number): number {
  let h = seed | 0;
  h = mixIn(h, src | 0);
  h = mixIn(h, dst | 0);
  h = mixIn(h, (sport << 16) | dport);
  h = mixIn(h, proto);
  return fmix32(h ^ 13);
}

/** Hash of NAT's "by source" key (orig src address, src port or ICMP id, protocol): hash_by_src. */
export function srcHash(seed: number, src: number, sport: number, proto: number): number {
  let h = seed ^ 0x5bd1e995;
  h = mixIn(h, src | 0);
  h = mixIn(h, (sport << 8) | proto);
  return fmix32(h ^ 8);
}

function rol32(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Byte swap: a network-order IPv4 address read as a little-endian u32 (what x86 sees); int32. */
export function bswap32(x: number): number {
  return ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

/**
 * jhash2(k, 4, initval) over k = { src address as stored (__be32 read on a little-endian host),
 * 0, 0, 0 }: `union nf_inet_addr` is 16 bytes and an IPv4 tuple is zeroed first
 * (find_best_ips_proto, nf_nat_core.c; jhash2/__jhash_mix/__jhash_final, include/linux/jhash.h).
 * `srcIp` and `initval` are as the kernel sees them (pass bswap32 of a host-order address).
 */
export function jhash2Ip(srcWord: number, initval: number): number {
  // a = b = c = JHASH_INITVAL + (length << 2) + initval, length = 4
  let a = (0xdeadbeef + 16 + initval) | 0;
  let b = a;
  let c = a;
  // while (length > 3): one round with k[0..2] = (src, 0, 0)
  a = (a + srcWord) | 0;
  // __jhash_mix(a, b, c)
  a = (a - c) | 0; a ^= rol32(c, 4); c = (c + b) | 0;
  b = (b - a) | 0; b ^= rol32(a, 6); a = (a + c) | 0;
  c = (c - b) | 0; c ^= rol32(b, 8); b = (b + a) | 0;
  a = (a - c) | 0; a ^= rol32(c, 16); c = (c + b) | 0;
  b = (b - a) | 0; b ^= rol32(a, 19); a = (a + c) | 0;
  c = (c - b) | 0; c ^= rol32(b, 4); b = (b + a) | 0;
  // case 1: a += k[3] (= 0); __jhash_final(a, b, c)
  c ^= b; c = (c - rol32(b, 14)) | 0;
  a ^= c; a = (a - rol32(c, 11)) | 0;
  b ^= a; b = (b - rol32(a, 25)) | 0;
  c ^= b; c = (c - rol32(b, 16)) | 0;
  a ^= c; a = (a - rol32(c, 4)) | 0;
  b ^= a; b = (b - rol32(a, 14)) | 0;
  c ^= b; c = (c - rol32(b, 24)) | 0;
  return c >>> 0;
}

/** reciprocal_scale(val, ep_ro) = ((u64)val * ep_ro) >> 32, exactly, for u32 inputs. */
export function reciprocalScale(val: number, epRo: number): number {
  val >>>= 0;
  epRo >>>= 0;
  const ah = val >>> 16;
  const al = val & 0xffff;
  const bh = epRo >>> 16;
  const bl = epRo & 0xffff;
  const mid = ah * bl + al * bh + Math.floor((al * bl) / 65536);
  return (ah * bh + Math.floor(mid / 65536)) >>> 0;
}
