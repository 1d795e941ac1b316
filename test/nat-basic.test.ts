import { describe, expect, it } from 'vitest';
import { Trace } from '../src/netfilter/trace.js';
import { CT_ESTABLISHED, CT_INVALID, CT_NEW, CT_RELATED, IPS_DST_NAT, IPS_SRC_NAT, NAT_MANIP_DST, NF_NAT_RANGE_PERSISTENT, NF_NAT_RANGE_PROTO_RANDOM, NF_NAT_RANGE_PROTO_RANDOM_FULLY } from '../src/netfilter/skb.js';
import { bswap32, jhash2Ip, reciprocalScale } from '../src/netfilter/tuple-hash.js';
import { Prng } from '../src/util/prng.js';
import { checksumsOk, corruptL4, dnatTo, flowText, icmp, ip, masquerade, netmap, Node, skbOf, snatTo, tcp, udp } from './conntrack-helpers.js';

const C = '10.0.0.1';
const VIP = '172.21.0.10';
const EP = '10.190.12.6';
const P1 = '172.30.1.5';
const P2 = '172.30.1.6';
const S = '8.8.8.8';
const N = '10.0.0.5'; // eth1's address: the MASQUERADE source

/** The port (or ICMP id) NAT picks on a clash with the first draw of Prng(seed): 1024 + u16 % 64512. */
function firstRandomPort(seed: number, min = 1024, size = 64512): number {
  return min + ((new Prng(seed).nextU32() & 0xffff) % size);
}

function expectChecksums(frame: Uint8Array): void {
  const r = checksumsOk(frame);
  expect(r.why).toBe('');
  expect(r.ok).toBe(true);
}

describe('NAT: DNAT', () => {
  it('DNATs the first packet with the range, replays it for later packets, and reverses the replies', () => {
    const n = new Node();
    const syn = n.forward(tcp(C, 40000, VIP, 3306, 'S', { seq: 1000 }), 1, { dnat: dnatTo(EP, 3306) });
    expect(syn.verdict).toBe('accept');
    expect(syn.natDst).toBe(true);
    expect(syn.natSrc).toBe(true); // null binding at POSTROUTING
    expect(flowText(syn.skb)).toBe(`${C}:40000 > ${EP}:3306`);
    expectChecksums(syn.skb.buf);
    const id = syn.skb.ct;
    expect(n.ct.describe(id)).toBe('tcp 10.0.0.1:40000 -> 172.21.0.10:3306 [SYN_SENT] reply 10.190.12.6:3306 -> 10.0.0.1:40000 DNAT');
    expect(n.nat.bindingText(id)).toBe('DNAT 172.21.0.10:3306 -> 10.190.12.6:3306');
    expect(n.ct.status[id]! & (IPS_DST_NAT | IPS_SRC_NAT)).toBe(IPS_DST_NAT);

    // Retransmitted SYN: NEW, the nat table is not traversed again, same translation.
    const re = n.forward(tcp(C, 40000, VIP, 3306, 'S', { seq: 1000 }), 2, { dnat: dnatTo('10.99.99.99', 1) });
    expect(re.skb.ctState).toBe(CT_NEW);
    expect(re.natDst).toBe(false);
    expect(flowText(re.skb)).toBe(`${C}:40000 > ${EP}:3306`);

    // The reply from the endpoint: source restored to the VIP at POSTROUTING.
    const sa = n.forward(tcp(EP, 3306, C, 40000, 'SA', { seq: 5000, ack: 1001 }), 3);
    expect(sa.skb.ctState).toBe(CT_ESTABLISHED);
    expect(sa.skb.ctDir).toBe(1);
    expect(sa.natDst || sa.natSrc).toBe(false);
    expect(flowText(sa.skb)).toBe(`${VIP}:3306 > ${C}:40000`);
    expectChecksums(sa.skb.buf);

    const ack = n.forward(tcp(C, 40000, VIP, 3306, 'A', { seq: 1001, ack: 5001 }), 4);
    expect(flowText(ack.skb)).toBe(`${C}:40000 > ${EP}:3306`);
    expect(n.ct.tcpStateName(id)).toBe('ESTABLISHED');
  });

  it('records the binding and the rewrites in the trace', () => {
    const n = new Node();
    const t = new Trace();
    n.forward(tcp(C, 40000, VIP, 3306, 'S', { seq: 1000 }), 1, { dnat: dnatTo(EP, 3306), trace: t });
    const text = t.steps.map((s) => s.text);
    expect(text).toContain('DNAT binding (DNAT --to-destination 10.190.12.6:3306): DNAT 172.21.0.10:3306 -> 10.190.12.6:3306');
    expect(text).toContain('DNAT 172.21.0.10:3306 -> 10.190.12.6:3306');
    expect(text).toContain('null binding: 10.0.0.1:40000 unchanged');
    const r = new Trace();
    n.forward(tcp(EP, 3306, C, 40000, 'SA', { seq: 5000, ack: 1001 }), 2, { trace: r });
    expect(r.steps.map((s) => s.text)).toContain('SNAT 10.190.12.6:3306 -> 172.21.0.10:3306 (reply)');
  });

  it('a TCP reset the node sends for a DNATed SYN it rejects leaves from the VIP (attached, RELATED)', () => {
    const n = new Node();
    const syn = skbOf(tcp(C, 40000, VIP, 80, 'S', { seq: 1000 }), 1);
    n.ct.lookup(syn);
    syn.natRange.set(dnatTo(EP, 8080));
    syn.natRangeSet = true;
    expect(n.nat.needsSetup(syn, NAT_MANIP_DST)).toBe(true);
    n.nat.setup(syn, NAT_MANIP_DST);
    n.nat.apply(syn, NAT_MANIP_DST);
    // FORWARD: REJECT --reject-with tcp-reset: nf_send_reset answers EP:8080 -> C:40000.
    const rst = n.localOut(tcp(EP, 8080, C, 40000, 'RA', { seq: 0, ack: 1001 }), 1, {}, syn);
    n.ct.abandon(syn);
    expect(rst.skb.ctState).toBe(CT_RELATED);
    expect(rst.natSrc).toBe(true); // RELATED, not ICMP: goes through the nat table (null binding)
    expect(flowText(rst.skb)).toBe(`${VIP}:80 > ${C}:40000`);
    expectChecksums(rst.skb.buf);
    expect(n.ct.count).toBe(0);
  });

  it('changes the port with --to-destination ip:port, keeps it without a port', () => {
    const n = new Node();
    const a = n.forward(udp(C, 5000, VIP, 80), 1, { dnat: dnatTo(EP, 8080) });
    expect(flowText(a.skb)).toBe(`${C}:5000 > ${EP}:8080`);
    expectChecksums(a.skb.buf);
    const r = n.forward(udp(EP, 8080, C, 5000), 1.5);
    expect(flowText(r.skb)).toBe(`${VIP}:80 > ${C}:5000`);
    expectChecksums(r.skb.buf);
    const b = n.forward(udp(C, 5001, VIP, 80), 2, { dnat: dnatTo(EP) });
    expect(flowText(b.skb)).toBe(`${C}:5001 > ${EP}:80`);
  });

  it('picks an address of a range as find_best_ips_proto does (jhash2 of the addresses, ports ignored)', () => {
    const n = new Node();
    const lo = ip('10.190.12.6');
    const hi = ip('10.190.12.9');
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const client = `10.0.${i}.${i + 1}`;
      const a = n.forward(udp(client, 1000, VIP, 80), 1, { dnat: dnatTo('10.190.12.6', undefined, '10.190.12.9') });
      const got = a.skb.v.dstIp;
      expect(got).toBeGreaterThanOrEqual(lo);
      expect(got).toBeLessThanOrEqual(hi);
      // The kernel's formula: min + reciprocal_scale(jhash2(src, dst), max - min + 1).
      expect(got).toBe(lo + reciprocalScale(jhash2Ip(bswap32(ip(client)), bswap32(ip(VIP))), hi - lo + 1));
      const b = n.forward(udp(client, 2000, VIP, 80), 1, { dnat: dnatTo('10.190.12.6', undefined, '10.190.12.9') });
      expect(b.skb.v.dstIp).toBe(got); // same client, same choice
      seen.add(got);
    }
    expect(seen.size).toBe(4);
    // --persistent: the destination does not enter the hash.
    const p = dnatTo('10.190.12.6', undefined, '10.190.12.9');
    p.flags |= NF_NAT_RANGE_PERSISTENT;
    const x = n.forward(udp('10.7.7.7', 1, '10.1.1.1', 80), 2, { dnat: p }).skb.v.dstIp;
    const y = n.forward(udp('10.7.7.7', 1, '10.1.1.2', 80), 2, { dnat: p }).skb.v.dstIp;
    expect(x).toBe(y);
    expect(x).toBe(lo + reciprocalScale(jhash2Ip(bswap32(ip('10.7.7.7')), 0), 4));
  });

  it('NETMAP keeps the host bits', () => {
    const n = new Node();
    const a = n.forward(tcp(C, 1234, '192.168.10.77', 22, 'S'), 1, { dnat: netmap(NAT_MANIP_DST, '10.50.0.0', 24) });
    expect(flowText(a.skb)).toBe(`${C}:1234 > 10.50.0.77:22`);
    expectChecksums(a.skb.buf);
  });

  it('never sends an INVALID packet through the nat table', () => {
    const n = new Node();
    const a = n.forward(corruptL4(tcp(C, 40000, VIP, 3306, 'S')), 1, { dnat: dnatTo(EP, 3306) });
    expect(a.skb.ctState).toBe(CT_INVALID);
    expect(a.natDst).toBe(false);
    expect(a.skb.v.dstIp).toBe(ip(VIP));
    expect(n.ct.count).toBe(0);
  });
});

describe('NAT: SNAT and MASQUERADE', () => {
  it('preserves the source port; a second client with the same port gets a Prng port in 1024-65535, kept for the flow', () => {
    const n = new Node({}, 42);
    const a = n.forward(udp(P1, 40000, S, 53), 1, { snat: masquerade() });
    expect(flowText(a.skb)).toBe(`${N}:40000 > ${S}:53`);
    expect(n.nat.bindingText(a.skb.ct)).toBe('SNAT 172.30.1.5:40000 -> 10.0.0.5:40000');
    expectChecksums(a.skb.buf);

    const b = n.forward(udp(P2, 40000, S, 53), 2, { snat: masquerade() });
    const port = firstRandomPort(42);
    expect(port).toBeGreaterThanOrEqual(1024);
    expect(flowText(b.skb)).toBe(`${N}:${port} > ${S}:53`);
    expectChecksums(b.skb.buf);

    // Later packets of flow 2 keep the port (no new draw, no nat table).
    const b2 = n.forward(udp(P2, 40000, S, 53), 3, { snat: masquerade() });
    expect(b2.natSrc).toBe(false);
    expect(flowText(b2.skb)).toBe(`${N}:${port} > ${S}:53`);

    // Replies are translated back at PREROUTING (destination), to the right client.
    const ra = n.forward(udp(S, 53, N, 40000), 4);
    expect(flowText(ra.skb)).toBe(`${S}:53 > ${P1}:40000`);
    expectChecksums(ra.skb.buf);
    const rb = n.forward(udp(S, 53, N, port), 4);
    expect(rb.skb.ctDir).toBe(1);
    expect(flowText(rb.skb)).toBe(`${S}:53 > ${P2}:40000`);
    expectChecksums(rb.skb.buf);
  });

  it('reuses an existing mapping of the same source for a new destination (find_appropriate_src)', () => {
    const n = new Node({}, 42);
    n.forward(tcp(P1, 40000, S, 443, 'S'), 1, { snat: masquerade() });
    const b = n.forward(tcp(P2, 40000, S, 443, 'S'), 1, { snat: masquerade() });
    const port = b.skb.v.srcPort;
    expect(port).not.toBe(40000);
    const c = n.forward(tcp(P2, 40000, '1.1.1.1', 443, 'S'), 2, { snat: masquerade() });
    expect(flowText(c.skb)).toBe(`${N}:${port} > 1.1.1.1:443`);
    const d = n.forward(tcp(P1, 40000, '1.1.1.1', 443, 'S'), 2, { snat: masquerade() });
    expect(flowText(d.skb)).toBe(`${N}:40000 > 1.1.1.1:443`);
  });

  it('--random-fully and --random skip port preservation', () => {
    for (const flag of [NF_NAT_RANGE_PROTO_RANDOM_FULLY, NF_NAT_RANGE_PROTO_RANDOM]) {
      const n = new Node({}, 7);
      const a = n.forward(tcp(P1, 40000, S, 443, 'S'), 1, { snat: masquerade(flag) });
      expect(flowText(a.skb)).toBe(`${N}:${firstRandomPort(7)} > ${S}:443`);
      expectChecksums(a.skb.buf);
    }
  });

  it('keeps privileged ports privileged on a clash (1-511, 600-1023)', () => {
    const n = new Node({}, 3);
    n.forward(udp(P1, 123, S, 123), 1, { snat: masquerade() });
    const b = n.forward(udp(P2, 123, S, 123), 1, { snat: masquerade() });
    expect(b.skb.v.srcPort).toBe(firstRandomPort(3, 1, 511));
    const m = new Node({}, 3);
    m.forward(udp(P1, 800, S, 123), 1, { snat: masquerade() });
    const d = m.forward(udp(P2, 800, S, 123), 1, { snat: masquerade() });
    expect(d.skb.v.srcPort).toBe(firstRandomPort(3, 600, 424));
  });

  it('SNAT --to-source with a port range maps into the range', () => {
    const n = new Node({}, 11);
    const a = n.forward(tcp(P1, 40000, S, 443, 'S'), 1, { snat: snatTo('203.0.113.7', 0, [20000, 20010]) });
    expect(flowText(a.skb)).toBe(`203.0.113.7:${firstRandomPort(11, 20000, 11)} > ${S}:443`);
    expectChecksums(a.skb.buf);
  });

  it('remaps ICMP echo ids on a clash and translates the replies back', () => {
    const n = new Node({}, 42);
    const a = n.forward(icmp(P1, S, 8, 0, 7, 1), 1, { snat: masquerade() });
    expect(flowText(a.skb)).toBe(`${N} > ${S} id 7`);
    const b = n.forward(icmp(P2, S, 8, 0, 7, 1), 1, { snat: masquerade() });
    const id = new Prng(42).nextU32() & 0xffff; // range 0-65535: off % 65536
    expect(flowText(b.skb)).toBe(`${N} > ${S} id ${id}`);
    expectChecksums(b.skb.buf);
    expect(n.nat.bindingText(b.skb.ct)).toBe(`SNAT 172.30.1.6 id 7 -> 10.0.0.5 id ${id}`);
    const rb = n.forward(icmp(S, N, 0, 0, id, 1), 2);
    expect(rb.skb.ctState).toBe(CT_ESTABLISHED);
    expect(flowText(rb.skb)).toBe(`${S} > ${P2} id 7`);
    expectChecksums(rb.skb.buf);
    const ra = n.forward(icmp(S, N, 0, 0, 7, 1), 2);
    expect(flowText(ra.skb)).toBe(`${S} > ${P1} id 7`);
  });

  it('MASQUERADE drops when the output interface has no address', () => {
    const n = new Node();
    const a = n.forward(udp(P1, 1, S, 53), 1, { snat: masquerade(), outIf: 2 });
    expect(a.verdict).toBe('nat setup');
    expect(n.ct.count).toBe(0);
  });

  it('drops and forgets a masqueraded flow whose output interface changes (nf_nat_oif_changed)', () => {
    const n = new Node();
    const a = n.forward(udp(P1, 1, S, 53), 1, { snat: masquerade(), outIf: 1 });
    expect(flowText(a.skb)).toBe(`${N}:1 > ${S}:53`);
    const b = n.forward(udp(P1, 1, S, 53), 2, { snat: masquerade(), outIf: 3 });
    expect(b.verdict).toBe('nat apply');
    expect(n.ct.ids()).toEqual([]);
    const c = n.forward(udp(P1, 1, S, 53), 3, { snat: masquerade(), outIf: 3 });
    expect(c.skb.ctState).toBe(CT_NEW);
    expect(flowText(c.skb)).toBe(`10.9.9.9:1 > ${S}:53`);
  });

  it('null binding: a local connection clashing with a masqueraded one gets its source port remapped', () => {
    const n = new Node({}, 42);
    n.forward(tcp(P1, 40000, S, 80, 'S', { seq: 1 }), 1, { snat: masquerade() });
    // The node itself connects from its own 10.0.0.5:40000 to the same server: no NAT rules.
    const l = n.localOut(tcp(N, 40000, S, 80, 'S', { seq: 2 }), 2);
    expect(l.verdict).toBe('accept');
    const port = firstRandomPort(42);
    expect(flowText(l.skb)).toBe(`${N}:${port} > ${S}:80`);
    expect(n.ct.status[l.skb.ct]! & IPS_SRC_NAT).toBe(IPS_SRC_NAT);
    expectChecksums(l.skb.buf);
    // Its reply reaches the local socket with the original port.
    const r = n.localIn(tcp(S, 80, N, port, 'SA', { seq: 9, ack: 3 }), 3);
    expect(r.skb.ct).toBe(l.skb.ct);
    expect(flowText(r.skb)).toBe(`${S}:80 > ${N}:40000`);
    // And the masqueraded pod's reply still goes to the pod.
    const r2 = n.forward(tcp(S, 80, N, 40000, 'SA', { seq: 9, ack: 2 }), 3);
    expect(flowText(r2.skb)).toBe(`${S}:80 > ${P1}:40000`);
  });

  it('DNAT plus MASQUERADE on one connection (a NodePort from outside)', () => {
    const n = new Node({}, 5);
    const a = n.forward(tcp('203.0.113.9', 51000, N, 30080, 'S'), 1, { dnat: dnatTo(P1, 8080), snat: masquerade(), outIf: 3 });
    expect(flowText(a.skb)).toBe(`10.9.9.9:51000 > ${P1}:8080`);
    expect(n.nat.bindingText(a.skb.ct)).toBe('DNAT 10.0.0.5:30080 -> 172.30.1.5:8080; SNAT 203.0.113.9:51000 -> 10.9.9.9:51000');
    const r = n.forward(tcp(P1, 8080, '10.9.9.9', 51000, 'SA', { seq: 1, ack: 1 }), 2, { outIf: 1 });
    expect(flowText(r.skb)).toBe(`${N}:30080 > 203.0.113.9:51000`);
    expectChecksums(r.skb.buf);
  });
});
