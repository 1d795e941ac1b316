/**
 * Helpers for the netfilter tests: a fake node environment (interfaces, address types,
 * rpfilter), a fake conntrack view, and packets built as bytes and parsed by PacketView.
 */
import { ADDRTYPE_BROADCAST, ADDRTYPE_LOCAL, ADDRTYPE_MULTICAST, ADDRTYPE_UNICAST, type ConntrackView, type NetfilterEnv } from '../src/netfilter/env.js';
import { Skb } from '../src/netfilter/skb.js';
import { LINKTYPE_RAW } from '../src/packet/view.js';
import { parseIpv4 } from '../src/packet/addr.js';
import { buildIpPacket, type IpSpec, type L4Spec } from './support/frames.js';

export class FakeEnv implements NetfilterEnv {
  readonly interfaceNames: string[];
  /** Addresses of each interface (LOCAL, also for --limit-iface-*). */
  readonly ifAddrs: number[][];
  rpfilterCalls: { src: number; dst: number; inIf: number; mark: number; flags: number }[] = [];
  rpfilterResult = true;
  rpfilter?: (src: number, dst: number, inIf: number, mark: number, flags: number) => boolean;

  constructor(ifs: Record<string, string[]> = { eth0: ['10.177.1.10'], eth1: ['192.168.1.1'], tunl0: ['172.30.10.1'], cali1f2a3b4c5d6: [], cali9e8d7c6b5a4: [], lo: ['127.0.0.1'] }, withRpfilter = true) {
    this.interfaceNames = Object.keys(ifs);
    this.ifAddrs = Object.values(ifs).map((l) => l.map(parseIpv4));
    if (withRpfilter) {
      this.rpfilter = (src, dst, inIf, mark, flags) => {
        this.rpfilterCalls.push({ src, dst, inIf, mark, flags });
        return this.rpfilterResult;
      };
    }
  }

  addrType(ip: number, limitIf: number): number {
    if ((ip >>> 24) === 127) return ADDRTYPE_LOCAL;
    if (limitIf >= 0) {
      if (this.ifAddrs[limitIf]?.includes(ip)) return ADDRTYPE_LOCAL;
    } else if (this.ifAddrs.some((l) => l.includes(ip))) return ADDRTYPE_LOCAL;
    if (ip >>> 28 === 14) return ADDRTYPE_MULTICAST;
    if (ip === 0xffffffff) return ADDRTYPE_BROADCAST;
    return ADDRTYPE_UNICAST;
  }

  masqueradeAddress(outIf: number): number {
    return this.ifAddrs[outIf]?.[0] ?? 0;
  }

  ifIndex(name: string): number {
    const i = this.interfaceNames.indexOf(name);
    if (i < 0) throw new Error(`no interface ${name}`);
    return i;
  }
}

export class FakeCt implements ConntrackView {
  readonly status = new Uint32Array(16);
  readonly proto = new Uint8Array(16);
  readonly origSrc = new Uint32Array(16);
  readonly origDst = new Uint32Array(16);
  readonly origSport = new Uint16Array(16);
  readonly origDport = new Uint16Array(16);
  readonly replSrc = new Uint32Array(16);
  readonly replDst = new Uint32Array(16);
  readonly replSport = new Uint16Array(16);
  readonly replDport = new Uint16Array(16);

  /** Fill entry `id` with an original tuple and its reply (optionally DNATed to `to`). */
  entry(id: number, o: { proto: number; src: string; dst: string; sport: number; dport: number; status?: number; replSrc?: string; replSport?: number }): void {
    this.proto[id] = o.proto;
    this.origSrc[id] = parseIpv4(o.src);
    this.origDst[id] = parseIpv4(o.dst);
    this.origSport[id] = o.sport;
    this.origDport[id] = o.dport;
    this.replSrc[id] = parseIpv4(o.replSrc ?? o.dst);
    this.replDst[id] = parseIpv4(o.src);
    this.replSport[id] = o.replSport ?? o.dport;
    this.replDport[id] = o.sport;
    this.status[id] = o.status ?? 0;
  }
}

export interface PktOpts {
  inIf?: number;
  outIf?: number;
  now?: number;
  mark?: number;
  ct?: number;
  ctState?: number;
  ctDir?: number;
}

/** Point skb at a freshly built IPv4 packet (parsed by PacketView). */
export function load(skb: Skb, ip: IpSpec, l4: L4Spec, o: PktOpts = {}): Skb {
  const buf = buildIpPacket(ip, l4);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  skb.reset(buf, dv, o.inIf ?? -1);
  skb.nowSec = o.now ?? 0;
  const st = skb.v.parse(buf, dv, 0, buf.length, LINKTYPE_RAW);
  if (st !== 0) throw new Error(`test packet does not parse (status ${st}, reason ${skb.v.malformedReason})`);
  skb.outIf = o.outIf ?? -1;
  skb.mark = o.mark ?? 0;
  skb.ct = o.ct ?? -1;
  skb.ctState = o.ctState ?? 0;
  skb.ctDir = o.ctDir ?? 0;
  return skb;
}

export function tcp(src: string, dst: string, sport: number, dport: number, flags = 'S', extra: Partial<IpSpec> = {}): [IpSpec, L4Spec] {
  return [{ src, dst, ...extra }, { kind: 'tcp', sport, dport, flags }];
}

export function udp(src: string, dst: string, sport: number, dport: number, extra: Partial<IpSpec> = {}): [IpSpec, L4Spec] {
  return [{ src, dst, ...extra }, { kind: 'udp', sport, dport }];
}

/** An ICMP message; error types quote a UDP packet from dst back to src. */
export function icmp(src: string, dst: string, type: number, code = 0): [IpSpec, L4Spec] {
  const isError = type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
  const payload = isError ? buildIpPacket({ src: dst, dst: src }, { kind: 'udp', sport: 53, dport: 5353, payload: 'quoted' }).subarray(0, 28) : undefined;
  return [{ src, dst }, isError ? { kind: 'icmp', type, code, payload } : { kind: 'icmp', type, code, id: 7, seq: 1 }];
}

/** Wrap rule lines of one table into iptables-save text. */
export function table(name: string, chains: string[], rules: string[]): string {
  return [`*${name}`, ...chains.map((c) => (c.includes(' ') ? `:${c} [0:0]` : `:${c} - [0:0]`)), ...rules, 'COMMIT', ''].join('\n');
}
