/**
 * Compare what dpemu's Linux node sent with what the real kernel sent (test/support/kernel.ts),
 * interface by interface, frame by frame, header field by header field.
 *
 * Every field is compared exactly except the ones the kernel randomises, which are compared by
 * their properties:
 *  - the IP ID (and so the IP header checksum) of headers the kernel builds: ICMP errors and
 *    echo replies it generates, VXLAN outer headers; a header is taken as built by the node when
 *    its (IP ID, protocol) pair occurs in no input frame (forwarding, NAT and fragmentation keep
 *    both). Both sides' checksums are verified separately;
 *  - the VXLAN outer UDP source port (and so the outer UDP checksum): in the source-port range
 *    (ip_local_port_range 32768–60999, upper end exclusive, unless the tunnel says otherwise),
 *    the same for every frame of one inner flow (both directions; fragments of one datagram
 *    share theirs), on each side separately;
 *  - ports and ICMP echo ids chosen by NAT on a clash: a value the node invented (it occurs in
 *    no static input frame) may differ between the two sides if both lie in the range the
 *    kernel draws from (ports 1024–65535 for original ports >= 1024, 600–1023 and 1–511 below;
 *    ICMP ids 0–65535) and the kernel's values and dpemu's values map one-to-one across the
 *    whole run (stable within a flow, unique); checksums covering such a field are then checked
 *    for validity only.
 * Everything else is exact: addresses and ports after NAT, TTL, TOS, DF/MF/offset, lengths, all
 * checksums, ICMP errors and the headers they quote, encapsulation headers, payload bytes,
 * Ethernet padding.
 */
import { existsSync } from 'node:fs';
import { tshark } from './tshark.js';
import { internetChecksum, onesSum16, pseudoHeader } from './frames.js';

// ---------------------------------------------------------------------------------------------
// Runs

/** A frame given to the node. */
export interface InFrame {
  iface: string;
  data: Uint8Array;
  /** Step name, for messages. */
  name: string;
  /** Built from the node's earlier output (e.g. a reply to a NAT-chosen port). */
  dynamic: boolean;
}

/** A frame the node sent. */
export interface OutFrame {
  iface: string;
  data: Uint8Array;
  /** Kernel runs: index of the input frame after which it was captured. */
  after?: number;
  /** Kernel runs: capture time. */
  tsNs?: bigint;
}

export interface RunResult {
  side: 'kernel' | 'dpemu';
  inputs: InFrame[];
  outputs: OutFrame[];
  /** Files worth looking at when something fails. */
  artifacts: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface DecodeOptions {
  /** UDP destination ports decoded as VXLAN (default 4789 and 8472). */
  vxlanPorts?: number[];
}

export interface Field {
  name: string;
  value: string;
}

export class Decoded {
  readonly fields: Field[] = [];
  /** Checksums that are wrong, lengths that do not add up. */
  readonly problems: string[] = [];
  /** Prefixes ('' for the frame, 'inner.' inside VXLAN, 'icmp.quoted.' inside an ICMP error). */
  readonly levels: string[] = [];
  summary = '';
  private readonly index = new Map<string, string>();

  add(name: string, value: string | number): void {
    const v = String(value);
    this.fields.push({ name, value: v });
    if (!this.index.has(name)) this.index.set(name, v);
  }
  has(name: string): boolean {
    return this.index.has(name);
  }
  get(name: string): string | undefined {
    return this.index.get(name);
  }
  /** A numeric field (decimal or 0x hex); throws if absent. */
  num(name: string): number {
    const v = this.index.get(name);
    if (v === undefined) throw new Error(`field ${name} not in frame: ${this.summary}`);
    return Number(v);
  }
  str(name: string): string {
    const v = this.index.get(name);
    if (v === undefined) throw new Error(`field ${name} not in frame: ${this.summary}`);
    return v;
  }
}

const ICMP_ERROR_TYPES = new Set([3, 4, 5, 11, 12]);
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const h16 = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;
const ip4 = (b: Uint8Array, o: number): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const mac = (b: Uint8Array, o: number): string =>
  Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

export function tcpFlagsText(bits: number): string {
  const names: [number, string][] = [
    [0x02, 'S'],
    [0x10, 'A'],
    [0x08, 'P'],
    [0x01, 'F'],
    [0x04, 'R'],
    [0x20, 'U'],
    [0x40, 'E'],
    [0x80, 'C'],
  ];
  let s = '';
  for (const [b, n] of names) if (bits & b) s += n;
  return s || '.';
}

/** Decode an Ethernet frame into named fields (tshark-like names). */
export function decodeFrame(frame: Uint8Array, opts: DecodeOptions = {}): Decoded {
  const d = new Decoded();
  const vx = new Set(opts.vxlanPorts ?? [4789, 8472]);
  d.summary = decodeEth(frame, 0, frame.length, '', d, vx);
  return d;
}

function decodeEth(b: Uint8Array, off: number, end: number, pre: string, d: Decoded, vx: Set<number>): string {
  d.levels.push(pre);
  if (end - off < 14) {
    d.add(`${pre}eth.short`, hex(b.subarray(off, end)));
    d.problems.push(`${pre}eth: frame of ${end - off} bytes`);
    return 'short frame';
  }
  d.add(`${pre}eth.dst`, mac(b, off));
  d.add(`${pre}eth.src`, mac(b, off + 6));
  let p = off + 12;
  let type = (b[p]! << 8) | b[p + 1]!;
  if (type === 0x8100) {
    d.add(`${pre}vlan.pcp`, b[p + 2]! >> 5);
    d.add(`${pre}vlan.id`, ((b[p + 2]! & 0x0f) << 8) | b[p + 3]!);
    p += 4;
    type = (b[p]! << 8) | b[p + 1]!;
  }
  d.add(`${pre}eth.type`, h16(type));
  p += 2;
  if (type !== 0x0800) {
    d.add(`${pre}eth.payload`, hex(b.subarray(p, end)));
    return `ethertype ${h16(type)}`;
  }
  const r = decodeIp(b, p, end, pre, d, vx, false);
  if (r.end < end) d.add(`${pre}eth.trailer`, hex(b.subarray(r.end, end)));
  return r.summary;
}

function decodeIp(
  b: Uint8Array,
  off: number,
  end: number,
  pre: string,
  d: Decoded,
  vx: Set<number>,
  quoted: boolean,
): { end: number; summary: string } {
  if (end - off < 20) {
    d.add(`${pre}ip.short`, hex(b.subarray(off, end)));
    if (!quoted) d.problems.push(`${pre}ip: only ${end - off} bytes`);
    return { end, summary: 'short IP' };
  }
  const ver = b[off]! >> 4;
  const ihl = (b[off]! & 15) * 4;
  const totLen = (b[off + 2]! << 8) | b[off + 3]!;
  const id = (b[off + 4]! << 8) | b[off + 5]!;
  const fl = (b[off + 6]! << 8) | b[off + 7]!;
  const ttl = b[off + 8]!;
  const proto = b[off + 9]!;
  const src = ip4(b, off + 12);
  const dst = ip4(b, off + 16);
  d.add(`${pre}ip.version`, ver);
  d.add(`${pre}ip.hdr_len`, ihl);
  d.add(`${pre}ip.dsfield`, `0x${b[off + 1]!.toString(16).padStart(2, '0')}`);
  d.add(`${pre}ip.len`, totLen);
  d.add(`${pre}ip.id`, h16(id));
  d.add(`${pre}ip.flags.rb`, (fl >> 15) & 1);
  d.add(`${pre}ip.flags.df`, (fl >> 14) & 1);
  d.add(`${pre}ip.flags.mf`, (fl >> 13) & 1);
  d.add(`${pre}ip.frag_offset`, (fl & 0x1fff) * 8);
  d.add(`${pre}ip.ttl`, ttl);
  d.add(`${pre}ip.proto`, proto);
  d.add(`${pre}ip.checksum`, h16((b[off + 10]! << 8) | b[off + 11]!));
  d.add(`${pre}ip.src`, src);
  d.add(`${pre}ip.dst`, dst);
  if (ihl > 20) d.add(`${pre}ip.options`, hex(b.subarray(off + 20, Math.min(end, off + ihl))));
  if (ver !== 4 || ihl < 20) {
    d.problems.push(`${pre}ip: version ${ver}, header length ${ihl}`);
    return { end, summary: `bad IP header` };
  }
  if (end - off >= ihl) {
    if (onesSum16(b.subarray(off, off + ihl)) !== 0xffff) d.problems.push(`${pre}ip.checksum is wrong`);
  }
  const available = end - off;
  // The bytes of this datagram present here (a quoted datagram is usually cut short).
  const complete = available >= totLen;
  const pEnd = off + Math.min(totLen, available);
  if (!quoted && !complete) d.problems.push(`${pre}ip.len ${totLen} but only ${available} bytes`);
  if (totLen < ihl) {
    d.problems.push(`${pre}ip.len ${totLen} < header ${ihl}`);
    return { end: pEnd, summary: 'bad IP length' };
  }
  if (quoted) d.add(`${pre}ip.quoted_bytes`, available);
  const fragOff = fl & 0x1fff;
  const mf = (fl >> 13) & 1;
  const l4 = off + ihl;
  const head = `${src} > ${dst} ttl ${ttl}${fl & 0x4000 ? ' DF' : ''}${mf ? ' MF' : ''}${fragOff ? ` off ${fragOff * 8}` : ''} id ${h16(id)} len ${totLen}`;
  if (fragOff !== 0) {
    d.add(`${pre}ip.frag_data`, hex(b.subarray(l4, pEnd)));
    return { end: pEnd, summary: `IP frag proto ${proto} ${head}` };
  }
  const verifiable = complete && !mf;
  const pseudo = (len: number): Uint8Array => pseudoHeader(b.subarray(off + 12, off + 16), b.subarray(off + 16, off + 20), proto, len);
  const l4Len = totLen - ihl;
  if (proto === 6) {
    if (pEnd - l4 < 4) {
      d.add(`${pre}ip.payload`, hex(b.subarray(l4, pEnd)));
      return { end: pEnd, summary: `TCP (cut) ${head}` };
    }
    const sp = (b[l4]! << 8) | b[l4 + 1]!;
    const dp = (b[l4 + 2]! << 8) | b[l4 + 3]!;
    d.add(`${pre}tcp.srcport`, sp);
    d.add(`${pre}tcp.dstport`, dp);
    if (pEnd - l4 >= 8) d.add(`${pre}tcp.seq`, new DataView(b.buffer, b.byteOffset).getUint32(l4 + 4));
    let flags = '';
    if (pEnd - l4 >= 20) {
      const dv = new DataView(b.buffer, b.byteOffset);
      const thl = (b[l4 + 12]! >> 4) * 4;
      d.add(`${pre}tcp.ack`, dv.getUint32(l4 + 8));
      d.add(`${pre}tcp.hdr_len`, thl);
      d.add(`${pre}tcp.reserved`, b[l4 + 12]! & 15);
      flags = tcpFlagsText(b[l4 + 13]!);
      d.add(`${pre}tcp.flags`, flags);
      d.add(`${pre}tcp.window`, dv.getUint16(l4 + 14));
      d.add(`${pre}tcp.checksum`, h16(dv.getUint16(l4 + 16)));
      d.add(`${pre}tcp.urgent`, dv.getUint16(l4 + 18));
      if (thl > 20) d.add(`${pre}tcp.options`, hex(b.subarray(l4 + 20, Math.min(pEnd, l4 + thl))));
      if (l4 + thl <= pEnd) {
        d.add(`${pre}tcp.payload_len`, pEnd - l4 - thl);
        d.add(`${pre}tcp.payload`, hex(b.subarray(l4 + thl, pEnd)));
      }
      if (verifiable && onesSum16(pseudo(l4Len), b.subarray(l4, pEnd)) !== 0xffff) d.problems.push(`${pre}tcp.checksum is wrong`);
    } else {
      d.add(`${pre}tcp.rest`, hex(b.subarray(l4 + 8, pEnd)));
    }
    return { end: pEnd, summary: `TCP ${src}:${sp} > ${dst}:${dp} [${flags}] ttl ${ttl}${fl & 0x4000 ? ' DF' : ''}${mf ? ' MF' : ''} len ${totLen}` };
  }
  if (proto === 17) {
    if (pEnd - l4 < 8) {
      d.add(`${pre}ip.payload`, hex(b.subarray(l4, pEnd)));
      return { end: pEnd, summary: `UDP (cut) ${head}` };
    }
    const dv = new DataView(b.buffer, b.byteOffset);
    const sp = dv.getUint16(l4);
    const dp = dv.getUint16(l4 + 2);
    const ulen = dv.getUint16(l4 + 4);
    const csum = dv.getUint16(l4 + 6);
    d.add(`${pre}udp.srcport`, sp);
    d.add(`${pre}udp.dstport`, dp);
    d.add(`${pre}udp.length`, ulen);
    d.add(`${pre}udp.checksum`, h16(csum));
    if (verifiable) {
      if (ulen !== l4Len) d.problems.push(`${pre}udp.length ${ulen} but IP payload ${l4Len}`);
      else if (csum !== 0 && onesSum16(pseudo(ulen), b.subarray(l4, pEnd)) !== 0xffff) d.problems.push(`${pre}udp.checksum is wrong`);
    }
    if (vx.has(dp) && !quoted && pEnd - l4 >= 16) {
      d.add(`${pre}vxlan.flags`, `0x${b[l4 + 8]!.toString(16).padStart(2, '0')}`);
      d.add(`${pre}vxlan.reserved1`, hex(b.subarray(l4 + 9, l4 + 12)));
      d.add(`${pre}vxlan.vni`, (b[l4 + 12]! << 16) | (b[l4 + 13]! << 8) | b[l4 + 14]!);
      d.add(`${pre}vxlan.reserved2`, b[l4 + 15]!);
      const inner = decodeEth(b, l4 + 16, pEnd, `${pre}inner.`, d, vx);
      return { end: pEnd, summary: `VXLAN vni ${(b[l4 + 12]! << 16) | (b[l4 + 13]! << 8) | b[l4 + 14]!} ${src}:${sp} > ${dst}:${dp} ttl ${ttl} [${inner}]` };
    }
    d.add(`${pre}udp.payload`, hex(b.subarray(l4 + 8, pEnd)));
    return { end: pEnd, summary: `UDP ${src}:${sp} > ${dst}:${dp} ttl ${ttl}${fl & 0x4000 ? ' DF' : ''}${mf ? ' MF' : ''} len ${totLen}` };
  }
  if (proto === 1) {
    if (pEnd - l4 < 4) {
      d.add(`${pre}ip.payload`, hex(b.subarray(l4, pEnd)));
      return { end: pEnd, summary: `ICMP (cut) ${head}` };
    }
    const type = b[l4]!;
    const code = b[l4 + 1]!;
    d.add(`${pre}icmp.type`, type);
    d.add(`${pre}icmp.code`, code);
    d.add(`${pre}icmp.checksum`, h16((b[l4 + 2]! << 8) | b[l4 + 3]!));
    if (verifiable && internetChecksum(b.subarray(l4, pEnd)) !== 0) d.problems.push(`${pre}icmp.checksum is wrong`);
    const dv = new DataView(b.buffer, b.byteOffset);
    if ((type === 0 || type === 8) && pEnd - l4 >= 8) {
      d.add(`${pre}icmp.ident`, dv.getUint16(l4 + 4));
      d.add(`${pre}icmp.seq`, dv.getUint16(l4 + 6));
      d.add(`${pre}icmp.data`, hex(b.subarray(l4 + 8, pEnd)));
      return { end: pEnd, summary: `ICMP echo${type === 0 ? ' reply' : ''} ${src} > ${dst} id ${dv.getUint16(l4 + 4)} seq ${dv.getUint16(l4 + 6)} ttl ${ttl}` };
    }
    if (ICMP_ERROR_TYPES.has(type) && pEnd - l4 >= 8 && !quoted) {
      if (type === 3 && code === 4) {
        d.add(`${pre}icmp.unused`, h16(dv.getUint16(l4 + 4)));
        d.add(`${pre}icmp.mtu`, dv.getUint16(l4 + 6));
      } else if (type === 5) d.add(`${pre}icmp.gateway`, ip4(b, l4 + 4));
      else if (type === 12) {
        d.add(`${pre}icmp.pointer`, b[l4 + 4]!);
        d.add(`${pre}icmp.unused`, hex(b.subarray(l4 + 5, l4 + 8)));
      } else d.add(`${pre}icmp.unused`, hex(b.subarray(l4 + 4, l4 + 8)));
      d.levels.push(`${pre}icmp.quoted.`);
      const q = decodeIp(b, l4 + 8, pEnd, `${pre}icmp.quoted.`, d, vx, true);
      return {
        end: pEnd,
        summary: `ICMP ${type}/${code}${type === 3 && code === 4 ? ` mtu ${dv.getUint16(l4 + 6)}` : ''} ${src} > ${dst} ttl ${ttl} quoting {${q.summary}}`,
      };
    }
    d.add(`${pre}icmp.rest`, hex(b.subarray(l4 + 4, pEnd)));
    return { end: pEnd, summary: `ICMP ${type}/${code} ${src} > ${dst} ttl ${ttl}` };
  }
  d.add(`${pre}ip.payload`, hex(b.subarray(l4, pEnd)));
  return { end: pEnd, summary: `IP proto ${proto} ${head}` };
}

// ---------------------------------------------------------------------------------------------
// Properties checked on one side

export interface PortRange {
  /** Inclusive. */
  min: number;
  /** Exclusive (the kernel's udp_flow_src_port never returns max). */
  max: number;
}

/** Direction-independent inner flow key for the VXLAN source-port hash. */
function innerFlowKey(d: Decoded): string {
  const p = 'inner.';
  const src = d.get(`${p}ip.src`);
  const dst = d.get(`${p}ip.dst`);
  if (src === undefined || dst === undefined) return `l2:${d.get(`${p}eth.src`)}>${d.get(`${p}eth.dst`)}`;
  const proto = d.get(`${p}ip.proto`);
  if (d.get(`${p}ip.flags.mf`) === '1' || d.get(`${p}ip.frag_offset`) !== '0') {
    // Fragments are hashed without ports; both fragments of a datagram share a port.
    return `frag:${[src, dst].sort().join('|')}:${proto}:${d.get(`${p}ip.id`)}`;
  }
  const sp = d.get(`${p}tcp.srcport`) ?? d.get(`${p}udp.srcport`) ?? '';
  const dp = d.get(`${p}tcp.dstport`) ?? d.get(`${p}udp.dstport`) ?? '';
  const a = `${src}:${sp}`;
  const b = `${dst}:${dp}`;
  return `${proto}:${[a, b].sort().join('|')}`;
}

/**
 * VXLAN outer source ports of one run: in range, one port per inner flow. Returns problems
 * (empty when fine) and the port of each flow.
 */
export function vxlanSourcePortProblems(frames: { iface: string; d: Decoded }[], range: PortRange = { min: 32768, max: 61000 }): { problems: string[]; ports: Map<string, number> } {
  const problems: string[] = [];
  const ports = new Map<string, number>();
  frames.forEach(({ iface, d }, i) => {
    if (!d.has('vxlan.vni')) return;
    const port = d.num('udp.srcport');
    if (port < range.min || port >= range.max) problems.push(`frame ${i} on ${iface}: VXLAN source port ${port} outside [${range.min}, ${range.max})`);
    const key = innerFlowKey(d);
    const seen = ports.get(key);
    if (seen === undefined) ports.set(key, port);
    else if (seen !== port) problems.push(`frame ${i} on ${iface}: VXLAN source port ${port}, but ${seen} earlier for the same inner flow ${key}`);
  });
  return { problems, ports };
}

// ---------------------------------------------------------------------------------------------
// Comparison

export interface CompareOptions extends DecodeOptions {
  /** Interfaces compared (default: every interface either side sent on). */
  interfaces?: string[];
  /** Interfaces of dpemu's output that are not compared (tunnel devices). */
  ignoreInterfaces?: string[];
  /** VXLAN outer source-port range (default 32768–60999). */
  vxlanSrcPorts?: PortRange;
  /** Most problems listed (default 40). */
  maxProblems?: number;
}

export interface CompareResult {
  ok: boolean;
  problems: string[];
  /** A readable report: the problems, then both sides' frames per interface. */
  text: string;
}

const NAT_FIELDS = /(^|\.)(tcp\.srcport|tcp\.dstport|udp\.srcport|udp\.dstport|icmp\.ident)$/;

/**
 * The range the kernel draws a NAT-chosen value from (nf_nat_l4proto_unique_tuple): ICMP ids
 * from 0-65535; ports from the class of the original port: below 512 -> 1-511, 512-1023 ->
 * 600-1023, else 1024-65535.
 */
function natClass(field: string, v: number): string {
  if (field.endsWith('icmp.ident')) return '0-65535';
  if (v >= 1024) return '1024-65535';
  if (v >= 600) return '600-1023';
  if (v >= 1 && v <= 511) return '1-511';
  return `nothing (${v})`;
}

/** Port and id values in the frames of `inputs` (static ones): values a node did not invent. */
function inputValues(inputs: InFrame[], opts: DecodeOptions): Set<number> {
  const s = new Set<number>();
  for (const f of inputs) {
    if (f.dynamic) continue;
    const d = decodeFrame(f.data, opts);
    for (const fl of d.fields) if (NAT_FIELDS.test(fl.name)) s.add(Number(fl.value));
  }
  return s;
}

/**
 * A header the kernel built (an ICMP error or echo reply it generated, ...) has an IP ID of
 * the kernel's choosing; a forwarded one keeps the ID and protocol it came in with (NAT and
 * fragmentation keep them too). So: a header whose (ID, protocol) occurs in no input frame.
 */
function isKernelBuilt(d: Decoded, pre: string, inputIds: Set<string>): boolean {
  const id = d.get(`${pre}ip.id`);
  if (id === undefined) return false;
  return !inputIds.has(`${id}/${d.get(`${pre}ip.proto`)}`);
}

function inputIpIds(inputs: InFrame[], opts: DecodeOptions): Set<string> {
  const s = new Set<string>();
  for (const f of inputs) {
    const d = decodeFrame(f.data, opts);
    for (const pre of d.levels) {
      const id = d.get(`${pre}ip.id`);
      if (id !== undefined) s.add(`${id}/${d.get(`${pre}ip.proto`)}`);
    }
  }
  return s;
}

/** The level a field belongs to ('' / 'inner.' / 'icmp.quoted.' / 'inner.icmp.quoted.'). */
function levelOf(name: string): string {
  const i = Math.max(name.lastIndexOf('inner.') >= 0 ? name.lastIndexOf('inner.') + 6 : 0, name.lastIndexOf('icmp.quoted.') >= 0 ? name.lastIndexOf('icmp.quoted.') + 12 : 0);
  return name.slice(0, i);
}

function describeBytesDiff(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const at = Math.floor(i / 2);
  return `${a.length / 2} vs ${b.length / 2} bytes, first difference at byte ${at} (kernel ${a.slice(at * 2, at * 2 + 16) || '(end)'}, dpemu ${b.slice(at * 2, at * 2 + 16) || '(end)'})`;
}

function fmtValue(name: string, v: string | undefined): string {
  if (v === undefined) return '(absent)';
  if (v.length > 40) return `${v.slice(0, 32)}… (${v.length / 2} bytes)`;
  return v;
}

/**
 * Compare dpemu's run with the kernel's. Both runs' frames are also checked on their own
 * (checksums, lengths, VXLAN source-port properties).
 */
export function compareRuns(kernel: RunResult, dpemu: RunResult, opts: CompareOptions = {}): CompareResult {
  const problems: string[] = [];
  const max = opts.maxProblems ?? 40;
  const ignore = new Set(opts.ignoreInterfaces ?? []);
  const kDec = kernel.outputs.map((o) => ({ iface: o.iface, d: decodeFrame(o.data, opts), o }));
  const dDec = dpemu.outputs.filter((o) => !ignore.has(o.iface)).map((o) => ({ iface: o.iface, d: decodeFrame(o.data, opts), o }));

  // Each side on its own.
  for (const [side, list] of [
    ['kernel', kDec],
    ['dpemu', dDec],
  ] as const) {
    const perIf = new Map<string, number>();
    for (const { iface, d } of list) {
      const n = perIf.get(iface) ?? 0;
      perIf.set(iface, n + 1);
      for (const p of d.problems) problems.push(`${side}: frame ${n} on ${iface}: ${p} (${d.summary})`);
    }
    for (const p of vxlanSourcePortProblems(list, opts.vxlanSrcPorts).problems) problems.push(`${side}: ${p}`);
  }

  const kIn = inputValues(kernel.inputs, opts);
  const dIn = inputValues(dpemu.inputs, opts);
  const kIds = inputIpIds(kernel.inputs, opts);
  const k2d = new Map<number, number>();
  const d2k = new Map<number, number>();

  const ifaces =
    opts.interfaces ??
    [...new Set([...kDec.map((x) => x.iface), ...dDec.map((x) => x.iface)])].sort();
  for (const iface of ifaces) {
    const ks = kDec.filter((x) => x.iface === iface);
    const ds = dDec.filter((x) => x.iface === iface);
    if (ks.length !== ds.length) problems.push(`${iface}: kernel sent ${ks.length} frames, dpemu ${ds.length}`);
    const n = Math.max(ks.length, ds.length);
    for (let i = 0; i < n; i++) {
      const k = ks[i];
      const dp = ds[i];
      const where = `frame ${i} on ${iface}${k?.o.after !== undefined ? ` (kernel: after input ${k.o.after} '${kernel.inputs[k.o.after]?.name ?? '?'}')` : ''}`;
      if (!k) {
        problems.push(`${where}: only dpemu sent ${dp!.d.summary}`);
        continue;
      }
      if (!dp) {
        problems.push(`${where}: only the kernel sent ${k.d.summary}`);
        continue;
      }
      const kd = k.d;
      const dd = dp.d;
      // Relaxed fields of this frame pair.
      const skip = new Set<string>();
      for (const pre of kd.levels) {
        if (!pre.includes('icmp.quoted.') && isKernelBuilt(kd, pre, kIds)) {
          skip.add(`${pre}ip.id`);
          skip.add(`${pre}ip.checksum`);
        }
        if (kd.has(`${pre}vxlan.vni`)) {
          skip.add(`${pre}ip.id`);
          skip.add(`${pre}ip.checksum`);
          skip.add(`${pre}udp.srcport`);
          skip.add(`${pre}udp.checksum`);
        }
      }
      // NAT-chosen values.
      const relaxLevel = (name: string): void => {
        const lv = levelOf(name);
        skip.add(`${lv}tcp.checksum`);
        skip.add(`${lv}udp.checksum`);
        skip.add(`${lv}icmp.checksum`);
        // A quoted header sits inside an ICMP message (and maybe VXLAN): their checksums too.
        let up = lv;
        while (up.length) {
          up = up.endsWith('icmp.quoted.') ? up.slice(0, -'icmp.quoted.'.length) : up.endsWith('inner.') ? up.slice(0, -'inner.'.length) : '';
          skip.add(`${up}icmp.checksum`);
          skip.add(`${up}udp.checksum`);
        }
      };
      const natOk: string[] = [];
      for (const f of kd.fields) {
        if (!NAT_FIELDS.test(f.name) || skip.has(f.name)) continue;
        const dv = dd.get(f.name);
        if (dv === undefined || dv === f.value) continue;
        const kv = Number(f.value);
        const dn = Number(dv);
        const why: string[] = [];
        if (kIn.has(kv)) why.push(`the kernel kept ${kv} from the input`);
        if (dIn.has(dn)) why.push(`dpemu's ${dn} comes from the input`);
        const kc = natClass(f.name, kv);
        if (kc !== natClass(f.name, dn)) why.push(`a NAT-chosen ${f.name.endsWith('ident') ? 'id' : 'port'} stays in ${kc} (dpemu ${dn})`);
        if ((k2d.get(kv) ?? dn) !== dn) why.push(`kernel value ${kv} was dpemu's ${k2d.get(kv)} before`);
        if ((d2k.get(dn) ?? kv) !== kv) why.push(`dpemu value ${dn} was kernel's ${d2k.get(dn)} before`);
        if (why.length === 0) {
          k2d.set(kv, dn);
          d2k.set(dn, kv);
          natOk.push(f.name);
          relaxLevel(f.name);
        }
      }
      const pairProblems: string[] = [];
      const names = [...new Set([...kd.fields.map((f) => f.name), ...dd.fields.map((f) => f.name)])];
      for (const name of names) {
        if (skip.has(name) || natOk.includes(name)) continue;
        const kv = kd.get(name);
        const dv = dd.get(name);
        if (kv === dv) continue;
        if (kv !== undefined && dv !== undefined && /(payload|data|trailer|rest|frag_data|options|short)$/.test(name)) {
          pairProblems.push(`field ${name}: ${describeBytesDiff(kv, dv)}`);
        } else {
          pairProblems.push(`field ${name} kernel ${fmtValue(name, kv)} dpemu ${fmtValue(name, dv)}`);
        }
      }
      if (pairProblems.length) {
        problems.push(`${where}: ${pairProblems.join('; ')}\n      kernel: ${kd.summary}\n      dpemu:  ${dd.summary}`);
      }
    }
  }
  const ok = problems.length === 0;
  const lines: string[] = [];
  if (!ok) {
    lines.push(`dpemu differs from the kernel (${problems.length} problem${problems.length === 1 ? '' : 's'}):`);
    for (const p of problems.slice(0, max)) lines.push(`  ${p}`);
    if (problems.length > max) lines.push(`  ... and ${problems.length - max} more`);
    lines.push('', 'kernel sent:');
    for (const iface of ifaces) {
      for (const [i, x] of kDec.filter((y) => y.iface === iface).entries()) lines.push(`  ${iface} #${i}${x.o.after !== undefined ? ` (after input ${x.o.after})` : ''}: ${x.d.summary}`);
    }
    lines.push('dpemu sent:');
    for (const iface of ifaces) {
      for (const [i, x] of dDec.filter((y) => y.iface === iface).entries()) lines.push(`  ${iface} #${i}: ${x.d.summary}`);
    }
    const arts = { ...kernel.artifacts, ...Object.fromEntries(Object.entries(dpemu.artifacts).map(([k, v]) => [`dpemu ${k}`, v])) };
    if (Object.keys(arts).length) {
      lines.push('files:');
      for (const [k, v] of Object.entries(arts)) lines.push(`  ${k}: ${v}`);
    }
  }
  return { ok, problems, text: lines.join('\n') };
}

// ---------------------------------------------------------------------------------------------
// tshark

const TSHARK_CHECKS = ['-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];

/**
 * tshark with checksum validation on: frames with a bad IP/TCP/UDP/ICMP checksum or a
 * malformed-packet exception (SEMANTICS.md §3.5). Returns one line per bad frame (empty when the file is clean).
 */
export function tsharkProblems(file: string): string[] {
  if (!existsSync(file)) return [`${file} does not exist`];
  // Inside an ICMP error tshark verifies the quoted TCP/UDP checksum over the quoted bytes only,
  // which is wrong by construction when the quote is cut short (the kernel quotes at most 548
  // bytes): L4 checksums of ICMP error frames are left to decodeFrame, which verifies a quoted
  // datagram only when it is complete.
  const filter =
    '_ws.malformed || ip.checksum.status == 0 || icmp.checksum.status == 0 || ' +
    '((tcp.checksum.status == 0 || udp.checksum.status == 0) && !(icmp.type == 3 || icmp.type == 4 || icmp.type == 5 || icmp.type == 11 || icmp.type == 12))';
  const r = tshark(['-r', file, ...TSHARK_CHECKS, '-Y', filter, '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=,', '-e', 'frame.number', '-e', 'frame.interface_name', '-e', 'ip.checksum.status', '-e', 'tcp.checksum.status', '-e', 'udp.checksum.status', '-e', 'icmp.checksum.status', '-e', '_ws.malformed', '-e', '_ws.col.Info']);
  if (r.status !== 0) return [`tshark failed on ${file}: ${r.stderr.trim()}`];
  return r.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [no, ifn, ipS, tcpS, udpS, icmpS, mal, info] = l.split('\t');
      return `${file} frame ${no} (${ifn}): ip ${ipS || '-'} tcp ${tcpS || '-'} udp ${udpS || '-'} icmp ${icmpS || '-'} (0 = bad)${mal ? ' MALFORMED' : ''}: ${info}`;
    });
}
