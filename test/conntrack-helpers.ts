/**
 * Helpers for the conntrack and NAT tests: frames, Skbs, a tiny hook walk that calls conntrack
 * and NAT in the kernel's order, and full checksum verification.
 */
import { parseIpv4 } from '../src/packet/addr.js';
import { buildFrame, buildIpPacket, icmpErrorL4, type L4Spec } from '../src/packet/build.js';
import { ipv4HeaderChecksumOk, l4ChecksumOk } from '../src/packet/checksum.js';
import { LINKTYPE_ETHERNET, PARSE_OK } from '../src/packet/view.js';
import { Conntrack, type ConntrackConfig } from '../src/netfilter/conntrack.js';
import type { NetfilterEnv } from '../src/netfilter/env.js';
import { Nat } from '../src/netfilter/nat.js';
import {
  HOOK_INPUT,
  HOOK_OUTPUT,
  HOOK_POSTROUTING,
  HOOK_PREROUTING,
  NAT_MANIP_DST,
  NAT_MANIP_SRC,
  NAT_RANGE_MASQUERADE,
  NAT_RANGE_NETMAP,
  NatRange,
  NF_NAT_RANGE_MAP_IPS,
  NF_NAT_RANGE_PROTO_SPECIFIED,
  Skb,
} from '../src/netfilter/skb.js';
import type { Trace } from '../src/netfilter/trace.js';
import { Prng } from '../src/util/prng.js';

export const ip = parseIpv4;

const MAC_A = '02:00:00:00:00:01';
const MAC_B = '02:00:00:00:00:02';

export interface TcpOpts {
  seq?: number;
  ack?: number;
  win?: number;
  payload?: string | Uint8Array;
  options?: Uint8Array;
  ttl?: number;
}

export function tcp(src: string, sport: number, dst: string, dport: number, flags: string, o: TcpOpts = {}): Uint8Array {
  return buildFrame({
    srcMac: MAC_A,
    dstMac: MAC_B,
    ip: { src, dst, ttl: o.ttl ?? 64 },
    l4: { kind: 'tcp', sport, dport, flags, seq: o.seq ?? 0, ack: o.ack ?? 0, window: o.win ?? 29200, payload: o.payload, options: o.options },
  });
}

export function udp(src: string, sport: number, dst: string, dport: number, payload: string | Uint8Array = 'x', noChecksum = false): Uint8Array {
  return buildFrame({ srcMac: MAC_A, dstMac: MAC_B, ip: { src, dst }, l4: { kind: 'udp', sport, dport, payload, noChecksum } });
}

export function icmp(src: string, dst: string, type: number, code: number, id = 0, seq = 0, payload: string | Uint8Array = 'ping'): Uint8Array {
  return buildFrame({ srcMac: MAC_A, dstMac: MAC_B, ip: { src, dst }, l4: { kind: 'icmp', type, code, id, seq, payload } });
}

/** The IPv4 packet inside an Ethernet frame built by the helpers above (no VLAN). */
export function ipOf(frame: Uint8Array): Uint8Array {
  const total = (frame[16]! << 8) | frame[17]!;
  return frame.slice(14, 14 + total);
}

/** An ICMP error from `src` to `dst` quoting the whole IP packet of `quotedFrame`. */
export function icmpError(src: string, dst: string, type: number, code: number, quotedFrame: Uint8Array, quoteBytes?: number): Uint8Array {
  const q = ipOf(quotedFrame);
  return buildFrame({ srcMac: MAC_A, dstMac: MAC_B, ip: { src, dst, tos: 0xc0 }, l4: icmpErrorL4(type, code, q, { quoteBytes: quoteBytes ?? q.length }) });
}

export function rawIp(src: string, dst: string, l4: L4Spec): Uint8Array {
  return buildIpPacket({ ip: { src, dst }, l4 });
}

/** A fresh Skb over a copy of `frame` (so that rewrites can be inspected on skb.buf). */
export function skbOf(frame: Uint8Array, now: number, hook = HOOK_PREROUTING, inIf = 0): Skb {
  const buf = frame.slice();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const skb = new Skb();
  skb.reset(buf, dv, inIf);
  skb.nowSec = now;
  skb.hook = hook;
  const st = skb.v.parse(buf, dv, 0, buf.length, LINKTYPE_ETHERNET);
  if (st !== PARSE_OK) throw new Error(`test frame does not parse: status ${st}`);
  return skb;
}

/** Flip one bit of the L4 payload/header of a frame (breaks its L4 checksum only). */
export function corruptL4(frame: Uint8Array): Uint8Array {
  const f = frame.slice();
  const ihl = (f[14]! & 15) * 4;
  const l4 = 14 + ihl;
  // The TCP/UDP source port's low byte: covered by the checksum, not by the IP header's.
  f[l4 + 1]! ^= 0x01;
  return f;
}

/** Every checksum of the frame, recomputed in full (outer IP and L4; for ICMP errors the quote). */
export function checksumsOk(frame: Uint8Array): { ok: boolean; why: string } {
  const skb = skbOf(frame, 0);
  const v = skb.v;
  const b = skb.buf;
  if (!ipv4HeaderChecksumOk(b, v.ipOff, v.ipHdrLen)) return { ok: false, why: 'outer IP header checksum' };
  if (v.l4Off >= 0) {
    if (v.ipProto === 17) {
      const ulen = (b[v.l4Off + 4]! << 8) | b[v.l4Off + 5]!;
      if (!l4ChecksumOk(b, v.l4Off, ulen, 17, v.srcIp, v.dstIp)) return { ok: false, why: 'UDP checksum' };
    } else if (v.ipProto === 6 || v.ipProto === 1) {
      if (!l4ChecksumOk(b, v.l4Off, v.l4Len, v.ipProto, v.srcIp, v.dstIp)) return { ok: false, why: `${v.ipProto === 6 ? 'TCP' : 'ICMP'} checksum` };
    }
  }
  if (v.innerIpOff >= 0) {
    if (!ipv4HeaderChecksumOk(b, v.innerIpOff, v.innerIpHdrLen)) return { ok: false, why: 'quoted IP header checksum' };
    const innerTotal = (b[v.innerIpOff + 2]! << 8) | b[v.innerIpOff + 3]!;
    const innerL4Len = innerTotal - v.innerIpHdrLen;
    if (v.innerL4Off >= 0 && v.innerL4Len >= innerL4Len) {
      const p = v.innerProto;
      let len = innerL4Len;
      if (p === 17) len = (b[v.innerL4Off + 4]! << 8) | b[v.innerL4Off + 5]!;
      if ((p === 6 || p === 17 || p === 1) && !l4ChecksumOk(b, v.innerL4Off, len, p, v.innerSrcIp, v.innerDstIp)) return { ok: false, why: 'quoted L4 checksum' };
    }
  }
  return { ok: true, why: '' };
}

// ---- NAT ranges ----

export function dnatTo(addr: string, port?: number, lastAddr?: string): NatRange {
  const r = new NatRange();
  r.manip = NAT_MANIP_DST;
  r.flags = NF_NAT_RANGE_MAP_IPS | (port !== undefined ? NF_NAT_RANGE_PROTO_SPECIFIED : 0);
  r.minIp = ip(addr);
  r.maxIp = ip(lastAddr ?? addr);
  r.minPort = port ?? 0;
  r.maxPort = port ?? 0;
  r.ruleRef = `DNAT --to-destination ${addr}${port !== undefined ? `:${port}` : ''}`;
  return r;
}

export function snatTo(addr: string, extraFlags = 0, ports?: [number, number], lastAddr?: string): NatRange {
  const r = new NatRange();
  r.manip = NAT_MANIP_SRC;
  r.flags = NF_NAT_RANGE_MAP_IPS | extraFlags | (ports ? NF_NAT_RANGE_PROTO_SPECIFIED : 0);
  r.minIp = ip(addr);
  r.maxIp = ip(lastAddr ?? addr);
  r.minPort = ports ? ports[0] : 0;
  r.maxPort = ports ? ports[1] : 0;
  r.ruleRef = 'SNAT';
  return r;
}

export function masquerade(extraFlags = 0, ports?: [number, number]): NatRange {
  const r = new NatRange();
  r.manip = NAT_MANIP_SRC;
  r.flags = NAT_RANGE_MASQUERADE | extraFlags | (ports ? NF_NAT_RANGE_PROTO_SPECIFIED : 0);
  r.minPort = ports ? ports[0] : 0;
  r.maxPort = ports ? ports[1] : 0;
  r.ruleRef = 'KUBE-POSTROUTING MASQUERADE';
  return r;
}

export function netmap(manip: number, prefix: string, len: number): NatRange {
  const r = new NatRange();
  r.manip = manip;
  r.flags = NAT_RANGE_NETMAP;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  r.minIp = ip(prefix) & mask;
  r.maxIp = (ip(prefix) | ~mask) >>> 0;
  r.netmapMask = mask;
  r.ruleRef = 'NETMAP';
  return r;
}

// ---- a node ----

/** NetfilterEnv for tests: interface i has address masq[i] (0 = none). */
export class TestEnv implements NetfilterEnv {
  readonly interfaceNames = ['eth0', 'eth1', 'eth2', 'eth3'];
  constructor(readonly masq: number[] = [ip('192.168.0.1'), ip('10.0.0.5'), 0, ip('10.9.9.9')]) {}
  addrType(): number {
    return 2;
  }
  masqueradeAddress(outIf: number): number {
    return this.masq[outIf] ?? 0;
  }
}

export interface WalkOpts {
  /** The range a nat-table target would set at PREROUTING/OUTPUT (DST manip). */
  dnat?: NatRange | null;
  /** ... at POSTROUTING/INPUT (SRC manip). */
  snat?: NatRange | null;
  outIf?: number;
  nextHop?: number;
  inIf?: number;
  /** Record the steps (skb.trace). */
  trace?: Trace;
}

export interface WalkResult {
  skb: Skb;
  /** 'accept', or why it was dropped. */
  verdict: string;
  /** The nat table was traversed at the DST / SRC hook. */
  natDst: boolean;
  natSrc: boolean;
}

/** A node: conntrack, NAT and a walk through the hooks in the kernel's order. */
export class Node {
  readonly ct: Conntrack;
  readonly nat: Nat;
  readonly env: TestEnv;
  readonly prng: Prng;
  constructor(cfg: Partial<ConntrackConfig> = {}, seed = 42, env = new TestEnv()) {
    this.ct = new Conntrack({ max: 65536, ...cfg });
    this.env = env;
    this.prng = new Prng(seed);
    this.nat = new Nat(this.ct, env, this.prng);
  }

  private natHook(skb: Skb, manip: number, range: NatRange | null | undefined): string | boolean {
    let traversed = false;
    if (this.nat.needsSetup(skb, manip)) {
      traversed = true;
      skb.natRangeSet = false;
      if (range) {
        skb.natRange.set(range);
        skb.natRangeSet = true;
      }
      if (!this.nat.setup(skb, manip)) {
        this.ct.abandon(skb);
        return 'nat setup';
      }
    }
    if (!this.nat.apply(skb, manip)) return 'nat apply';
    return traversed;
  }

  /** PREROUTING → (forward) → POSTROUTING → confirm. */
  forward(frame: Uint8Array, now: number, o: WalkOpts = {}): WalkResult {
    const skb = skbOf(frame, now, HOOK_PREROUTING, o.inIf ?? 0);
    return this.walk(skb, o, HOOK_POSTROUTING);
  }

  /** PREROUTING → INPUT → confirm. */
  localIn(frame: Uint8Array, now: number, o: WalkOpts = {}): WalkResult {
    const skb = skbOf(frame, now, HOOK_PREROUTING, o.inIf ?? 0);
    return this.walk(skb, o, HOOK_INPUT);
  }

  /** OUTPUT → POSTROUTING → confirm (a locally generated packet). */
  localOut(frame: Uint8Array, now: number, o: WalkOpts = {}, attachTo?: Skb): WalkResult {
    const skb = skbOf(frame, now, HOOK_OUTPUT, -1);
    if (attachTo) this.ct.attach(skb, attachTo);
    return this.walk(skb, o, HOOK_POSTROUTING);
  }

  /** Walk an Skb prepared by the caller (its hook is PREROUTING or OUTPUT). */
  walk(skb: Skb, o: WalkOpts, lastHook: number): WalkResult {
    const res: WalkResult = { skb, verdict: 'accept', natDst: false, natSrc: false };
    if (o.trace) skb.trace = o.trace;
    if (!this.ct.lookup(skb)) {
      res.verdict = 'conntrack table full';
      return res;
    }
    const d = this.natHook(skb, NAT_MANIP_DST, o.dnat);
    if (typeof d === 'string') {
      res.verdict = d;
      return res;
    }
    res.natDst = d;
    skb.outIf = lastHook === HOOK_INPUT ? -1 : (o.outIf ?? 1);
    skb.nextHop = o.nextHop ?? skb.v.dstIp;
    skb.hook = lastHook;
    const s = this.natHook(skb, NAT_MANIP_SRC, o.snat);
    if (typeof s === 'string') {
      res.verdict = s;
      return res;
    }
    res.natSrc = s;
    if (!this.ct.confirm(skb)) res.verdict = 'confirm';
    return res;
  }
}

/** Text of the IPv4 src:port > dst:port of a frame after processing (for assertions). */
export function flowText(skb: Skb): string {
  const v = skb.v;
  const a = (x: number): string => `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
  if (v.ipProto === 6 || v.ipProto === 17) return `${a(v.srcIp)}:${v.srcPort} > ${a(v.dstIp)}:${v.dstPort}`;
  if (v.ipProto === 1 && v.icmpId >= 0) return `${a(v.srcIp)} > ${a(v.dstIp)} id ${v.icmpId}`;
  return `${a(v.srcIp)} > ${a(v.dstIp)}`;
}

export { HOOK_INPUT, HOOK_OUTPUT, HOOK_POSTROUTING, HOOK_PREROUTING, NAT_MANIP_DST, NAT_MANIP_SRC };
