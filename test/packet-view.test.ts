/**
 * PacketView.parse: every link type, VLAN stacks, fragments, ICMP error quotes, and every
 * malformed / truncated class, classified and never thrown.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  PacketView,
  PARSE_MALFORMED,
  PARSE_NON_IPV4,
  PARSE_OK,
  PARSE_TRUNCATED,
  REASON_BAD_IP_VERSION,
  REASON_ICMP_HEADER_TRUNCATED,
  REASON_ICMP_QUOTE_BAD_IP,
  REASON_ICMP_QUOTE_TOO_SHORT,
  REASON_IHL_TOO_SHORT,
  REASON_IP_HEADER_TRUNCATED,
  REASON_LINK_HEADER_TRUNCATED,
  REASON_NONE,
  REASON_PAYLOAD_TRUNCATED,
  REASON_TCP_BAD_DATA_OFFSET,
  REASON_TCP_HEADER_TRUNCATED,
  REASON_TOTAL_LENGTH_BEYOND_FRAME,
  REASON_TOTAL_LENGTH_TOO_SHORT,
  REASON_UDP_BAD_LENGTH,
  REASON_UDP_HEADER_TRUNCATED,
  buildFrame,
  buildIcmpError,
  buildIpPacket,
  ethernetFrame,
  ipv4HeaderChecksum,
  parseIpv4,
  parseReasonText,
  parseStatusText,
  wrapIpPacket,
  type FrameSpec,
  type IpPacketSpec,
} from '../src/packet/index.js';

const MACS = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' } as const;
const TCP: IpPacketSpec = {
  ip: { src: '10.1.2.3', dst: '192.168.200.250', ttl: 63, tos: 0x10, id: 0x1234, df: true },
  l4: { kind: 'tcp', sport: 40000, dport: 443, seq: 0xfedcba98, ack: 0x89abcdef, flags: 'PA', window: 501, payload: 'hello' },
};

/** Parse `f` as if it were at offset 7 of a larger batch buffer (offsets must be absolute). */
function parseAt(f: Uint8Array, linktype = 1, opts: { caplen?: number; origlen?: number; fcsLen?: number } = {}) {
  const pre = 7;
  const buf = new Uint8Array(pre + f.length + 5).fill(0xee);
  buf.set(f, pre);
  const dv = new DataView(buf.buffer);
  const v = new PacketView();
  const caplen = opts.caplen ?? f.length;
  const st = v.parse(buf, dv, pre, caplen, linktype, opts.fcsLen ?? 0, opts.origlen ?? caplen);
  return { v, st, pre, buf, dv };
}

/** Patch an IPv4 header field in an Ethernet frame and fix the header checksum. */
function patchIp(f: Uint8Array, fn: (ip: DataView) => void, ipOff = 14): Uint8Array {
  const g = f.slice();
  const dv = new DataView(g.buffer, ipOff);
  fn(dv);
  const ihl = Math.max(20, (g[ipOff]! & 15) * 4);
  if (ipOff + ihl <= g.length) dv.setUint16(10, ipv4HeaderChecksum(g, ipOff, ihl));
  return g;
}

describe('link types', () => {
  it('Ethernet + TCP: every field', () => {
    const f = buildFrame({ ...MACS, ...TCP });
    const { v, st, pre } = parseAt(f);
    expect(st).toBe(PARSE_OK);
    expect(v.malformedReason).toBe(REASON_NONE);
    expect(v.linktype).toBe(1);
    expect(v.frameOff).toBe(pre);
    expect(v.caplen).toBe(60);
    expect(v.dataEnd).toBe(pre + 60);
    expect(v.l2Len).toBe(14);
    expect(v.etherType).toBe(0x0800);
    expect([v.vlanCount, v.vlanTagOff, v.vlanId]).toEqual([0, -1, -1]);
    expect(v.ipOff).toBe(pre + 14);
    expect(v.ipHdrLen).toBe(20);
    expect(v.ipOptionsLen).toBe(0);
    expect(v.ipTotalLen).toBe(20 + 20 + 5);
    expect(v.ipProto).toBe(6);
    expect(v.tos).toBe(0x10);
    expect(v.ttl).toBe(63);
    expect(v.ipId).toBe(0x1234);
    expect(v.fragField).toBe(0x4000);
    expect([v.df, v.mf, v.fragOffset]).toEqual([1, 0, 0]);
    expect(v.srcIp).toBe(parseIpv4('10.1.2.3'));
    expect(v.dstIp).toBe(parseIpv4('192.168.200.250'));
    expect(v.dstIp).toBe(0xc0a8c8fa); // unsigned
    expect(v.l4Off).toBe(pre + 34);
    expect(v.l4Len).toBe(25);
    expect(v.l4Captured).toBe(25);
    expect([v.srcPort, v.dstPort]).toEqual([40000, 443]);
    expect(v.tcpSeq).toBe(0xfedcba98);
    expect(v.tcpAck).toBe(0x89abcdef);
    expect(v.tcpFlags).toBe(0x18);
    expect(v.tcpDataOff).toBe(20);
    expect(v.tcpWindow).toBe(501);
    expect([v.icmpType, v.icmpCode, v.icmpId, v.icmpSeq]).toEqual([-1, -1, -1, -1]);
    expect([v.innerIpOff, v.innerL4Off, v.innerIcmpId]).toEqual([-1, -1, -1]);
  });

  it('802.1Q single tag', () => {
    const f = buildFrame({ ...MACS, vlan: [{ vid: 100, pcp: 5 }], ...TCP });
    const { v, st, pre } = parseAt(f);
    expect(st).toBe(PARSE_OK);
    expect(f[12]).toBe(0x81);
    expect([v.vlanCount, v.vlanTagOff, v.vlanId, v.l2Len, v.ipOff]).toEqual([1, pre + 12, 100, 18, pre + 18]);
    expect(v.dstPort).toBe(443);
  });

  it('QinQ (802.1ad outer 0x88a8, 802.1Q inner) and a triple stack with the old 0x9100', () => {
    const f = buildFrame({ ...MACS, vlan: [300, 42], ...TCP });
    expect((f[12]! << 8) | f[13]!).toBe(0x88a8);
    expect((f[16]! << 8) | f[17]!).toBe(0x8100);
    const { v, st, pre } = parseAt(f);
    expect(st).toBe(PARSE_OK);
    expect([v.vlanCount, v.vlanTagOff, v.vlanId, v.l2Len]).toEqual([2, pre + 12, 300, 22]);

    const g = buildFrame({ ...MACS, vlan: [{ vid: 7, tpid: 0x9100 }, { vid: 8, tpid: 0x88a8 }, 9], ...TCP });
    const r = parseAt(g);
    expect(r.st).toBe(PARSE_OK);
    expect([r.v.vlanCount, r.v.vlanId, r.v.l2Len, r.v.srcPort]).toEqual([3, 7, 26, 40000]);
  });

  it('Linux cooked v1 (SLL, 113) and v2 (SLL2, 276)', () => {
    const ip = buildIpPacket(TCP);
    for (const [lt, hl] of [
      [113, 16],
      [276, 20],
    ] as const) {
      const { v, st, pre } = parseAt(wrapIpPacket(lt, ip), lt);
      expect(st).toBe(PARSE_OK);
      expect([v.l2Len, v.ipOff, v.etherType, v.vlanCount]).toEqual([hl, pre + hl, 0x0800, 0]);
      expect(v.srcIp).toBe(parseIpv4('10.1.2.3'));
      expect(v.dstPort).toBe(443);
    }
  });

  it('SLL and SLL2 with a VLAN tag after the header (protocol 0x8100)', () => {
    const ip = buildIpPacket(TCP);
    const tag = new Uint8Array([0x00, 0x64, 0x08, 0x00]); // TCI vid 100, then IPv4
    const sll = wrapIpPacket(113, ip);
    const f1 = new Uint8Array([...sll.subarray(0, 14), 0x81, 0x00, ...tag, ...ip]);
    const a = parseAt(f1, 113);
    expect(a.st).toBe(PARSE_OK);
    expect([a.v.vlanCount, a.v.vlanTagOff, a.v.vlanId, a.v.l2Len]).toEqual([1, a.pre + 14, 100, 20]);
    const sll2 = wrapIpPacket(276, ip);
    const h2 = sll2.slice(0, 20);
    h2[0] = 0x81;
    h2[1] = 0x00;
    const b = parseAt(new Uint8Array([...h2, ...tag, ...ip]), 276);
    expect(b.st).toBe(PARSE_OK);
    expect([b.v.vlanCount, b.v.vlanTagOff, b.v.vlanId, b.v.l2Len]).toEqual([1, b.pre, 100, 24]);
  });

  it('RAW (101): the version nibble decides; IPV4 (228)', () => {
    const ip = buildIpPacket(TCP);
    const raw = parseAt(ip, 101);
    expect(raw.st).toBe(PARSE_OK);
    expect([raw.v.l2Len, raw.v.ipOff, raw.v.etherType]).toEqual([0, raw.pre, 0x0800]);
    const v6 = new Uint8Array(40);
    v6[0] = 0x60;
    const r6 = parseAt(v6, 101);
    expect([r6.st, r6.v.etherType]).toEqual([PARSE_NON_IPV4, 0x86dd]);
    const bad = ip.slice();
    bad[0] = 0x55;
    expect(parseAt(bad, 101).st).toBe(PARSE_MALFORMED);
    expect(parseAt(bad, 101).v.malformedReason).toBe(REASON_BAD_IP_VERSION);
    const lt228 = parseAt(ip, 228);
    expect([lt228.st, lt228.v.ipOff]).toEqual([PARSE_OK, lt228.pre]);
    expect(parseAt(v6, 228).st).toBe(PARSE_MALFORMED); // LINKTYPE_IPV4 says IPv4
    expect(parseAt(new Uint8Array(0), 101).st).toBe(PARSE_MALFORMED);
  });

  it('NULL (0): AF_INET = 2 in either byte order; AF_INET6 is not IPv4', () => {
    const ip = buildIpPacket(TCP);
    for (const bigEndianNull of [false, true]) {
      const { v, st, pre } = parseAt(wrapIpPacket(0, ip, { bigEndianNull }), 0);
      expect(st).toBe(PARSE_OK);
      expect([v.l2Len, v.ipOff, v.dstPort]).toEqual([4, pre + 4, 443]);
    }
    for (const fam of [24, 28, 30]) {
      const f = wrapIpPacket(0, ip);
      f[0] = fam;
      const r = parseAt(f, 0);
      expect([r.st, r.v.etherType]).toEqual([PARSE_NON_IPV4, 0x86dd]);
    }
  });

  it('not IPv4: ARP, IPv6, 802.3 length field, unknown link type', () => {
    const ip = buildIpPacket(TCP);
    const arp = ethernetFrame(MACS, new Uint8Array(28), 0x0806);
    expect([parseAt(arp).st, parseAt(arp).v.etherType]).toEqual([PARSE_NON_IPV4, 0x0806]);
    const v6 = ethernetFrame({ ...MACS, vlan: [5] }, new Uint8Array(40), 0x86dd);
    const r = parseAt(v6);
    expect([r.st, r.v.etherType, r.v.vlanId, r.v.ipOff, r.v.l4Off]).toEqual([PARSE_NON_IPV4, 0x86dd, 5, -1, -1]);
    const llc = ethernetFrame(MACS, ip, 46);
    expect(parseAt(llc).st).toBe(PARSE_NON_IPV4);
    expect(parseAt(ip, 147).st).toBe(PARSE_NON_IPV4);
  });
});

describe('Ethernet padding and FCS', () => {
  it('padding after the IP total length is normal', () => {
    const f = buildFrame({ ...MACS, ip: { src: '1.1.1.1', dst: '2.2.2.2' }, l4: { kind: 'udp', sport: 1, dport: 2 } });
    expect(f.length).toBe(60);
    const { v, st } = parseAt(f);
    expect(st).toBe(PARSE_OK);
    expect([v.ipTotalLen, v.l4Len, v.l4Captured]).toEqual([28, 8, 8]);
    const unpadded = buildFrame({ ...MACS, pad: false, ip: { src: '1.1.1.1', dst: '2.2.2.2' }, l4: { kind: 'udp', sport: 1, dport: 2 } });
    expect(unpadded.length).toBe(42);
    expect(parseAt(unpadded).st).toBe(PARSE_OK);
  });

  it('a trailing FCS is excluded (fcsLen), also when the IP packet fills the frame', () => {
    const f = buildFrame({ ...MACS, ...TCP, l4: { ...TCP.l4, payload: new Uint8Array(100) } as FrameSpec['l4'] });
    const withFcs = new Uint8Array([...f, 0xde, 0xad, 0xbe, 0xef]);
    const { v, st, pre } = parseAt(withFcs, 1, { fcsLen: 4 });
    expect(st).toBe(PARSE_OK);
    expect(v.dataEnd).toBe(pre + f.length);
    expect(v.l4Captured).toBe(v.l4Len);
    // FCS not captured (snaplen cut it): still complete.
    const cut = parseAt(withFcs, 1, { fcsLen: 4, caplen: f.length, origlen: withFcs.length });
    expect(cut.st).toBe(PARSE_OK);
    // A frame whose IP total length claims the FCS bytes is malformed.
    const lying = patchIp(withFcs, (ip) => ip.setUint16(2, ip.getUint16(2) + 4));
    expect(parseAt(lying, 1, { fcsLen: 4 }).st).toBe(PARSE_MALFORMED);
    expect(parseAt(lying, 1, { fcsLen: 4 }).v.malformedReason).toBe(REASON_TOTAL_LENGTH_BEYOND_FRAME);
  });
});

describe('fragments', () => {
  it('first fragment: L4 header present; UDP length may exceed the fragment', () => {
    const f = buildFrame({ ...MACS, ip: { src: '1.1.1.1', dst: '2.2.2.2', mf: true, id: 77 }, l4: { kind: 'udp', sport: 5, dport: 6, payload: new Uint8Array(32) } });
    const g = f.slice();
    new DataView(g.buffer).setUint16(14 + 20 + 4, 1480); // the whole datagram's length
    const { v, st } = parseAt(g);
    expect(st).toBe(PARSE_OK);
    expect([v.mf, v.fragOffset, v.l4Off >= 0, v.srcPort, v.dstPort]).toEqual([1, 0, true, 5, 6]);
    // The same UDP length without MF is malformed.
    const h = patchIp(g, (ip) => ip.setUint16(6, 0));
    expect(parseAt(h).st).toBe(PARSE_MALFORMED);
    expect(parseAt(h).v.malformedReason).toBe(REASON_UDP_BAD_LENGTH);
  });

  it('non-first fragment: no L4 header, no ports', () => {
    const f = buildFrame({ ...MACS, ip: { src: '1.1.1.1', dst: '2.2.2.2', fragOffset: 1480, id: 77 }, l4: { kind: 'raw', proto: 17, payload: new Uint8Array(40).fill(0xab) } });
    const { v, st } = parseAt(f);
    expect(st).toBe(PARSE_OK);
    expect([v.fragOffset, v.mf, v.ipProto, v.l4Off, v.l4Len, v.l4Captured, v.srcPort, v.dstPort]).toEqual([1480, 0, 17, -1, 0, 0, 0, 0]);
    expect(v.fragField).toBe(1480 / 8);
    // Even if its bytes would be a bad TCP header, a non-first fragment is fine.
    const t = buildFrame({ ...MACS, ip: { src: '1.1.1.1', dst: '2.2.2.2', fragOffset: 8, mf: true }, l4: { kind: 'raw', proto: 6, payload: new Uint8Array(3) } });
    expect(parseAt(t).st).toBe(PARSE_OK);
  });
});

describe('ICMP', () => {
  it('echo request/reply and timestamp: id and seq', () => {
    for (const type of [8, 0, 13, 14]) {
      const f = buildFrame({ ...MACS, ip: { src: '1.1.1.1', dst: '2.2.2.2' }, l4: { kind: 'icmp', type, code: 0, id: 0xbeef, seq: 9, payload: 'abc' } });
      const { v, st } = parseAt(f);
      expect(st).toBe(PARSE_OK);
      expect([v.icmpType, v.icmpCode, v.icmpId, v.icmpSeq, v.srcPort]).toEqual([type, 0, 0xbeef, 9, 0]);
    }
  });

  const origTcp = buildIpPacket({ ip: { src: '10.0.0.1', dst: '10.96.0.10', ttl: 1 }, l4: { kind: 'tcp', sport: 40000, dport: 80, flags: 'S', payload: new Uint8Array(30) } });
  const origUdp = buildIpPacket({ ip: { src: '10.0.0.1', dst: '10.96.0.10', options: new Uint8Array([1, 1, 1, 0]) }, l4: { kind: 'udp', sport: 5353, dport: 53, payload: 'q' } });
  const origPing = buildIpPacket({ ip: { src: '10.0.0.1', dst: '8.8.8.8' }, l4: { kind: 'icmp', type: 8, code: 0, id: 4242, seq: 1 } });
  const outer = { ...MACS, ip: { src: '10.0.0.254', dst: '10.0.0.1' } };

  it('errors quote IP header + 8 bytes: inner fields', () => {
    const f = buildIcmpError(11, 0, origTcp, outer);
    const { v, st, pre } = parseAt(f);
    expect(st).toBe(PARSE_OK);
    expect([v.icmpType, v.icmpCode, v.icmpId, v.icmpSeq]).toEqual([11, 0, -1, -1]);
    expect(v.tos).toBe(0xc0);
    expect(v.innerIpOff).toBe(pre + 14 + 20 + 8);
    expect([v.innerIpHdrLen, v.innerProto]).toEqual([20, 6]);
    expect(v.innerSrcIp).toBe(parseIpv4('10.0.0.1'));
    expect(v.innerDstIp).toBe(parseIpv4('10.96.0.10'));
    expect(v.innerL4Off).toBe(v.innerIpOff + 20);
    expect([v.innerL4Len, v.innerSrcPort, v.innerDstPort, v.innerIcmpId, v.innerIcmpType]).toEqual([8, 40000, 80, -1, -1]);

    const u = parseAt(buildIcmpError(3, 3, origUdp, outer));
    expect(u.st).toBe(PARSE_OK);
    expect([u.v.innerIpHdrLen, u.v.innerProto, u.v.innerSrcPort, u.v.innerDstPort]).toEqual([24, 17, 5353, 53]);

    const p = parseAt(buildIcmpError(3, 1, origPing, outer));
    expect(p.st).toBe(PARSE_OK);
    expect([p.v.innerProto, p.v.innerIcmpType, p.v.innerIcmpId, p.v.innerSrcPort]).toEqual([1, 8, 4242, 0]);
  });

  it('a long quote (Linux quotes up to 576 bytes) and frag-needed with the MTU', () => {
    const f = buildIcmpError(3, 4, origTcp, { ...outer, rest: 1450, quoteBytes: 548 });
    const { v, st, dv } = parseAt(f);
    expect(st).toBe(PARSE_OK);
    expect(v.innerL4Len).toBe(origTcp.length - 20);
    expect(dv.getUint16(v.l4Off + 6)).toBe(1450);
  });

  it('an error quoting a non-first fragment has no inner L4', () => {
    const frag = buildIpPacket({ ip: { src: '10.0.0.1', dst: '10.0.0.2', fragOffset: 1480 }, l4: { kind: 'raw', proto: 17, payload: new Uint8Array(16) } });
    const { v, st } = parseAt(buildIcmpError(11, 1, frag, outer));
    expect(st).toBe(PARSE_OK);
    expect([v.innerProto, v.innerL4Off, v.innerSrcPort]).toEqual([17, -1, 0]);
  });

  it('an original shorter than 8 bytes of data may be quoted whole', () => {
    const tiny = buildIpPacket({ ip: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'raw', proto: 47, payload: new Uint8Array(4) } });
    const { v, st } = parseAt(buildIcmpError(3, 2, tiny, outer));
    expect(st).toBe(PARSE_OK);
    expect([v.innerProto, v.innerL4Len]).toEqual([47, 4]);
  });

  it('short or bad quotes are malformed', () => {
    // Quote of IP header + 4 bytes only.
    const short = parseAt(buildIcmpError(11, 0, origTcp, { ...outer, quoteBytes: 24 }));
    expect([short.st, short.v.malformedReason]).toEqual([PARSE_MALFORMED, REASON_ICMP_QUOTE_TOO_SHORT]);
    // Quote shorter than an IP header.
    const tiny = parseAt(buildIcmpError(11, 0, origTcp, { ...outer, quoteBytes: 12 }));
    expect([tiny.st, tiny.v.malformedReason]).toEqual([PARSE_MALFORMED, REASON_ICMP_QUOTE_TOO_SHORT]);
    // No quote at all.
    const none = parseAt(buildFrame({ ...outer, l4: { kind: 'icmp', type: 3, code: 1 } }));
    expect([none.st, none.v.malformedReason]).toEqual([PARSE_MALFORMED, REASON_ICMP_QUOTE_TOO_SHORT]);
    // Quoted header with IHL 4 or version 6.
    const q = origTcp.slice();
    q[0] = 0x44;
    const badIhl = parseAt(buildFrame({ ...outer, l4: { kind: 'icmp', type: 3, code: 1, payload: q.subarray(0, 28) } }));
    expect([badIhl.st, badIhl.v.malformedReason]).toEqual([PARSE_MALFORMED, REASON_ICMP_QUOTE_BAD_IP]);
    q[0] = 0x65;
    const badVer = parseAt(buildFrame({ ...outer, l4: { kind: 'icmp', type: 3, code: 1, payload: q.subarray(0, 28) } }));
    expect([badVer.st, badVer.v.malformedReason]).toEqual([PARSE_MALFORMED, REASON_ICMP_QUOTE_BAD_IP]);
    // Quoted IHL 6 but only 20 bytes + 8 quoted.
    q[0] = 0x46;
    const cutHdr = parseAt(buildFrame({ ...outer, l4: { kind: 'icmp', type: 3, code: 1, payload: q.subarray(0, 22) } }));
    expect([cutHdr.st, cutHdr.v.malformedReason]).toEqual([PARSE_MALFORMED, REASON_ICMP_QUOTE_TOO_SHORT]);
  });

  it('ICMP header shorter than 8 bytes is malformed', () => {
    const f = buildFrame({ ...MACS, ip: { src: '1.1.1.1', dst: '2.2.2.2' }, l4: { kind: 'raw', proto: 1, payload: new Uint8Array([8, 0, 0, 0, 0]) } });
    const { v, st } = parseAt(f);
    expect([st, v.malformedReason, v.icmpType]).toEqual([PARSE_MALFORMED, REASON_ICMP_HEADER_TRUNCATED, -1]);
  });
});

describe('malformed frames are classified, never thrown', () => {
  const f = buildFrame({ ...MACS, ...TCP });

  const cases: [string, Uint8Array, number, number][] = [
    ['Ethernet header cut short', f.slice(0, 10), PARSE_MALFORMED, REASON_LINK_HEADER_TRUNCATED],
    ['VLAN tag cut short', buildFrame({ ...MACS, vlan: [1, 2], ...TCP }).slice(0, 17), PARSE_MALFORMED, REASON_LINK_HEADER_TRUNCATED],
    ['IP header cut short', f.slice(0, 14 + 12), PARSE_MALFORMED, REASON_IP_HEADER_TRUNCATED],
    ['no IP byte at all', f.slice(0, 14), PARSE_MALFORMED, REASON_IP_HEADER_TRUNCATED],
    ['IP version 6 in an IPv4 EtherType', patchIp(f, (ip) => ip.setUint8(0, 0x65)), PARSE_MALFORMED, REASON_BAD_IP_VERSION],
    ['IHL < 5', patchIp(f, (ip) => ip.setUint8(0, 0x44)), PARSE_MALFORMED, REASON_IHL_TOO_SHORT],
    ['IHL 0', patchIp(f, (ip) => ip.setUint8(0, 0x40)), PARSE_MALFORMED, REASON_IHL_TOO_SHORT],
    ['IHL beyond the frame', patchIp(f.slice(0, 14 + 24), (ip) => ip.setUint8(0, 0x4f)), PARSE_MALFORMED, REASON_IP_HEADER_TRUNCATED],
    ['total length < IHL*4', patchIp(f, (ip) => ip.setUint16(2, 19)), PARSE_MALFORMED, REASON_TOTAL_LENGTH_TOO_SHORT],
    ['total length beyond the frame', patchIp(f, (ip) => ip.setUint16(2, 1500)), PARSE_MALFORMED, REASON_TOTAL_LENGTH_BEYOND_FRAME],
    ['TCP shorter than 20 bytes', patchIp(f, (ip) => ip.setUint16(2, 20 + 19)), PARSE_MALFORMED, REASON_TCP_HEADER_TRUNCATED],
    [
      'TCP data offset < 5',
      (() => {
        const g = f.slice();
        g[14 + 20 + 12] = 0x40;
        return g;
      })(),
      PARSE_MALFORMED,
      REASON_TCP_BAD_DATA_OFFSET,
    ],
    [
      'TCP data offset beyond the IP total length',
      (() => {
        const g = f.slice();
        g[14 + 20 + 12] = 0xf0;
        return g;
      })(),
      PARSE_MALFORMED,
      REASON_TCP_BAD_DATA_OFFSET,
    ],
  ];
  const udp = buildFrame({ ...MACS, ip: { src: '1.1.1.1', dst: '2.2.2.2' }, l4: { kind: 'udp', sport: 1, dport: 2, payload: new Uint8Array(20) } });
  const setUdpLen = (n: number): Uint8Array => {
    const g = udp.slice();
    new DataView(g.buffer).setUint16(14 + 20 + 4, n);
    return g;
  };
  cases.push(
    ['UDP shorter than 8 bytes', patchIp(udp, (ip) => ip.setUint16(2, 27)), PARSE_MALFORMED, REASON_UDP_HEADER_TRUNCATED],
    ['UDP length < 8', setUdpLen(7), PARSE_MALFORMED, REASON_UDP_BAD_LENGTH],
    ['UDP length beyond the IP payload', setUdpLen(29), PARSE_MALFORMED, REASON_UDP_BAD_LENGTH],
  );

  for (const [name, frame, status, reason] of cases) {
    it(name, () => {
      const { v, st } = parseAt(frame);
      expect([st, v.malformedReason]).toEqual([status, reason]);
      expect(parseReasonText(reason)).not.toMatch(/^reason/);
    });
  }

  it('a UDP length shorter than the IP payload is accepted (the kernel trims)', () => {
    const { st, v } = parseAt(setUdpLen(10));
    expect([st, v.srcPort]).toEqual([PARSE_OK, 1]);
  });

  it('texts', () => {
    expect(parseStatusText(PARSE_OK)).toBe('ok');
    expect(parseStatusText(PARSE_TRUNCATED)).toMatch(/snaplen/);
    expect(parseReasonText(REASON_PAYLOAD_TRUNCATED)).toMatch(/snaplen/);
    expect(parseReasonText(999)).toBe('reason 999');
  });
});

describe('snaplen-truncated frames (caplen < origlen)', () => {
  const f = buildFrame({ ...MACS, ...TCP, l4: { ...TCP.l4, payload: new Uint8Array(1000) } as FrameSpec['l4'] });

  it('cut in the payload: TRUNCATED with every header field set', () => {
    const { v, st } = parseAt(f, 1, { caplen: 96, origlen: f.length });
    expect([st, v.malformedReason]).toEqual([PARSE_TRUNCATED, REASON_PAYLOAD_TRUNCATED]);
    expect([v.srcPort, v.dstPort, v.tcpSeq, v.ipTotalLen, v.l4Len, v.l4Captured]).toEqual([40000, 443, 0xfedcba98, 1040, 1020, 96 - 34]);
  });

  it('the same lengths without the cut are malformed', () => {
    const { v, st } = parseAt(f.slice(0, 96));
    expect([st, v.malformedReason]).toEqual([PARSE_MALFORMED, REASON_TOTAL_LENGTH_BEYOND_FRAME]);
  });

  it('cut in the TCP, IP and link headers: TRUNCATED naming the header', () => {
    for (const [caplen, reason] of [
      [40, REASON_TCP_HEADER_TRUNCATED],
      [20, REASON_IP_HEADER_TRUNCATED],
      [14, REASON_IP_HEADER_TRUNCATED],
      [8, REASON_LINK_HEADER_TRUNCATED],
    ] as const) {
      const { v, st } = parseAt(f, 1, { caplen, origlen: f.length });
      expect([caplen, st, v.malformedReason]).toEqual([caplen, PARSE_TRUNCATED, reason]);
    }
    const r = parseAt(f, 1, { caplen: 40, origlen: f.length });
    expect([r.v.ipOff >= 0, r.v.l4Off >= 0, r.v.srcPort]).toEqual([true, true, 0]);
  });

  it('cut inside TCP options', () => {
    const g = buildFrame({ ...MACS, ...TCP, l4: { ...TCP.l4, options: new Uint8Array([2, 4, 5, 0xb4, 1, 1, 1, 1]), payload: new Uint8Array(100) } as FrameSpec['l4'] });
    const { v, st } = parseAt(g, 1, { caplen: 14 + 20 + 24, origlen: g.length });
    expect([st, v.malformedReason, v.tcpDataOff, v.srcPort]).toEqual([PARSE_TRUNCATED, REASON_TCP_HEADER_TRUNCATED, 28, 40000]);
  });

  it('an ICMP error cut inside the quote', () => {
    const orig = buildIpPacket({ ip: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'udp', sport: 1, dport: 2, payload: new Uint8Array(100) } });
    const e = buildIcmpError(3, 3, orig, { ...MACS, ip: { src: '10.0.0.2', dst: '10.0.0.1' }, quoteBytes: 128 });
    const a = parseAt(e, 1, { caplen: 14 + 20 + 8 + 10, origlen: e.length });
    expect([a.st, a.v.malformedReason, a.v.innerIpOff]).toEqual([PARSE_TRUNCATED, REASON_ICMP_QUOTE_TOO_SHORT, -1]);
    const b = parseAt(e, 1, { caplen: 14 + 20 + 8 + 20 + 2, origlen: e.length });
    expect([b.st, b.v.malformedReason, b.v.innerSrcIp, b.v.innerSrcPort]).toEqual([PARSE_TRUNCATED, REASON_ICMP_QUOTE_TOO_SHORT, parseIpv4('10.0.0.1'), 0]);
    const c = parseAt(e, 1, { caplen: 14 + 20 + 8 + 20 + 8, origlen: e.length });
    expect([c.st, c.v.malformedReason, c.v.innerSrcPort, c.v.innerDstPort, c.v.innerL4Len]).toEqual([PARSE_TRUNCATED, REASON_PAYLOAD_TRUNCATED, 1, 2, 8]);
  });

  it('a length field beyond even the original frame is malformed, not truncated', () => {
    const g = patchIp(f, (ip) => ip.setUint16(2, 1400));
    const { st, v } = parseAt(g, 1, { caplen: 96, origlen: g.length });
    expect([st, v.malformedReason]).toEqual([PARSE_MALFORMED, REASON_TOTAL_LENGTH_BEYOND_FRAME]);
  });
});

// ---- robustness ----

const LINKTYPES = [0, 1, 101, 113, 228, 276, 12345];

/** A varied frame: valid ones of every kind, with random corruption and truncation. */
const frameArb = fc
  .record({
    proto: fc.constantFrom('tcp', 'udp', 'icmp', 'err', 'frag'),
    vlan: fc.array(fc.integer({ min: 0, max: 4095 }), { maxLength: 3 }),
    opts: fc.boolean(),
    payload: fc.uint8Array({ maxLength: 80 }),
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    cut: fc.option(fc.nat(), { nil: undefined }),
    linktype: fc.constantFrom(...LINKTYPES),
  })
  .map(({ proto, vlan, opts, payload, flips, cut, linktype }) => {
    const ip = { src: '10.0.0.1', dst: '10.0.0.2', options: opts ? new Uint8Array([0x94, 4, 0, 0]) : undefined };
    let pkt: Uint8Array;
    if (proto === 'tcp') pkt = buildIpPacket({ ip, l4: { kind: 'tcp', sport: 1, dport: 2, flags: 'S', payload } });
    else if (proto === 'udp') pkt = buildIpPacket({ ip, l4: { kind: 'udp', sport: 1, dport: 2, payload } });
    else if (proto === 'icmp') pkt = buildIpPacket({ ip, l4: { kind: 'icmp', type: 8, code: 0, id: 1, payload } });
    else if (proto === 'frag') pkt = buildIpPacket({ ip: { ...ip, fragOffset: 64 }, l4: { kind: 'raw', proto: 6, payload } });
    else pkt = buildIpPacket({ ip, l4: icmpErr(payload) });
    const f = linktype === 1 || linktype === 12345 ? wrapIpPacket(1, pkt, { vlan }) : wrapIpPacket(linktype, pkt);
    for (const [i, b] of flips) f[i % f.length] = b;
    const caplen = cut === undefined ? f.length : cut % (f.length + 1);
    return { f, linktype, caplen, origlen: cut !== undefined && cut % 2 ? f.length : caplen };
  });

function icmpErr(payload: Uint8Array) {
  const q = buildIpPacket({ ip: { src: '10.0.0.2', dst: '10.0.0.9' }, l4: { kind: 'udp', sport: 3, dport: 4, payload } });
  return { kind: 'icmp' as const, type: 3, code: 3, payload: q.subarray(0, Math.min(q.length, 28 + (payload[0] ?? 0) % 40)) };
}

function fields(v: PacketView): Record<string, number> {
  const o: Record<string, number> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'number' && k !== 'dirty') o[k] = x;
  return o;
}

describe('robustness', () => {
  it('random corruption and truncation: a status, no exception, offsets inside the frame', () => {
    const v = new PacketView();
    fc.assert(
      fc.property(frameArb, fc.integer({ min: 0, max: 4 }), ({ f, linktype, caplen, origlen }, fcs) => {
        const dv = new DataView(f.buffer);
        const st = v.parse(f, dv, 0, caplen, linktype, fcs, Math.max(origlen, caplen));
        expect([PARSE_OK, PARSE_NON_IPV4, PARSE_MALFORMED, PARSE_TRUNCATED]).toContain(st);
        if (st === PARSE_OK) {
          expect(v.ipOff + v.ipTotalLen).toBeLessThanOrEqual(v.dataEnd);
          if (v.l4Off >= 0) expect(v.l4Off + v.l4Captured).toBeLessThanOrEqual(v.dataEnd);
          if (v.innerL4Off >= 0) expect(v.innerL4Off + v.innerL4Len).toBeLessThanOrEqual(v.dataEnd);
        }
        if (st === PARSE_OK || st === PARSE_NON_IPV4) expect(v.malformedReason).toBe(REASON_NONE);
        else expect(v.malformedReason).not.toBe(REASON_NONE);
      }),
      { numRuns: 3000 },
    );
  });

  it('random bytes of any length, any link type, caplen beyond the buffer: never throws', () => {
    const v = new PacketView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(...LINKTYPES), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 300 }), (b, lt, caplen, origlen) => {
        const dv = new DataView(b.buffer);
        v.parse(b, dv, 0, caplen, lt, 0, origlen);
      }),
      { numRuns: 3000 },
    );
  });

  it('no state leaks from one frame to the next: a reused view equals a fresh one', () => {
    const reused = new PacketView();
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 2, maxLength: 6 }), (frames) => {
        for (const { f, linktype, caplen, origlen } of frames) {
          const dv = new DataView(f.buffer);
          const a = reused.parse(f, dv, 0, caplen, linktype, 0, origlen);
          const fresh = new PacketView();
          const b = fresh.parse(f, dv, 0, caplen, linktype, 0, origlen);
          expect(a).toBe(b);
          expect(fields(reused)).toEqual(fields(fresh));
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('all instances share one set of fields in one order (one hidden class)', () => {
    const a = new PacketView();
    const b = new PacketView();
    const f = buildFrame({ ...MACS, ...TCP });
    b.parse(f, new DataView(f.buffer), 0, f.length, 1);
    expect(Object.keys(a)).toEqual(Object.keys(b));
  });
});
