import { describe, expect, it } from 'vitest';
import { Conntrack } from '../src/netfilter/conntrack.js';
import { CT_ESTABLISHED, CT_INVALID, CT_NEW, CT_RELATED, IPS_ASSURED, IPS_SEEN_REPLY } from '../src/netfilter/skb.js';
import { corruptL4, icmp, icmpError, Node, skbOf, tcp, udp } from './conntrack-helpers.js';

const C = '10.0.0.1';
const S = '172.21.0.10';
const R = '192.168.77.1'; // a router on the way

function pass(ct: Conntrack, frame: Uint8Array, now: number) {
  const skb = skbOf(frame, now);
  ct.lookup(skb);
  if (skb.ct >= 0) ct.confirm(skb);
  return skb;
}

describe('conntrack: UDP', () => {
  it('is NEW until a reply is seen, then a stream after 2 s with the stream timeout and ASSURED', () => {
    const ct = new Conntrack({ max: 100 });
    const q = pass(ct, udp(C, 5353, S, 53), 10);
    expect(q.ctState).toBe(CT_NEW);
    const id = q.ct;
    expect(ct.expires[id]).toBe(40);
    expect(ct.describe(id)).toBe('udp 10.0.0.1:5353 -> 172.21.0.10:53 reply 172.21.0.10:53 -> 10.0.0.1:5353');
    const q2 = pass(ct, udp(C, 5353, S, 53), 10.5);
    expect(q2.ctState).toBe(CT_NEW); // still unreplied
    expect(q2.ct).toBe(id);
    const a = pass(ct, udp(S, 53, C, 5353), 11);
    expect(a.ctState).toBe(CT_ESTABLISHED);
    expect(a.ctDir).toBe(1);
    expect(ct.status[id]! & IPS_SEEN_REPLY).toBe(IPS_SEEN_REPLY);
    expect(ct.expires[id]).toBe(11 + 30); // the first reply does not see SEEN_REPLY yet
    const q3 = pass(ct, udp(C, 5353, S, 53), 11.5);
    expect(q3.ctState).toBe(CT_ESTABLISHED);
    expect(ct.expires[id]).toBe(11.5 + 30); // within 2 s of the first packet
    expect(ct.status[id]! & IPS_ASSURED).toBe(0);
    pass(ct, udp(S, 53, C, 5353), 12.5); // 2.5 s after the start: a stream
    expect(ct.expires[id]).toBe(12.5 + 120);
    expect(ct.status[id]! & IPS_ASSURED).toBe(IPS_ASSURED);
  });

  it('expires an unreplied flow after 30 s of capture time', () => {
    const ct = new Conntrack({ max: 100 });
    const a = pass(ct, udp(C, 1000, S, 2000), 0);
    const b = pass(ct, udp(C, 1000, S, 2000), 29.9);
    expect(b.ct).toBe(a.ct);
    const c = pass(ct, udp(C, 1000, S, 2000), 59.9);
    expect(c.ctState).toBe(CT_NEW);
    expect(ct.count).toBe(1);
    // The reply after expiry is a new flow in the other direction.
    const d = pass(ct, udp(S, 2000, C, 1000), 100);
    expect(d.ctState).toBe(CT_NEW);
    expect(d.ctDir).toBe(0);
  });

  it('marks a bad UDP checksum INVALID, accepts checksum 0 ("none")', () => {
    const ct = new Conntrack({ max: 100 });
    expect(pass(ct, corruptL4(udp(C, 1000, S, 2000)), 0).ctState).toBe(CT_INVALID);
    expect(pass(ct, corruptL4(udp(C, 1000, S, 2000, 'x', true)), 0).ctState).toBe(CT_NEW);
    const off = new Conntrack({ max: 100, checksum: false });
    expect(pass(off, corruptL4(udp(C, 1000, S, 2000)), 0).ctState).toBe(CT_NEW);
  });
});

describe('conntrack: ICMP', () => {
  it('tracks echo by identifier: request NEW, reply ESTABLISHED in reply direction', () => {
    const ct = new Conntrack({ max: 100 });
    const req = pass(ct, icmp(C, S, 8, 0, 77, 1), 5);
    expect(req.ctState).toBe(CT_NEW);
    expect(ct.describe(req.ct)).toBe('icmp 10.0.0.1 -> 172.21.0.10 id 77 type 8 code 0 reply 172.21.0.10 -> 10.0.0.1 id 77 type 0 code 0');
    expect(ct.expires[req.ct]).toBe(35);
    const rep = pass(ct, icmp(S, C, 0, 0, 77, 1), 5.1);
    expect(rep.ct).toBe(req.ct);
    expect(rep.ctState).toBe(CT_ESTABLISHED);
    expect(rep.ctDir).toBe(1);
    const req2 = pass(ct, icmp(C, S, 8, 0, 77, 2), 6);
    expect(req2.ct).toBe(req.ct);
    expect(req2.ctState).toBe(CT_ESTABLISHED);
    // Another identifier is another connection.
    const other = pass(ct, icmp(C, S, 8, 0, 78, 1), 6);
    expect(other.ct).not.toBe(req.ct);
    expect(other.ctState).toBe(CT_NEW);
    expect(ct.count).toBe(2);
  });

  it('pairs timestamp and information requests with their replies', () => {
    const ct = new Conntrack({ max: 100 });
    const ts = pass(ct, icmp(C, S, 13, 0, 9, 0, new Uint8Array(12)), 1);
    expect(ts.ctState).toBe(CT_NEW);
    expect(pass(ct, icmp(S, C, 14, 0, 9, 0, new Uint8Array(12)), 1).ctState).toBe(CT_ESTABLISHED);
    const info = pass(ct, icmp(C, S, 15, 0, 3), 1);
    expect(info.ctState).toBe(CT_NEW);
    expect(pass(ct, icmp(S, C, 16, 0, 3), 1).ct).toBe(info.ct);
  });

  it('marks replies without a request, unknown types and bad checksums INVALID', () => {
    const ct = new Conntrack({ max: 100 });
    expect(pass(ct, icmp(S, C, 0, 0, 5), 1).ctState).toBe(CT_INVALID); // echo reply, no request
    expect(pass(ct, icmp(S, C, 14, 0, 5, 0, new Uint8Array(12)), 1).ctState).toBe(CT_INVALID);
    expect(pass(ct, icmp(S, C, 9, 0, 0), 1).ctState).toBe(CT_INVALID); // router advertisement: no inverse
    expect(pass(ct, icmp(S, C, 40, 0, 0), 1).ctState).toBe(CT_INVALID); // type > 18
    const bad = icmp(C, S, 8, 0, 5).slice();
    bad[14 + 20 + 8] ^= 0xff; // payload byte
    expect(pass(ct, bad, 1).ctState).toBe(CT_INVALID);
    expect(ct.count).toBe(0);
  });

  it('relates an ICMP error to the TCP connection it quotes (reply direction)', () => {
    const ct = new Conntrack({ max: 100 });
    const synFrame = tcp(C, 40000, S, 3306, 'S', { seq: 1000 });
    const syn = pass(ct, synFrame, 1);
    // A router between us and S says: time exceeded, quoting C's SYN; the error goes to C.
    const err = pass(ct, icmpError(R, C, 11, 0, synFrame), 1.1);
    expect(err.ctState).toBe(CT_RELATED);
    expect(err.ct).toBe(syn.ct);
    expect(err.ctDir).toBe(1);
    // Errors do not refresh or change the connection.
    expect(ct.expires[syn.ct]).toBe(121);
    expect(ct.status[syn.ct]! & IPS_SEEN_REPLY).toBe(0);
  });

  it('relates a port unreachable to the UDP flow, and an error about a reply in the original direction', () => {
    const ct = new Conntrack({ max: 100 });
    const qf = udp(C, 5353, S, 53);
    const q = pass(ct, qf, 1);
    const pu = pass(ct, icmpError(S, C, 3, 3, qf), 1.1);
    expect(pu.ctState).toBe(CT_RELATED);
    expect(pu.ct).toBe(q.ct);
    expect(pu.ctDir).toBe(1);
    // C answers S's reply with an error: quoting S→C, sent to S: original direction.
    const af = udp(S, 53, C, 5353);
    pass(ct, af, 1.2);
    const e2 = pass(ct, icmpError(C, S, 3, 3, af), 1.3);
    expect(e2.ctState).toBe(CT_RELATED);
    expect(e2.ctDir).toBe(0);
  });

  it('leaves an error INVALID when nothing matches or the outer destination is not the flow’s', () => {
    const ct = new Conntrack({ max: 100 });
    const qf = udp(C, 5353, S, 53);
    pass(ct, qf, 1);
    expect(pass(ct, icmpError(S, C, 3, 3, udp(C, 5354, S, 53)), 1).ctState).toBe(CT_INVALID);
    expect(pass(ct, icmpError(S, '10.0.0.99', 3, 3, qf), 1).ctState).toBe(CT_INVALID);
  });

  it('relates an error about a ping to the echo connection', () => {
    const ct = new Conntrack({ max: 100 });
    const pf = icmp(C, S, 8, 0, 4242, 1);
    const p = pass(ct, pf, 1);
    const e = pass(ct, icmpError(R, C, 11, 0, pf), 1);
    expect(e.ctState).toBe(CT_RELATED);
    expect(e.ct).toBe(p.ct);
  });

  it('attach(): a locally generated error carries the offending packet’s entry, unconfirmed too', () => {
    const n = new Node();
    const synFrame = tcp(C, 40000, S, 3306, 'S', { seq: 1000, ttl: 1 });
    const syn = skbOf(synFrame, 1);
    n.ct.lookup(syn); // PREROUTING; then forwarding drops it (TTL): never confirmed
    const err = n.localOut(icmpError('192.168.0.1', C, 11, 0, synFrame), 1, {}, syn);
    expect(err.skb.ct).toBe(syn.ct);
    expect(err.skb.ctState).toBe(CT_RELATED);
    expect(err.skb.ctDir).toBe(1);
    expect(err.verdict).toBe('accept');
    n.ct.abandon(syn);
    expect(n.ct.count).toBe(0);
  });
});
