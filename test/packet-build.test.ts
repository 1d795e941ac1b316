/**
 * Frames from the builders, and the same frames after every rewrite, decode in tshark with
 * checksum validation on: no bad checksum, no malformed packet, no error-level expert info.
 * tshark's dissection also agrees with PacketView's fields.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { pcapFileHeader } from './support/frames.js';
import {
  PacketView,
  PARSE_OK,
  buildFrame,
  buildIcmpError,
  buildIpPacket,
  decrementTtl,
  ipv4ToString,
  setDstIp,
  setDstPort,
  setIcmpId,
  setInnerDstIp,
  setInnerDstPort,
  setInnerIcmpId,
  setInnerSrcIp,
  setInnerSrcPort,
  setSrcIp,
  setSrcPort,
  wrapIpPacket,
  type FrameSpec,
  type L4Spec,
} from '../src/packet/index.js';

const TSHARK = '/usr/bin/tshark';
const MACS = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' } as const;
const CHECKS = ['-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];
/** Decode every TCP/UDP payload as plain data: random payloads on random ports are not DNS. */
const AS_DATA = ['-d', 'udp.port==1-65535,data', '-d', 'tcp.port==1-65535,data'];
const FIELDS = [
  'frame.number',
  'ip.checksum.status',
  'tcp.checksum.status',
  'udp.checksum.status',
  'icmp.checksum.status',
  '_ws.malformed',
  '_ws.expert.severity',
  'ip.src',
  'ip.dst',
  'ip.ttl',
  'ip.proto',
  'tcp.srcport',
  'tcp.dstport',
  'udp.srcport',
  'udp.dstport',
  'icmp.type',
  'icmp.ident',
  'vlan.id',
  'ieee8021ad.id',
  'tcp.checksum.ffff',
] as const;
type Row = Record<(typeof FIELDS)[number], string[]>;
/** _ws.expert.severity of PI_ERROR (epan/proto.h). */
const PI_ERROR = 0x00800000;

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpemu-packet-build-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A minimal pcap (little-endian, microseconds): 24-byte header, 16-byte record headers. */
function writePcap(path: string, linktype: number, frames: Uint8Array[]): void {
  const parts: Buffer[] = [pcapFileHeader({ linktype })];
  frames.forEach((f, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(0, 4);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    parts.push(r, Buffer.from(f.buffer, f.byteOffset, f.byteLength));
  });
  writeFileSync(path, Buffer.concat(parts));
}

/** Run tshark over frames; one row per frame, every occurrence of each field. */
function dissect(name: string, frames: Uint8Array[], linktype = 1, extra: string[] = []): Row[] {
  const path = join(dir, `${name}.pcap`);
  writePcap(path, linktype, frames);
  const args = ['-r', path, ...CHECKS, ...extra, '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=|'];
  for (const f of FIELDS) args.push('-e', f);
  const r = spawnSync(TSHARK, args, {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
    env: { ...process.env, LC_ALL: 'C.UTF-8', WIRESHARK_CONFIG_DIR: '/nonexistent-dpemu-wireshark' },
  });
  if (r.status !== 0) throw new Error(`tshark exited ${r.status}: ${r.stderr}`);
  const rows = r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const cols = l.split('\t');
      const row = {} as Row;
      FIELDS.forEach((f, i) => (row[f] = cols[i] ? cols[i]!.split('|') : []));
      return row;
    });
  expect(rows.length).toBe(frames.length);
  return rows;
}

/** The invariant: no malformed packet, no bad checksum, no error-level expert info. */
function problems(row: Row): string[] {
  const p: string[] = [];
  if (row['_ws.malformed'].length) p.push('malformed');
  for (const k of ['ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'icmp.checksum.status'] as const) {
    if (row[k].includes('0')) p.push(`${k}=0 (bad)`);
  }
  if (row['tcp.checksum.ffff'].length) p.push('tcp checksum 0xffff instead of 0x0000');
  if (row['_ws.expert.severity'].some((s) => Number(s) >= PI_ERROR)) p.push('error-level expert info');
  return p;
}

/** tshark's decoding agrees with PacketView (outer header first, then the ICMP quote). */
function agree(row: Row, f: Uint8Array, linktype = 1): void {
  const v = new PacketView();
  expect(v.parse(f, new DataView(f.buffer, f.byteOffset, f.byteLength), 0, f.length, linktype)).toBe(PARSE_OK);
  expect(row['ip.src'][0]).toBe(ipv4ToString(v.srcIp));
  expect(row['ip.dst'][0]).toBe(ipv4ToString(v.dstIp));
  expect(row['ip.ttl'][0]).toBe(String(v.ttl));
  expect(row['ip.proto'][0]).toBe(String(v.ipProto));
  if (v.vlanCount > 0) {
    // Wireshark names an 802.1ad (0x88a8) tag ieee8021ad, an 802.1Q one vlan.
    const sTag = f[v.vlanTagOff] === 0x88 && f[v.vlanTagOff + 1] === 0xa8;
    expect((sTag ? row['ieee8021ad.id'] : row['vlan.id'])[0]).toBe(String(v.vlanId));
  }
  if (v.l4Off < 0) return;
  if (v.ipProto === 6) expect([row['tcp.srcport'][0], row['tcp.dstport'][0]]).toEqual([String(v.srcPort), String(v.dstPort)]);
  if (v.ipProto === 17) expect([row['udp.srcport'][0], row['udp.dstport'][0]]).toEqual([String(v.srcPort), String(v.dstPort)]);
  if (v.ipProto === 1) {
    expect(row['icmp.type'][0]).toBe(String(v.icmpType));
    if (v.icmpId >= 0) expect(Number(row['icmp.ident'][0])).toBe(v.icmpId);
  }
  if (v.innerIpOff >= 0) {
    expect(row['ip.src'][1]).toBe(ipv4ToString(v.innerSrcIp));
    expect(row['ip.dst'][1]).toBe(ipv4ToString(v.innerDstIp));
    if (v.innerProto === 6) expect([row['tcp.srcport'][0], row['tcp.dstport'][0]]).toEqual([String(v.innerSrcPort), String(v.innerDstPort)]);
    if (v.innerProto === 17) expect([row['udp.srcport'][0], row['udp.dstport'][0]]).toEqual([String(v.innerSrcPort), String(v.innerDstPort)]);
  }
}

// ---- a curated set of frames ----

const IP = { src: '10.1.2.3', dst: '192.168.7.9' };
/** MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (a Linux SYN). */
const SYN_OPTS = new Uint8Array([2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
/** Router alert (RFC 2113) and record route with two empty slots (RFC 791). */
const IP_OPTS = new Uint8Array([0x94, 4, 0, 0, 7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0]);

const origTcp = buildIpPacket({ ip: { ...IP, ttl: 1, id: 99 }, l4: { kind: 'tcp', sport: 40000, dport: 40080, flags: 'S', options: SYN_OPTS } });
const origUdp = buildIpPacket({ ip: IP, l4: { kind: 'udp', sport: 40000, dport: 40053, payload: 'query' } });
const origPing = buildIpPacket({ ip: IP, l4: { kind: 'icmp', type: 8, code: 0, id: 4242, seq: 7, payload: 'abcdefgh' } });
const errIp = { src: '10.1.2.254', dst: '10.1.2.3' };

const curated: [string, Uint8Array][] = [
  ['TCP SYN with options', buildFrame({ ...MACS, ip: { ...IP, df: true }, l4: { kind: 'tcp', sport: 40000, dport: 40080, seq: 1, flags: 'S', window: 64240, options: SYN_OPTS } })],
  ['TCP data with IP options', buildFrame({ ...MACS, ip: { ...IP, options: IP_OPTS }, l4: { kind: 'tcp', sport: 40000, dport: 40080, seq: 2, ack: 3, flags: 'PA', payload: 'GET / HTTP/1.0\r\n\r\n' } })],
  ['TCP 1400 bytes', buildFrame({ ...MACS, ip: IP, l4: { kind: 'tcp', sport: 40000, dport: 40080, seq: 100, ack: 1, flags: 'A', payload: new Uint8Array(1400).map((_, i) => i) } })],
  ['TCP RST unpadded', buildFrame({ ...MACS, pad: false, ip: IP, l4: { kind: 'tcp', sport: 40000, dport: 40080, flags: 'R' } })],
  ['UDP', buildFrame({ ...MACS, ip: IP, l4: { kind: 'udp', sport: 40000, dport: 40053, payload: 'hello' } })],
  ['UDP without checksum', buildFrame({ ...MACS, ip: IP, l4: { kind: 'udp', sport: 40000, dport: 40053, payload: 'hello', noChecksum: true } })],
  ['UDP empty', buildFrame({ ...MACS, ip: IP, l4: { kind: 'udp', sport: 40000, dport: 40053 } })],
  ['ICMP echo request', buildFrame({ ...MACS, ip: IP, l4: { kind: 'icmp', type: 8, code: 0, id: 1, seq: 1, payload: new Uint8Array(56).map((_, i) => i) } })],
  ['ICMP echo reply, all zero', buildFrame({ ...MACS, ip: IP, l4: { kind: 'icmp', type: 0, code: 0 } })],
  ['802.1Q', buildFrame({ ...MACS, vlan: [{ vid: 100, pcp: 3 }], ip: IP, l4: { kind: 'udp', sport: 40000, dport: 40053, payload: 'v' } })],
  ['QinQ', buildFrame({ ...MACS, vlan: [200, 300], ip: IP, l4: { kind: 'tcp', sport: 40000, dport: 40080, flags: 'SA', seq: 5, ack: 2 } })],
  ['time exceeded quoting TCP (IP header + 8)', buildIcmpError(11, 0, origTcp, { ...MACS, ip: errIp })],
  ['frag needed quoting TCP, 548-byte rule', buildIcmpError(3, 4, origTcp, { ...MACS, ip: errIp, rest: 1450, quoteBytes: 548 })],
  ['port unreachable quoting all of a UDP datagram', buildIcmpError(3, 3, origUdp, { ...MACS, ip: errIp, quoteBytes: origUdp.length })],
  ['host unreachable quoting a ping', buildIcmpError(3, 1, origPing, { ...MACS, ip: errIp })],
  ['non-first fragment', buildFrame({ ...MACS, ip: { ...IP, fragOffset: 1480, id: 5 }, l4: { kind: 'raw', proto: 17, payload: new Uint8Array(100) } })],
  ['GRE-ish raw protocol', buildFrame({ ...MACS, ip: IP, l4: { kind: 'raw', proto: 253, payload: 'experimental' } })],
];

/** Every rewrite that applies to the frame, in turn, each on a fresh copy. */
function mutations(f: Uint8Array): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  const ops: [string, (v: PacketView, b: Uint8Array, dv: DataView) => boolean | number][] = [
    ['setSrcIp', (v, b, dv) => setSrcIp(v, b, dv, 0xac1e0102)],
    ['setDstIp', (v, b, dv) => setDstIp(v, b, dv, 0x0a600001)],
    ['setSrcPort', (v, b, dv) => setSrcPort(v, b, dv, 41234)],
    ['setDstPort', (v, b, dv) => setDstPort(v, b, dv, 48080)],
    ['setIcmpId', (v, b, dv) => setIcmpId(v, b, dv, 0x7777)],
    ['decrementTtl', (v, _b, dv) => v.ttl > 1 && decrementTtl(v, dv)],
    ['setInnerSrcIp', (v, b, dv) => setInnerSrcIp(v, b, dv, 0xac1e0505)],
    ['setInnerDstIp', (v, b, dv) => setInnerDstIp(v, b, dv, 0x0a600a0a)],
    ['setInnerSrcPort', (v, b, dv) => setInnerSrcPort(v, b, dv, 42000)],
    ['setInnerDstPort', (v, b, dv) => setInnerDstPort(v, b, dv, 48443)],
    ['setInnerIcmpId', (v, b, dv) => setInnerIcmpId(v, b, dv, 0x1111)],
  ];
  for (const [name, op] of ops) {
    const g = f.slice();
    const v = new PacketView();
    const dv = new DataView(g.buffer);
    expect(v.parse(g, dv, 0, g.length, 1)).toBe(PARSE_OK);
    if (op(v, g, dv)) out.push([name, g]);
  }
  // Everything at once (a full SNAT + DNAT + forward, and the ICMP error translated back).
  const g = f.slice();
  const v = new PacketView();
  const dv = new DataView(g.buffer);
  v.parse(g, dv, 0, g.length, 1);
  let any = false;
  for (const [, op] of ops) any = !!op(v, g, dv) || any;
  if (any) out.push(['all', g]);
  return out;
}

const tsharkAvailable = existsSync(TSHARK);

describe.skipIf(!tsharkAvailable)('tshark validates built frames', () => {
  it('curated frames: no malformed, every checksum good, fields agree', () => {
    const rows = dissect('curated', curated.map(([, f]) => f));
    rows.forEach((row, i) => {
      const [name, f] = curated[i]!;
      expect([name, problems(row)]).toEqual([name, []]);
      agree(row, f);
    });
    // Validation did run: statuses are "good" (1), a zero UDP checksum is "not present" (3).
    const status = (name: string, k: keyof Row) => rows[curated.findIndex(([n]) => n === name)]![k];
    expect(status('TCP SYN with options', 'tcp.checksum.status')).toEqual(['1']);
    expect(status('TCP SYN with options', 'ip.checksum.status')).toEqual(['1']);
    expect(status('UDP', 'udp.checksum.status')).toEqual(['1']);
    expect(status('UDP without checksum', 'udp.checksum.status')).toEqual(['3']);
    expect(status('ICMP echo reply, all zero', 'icmp.checksum.status')).toEqual(['1']);
    expect(status('time exceeded quoting TCP (IP header + 8)', 'ip.checksum.status')).toEqual(['1', '1']);
    expect(status('port unreachable quoting all of a UDP datagram', 'udp.checksum.status')).not.toContain('0');
  });

  it('curated frames after every rewrite: checksums still good', () => {
    const all: [string, Uint8Array][] = [];
    for (const [name, f] of curated) for (const [m, g] of mutations(f)) all.push([`${name} / ${m}`, g]);
    expect(all.length).toBeGreaterThan(60);
    const rows = dissect('mutated', all.map(([, f]) => f));
    rows.forEach((row, i) => {
      const [name, f] = all[i]!;
      expect([name, problems(row)]).toEqual([name, []]);
      agree(row, f);
    });
  });

  it('negative control: tshark does flag a bad checksum, 0xffff for 0x0000, and a malformed frame here', () => {
    const bad = (name: string, fn: (g: Uint8Array) => void): Uint8Array => {
      const g = curated.find(([n]) => n === name)![1].slice();
      fn(g);
      return g;
    };
    const frames = [
      bad('TCP SYN with options', (g) => (g[14 + 20 + 17] ^= 1)),
      bad('UDP', (g) => (g[14 + 20 + 7] ^= 1)),
      bad('ICMP echo request', (g) => (g[14 + 20 + 3] ^= 1)),
      bad('TCP RST unpadded', (g) => (g[14 + 10] ^= 1)),
      bad('time exceeded quoting TCP (IP header + 8)', (g) => (g[14 + 28 + 10] ^= 1)),
      bad('UDP', (g) => (g[14 + 20 + 4] = 0xff)), // UDP length beyond the packet
    ];
    // A TCP segment whose checksum is 0x0000 written as 0xffff.
    const t = buildFrame({ ...MACS, ip: IP, l4: { kind: 'tcp', sport: 40000, dport: 40080, flags: 'S' } });
    const tv = new PacketView();
    const tdv = new DataView(t.buffer);
    tv.parse(t, tdv, 0, t.length, 1);
    const c = tdv.getUint16(34 + 16);
    let s = (~c & 0xffff) + (~40000 & 0xffff);
    s = (s & 0xffff) + (s >>> 16);
    setSrcPort(tv, t, tdv, s === 0xffff ? 0xffff : 0xffff - s);
    expect(tdv.getUint16(34 + 16)).toBe(0);
    tdv.setUint16(34 + 16, 0xffff);
    frames.push(t);
    const rows = dissect('negative', frames);
    rows.forEach((row, i) => expect([i, problems(row).length > 0]).toEqual([i, true]));
  });

  it('UDP checksum computed as 0 is sent as 0xffff and tshark accepts it', () => {
    // Find a payload word that makes the checksum compute to 0.
    const base = (w: number) => buildFrame({ ...MACS, ip: IP, l4: { kind: 'udp', sport: 40000, dport: 40053, payload: new Uint8Array([w >> 8, w & 255]) } });
    const c0 = new DataView(base(0).buffer).getUint16(14 + 20 + 6);
    const sum0 = ~c0 & 0xffff; // folded sum with payload word 0
    const f = base(sum0 === 0xffff ? 0xffff : 0xffff - sum0);
    expect(new DataView(f.buffer).getUint16(14 + 20 + 6)).toBe(0xffff);
    const [row] = dissect('udp-zero', [f]);
    expect(problems(row!)).toEqual([]);
    expect(row!['udp.checksum.status']).toEqual(['1']);
  });

  it('other link types decode as built (SLL, SLL2, RAW, IPV4, NULL)', () => {
    const pkts = [origTcp, origUdp, origPing];
    for (const lt of [113, 276, 101, 228, 0]) {
      const frames = pkts.map((p) => wrapIpPacket(lt, p));
      const rows = dissect(`lt${lt}`, frames, lt);
      rows.forEach((row, i) => {
        expect([lt, problems(row)]).toEqual([lt, []]);
        agree(row, frames[i]!, lt);
      });
    }
  });

  it('random packets and random rewrites (fast-check, seeded)', () => {
    const port = fc.integer({ min: 0, max: 0xffff });
    const l4: fc.Arbitrary<L4Spec> = fc.oneof(
      fc.record({ kind: fc.constant('tcp' as const), sport: port, dport: port, seq: fc.nat(), ack: fc.nat(), flags: fc.constantFrom(2, 0x12, 0x10, 0x18, 0x11), payload: fc.uint8Array({ maxLength: 200 }) }),
      fc.record({ kind: fc.constant('udp' as const), sport: port, dport: port, payload: fc.uint8Array({ maxLength: 200 }), noChecksum: fc.boolean() }),
      fc.record({ kind: fc.constant('icmp' as const), type: fc.constantFrom(0, 8), code: fc.constant(0), id: port, seq: port, payload: fc.uint8Array({ maxLength: 64 }) }),
    );
    const spec: fc.Arbitrary<FrameSpec> = fc.record({
      srcMac: fc.constant(MACS.srcMac),
      dstMac: fc.constant(MACS.dstMac),
      vlan: fc.array(fc.integer({ min: 1, max: 4094 }), { maxLength: 2 }),
      ip: fc.record({
        src: fc.integer({ min: 0x01000000, max: 0xdfffffff }),
        dst: fc.integer({ min: 0x01000000, max: 0xdfffffff }),
        ttl: fc.integer({ min: 2, max: 255 }),
        tos: fc.integer({ min: 0, max: 255 }),
        id: port,
        df: fc.boolean(),
        options: fc.constantFrom(undefined, new Uint8Array([1, 1, 1, 0]), new Uint8Array([0x94, 4, 0, 0])),
      }),
      l4,
    });
    const asError = fc.option(fc.constantFrom(3, 11), { nil: undefined });
    const rewrite = fc.array(fc.tuple(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0x01000000, max: 0xdfffffff })), { minLength: 1, maxLength: 4 });
    const samples = fc.sample(fc.tuple(spec, asError, rewrite), { numRuns: 300, seed: 20240601 });
    const frames: Uint8Array[] = [];
    for (const [s, err, ops] of samples) {
      const f =
        err === undefined
          ? buildFrame(s)
          : buildIcmpError(err, err === 3 ? 3 : 0, buildIpPacket(s), { ...MACS, vlan: s.vlan, ip: { src: s.ip.dst, dst: s.ip.src }, quoteBytes: 548 });
      frames.push(f.slice());
      const v = new PacketView();
      const dv = new DataView(f.buffer);
      expect(v.parse(f, dv, 0, f.length, 1)).toBe(PARSE_OK);
      for (const [op, x] of ops) {
        const p = x & 0xffff;
        [
          () => setSrcIp(v, f, dv, x),
          () => setDstIp(v, f, dv, x),
          () => setSrcPort(v, f, dv, p),
          () => setDstPort(v, f, dv, p),
          () => setIcmpId(v, f, dv, p),
          () => v.ttl > 1 && decrementTtl(v, dv),
          () => setInnerSrcIp(v, f, dv, x),
          () => setInnerDstIp(v, f, dv, x),
          () => setInnerSrcPort(v, f, dv, p),
          () => setInnerDstPort(v, f, dv, p),
          () => setInnerIcmpId(v, f, dv, p),
        ][op]!();
      }
      frames.push(f);
    }
    const rows = dissect('random', frames, 1, AS_DATA);
    rows.forEach((row, i) => {
      expect([i, problems(row)]).toEqual([i, []]);
      agree(row, frames[i]!);
    });
  });
});
