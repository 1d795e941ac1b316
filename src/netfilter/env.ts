/**
 * What the rule evaluator and NAT need to know about the node they run in. The `linux` element
 * implements it; tests can implement it with a few lines.
 */

/** xt_addrtype bits (include/uapi/linux/netfilter/xt_addrtype.h): 1 << RTN_*. */
export const ADDRTYPE_UNSPEC = 1 << 0;
export const ADDRTYPE_UNICAST = 1 << 1;
export const ADDRTYPE_LOCAL = 1 << 2;
export const ADDRTYPE_BROADCAST = 1 << 3;
export const ADDRTYPE_ANYCAST = 1 << 4;
export const ADDRTYPE_MULTICAST = 1 << 5;
export const ADDRTYPE_BLACKHOLE = 1 << 6;
export const ADDRTYPE_UNREACHABLE = 1 << 7;
export const ADDRTYPE_PROHIBIT = 1 << 8;
export const ADDRTYPE_THROW = 1 << 9;
export const ADDRTYPE_NAT = 1 << 10;
export const ADDRTYPE_XRESOLVE = 1 << 11;

export interface NetfilterEnv {
  /** Interface names by index; `-i`/`-o` (with `+` wildcards) are compiled against them. */
  readonly interfaceNames: readonly string[];
  /**
   * The address type of `ip` as the kernel's inet_addr_type would say (one ADDRTYPE_* bit);
   * with limitIf >= 0, LOCAL only if the address belongs to that interface (--limit-iface-in/out).
   */
  addrType(ip: number, limitIf: number): number;
  /**
   * MASQUERADE's source address: the primary address of `outIf` best matching `nextHop`
   * (inet_select_addr(out, nexthop, RT_SCOPE_UNIVERSE)); 0 when the interface has none.
   */
  masqueradeAddress(outIf: number, nextHop: number): number;
  /**
   * Optional: the reverse-path check of `-m rpfilter` (net/ipv4/netfilter/ipt_rpfilter.c
   * rpfilter_mt, without its --invert): true when the packet from `src` to `dst` arriving on
   * `inIf` passes (loopback and 0.0.0.0-source special cases included; a route back to src
   * through inIf, or any unicast route with RPF_LOOSE; RTN_LOCAL accepted with ACCEPT_LOCAL;
   * the lookup uses `mark` with VALID_MARK). `flags`: RPF_* below. A rule set that uses
   * `-m rpfilter` is rejected at load time when the environment does not provide it.
   */
  rpfilter?(src: number, dst: number, inIf: number, mark: number, flags: number): boolean;
}

/** xt_rpfilter flags (include/uapi/linux/netfilter/xt_rpfilter.h). */
export const RPF_LOOSE = 1 << 0;
export const RPF_VALID_MARK = 1 << 1;
export const RPF_ACCEPT_LOCAL = 1 << 2;

/**
 * Read-only view of the conntrack table for matches (`-m conntrack --ctorigdst` etc.):
 * parallel arrays indexed by entry id (Skb.ct).
 */
export interface ConntrackView {
  readonly status: Uint32Array;
  readonly proto: Uint8Array;
  readonly origSrc: Uint32Array;
  readonly origDst: Uint32Array;
  readonly origSport: Uint16Array;
  readonly origDport: Uint16Array;
  readonly replSrc: Uint32Array;
  readonly replDst: Uint32Array;
  readonly replSport: Uint16Array;
  readonly replDport: Uint16Array;
}
