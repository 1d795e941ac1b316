/**
 * The routing table of a `linux` element: the kernel's local table (the node's own addresses,
 * subnet broadcasts) and main table (connected routes derived from interface addresses, plus the
 * configured routes), looked up by longest prefix match, then lowest metric.
 *
 * Lookup is one Map.get per distinct prefix length present (at most 33), longest first: no
 * allocation, and the cost does not grow with the number of routes.
 */
import { prefixMask } from '../../packet/addr.js';
import { ADDRTYPE_BROADCAST, ADDRTYPE_LOCAL, ADDRTYPE_MULTICAST, ADDRTYPE_UNICAST } from '../../netfilter/env.js';
import type { InterfaceConfig, RouteConfig, RouteType } from './config.js';

const CACHE_BITS = 12;
const CACHE_SIZE = 1 << CACHE_BITS;

export const RT_UNICAST = 0;
export const RT_LOCAL = 1;
export const RT_BLACKHOLE = 2;
export const RT_UNREACHABLE = 3;
export const RT_PROHIBIT = 4;
export const RT_BROADCAST = 5;

export interface Route {
  type: number;
  dst: number;
  prefix: number;
  /** Output interface index, -1 for blackhole/unreachable/prohibit. */
  outIf: number;
  /** Gateway, 0 when the destination is on-link. */
  via: number;
  /** Preferred source (`src`), 0 = choose from the output interface. */
  src: number;
  metric: number;
  /** How the route was made, for traces: the config text or "connected". */
  text: string;
}

const TYPE_OF: Record<RouteType, number> = {
  unicast: RT_UNICAST,
  local: RT_LOCAL,
  blackhole: RT_BLACKHOLE,
  unreachable: RT_UNREACHABLE,
  prohibit: RT_PROHIBIT,
};

class LpmTable {
  /** Prefix lengths present, longest first. */
  private lengths: number[] = [];
  /** int32 masks (prefixMask | 0) so that `ip & mask` is the int32 key. */
  private masks: number[] = [];
  private byLen: Map<number, Route>[] = [];

  add(r: Route): void {
    let m = this.byLen[r.prefix];
    if (m === undefined) {
      m = new Map();
      this.byLen[r.prefix] = m;
      this.lengths.push(r.prefix);
      this.lengths.sort((a, b) => b - a);
      this.masks = this.lengths.map((l) => prefixMask(l) | 0);
    }
    // Keys are int32 (not uint32): V8 hashes small integers fast, numbers >= 2^31 are heap doubles.
    const key = r.dst | 0;
    const old = m.get(key);
    // Same prefix twice: the lower metric wins (the kernel keeps both and prefers the lower metric).
    if (old === undefined || r.metric < old.metric) m.set(key, r);
  }

  lookup(ip: number): Route | undefined {
    const lengths = this.lengths;
    for (let i = 0; i < lengths.length; i++) {
      const r = this.byLen[lengths[i]!]!.get(ip & this.masks[i]!);
      if (r !== undefined) return r;
    }
    return undefined;
  }

  all(): Route[] {
    const out: Route[] = [];
    for (const len of this.lengths) for (const r of this.byLen[len]!.values()) out.push(r);
    return out;
  }
}

export class RoutingTable {
  private readonly local = new LpmTable();
  private readonly main = new LpmTable();
  /** Addresses of each interface (for MASQUERADE and ICMP source selection). */
  readonly addrsOf: { ip: number; prefix: number }[][];

  constructor(interfaces: InterfaceConfig[], routes: RouteConfig[]) {
    this.addrsOf = interfaces.map((i) => i.addresses.map((a) => ({ ip: a.ip, prefix: a.prefix })));
    // Loopback: "local 127.0.0.0/8 dev lo" in the local table.
    this.local.add({ type: RT_LOCAL, dst: 0x7f000000, prefix: 8, outIf: -1, via: 0, src: 0, metric: 0, text: 'local 127.0.0.0/8 dev lo' });
    for (const ifc of interfaces) {
      for (const a of ifc.addresses) {
        this.local.add({ type: RT_LOCAL, dst: a.ip, prefix: 32, outIf: ifc.index, via: 0, src: a.ip, metric: 0, text: `local ${a.text} dev ${ifc.name}` });
        if (a.prefix < 31) {
          const mask = prefixMask(a.prefix);
          const net = (a.ip & mask) >>> 0;
          const bcast = (net | ~mask) >>> 0;
          this.local.add({ type: RT_BROADCAST, dst: bcast, prefix: 32, outIf: ifc.index, via: 0, src: a.ip, metric: 0, text: `broadcast of ${a.text} dev ${ifc.name}` });
        }
        if (a.prefix < 32) {
          const net = (a.ip & prefixMask(a.prefix)) >>> 0;
          // proto kernel scope link: the connected route every address brings.
          this.main.add({ type: RT_UNICAST, dst: net, prefix: a.prefix, outIf: ifc.index, via: 0, src: a.ip, metric: 0, text: `connected ${a.text} dev ${ifc.name}` });
        }
      }
    }
    const ifIndex = new Map(interfaces.map((i) => [i.name, i.index]));
    for (const rc of routes) {
      const type = TYPE_OF[rc.type];
      let outIf = rc.dev === undefined ? -1 : ifIndex.get(rc.dev)!;
      if (type === RT_UNICAST && rc.via !== 0 && !rc.onlink) {
        // The gateway must be reachable on a connected route ("Nexthop has invalid gateway").
        const g = this.main.lookup(rc.via);
        if (g === undefined || g.via !== 0) throw new Error(`line ${rc.line}: route "${rc.text}": gateway ${fmt(rc.via)} is not on a connected network (use onlink)`);
        if (outIf === -1) outIf = g.outIf;
        else if (g.outIf !== outIf) throw new Error(`line ${rc.line}: route "${rc.text}": gateway ${fmt(rc.via)} is not on ${rc.dev}`);
      }
      if (type === RT_UNICAST && outIf === -1) throw new Error(`line ${rc.line}: route "${rc.text}": needs dev`);
      const r: Route = { type, dst: rc.dst, prefix: rc.prefix, outIf, via: rc.via, src: rc.src, metric: rc.metric, text: rc.text };
      if (type === RT_LOCAL) this.local.add(r);
      else this.main.add(r);
    }
  }

  /**
   * A direct-mapped cache of lookups (the table never changes after construction): most
   * traffic goes to few destinations, and a hit costs one typed-array read and one compare.
   */
  private readonly cacheKey = new Int32Array(CACHE_SIZE);
  private readonly cacheOk = new Uint8Array(CACHE_SIZE);
  private readonly cacheRoute: (Route | undefined)[] = new Array(CACHE_SIZE).fill(undefined);

  /** fib_lookup: the local table first, then main. undefined = no route (ENETUNREACH). */
  lookup(dst: number): Route | undefined {
    const k = dst | 0;
    const slot = (Math.imul(k, 0x9e3779b1) >>> (32 - CACHE_BITS)) & (CACHE_SIZE - 1);
    if (this.cacheOk[slot] === 1 && this.cacheKey[slot] === k) return this.cacheRoute[slot];
    const r = this.local.lookup(dst) ?? this.main.lookup(dst);
    this.cacheKey[slot] = k;
    this.cacheOk[slot] = 1;
    this.cacheRoute[slot] = r;
    return r;
  }

  /** inet_addr_type: only the local table speaks; anything else is UNICAST. */
  addrType(ip: number, limitIf: number): number {
    if (ip === 0 || ip === 0xffffffff) return ADDRTYPE_BROADCAST;
    if (ip >>> 28 === 0xe) return ADDRTYPE_MULTICAST;
    const r = this.local.lookup(ip);
    if (r === undefined) return ADDRTYPE_UNICAST;
    if (r.type === RT_BROADCAST) return ADDRTYPE_BROADCAST;
    if (limitIf >= 0 && r.outIf !== limitIf) return ADDRTYPE_UNICAST;
    return ADDRTYPE_LOCAL;
  }

  /**
   * inet_select_addr(dev, dst, RT_SCOPE_UNIVERSE): the first address of `ifIndex` whose subnet
   * holds `dst`, else its first address, else the first address of any interface; 0 if none.
   */
  selectAddr(ifIndex: number, dst: number): number {
    const list = ifIndex >= 0 ? this.addrsOf[ifIndex] ?? [] : [];
    for (const a of list) {
      const m = prefixMask(a.prefix);
      if (dst !== 0 && ((a.ip ^ dst) & m) === 0) return a.ip;
    }
    if (list.length > 0) return list[0]!.ip;
    for (const l of this.addrsOf) if (l.length > 0) return l[0]!.ip;
    return 0;
  }

  routes(): Route[] {
    return [...this.local.all(), ...this.main.all()];
  }
}

function fmt(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}
