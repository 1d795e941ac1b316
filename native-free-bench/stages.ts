/**
 * Per-stage micro-benchmarks: one operation is a pass over a few thousand frames held in one
 * buffer (as a batch holds them), so the figure is ns per frame of the stage alone.
 */
import { PacketView, PARSE_OK, LINKTYPE_ETHERNET, LINKTYPE_IPV4 } from '../src/packet/view.js';
import { ipv4HeaderChecksum, l4Checksum } from '../src/packet/checksum.js';
import { setDstIp, setDstPort } from '../src/packet/rewrite.js';
import { Conntrack } from '../src/netfilter/conntrack.js';
import { Nat } from '../src/netfilter/nat.js';
import {
  CT_ESTABLISHED,
  HOOK_POSTROUTING,
  HOOK_PREROUTING,
  NAT_MANIP_DST,
  NAT_MANIP_SRC,
  NAT_RANGE_MASQUERADE,
  NatRange,
  NF_NAT_RANGE_MAP_IPS,
  NF_NAT_RANGE_PROTO_SPECIFIED,
  Skb,
} from '../src/netfilter/skb.js';
import { ADDRTYPE_UNICAST, type NetfilterEnv } from '../src/netfilter/env.js';
import { Prng } from '../src/util/prng.js';
import { innerFlowHash, udpFlowSrcPort, vxlanEncap, type VxlanParams } from '../src/tunnels/vxlan.js';
import { ipipEncap } from '../src/tunnels/ipip.js';
import { FrameSet } from './inputs.js';
import { consume, type MicroCase } from './measure.js';

const MASQ_ADDR = 0x0afa0001; // 10.250.0.1

export const stubEnv: NetfilterEnv = {
  interfaceNames: ['eth0', 'eth1'],
  addrType: () => ADDRTYPE_UNICAST,
  masqueradeAddress: () => MASQ_ADDR,
};

/** Parse every frame once; the views stay pointed at the frames. */
function parseAll(fs: FrameSet, linktype = LINKTYPE_ETHERNET): PacketView[] {
  const views: PacketView[] = [];
  for (let i = 0; i < fs.count; i++) {
    const v = new PacketView();
    const st = v.parse(fs.buf, fs.dv, fs.off[i]!, fs.len[i]!, linktype, 0, fs.len[i]!);
    if (st !== PARSE_OK) throw new Error(`frame ${i} does not parse (status ${st})`);
    views.push(v);
  }
  return views;
}

export function stageCases(mixed: readonly Uint8Array[]): MicroCase[] {
  const cases: MicroCase[] = [];
  const fs = new FrameSet(mixed);
  const { count, bytes } = fs;

  // ---- header parse ----
  {
    const { buf, dv, off, len } = fs;
    const v = new PacketView();
    cases.push({
      id: 'parse',
      section: 'stage',
      name: 'header parse (Ethernet, IPv4, TCP/UDP: PacketView.parse)',
      framesPerOp: count,
      bytesPerOp: bytes,
      fn: () => {
        let acc = 0;
        for (let i = 0; i < count; i++) {
          v.parse(buf, dv, off[i]!, len[i]!, LINKTYPE_ETHERNET, 0, len[i]!);
          acc += v.dstPort;
        }
        consume(acc);
      },
    });
  }

  // ---- checksums ----
  {
    const views = parseAll(fs);
    const ipOff = Int32Array.from(views, (v) => v.ipOff);
    const ihl = Int32Array.from(views, (v) => v.ipHdrLen);
    const l4Off = Int32Array.from(views, (v) => v.l4Off);
    const l4Len = Int32Array.from(views, (v) => v.l4Len);
    const proto = Int32Array.from(views, (v) => v.ipProto);
    const src = Float64Array.from(views, (v) => v.srcIp);
    const dst = Float64Array.from(views, (v) => v.dstIp);
    const buf = fs.buf;
    cases.push({
      id: 'csum-full',
      section: 'stage',
      name: 'checksum, full: IPv4 header + TCP/UDP over the segment',
      framesPerOp: count,
      bytesPerOp: bytes,
      fn: () => {
        let acc = 0;
        for (let i = 0; i < count; i++) {
          acc ^= ipv4HeaderChecksum(buf, ipOff[i]!, ihl[i]!);
          acc ^= l4Checksum(buf, l4Off[i]!, l4Len[i]!, proto[i]!, src[i]!, dst[i]!);
        }
        consume(acc);
      },
    });
  }
  {
    const copy = new FrameSet(mixed);
    const views = parseAll(copy);
    const origDst = Float64Array.from(views, (v) => v.dstIp);
    const origPort = Int32Array.from(views, (v) => v.dstPort);
    const { buf, dv } = copy;
    let flip = false;
    cases.push({
      id: 'csum-incr',
      section: 'stage',
      name: 'checksum, incremental (RFC 1624): new address + port, IPv4 and L4 checksums',
      framesPerOp: count,
      bytesPerOp: bytes,
      note: 'setDstIp + setDstPort',
      fn: () => {
        flip = !flip;
        for (let i = 0; i < count; i++) {
          const v = views[i]!;
          setDstIp(v, buf, dv, flip ? 0x0abe0c06 : origDst[i]!);
          setDstPort(v, buf, dv, flip ? 8080 : origPort[i]!);
        }
      },
    });
  }

  cases.push(...natCases(mixed));
  cases.push(...encapCases(mixed));
  return cases;
}

/**
 * DNAT and MASQUERADE rewrites of established flows (Nat.apply: address, port, IPv4 and L4
 * checksums). Each flow has two conntrack entries whose mappings are each other's inverse, and
 * the op applies both in turn, so every apply really rewrites the packet and nothing has to be
 * restored between operations. Figures are per apply.
 */
function natCases(mixed: readonly Uint8Array[]): MicroCase[] {
  const K = 1024;
  const tcp = mixed.filter((f) => f[23] === 6).slice(0, K);
  const ct = new Conntrack({ max: 1 << 16, timeouts: { tcpEstablished: 1e9, tcpUnacknowledged: 1e9, tcpMaxRetrans: 1e9 } });
  const nat = new Nat(ct, stubEnv, new Prng(3));
  const now = 1;

  const mkSkb = (frame: Uint8Array): Skb => {
    const buf = frame.slice();
    const dv = new DataView(buf.buffer);
    const skb = new Skb();
    skb.reset(buf, dv, 0);
    skb.nowSec = now;
    if (skb.v.parse(buf, dv, 0, buf.length, LINKTYPE_ETHERNET) !== PARSE_OK) throw new Error('NAT case: frame does not parse');
    return skb;
  };
  const range = (manip: number, flags: number, ip: number, port: number): NatRange => {
    const r = new NatRange();
    r.manip = manip;
    r.flags = flags;
    r.minIp = r.maxIp = ip;
    r.minPort = r.maxPort = port;
    return r;
  };
  /** A new connection for skb's current tuple with `r` set up at its hook, then confirmed. */
  const entry = (skb: Skb, r: NatRange): number => {
    skb.ct = -1;
    skb.ctState = 0;
    skb.hook = HOOK_PREROUTING;
    skb.inIf = 0;
    if (!ct.lookup(skb) || skb.ct < 0) throw new Error('NAT case: conntrack refused the flow');
    skb.natRangeSet = r.manip === NAT_MANIP_DST;
    if (skb.natRangeSet) skb.natRange.set(r);
    if (!nat.setup(skb, NAT_MANIP_DST)) throw new Error('NAT case: DNAT setup failed');
    skb.hook = HOOK_POSTROUTING;
    skb.outIf = 1;
    skb.nextHop = 0x0afa00fe;
    skb.natRangeSet = r.manip === NAT_MANIP_SRC;
    if (skb.natRangeSet) skb.natRange.set(r);
    if (!nat.setup(skb, NAT_MANIP_SRC)) throw new Error('NAT case: SNAT setup failed');
    if (!ct.confirm(skb)) throw new Error('NAT case: confirm failed');
    return skb.ct;
  };

  const VIP = 0xac15000a; // 172.21.0.10
  const EP = 0x0abe0c06; // 10.190.12.6
  const mk = (manip: number): { skbs: Skb[]; a: Int32Array; b: Int32Array } => {
    const skbs: Skb[] = [];
    const a = new Int32Array(tcp.length);
    const b = new Int32Array(tcp.length);
    tcp.forEach((f, k) => {
      const skb = mkSkb(f);
      const v = skb.v;
      const sport = v.srcPort;
      if (manip === NAT_MANIP_DST) {
        // A: client → VIP:80 DNAT to EP:8080; B: client → EP:8080 DNAT to VIP:80.
        setDstIp(v, skb.buf, skb.dv, VIP);
        setDstPort(v, skb.buf, skb.dv, 80);
        a[k] = entry(skb, range(NAT_MANIP_DST, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED, EP, 8080));
        nat.apply(skb, NAT_MANIP_DST);
        b[k] = entry(skb, range(NAT_MANIP_DST, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED, VIP, 80));
        nat.apply(skb, NAT_MANIP_DST); // back to VIP:80
      } else {
        // A: MASQUERADE out of eth1; B: the masqueraded tuple SNATed back to the client.
        const client = v.srcIp;
        a[k] = entry(skb, range(NAT_MANIP_SRC, NAT_RANGE_MASQUERADE, 0, 0));
        skb.hook = HOOK_POSTROUTING;
        nat.apply(skb, NAT_MANIP_SRC);
        b[k] = entry(skb, range(NAT_MANIP_SRC, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED, client, sport));
        skb.hook = HOOK_POSTROUTING;
        nat.apply(skb, NAT_MANIP_SRC);
      }
      skb.ctState = CT_ESTABLISHED;
      skb.ctDir = 0;
      skb.hook = manip === NAT_MANIP_DST ? HOOK_PREROUTING : HOOK_POSTROUTING;
      skb.outIf = 1;
      skbs.push(skb);
    });
    return { skbs, a, b };
  };

  const out: MicroCase[] = [];
  for (const [id, manip, name] of [
    ['dnat', NAT_MANIP_DST, 'DNAT of an established flow (Nat.apply: address + port, checksums)'],
    ['masquerade', NAT_MANIP_SRC, 'MASQUERADE of an established flow (Nat.apply: address + port, checksums)'],
  ] as const) {
    const { skbs, a, b } = mk(manip);
    const n = skbs.length;
    // Check that every apply rewrites.
    for (let k = 0; k < n; k++) {
      const s = skbs[k]!;
      const before = manip === NAT_MANIP_DST ? s.v.dstIp : s.v.srcIp;
      s.ct = a[k]!;
      nat.apply(s, manip);
      const mid = manip === NAT_MANIP_DST ? s.v.dstIp : s.v.srcIp;
      s.ct = b[k]!;
      nat.apply(s, manip);
      const after = manip === NAT_MANIP_DST ? s.v.dstIp : s.v.srcIp;
      if (mid === before || after !== before) throw new Error(`${id} case: the apply does not rewrite (flow ${k})`);
    }
    out.push({
      id,
      section: 'stage',
      name,
      framesPerOp: 2 * n,
      bytesPerOp: 0,
      note: 'per apply',
      fn: () => {
        for (let k = 0; k < n; k++) {
          const s = skbs[k]!;
          s.ct = a[k]!;
          nat.apply(s, manip);
          s.ct = b[k]!;
          nat.apply(s, manip);
        }
      },
    });
  }
  return out;
}

/** Tunnel encapsulation alone: the outer headers written in front of the frame (no copy). */
function encapCases(mixed: readonly Uint8Array[]): MicroCase[] {
  const out: MicroCase[] = [];
  const fs = new FrameSet(mixed, 64);
  const views = parseAll(fs);
  const tos = Int32Array.from(views, (v) => v.tos);
  const ttl = Int32Array.from(views, (v) => v.ttl);
  const srcIp = Float64Array.from(views, (v) => v.srcIp);
  const dstIp = Float64Array.from(views, (v) => v.dstIp);
  const proto = Int32Array.from(views, (v) => v.ipProto);
  const ports = Float64Array.from(views, (v) => ((v.srcPort << 16) | v.dstPort) >>> 0);
  const df = Uint8Array.from(views, (v) => v.df);
  const { buf, dv, off, len, count, bytes } = fs;
  const key = 0x5eed1234;
  for (const udpcsum of [false, true]) {
    const p: VxlanParams = { vni: 4096, local: 0x0abe0e05, remote: 0x0abe0e06, dstport: 4789, udpcsum, ttl: 0, ttlInherit: false, tos: 0, srcPortMin: 32768, srcPortMax: 61000 };
    let id = 0;
    out.push({
      id: udpcsum ? 'vxlan-encap-csum' : 'vxlan-encap',
      section: 'stage',
      name: `VXLAN encap: outer IPv4 + UDP + VXLAN${udpcsum ? ', with UDP checksum over the frame' : ', UDP checksum 0'} (vxlanEncap + flow hash)`,
      framesPerOp: count,
      bytesPerOp: bytes,
      fn: () => {
        for (let i = 0; i < count; i++) {
          const sport = udpFlowSrcPort(innerFlowHash(key, srcIp[i]!, dstIp[i]!, proto[i]!, ports[i]!), p.srcPortMin, p.srcPortMax);
          vxlanEncap(buf, dv, off[i]!, len[i]!, p, sport, tos[i]!, ttl[i]!, id++ & 0xffff);
        }
      },
    });
  }
  {
    const ip = new FrameSet(
      mixed.map((f) => f.subarray(14)),
      64,
    );
    parseAll(ip, LINKTYPE_IPV4); // every packet must parse as raw IPv4
    const p = { ttl: 0, tos: 'inherit' as const };
    let id = 0;
    out.push({
      id: 'ipip-encap',
      section: 'stage',
      name: 'IP-in-IP encap: outer IPv4 header (ipipEncap)',
      framesPerOp: ip.count,
      bytesPerOp: ip.bytes,
      fn: () => {
        const b = ip.buf;
        const d = ip.dv;
        for (let i = 0; i < count; i++) ipipEncap(b, d, ip.off[i]!, ip.len[i]!, p, 0x0abe0e05, 0x0abe0e06, tos[i]!, ttl[i]!, df[i] !== 0, id++ & 0xffff);
      },
    });
  }
  return out;
}
