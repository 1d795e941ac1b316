import { describe, expect, it } from 'vitest';
import { CT_RELATED } from '../src/netfilter/skb.js';
import { bswap32, jhash2Ip, reciprocalScale } from '../src/netfilter/tuple-hash.js';
import { Prng } from '../src/util/prng.js';
import { checksumsOk, dnatTo, flowText, icmp, icmpError, ip, masquerade, Node, skbOf, tcp, udp } from './conntrack-helpers.js';

const C = '10.0.0.1';
const VIP = '172.21.0.10';
const EP = '10.190.12.6';
const P1 = '172.30.1.5';
const P2 = '172.30.1.6';
const S = '8.8.8.8';
const N = '10.0.0.5';
const R = '192.168.77.1';

function a(x: number): string {
  return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
}

/** "outer src > dst [inner src:port > dst:port]" of an ICMP error. */
function errText(buf: Uint8Array): string {
  const v = skbOf(buf, 0).v;
  const ports = v.innerProto === 6 || v.innerProto === 17;
  const inner = ports
    ? `${a(v.innerSrcIp)}:${v.innerSrcPort} > ${a(v.innerDstIp)}:${v.innerDstPort}`
    : `${a(v.innerSrcIp)} > ${a(v.innerDstIp)}${v.innerIcmpId >= 0 ? ` id ${v.innerIcmpId}` : ''}`;
  return `${a(v.srcIp)} > ${a(v.dstIp)} [${inner}]`;
}

function expectChecksums(frame: Uint8Array): void {
  const r = checksumsOk(frame);
  expect(r.why).toBe('');
}

describe('NAT of RELATED ICMP errors (nf_nat_icmp_reply_translation)', () => {
  it('time exceeded from beyond a DNAT: outer source and quoted destination become the VIP again', () => {
    const n = new Node();
    const syn = n.forward(tcp(C, 40000, VIP, 80, 'S', { seq: 1000, ttl: 5 }), 1, { dnat: dnatTo(EP, 8080) });
    expect(flowText(syn.skb)).toBe(`${C}:40000 > ${EP}:8080`);
    // A router between the node and the endpoint: TTL exceeded, quoting what it received.
    const err = n.forward(icmpError(R, C, 11, 0, syn.skb.buf), 1.1);
    expect(err.skb.ctState).toBe(CT_RELATED);
    expect(err.skb.ctDir).toBe(1);
    expect(err.natDst || err.natSrc).toBe(false);
    expect(errText(err.skb.buf)).toBe(`${VIP} > ${C} [${C}:40000 > ${VIP}:80]`);
    expectChecksums(err.skb.buf);
  });

  it('port unreachable from beyond a MASQUERADE (remapped port): outer destination and quoted source restored', () => {
    const n = new Node({}, 42);
    n.forward(udp(P1, 5353, S, 53), 1, { snat: masquerade() });
    const q = n.forward(udp(P2, 5353, S, 53, 'query'), 1, { snat: masquerade() });
    const port = 1024 + ((new Prng(42).nextU32() & 0xffff) % 64512);
    expect(flowText(q.skb)).toBe(`${N}:${port} > ${S}:53`);
    const err = n.forward(icmpError(S, N, 3, 3, q.skb.buf), 2);
    expect(err.skb.ctState).toBe(CT_RELATED);
    expect(errText(err.skb.buf)).toBe(`${S} > ${P2} [${P2}:5353 > ${S}:53]`);
    expectChecksums(err.skb.buf);
    // The same with only the RFC 792 minimum quoted (IP header + 8 bytes).
    const err8 = n.forward(icmpError(S, N, 3, 3, q.skb.buf, 28), 2);
    expect(errText(err8.skb.buf)).toBe(`${S} > ${P2} [${P2}:5353 > ${S}:53]`);
    expectChecksums(err8.skb.buf);
  });

  it('TCP error quoting a whole segment from beyond a MASQUERADE: inner TCP checksum fixed too', () => {
    const n = new Node({}, 42);
    n.forward(tcp(P1, 40000, S, 443, 'S'), 1, { snat: masquerade() });
    const s = n.forward(tcp(P2, 40000, S, 443, 'S', { seq: 77, payload: 'data' }), 1, { snat: masquerade() });
    const err = n.forward(icmpError(R, N, 3, 4, s.skb.buf), 2);
    expect(errText(err.skb.buf)).toBe(`${R} > ${P2} [${P2}:40000 > ${S}:443]`);
    expectChecksums(err.skb.buf);
  });

  it('time exceeded for a NEW DNATed packet that the node drops (TTL 1): attached, translated at POSTROUTING', () => {
    const n = new Node();
    const synFrame = tcp(C, 40000, VIP, 80, 'S', { seq: 1000, ttl: 1 });
    // PREROUTING: conntrack + DNAT; then ip_forward drops it (TTL) and icmp_send answers.
    const pre = skbOf(synFrame, 1);
    n.ct.lookup(pre);
    n.nat.needsSetup(pre, 1);
    pre.natRange.set(dnatTo(EP, 8080));
    pre.natRangeSet = true;
    expect(n.nat.setup(pre, 1)).toBe(true);
    expect(n.nat.apply(pre, 1)).toBe(true);
    expect(flowText(pre)).toBe(`${C}:40000 > ${EP}:8080`);
    // The error quotes the packet as the node holds it (after DNAT), from the node's address.
    const err = n.localOut(icmpError('192.168.0.1', C, 11, 0, pre.buf), 1, {}, pre);
    n.ct.abandon(pre);
    expect(err.verdict).toBe('accept');
    expect(errText(err.skb.buf)).toBe(`${VIP} > ${C} [${C}:40000 > ${VIP}:80]`);
    expectChecksums(err.skb.buf);
    expect(n.ct.count).toBe(0);
  });

  it('error about a ping whose id was remapped: outer, quoted address and quoted id restored', () => {
    const n = new Node({}, 42);
    n.forward(icmp(P1, S, 8, 0, 7, 1), 1, { snat: masquerade() });
    const p = n.forward(icmp(P2, S, 8, 0, 7, 1), 1, { snat: masquerade() });
    const id = new Prng(42).nextU32() & 0xffff;
    expect(flowText(p.skb)).toBe(`${N} > ${S} id ${id}`);
    const err = n.forward(icmpError(R, N, 11, 0, p.skb.buf), 2);
    expect(err.skb.ctState).toBe(CT_RELATED);
    expect(errText(err.skb.buf)).toBe(`${R} > ${P2} [${P2} > ${S} id 7]`);
    expectChecksums(err.skb.buf);
  });

  it('leaves errors of connections without NAT unchanged', () => {
    const n = new Node();
    const q = n.forward(udp(C, 1, S, 53), 1);
    const before = icmpError(S, C, 3, 3, q.skb.buf);
    const err = n.forward(before, 2);
    expect(err.skb.ctState).toBe(CT_RELATED);
    expect(Buffer.from(err.skb.buf).equals(Buffer.from(before))).toBe(true);
  });

  it('drops a RELATED error with a bad ICMP checksum (nf_ip_checksum in the translation)', () => {
    const n = new Node({ checksum: false });
    n.forward(udp(P1, 5353, S, 53), 1, { snat: masquerade() });
    const e = icmpError(S, N, 3, 3, udp(N, 5353, S, 53)).slice();
    e[e.length - 1]! ^= 0x5a;
    const err = n.forward(e, 2);
    expect(err.skb.ctState).toBe(CT_RELATED);
    expect(err.verdict).toBe('nat apply');
  });
});

describe('kernel hash helpers', () => {
  /** jhash2 of include/linux/jhash.h, for any length, written out independently. */
  function jhash2Ref(k: number[], initval: number): number {
    const rol = (x: number, s: number) => ((x << s) | (x >>> (32 - s))) >>> 0;
    let a = (0xdeadbeef + (k.length << 2) + initval) >>> 0;
    let b = a;
    let c = a;
    let i = 0;
    let len = k.length;
    const mix = () => {
      a = (a - c) >>> 0; a = (a ^ rol(c, 4)) >>> 0; c = (c + b) >>> 0;
      b = (b - a) >>> 0; b = (b ^ rol(a, 6)) >>> 0; a = (a + c) >>> 0;
      c = (c - b) >>> 0; c = (c ^ rol(b, 8)) >>> 0; b = (b + a) >>> 0;
      a = (a - c) >>> 0; a = (a ^ rol(c, 16)) >>> 0; c = (c + b) >>> 0;
      b = (b - a) >>> 0; b = (b ^ rol(a, 19)) >>> 0; a = (a + c) >>> 0;
      c = (c - b) >>> 0; c = (c ^ rol(b, 4)) >>> 0; b = (b + a) >>> 0;
    };
    const final = () => {
      c = (c ^ b) >>> 0; c = (c - rol(b, 14)) >>> 0;
      a = (a ^ c) >>> 0; a = (a - rol(c, 11)) >>> 0;
      b = (b ^ a) >>> 0; b = (b - rol(a, 25)) >>> 0;
      c = (c ^ b) >>> 0; c = (c - rol(b, 16)) >>> 0;
      a = (a ^ c) >>> 0; a = (a - rol(c, 4)) >>> 0;
      b = (b ^ a) >>> 0; b = (b - rol(a, 14)) >>> 0;
      c = (c ^ b) >>> 0; c = (c - rol(b, 24)) >>> 0;
    };
    while (len > 3) {
      a = (a + k[i]!) >>> 0;
      b = (b + k[i + 1]!) >>> 0;
      c = (c + k[i + 2]!) >>> 0;
      mix();
      len -= 3;
      i += 3;
    }
    if (len === 0) return c;
    if (len >= 3) c = (c + k[i + 2]!) >>> 0;
    if (len >= 2) b = (b + k[i + 1]!) >>> 0;
    a = (a + k[i]!) >>> 0;
    final();
    return c;
  }

  it('jhash2Ip is jhash2 over { saddr, 0, 0, 0 }', () => {
    const g = new Prng(5);
    expect(jhash2Ref([], 0)).toBe(0xdeadbeef);
    for (let i = 0; i < 1000; i++) {
      const x = g.nextU32();
      const iv = g.nextU32();
      expect(jhash2Ip(x, iv)).toBe(jhash2Ref([x, 0, 0, 0], iv));
    }
  });

  it('reciprocal_scale is ((u64)val * ep_ro) >> 32 exactly', () => {
    const g = new Prng(6);
    for (let i = 0; i < 1000; i++) {
      const v = g.nextU32();
      const e = g.nextU32();
      expect(reciprocalScale(v, e)).toBe(Number((BigInt(v) * BigInt(e)) >> 32n));
    }
    expect(bswap32(ip('10.0.0.1'))).toBe(0x0100000a);
  });
});
