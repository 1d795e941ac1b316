/**
 * Checksums and incremental rewrites: known vectors, the RFC 1624 corner cases, and properties
 * over random packets: after any sequence of mutators every checksum equals full recomputation,
 * and the mutated frame is byte-identical to the frame built from the mutated spec.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  PacketView,
  PARSE_OK,
  buildFrame,
  buildIpPacket,
  buildIcmpError,
  csumAddDelta,
  csumApplyDelta,
  csumDelta16,
  csumDelta32,
  csumReplace16,
  csumReplace32,
  decrementTtl,
  foldComplement,
  icmpChecksum,
  ipv4HeaderChecksum,
  ipv4HeaderChecksumOk,
  l4Checksum,
  l4ChecksumOk,
  onesSum,
  onesSumDv,
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
  tcpUdpChecksumOk,
  udpCsumApplyDelta,
  udpCsumReplace16,
  udpCsumReplace32,
  type FrameSpec,
  type IpPacketSpec,
  type L4Spec,
} from '../src/packet/index.js';

const MACS = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' } as const;

function hex(s: string): Uint8Array {
  const h = s.replace(/\s+/g, '');
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(i * 2, 2), 16);
  return out;
}

function parse(f: Uint8Array): { v: PacketView; dv: DataView; st: number } {
  const v = new PacketView();
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const st = v.parse(f, dv, 0, f.length, 1);
  return { v, dv, st };
}

/** Full recomputation of every checksum the view can see; returns the mismatches. */
function checksumErrors(f: Uint8Array): string[] {
  const { v, dv, st } = parse(f);
  const errs: string[] = [];
  if (st !== PARSE_OK) return [`parse status ${st} reason ${v.malformedReason}`];
  const ip = dv.getUint16(v.ipOff + 10);
  if (ip !== ipv4HeaderChecksum(f, v.ipOff, v.ipHdrLen)) errs.push(`ip ${ip.toString(16)} != ${ipv4HeaderChecksum(f, v.ipOff, v.ipHdrLen).toString(16)}`);
  if (!ipv4HeaderChecksumOk(f, v.ipOff, v.ipHdrLen)) errs.push('ip verify');
  if (v.l4Off >= 0) {
    if (v.ipProto === 6) {
      const c = dv.getUint16(v.l4Off + 16);
      const want = l4Checksum(f, v.l4Off, v.l4Len, 6, v.srcIp, v.dstIp);
      if (c !== want) errs.push(`tcp ${c.toString(16)} != ${want.toString(16)}`);
      if (!l4ChecksumOk(f, v.l4Off, v.l4Len, 6, v.srcIp, v.dstIp)) errs.push('tcp verify');
    } else if (v.ipProto === 17) {
      const c = dv.getUint16(v.l4Off + 6);
      const ulen = dv.getUint16(v.l4Off + 4);
      if (c !== 0) {
        const want = l4Checksum(f, v.l4Off, ulen, 17, v.srcIp, v.dstIp);
        if (c !== want) errs.push(`udp ${c.toString(16)} != ${want.toString(16)}`);
      }
      if (!l4ChecksumOk(f, v.l4Off, ulen, 17, v.srcIp, v.dstIp)) errs.push('udp verify');
    } else if (v.ipProto === 1) {
      const c = dv.getUint16(v.l4Off + 2);
      const want = icmpChecksum(f, v.l4Off, v.l4Len);
      if (c !== want) errs.push(`icmp ${c.toString(16)} != ${want.toString(16)}`);
      if (!l4ChecksumOk(f, v.l4Off, v.l4Len, 1, 0, 0)) errs.push('icmp verify');
      if (v.innerIpOff >= 0) {
        const ic = dv.getUint16(v.innerIpOff + 10);
        const iwant = ipv4HeaderChecksum(f, v.innerIpOff, v.innerIpHdrLen);
        if (ic !== iwant) errs.push(`inner ip ${ic.toString(16)} != ${iwant.toString(16)}`);
      }
    }
  }
  return errs;
}

describe('known vectors', () => {
  it('IPv4 header example (Wikipedia "Internet checksum"): 0xb861', () => {
    const h = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
    expect(ipv4HeaderChecksum(h, 0, 20)).toBe(0xb861);
    expect(ipv4HeaderChecksumOk(h, 0, 20)).toBe(true);
    h[10] = 0;
    h[11] = 0;
    expect(foldComplement(onesSum(h, 0, 20))).toBe(0xb861);
  });

  it('the header check through a DataView (the node\'s: 20-byte headers read as five words) agrees with the byte sum', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.integer({ min: 5, max: 15 }), fc.integer({ min: 0, max: 4 }), fc.boolean(), (bytes, ihl, at, fix) => {
        const len = ihl * 4;
        if (fix) {
          // A right checksum as often as a random one.
          bytes[at + 10] = 0;
          bytes[at + 11] = 0;
          const c = ipv4HeaderChecksum(bytes, at, len);
          bytes[at + 10] = c >> 8;
          bytes[at + 11] = c & 255;
        }
        const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        expect(ipv4HeaderChecksumOk(bytes, at, len, dv)).toBe(ipv4HeaderChecksumOk(bytes, at, len));
        if (fix) expect(ipv4HeaderChecksumOk(bytes, at, len, dv)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('the TCP/UDP check in one piece (conntrack\'s) agrees with l4ChecksumOk', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 80, maxLength: 80 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 8, max: 76 }),
        fc.constantFrom(6, 17),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.boolean(),
        (bytes, at, len, proto, src, dst, fix) => {
          const l = Math.min(len, 80 - at);
          if (proto === 17 && bytes[at + 6] === 0 && bytes[at + 7] === 0) bytes[at + 6] = 1; // 0 = no checksum: the caller's case
          if (fix) {
            const c = l4Checksum(bytes, at, l, proto, src, dst);
            const k = proto === 6 ? 16 : 6;
            if (l >= k + 2) {
              bytes[at + k] = c >> 8;
              bytes[at + k + 1] = c & 255;
            }
          }
          const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          expect(tcpUdpChecksumOk(dv, at, l, proto, src, dst)).toBe(l4ChecksumOk(bytes, at, l, proto, src, dst));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('RFC 1071 §3 numerical example: sum ddf2, checksum 220d', () => {
    const b = hex('0001 f203 f4f5 f6f7');
    const s = onesSum(b, 0, 8);
    expect(s % 0xffff).toBe(0xddf2 % 0xffff);
    expect(foldComplement(s)).toBe(0x220d);
    // Chaining through `initial` at any even split gives the same.
    expect(foldComplement(onesSum(b, 4, 4, onesSum(b, 0, 4)))).toBe(0x220d);
  });

  it('odd length pads the last byte with a zero byte', () => {
    expect(onesSum(hex('01'), 0, 1)).toBe(0x0100);
    expect(onesSum(hex('0102 03'), 0, 3)).toBe(0x0102 + 0x0300);
    expect(foldComplement(onesSum(hex('ff'), 0, 1))).toBe(0x00ff);
  });

  it('sums stay exact and non-zero-preserving for large inputs', () => {
    const big = new Uint8Array(70000).fill(0xff);
    const s = onesSum(big, 0, big.length, 0xffffffff);
    expect(s).toBeGreaterThan(0);
    expect(s).toBeLessThanOrEqual(0xffffffff);
    expect(foldComplement(s)).toBe(0); // all ones: the sum is one's complement zero (0xffff)
    expect(onesSum(new Uint8Array(1000), 0, 1000)).toBe(0);
  });

  it('onesSumDv (word loads through a DataView) equals onesSum at any offset, length and initial', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.nat(299), fc.nat(300), fc.nat(0xffffffff), (bytes, a, n, initial) => {
        const off = Math.min(a, bytes.length);
        const len = Math.min(n, bytes.length - off);
        const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        expect(onesSumDv(dv, off, len, initial)).toBe(onesSum(bytes, off, len, initial));
      }),
      { numRuns: 2000 },
    );
    const big = new Uint8Array(70000).fill(0xff);
    expect(onesSumDv(new DataView(big.buffer), 0, big.length, 0xffffffff)).toBe(onesSum(big, 0, big.length, 0xffffffff));
  });

  it('RFC 1624 §4 example: eqn. 3 gives 0x0000 where eqn. 2 gave 0xffff', () => {
    expect(csumReplace16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  it('a TCP/UDP pseudo-header checksum over a known segment', () => {
    // UDP 10.0.0.1:1234 -> 10.0.0.2:80, payload "hi"; reference computed by hand below.
    const p = buildIpPacket({ ip: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'udp', sport: 1234, dport: 80, payload: 'hi' } });
    const words = [0x0a00, 0x0001, 0x0a00, 0x0002, 17, 10, 1234, 80, 10, 0x6869];
    let s = words.reduce((a, b) => a + b, 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    expect((p[26]! << 8) | p[27]!).toBe(~s & 0xffff);
  });
});

describe('RFC 1624 incremental update equals full recomputation', () => {
  /** Random 16-bit words with the first non-zero (like any IPv4/TCP/UDP sum), a checksum slot. */
  const dataArb = fc
    .tuple(fc.integer({ min: 1, max: 0xffff }), fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 30 }))
    .map(([first, rest]) => [first, ...rest]);
  const full = (w: number[]): number => {
    let s = 0;
    for (const x of w) s += x;
    return foldComplement(s);
  };

  it('csumReplace16 over random words and replacements', () => {
    fc.assert(
      fc.property(dataArb, fc.nat(), fc.integer({ min: 0, max: 0xffff }), (w, iRaw, nw) => {
        const i = iRaw % w.length;
        const hc = full(w);
        const old = w[i]!;
        const w2 = w.slice();
        w2[i] = nw;
        if (w2.every((x) => x === 0)) return; // all-zero data: outside the contract
        expect(csumReplace16(hc, old, nw)).toBe(full(w2));
      }),
      { numRuns: 3000 },
    );
  });

  it('csumReplace32 over random words and replacements', () => {
    fc.assert(
      fc.property(dataArb, fc.nat(), fc.integer({ min: 0, max: 0xffffffff }), (w, iRaw, nv) => {
        if (w.length < 3) return;
        const i = 1 + (iRaw % (w.length - 2)); // keep word 0 (non-zero)
        const hc = full(w);
        const old = ((w[i]! << 16) | w[i + 1]!) >>> 0;
        const w2 = w.slice();
        w2[i] = nv >>> 16;
        w2[i + 1] = nv & 0xffff;
        expect(csumReplace32(hc, old, nv)).toBe(full(w2));
      }),
      { numRuns: 3000 },
    );
  });

  it('when the new checksum is 0x0000 (sum 0xffff), the update gives 0x0000, never 0xffff', () => {
    fc.assert(
      fc.property(dataArb, fc.nat(), (w, iRaw) => {
        const i = iRaw % w.length;
        // Choose the new word so that the data sums to one's complement zero (0xffff).
        let others = 0;
        w.forEach((x, j) => (others += j === i ? 0 : x));
        while (others > 0xffff) others = (others & 0xffff) + (others >>> 16);
        const nw = others === 0xffff ? 0xffff : 0xffff - others;
        const w2 = w.slice();
        w2[i] = nw;
        if (w2.every((x) => x === 0)) return;
        expect(full(w2)).toBe(0);
        expect(csumReplace16(full(w), w[i]!, nw)).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('when the stored checksum is 0x0000 or its other form 0xffff, the update is still canonical', () => {
    fc.assert(
      fc.property(dataArb, fc.nat(), fc.integer({ min: 0, max: 0xffff }), (w, iRaw, nw) => {
        // Make the original checksum 0x0000 by adjusting the last word.
        const last = w.length - 1;
        let others = 0;
        w.forEach((x, j) => (others += j === last ? 0 : x));
        while (others > 0xffff) others = (others & 0xffff) + (others >>> 16);
        const w1 = w.slice();
        w1[last] = others === 0xffff ? 0xffff : 0xffff - others;
        if (full(w1) !== 0) return;
        const i = iRaw % w1.length;
        const w2 = w1.slice();
        w2[i] = nw;
        if (w2.every((x) => x === 0)) return;
        expect(csumReplace16(0x0000, w1[i]!, nw)).toBe(full(w2));
        expect(csumReplace16(0xffff, w1[i]!, nw)).toBe(full(w2));
      }),
      { numRuns: 2000 },
    );
  });

  it('one summed delta equals the replacements one after the other (any checksum, 16/32-bit, UDP rules)', () => {
    const edge = fc.oneof(fc.constantFrom(0, 1, 0xfffe, 0xffff), fc.integer({ min: 0, max: 0xffff }));
    const step = fc.oneof(
      fc.record({ w: fc.constant(16), o: edge, n: edge }),
      fc.record({ w: fc.constant(32), o: fc.integer({ min: 0, max: 0xffffffff }), n: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff })) }),
    );
    fc.assert(
      fc.property(edge, fc.array(step, { minLength: 1, maxLength: 6 }), (c0, steps) => {
        let seq = c0;
        let useq = c0;
        let d = 0;
        for (const st of steps) {
          if (st.w === 16) {
            seq = csumReplace16(seq, st.o, st.n);
            useq = udpCsumReplace16(useq, st.o, st.n);
            d = csumAddDelta(d, csumDelta16(st.o, st.n));
          } else {
            seq = csumReplace32(seq, st.o >>> 0, st.n >>> 0);
            useq = udpCsumReplace32(useq, st.o >>> 0, st.n >>> 0);
            d = csumAddDelta(d, csumDelta32(st.o | 0, st.n | 0));
          }
        }
        expect(csumApplyDelta(c0, d)).toBe(seq);
        expect(udpCsumApplyDelta(c0, d)).toBe(useq);
      }),
      { numRuns: 20000 },
    );
    // The TTL decrement's difference does not depend on the TTL (0xfeff: the word loses 0x100).
    for (const ttl of [2, 64, 255]) expect(csumDelta16((ttl << 8) | 6, ((ttl - 1) << 8) | 6)).toBe(0xfeff);
  });

  it('UDP: 0 stays 0 (no checksum); a result of 0 is stored as 0xffff', () => {
    expect(udpCsumReplace16(0, 0x1234, 0x5678)).toBe(0);
    // Stored 0xffff means "computed 0"; changing a word and back returns to 0xffff.
    const c = udpCsumReplace16(0xffff, 0x1111, 0x2222);
    expect(c).not.toBe(0);
    expect(udpCsumReplace16(c, 0x2222, 0x1111)).toBe(0xffff);
  });
});

// ---- random packets ----

type Op =
  | { op: 'srcIp' | 'dstIp'; val: number }
  | { op: 'srcPort' | 'dstPort' | 'icmpId'; val: number }
  | { op: 'ttl' };

const ipArb = fc.integer({ min: 0, max: 0xffffffff });
const portArb = fc.integer({ min: 0, max: 0xffff });
const payloadArb = fc.uint8Array({ maxLength: 64 });
const optionsArb = fc.option(fc.integer({ min: 1, max: 10 }).chain((n) => fc.uint8Array({ minLength: 4 * n, maxLength: 4 * n })), { nil: undefined });

const l4Arb: fc.Arbitrary<L4Spec> = fc.oneof(
  fc.record({
    kind: fc.constant('tcp' as const),
    sport: portArb,
    dport: portArb,
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    ack: fc.integer({ min: 0, max: 0xffffffff }),
    flags: fc.integer({ min: 0, max: 255 }),
    window: portArb,
    payload: payloadArb,
    options: fc.option(fc.uint8Array({ minLength: 4, maxLength: 40 }).map((a) => a.slice(0, a.length & ~3)), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant('udp' as const), sport: portArb, dport: portArb, payload: payloadArb, noChecksum: fc.boolean() }),
  fc.record({
    kind: fc.constant('icmp' as const),
    type: fc.constantFrom(0, 8, 13, 14),
    code: fc.constant(0),
    id: portArb,
    seq: portArb,
    payload: payloadArb,
  }),
);

const ipSpecArb = fc.record({
  src: ipArb,
  dst: ipArb,
  ttl: fc.integer({ min: 1, max: 255 }),
  tos: fc.integer({ min: 0, max: 255 }),
  id: portArb,
  df: fc.boolean(),
  options: optionsArb,
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom('srcIp' as const, 'dstIp' as const), val: ipArb }),
  fc.record({ op: fc.constantFrom('srcPort' as const, 'dstPort' as const, 'icmpId' as const), val: portArb }),
  fc.constant({ op: 'ttl' as const }),
);

/** The spec after the mutation, as the builder would make it from scratch. */
function applyToSpec(spec: IpPacketSpec, o: Op): IpPacketSpec {
  const ip = { ...spec.ip };
  const l4 = { ...spec.l4 } as L4Spec;
  switch (o.op) {
    case 'srcIp':
      ip.src = o.val;
      break;
    case 'dstIp':
      ip.dst = o.val;
      break;
    case 'ttl':
      if ((ip.ttl ?? 64) > 0) ip.ttl = (ip.ttl ?? 64) - 1;
      break;
    case 'srcPort':
      if (l4.kind === 'tcp' || l4.kind === 'udp') l4.sport = o.val;
      break;
    case 'dstPort':
      if (l4.kind === 'tcp' || l4.kind === 'udp') l4.dport = o.val;
      break;
    case 'icmpId':
      if (l4.kind === 'icmp') l4.id = o.val;
      break;
  }
  return { ip, l4 };
}

function applyToFrame(v: PacketView, f: Uint8Array, dv: DataView, o: Op): void {
  switch (o.op) {
    case 'srcIp':
      setSrcIp(v, f, dv, o.val);
      break;
    case 'dstIp':
      setDstIp(v, f, dv, o.val);
      break;
    case 'ttl':
      decrementTtl(v, dv);
      break;
    case 'srcPort':
      setSrcPort(v, f, dv, o.val);
      break;
    case 'dstPort':
      setDstPort(v, f, dv, o.val);
      break;
    case 'icmpId':
      setIcmpId(v, f, dv, o.val);
      break;
  }
}

/** Every view field after mutation equals the view of the frame built from the mutated spec. */
function sameView(a: PacketView, b: PacketView): void {
  for (const k of Object.keys(b) as (keyof PacketView)[]) {
    if (typeof b[k] === 'number') expect([k, a[k]]).toEqual([k, b[k]]);
  }
}

describe('mutators keep every checksum equal to full recomputation (random packets)', () => {
  it('IP/TCP/UDP/ICMP with and without options; any sequence of mutations', () => {
    fc.assert(
      fc.property(ipSpecArb, l4Arb, fc.array(opArb, { minLength: 1, maxLength: 5 }), (ip, l4, ops) => {
        let spec: IpPacketSpec = { ip, l4 };
        const f = buildFrame({ ...MACS, ...spec });
        const { v, dv, st } = parse(f);
        expect(st).toBe(PARSE_OK);
        expect(checksumErrors(f)).toEqual([]);
        for (const o of ops) {
          applyToFrame(v, f, dv, o);
          spec = applyToSpec(spec, o);
          expect(checksumErrors(f)).toEqual([]);
        }
        const want = buildFrame({ ...MACS, ...spec });
        expect(Buffer.from(f).toString('hex')).toBe(Buffer.from(want).toString('hex'));
        sameView(v, parse(want).v);
      }),
      { numRuns: 2000 },
    );
  });

  it('a UDP checksum of 0 (none) stays 0 through every mutation', () => {
    fc.assert(
      fc.property(ipSpecArb, portArb, portArb, fc.array(opArb, { minLength: 1, maxLength: 5 }), (ip, sp, dp, ops) => {
        const f = buildFrame({ ...MACS, ip, l4: { kind: 'udp', sport: sp, dport: dp, noChecksum: true } });
        const { v, dv } = parse(f);
        for (const o of ops) applyToFrame(v, f, dv, o);
        expect(dv.getUint16(v.l4Off + 6)).toBe(0);
        expect(checksumErrors(f)).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });
});

describe('the 0x0000 / 0xffff corner cases on real headers', () => {
  /** A UDP payload word that makes the computed UDP checksum 0 (so 0xffff is sent). */
  function udpZeroPayload(sport: number, dport: number): Uint8Array {
    const base: FrameSpec = { ...MACS, ip: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'udp', sport, dport, payload: new Uint8Array(2) } };
    const f = buildFrame(base);
    const { v } = parse(f);
    // Sum with the payload word 0 and the checksum field skipped.
    let s = l4Checksum(f, v.l4Off, 10, 17, v.srcIp, v.dstIp);
    s = ~s & 0xffff; // the folded sum
    const w = s === 0xffff ? 0xffff : 0xffff - s;
    return new Uint8Array([w >> 8, w & 0xff]);
  }

  it('UDP whose checksum computes to 0 is built with 0xffff, and mutations keep RFC 768', () => {
    const payload = udpZeroPayload(1000, 2000);
    const f = buildFrame({ ...MACS, ip: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'udp', sport: 1000, dport: 2000, payload } });
    const { v, dv } = parse(f);
    expect(dv.getUint16(v.l4Off + 6)).toBe(0xffff);
    expect(checksumErrors(f)).toEqual([]);
    setSrcPort(v, f, dv, 1001);
    expect(dv.getUint16(v.l4Off + 6)).not.toBe(0xffff);
    expect(checksumErrors(f)).toEqual([]);
    setSrcPort(v, f, dv, 1000); // back: computed 0 again, must be stored as 0xffff, not 0
    expect(dv.getUint16(v.l4Off + 6)).toBe(0xffff);
    expect(checksumErrors(f)).toEqual([]);
  });

  it('TCP whose checksum becomes 0x0000 after a port change gets 0x0000 (tshark flags 0xffff)', () => {
    const spec: FrameSpec = { ...MACS, ip: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'tcp', sport: 1000, dport: 80, flags: 'S' } };
    const f = buildFrame(spec);
    const { v, dv } = parse(f);
    // The port that makes the sum one's complement zero.
    const c = dv.getUint16(v.l4Off + 16);
    let s = (~c & 0xffff) + (~1000 & 0xffff); // the sum without the source port
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    const port = s === 0xffff ? 0xffff : 0xffff - s;
    setSrcPort(v, f, dv, port);
    expect(dv.getUint16(v.l4Off + 16)).toBe(0);
    expect(checksumErrors(f)).toEqual([]);
  });

  it('an all-zero ICMP echo reply: full recomputation gives 0xffff, and so does setIcmpId', () => {
    const f = buildFrame({ ...MACS, ip: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'icmp', type: 0, code: 0, id: 0, seq: 0 } });
    const { v, dv } = parse(f);
    expect(dv.getUint16(v.l4Off + 2)).toBe(0xffff);
    setIcmpId(v, f, dv, 0x1234);
    expect(checksumErrors(f)).toEqual([]);
    setIcmpId(v, f, dv, 0);
    expect(dv.getUint16(v.l4Off + 2)).toBe(0xffff);
    expect(checksumErrors(f)).toEqual([]);
  });

  it('decrementTtl changes only TTL and the header checksum', () => {
    const f = buildFrame({ ...MACS, ip: { src: '10.0.0.1', dst: '10.0.0.2', ttl: 2 }, l4: { kind: 'tcp', sport: 1, dport: 2, flags: 'S' } });
    const before = f.slice();
    const { v, dv } = parse(f);
    expect(decrementTtl(v, dv)).toBe(1);
    expect(v.ttl).toBe(1);
    const diff = [...f.keys()].filter((i) => f[i] !== before[i]);
    expect(diff.every((i) => i === 14 + 8 || i === 14 + 10 || i === 14 + 11)).toBe(true);
    expect(checksumErrors(f)).toEqual([]);
    expect(decrementTtl(v, dv)).toBe(0);
    expect(decrementTtl(v, dv)).toBe(0); // left alone at 0
  });

  it('a wrong checksum stays wrong by the same amount (as the kernel does), never silently fixed', () => {
    const f = buildFrame({ ...MACS, ip: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'tcp', sport: 1, dport: 2, flags: 'S' } });
    const { v, dv } = parse(f);
    dv.setUint16(v.l4Off + 16, dv.getUint16(v.l4Off + 16) ^ 0x0101);
    setDstIp(v, f, dv, 0x0b000001);
    expect(l4ChecksumOk(f, v.l4Off, v.l4Len, 6, v.srcIp, v.dstIp)).toBe(false);
  });
});

// ---- ICMP errors ----

const innerL4Arb: fc.Arbitrary<L4Spec> = fc.oneof(
  fc.record({ kind: fc.constant('tcp' as const), sport: portArb, dport: portArb, seq: fc.integer({ min: 0, max: 0xffffffff }), flags: fc.constant(2), payload: payloadArb }),
  fc.record({ kind: fc.constant('udp' as const), sport: portArb, dport: portArb, payload: payloadArb, noChecksum: fc.boolean() }),
  fc.record({ kind: fc.constant('icmp' as const), type: fc.constantFrom(8, 0), code: fc.constant(0), id: portArb, seq: portArb, payload: payloadArb }),
);

type InnerOp =
  | { op: 'innerSrcIp' | 'innerDstIp' | 'srcIp' | 'dstIp'; val: number }
  | { op: 'innerSrcPort' | 'innerDstPort' | 'innerIcmpId'; val: number };

const innerOpArb: fc.Arbitrary<InnerOp> = fc.oneof(
  fc.record({ op: fc.constantFrom('innerSrcIp' as const, 'innerDstIp' as const, 'srcIp' as const, 'dstIp' as const), val: ipArb }),
  fc.record({ op: fc.constantFrom('innerSrcPort' as const, 'innerDstPort' as const, 'innerIcmpId' as const), val: portArb }),
);

describe('ICMP error translation (quoted headers)', () => {
  it('inner address/port/id rewrites equal the error built from the rewritten original', () => {
    fc.assert(
      fc.property(
        ipSpecArb,
        innerL4Arb,
        fc.constantFrom(3, 11, 12),
        fc.oneof(fc.constant('rfc792' as const), fc.constant('all' as const), fc.integer({ min: 0, max: 80 })),
        ipArb,
        ipArb,
        fc.array(innerOpArb, { minLength: 1, maxLength: 5 }),
        (innerIp, innerL4, type, quote, osrc, odst, ops) => {
          // A quote that ends inside the quoted TCP checksum (17 bytes of TCP) leaves that
          // checksum byte unknowable; such quotes are not "prefix of the rewritten packet".
          fc.pre(!(innerL4.kind === 'tcp' && quote === 9));
          let inner: IpPacketSpec = { ip: innerIp, l4: innerL4 };
          let outer = { src: osrc, dst: odst };
          const build = (): Uint8Array => {
            const pkt = buildIpPacket(inner);
            const ihl = (pkt[0]! & 15) * 4;
            const quoteBytes = quote === 'rfc792' ? ihl + 8 : quote === 'all' ? pkt.length : ihl + 8 + quote;
            return buildIcmpError(type, 0, pkt, { ...MACS, ip: outer, quoteBytes });
          };
          const f = build();
          const { v, dv, st } = parse(f);
          expect(st).toBe(PARSE_OK);
          expect(v.innerIpOff).toBeGreaterThan(0);
          for (const o of ops) {
            const il4 = { ...inner.l4 } as L4Spec;
            const iip = { ...inner.ip };
            switch (o.op) {
              case 'innerSrcIp':
                setInnerSrcIp(v, f, dv, o.val);
                iip.src = o.val;
                break;
              case 'innerDstIp':
                setInnerDstIp(v, f, dv, o.val);
                iip.dst = o.val;
                break;
              case 'srcIp':
                setSrcIp(v, f, dv, o.val);
                outer = { ...outer, src: o.val };
                break;
              case 'dstIp':
                setDstIp(v, f, dv, o.val);
                outer = { ...outer, dst: o.val };
                break;
              case 'innerSrcPort':
                setInnerSrcPort(v, f, dv, o.val);
                if (il4.kind === 'tcp' || il4.kind === 'udp') il4.sport = o.val;
                break;
              case 'innerDstPort':
                setInnerDstPort(v, f, dv, o.val);
                if (il4.kind === 'tcp' || il4.kind === 'udp') il4.dport = o.val;
                break;
              case 'innerIcmpId':
                setInnerIcmpId(v, f, dv, o.val);
                if (il4.kind === 'icmp') il4.id = o.val;
                break;
            }
            inner = { ip: iip, l4: il4 };
            expect(checksumErrors(f)).toEqual([]);
          }
          const want = build();
          expect(Buffer.from(f).toString('hex')).toBe(Buffer.from(want).toString('hex'));
          sameView(v, parse(want).v);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('an 8-byte TCP quote has no TCP checksum to fix; the rest is fixed', () => {
    const orig = buildIpPacket({ ip: { src: '10.0.0.1', dst: '10.96.0.10' }, l4: { kind: 'tcp', sport: 40000, dport: 80, flags: 'S' } });
    const f = buildIcmpError(11, 0, orig, { ...MACS, ip: { src: '10.0.0.254', dst: '10.0.0.1' } });
    const { v, dv } = parse(f);
    expect(v.innerL4Len).toBe(8);
    expect(setInnerDstIp(v, f, dv, 0xac1e0005)).toBe(true);
    expect(setInnerDstPort(v, f, dv, 8080)).toBe(true);
    expect(checksumErrors(f)).toEqual([]);
    const orig2 = buildIpPacket({ ip: { src: '10.0.0.1', dst: '172.30.0.5' }, l4: { kind: 'tcp', sport: 40000, dport: 8080, flags: 'S' } });
    expect(f.subarray(14 + 28, 14 + 28 + 28)).toEqual(orig2.subarray(0, 28));
  });
});
