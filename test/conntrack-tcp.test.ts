import { describe, expect, it } from 'vitest';
import { Conntrack } from '../src/netfilter/conntrack.js';
import { CT_ESTABLISHED, CT_INVALID, CT_NEW, CT_UNTRACKED, HOOK_OUTPUT, IPS_ASSURED, IPS_CONFIRMED, IPS_SEEN_REPLY } from '../src/netfilter/skb.js';
import { corruptL4, skbOf, tcp } from './conntrack-helpers.js';

const C = '10.0.0.1';
const S = '172.21.0.10';

/** lookup + confirm (a packet that passes the node). */
function pass(ct: Conntrack, frame: Uint8Array, now: number, hook?: number) {
  const skb = skbOf(frame, now, hook);
  const ok = ct.lookup(skb);
  if (ok && skb.ct >= 0) expect(ct.confirm(skb)).toBe(true);
  return skb;
}

function handshake(ct: Conntrack, t0 = 100) {
  const syn = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 1000 }), t0);
  const synack = pass(ct, tcp(S, 3306, C, 40000, 'SA', { seq: 5000, ack: 1001 }), t0 + 0.01);
  const ack = pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 1001, ack: 5001 }), t0 + 0.02);
  return { syn, synack, ack };
}

describe('conntrack: TCP state machine', () => {
  it('tracks the three-way handshake: states, ctinfo, status bits and timeouts', () => {
    const ct = new Conntrack({ max: 1000 });
    const syn = skbOf(tcp(C, 40000, S, 3306, 'S', { seq: 1000 }), 100);
    expect(ct.lookup(syn)).toBe(true);
    expect(syn.ctState).toBe(CT_NEW);
    expect(syn.ctDir).toBe(0);
    const id = syn.ct;
    expect(id).toBeGreaterThanOrEqual(0);
    expect(ct.tcpStateName(id)).toBe('SYN_SENT');
    expect(ct.status[id]! & IPS_CONFIRMED).toBe(0);
    expect(ct.count).toBe(1);
    expect(ct.ids()).toEqual([]); // unconfirmed: not in the table yet
    expect(ct.confirm(syn)).toBe(true);
    expect(ct.status[id]! & IPS_CONFIRMED).toBe(IPS_CONFIRMED);
    expect(ct.expires[id]).toBe(100 + 120);
    expect(ct.describe(id)).toBe('tcp 10.0.0.1:40000 -> 172.21.0.10:3306 [SYN_SENT] reply 172.21.0.10:3306 -> 10.0.0.1:40000');

    const synack = pass(ct, tcp(S, 3306, C, 40000, 'SA', { seq: 5000, ack: 1001 }), 101);
    expect(synack.ct).toBe(id);
    expect(synack.ctState).toBe(CT_ESTABLISHED);
    expect(synack.ctDir).toBe(1);
    expect(ct.tcpStateName(id)).toBe('SYN_RECV');
    expect(ct.status[id]! & IPS_SEEN_REPLY).toBe(IPS_SEEN_REPLY);
    expect(ct.status[id]! & IPS_ASSURED).toBe(0);
    expect(ct.expires[id]).toBe(101 + 60);

    const ack = pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 1001, ack: 5001 }), 102);
    expect(ack.ct).toBe(id);
    expect(ack.ctState).toBe(CT_ESTABLISHED);
    expect(ack.ctDir).toBe(0);
    expect(ct.tcpStateName(id)).toBe('ESTABLISHED');
    expect(ct.status[id]! & IPS_ASSURED).toBe(IPS_ASSURED);
    expect(ct.expires[id]).toBe(102 + 432000);
    expect(ct.describe(id)).toContain('[ESTABLISHED]');
    expect(ct.describe(id)).toContain('ASSURED');
  });

  it('unacknowledged data gives the 300 s timeout until it is acknowledged', () => {
    const ct = new Conntrack({ max: 1000 });
    const { syn } = handshake(ct);
    const id = syn.ct;
    pass(ct, tcp(C, 40000, S, 3306, 'PA', { seq: 1001, ack: 5001, payload: 'hello' }), 200);
    expect(ct.expires[id]).toBe(200 + 300);
    pass(ct, tcp(S, 3306, C, 40000, 'A', { seq: 5001, ack: 1006 }), 201);
    expect(ct.expires[id]).toBe(201 + 432000);
  });

  it('follows the close: FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT with their timeouts', () => {
    const ct = new Conntrack({ max: 1000 });
    const { syn } = handshake(ct);
    const id = syn.ct;
    pass(ct, tcp(C, 40000, S, 3306, 'FA', { seq: 1001, ack: 5001 }), 300);
    expect(ct.tcpStateName(id)).toBe('FIN_WAIT');
    expect(ct.expires[id]).toBe(300 + 120);
    pass(ct, tcp(S, 3306, C, 40000, 'A', { seq: 5001, ack: 1002 }), 301);
    expect(ct.tcpStateName(id)).toBe('CLOSE_WAIT');
    expect(ct.expires[id]).toBe(301 + 60);
    pass(ct, tcp(S, 3306, C, 40000, 'FA', { seq: 5001, ack: 1002 }), 302);
    expect(ct.tcpStateName(id)).toBe('LAST_ACK');
    expect(ct.expires[id]).toBe(302 + 30);
    pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 1002, ack: 5002 }), 303);
    expect(ct.tcpStateName(id)).toBe('TIME_WAIT');
    expect(ct.expires[id]).toBe(303 + 120);
    // A new SYN on the same tuple re-opens: the closed entry is deleted, a fresh one made (NEW).
    const again = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 900000 }), 310);
    expect(again.ctState).toBe(CT_NEW);
    expect(ct.tcpStateName(again.ct)).toBe('SYN_SENT');
    expect(ct.count).toBe(1);
  });

  it('an RST moves the connection to CLOSE with the 10 s timeout', () => {
    const ct = new Conntrack({ max: 1000 });
    const { syn } = handshake(ct);
    pass(ct, tcp(S, 3306, C, 40000, 'R', { seq: 5001 }), 400);
    expect(ct.tcpStateName(syn.ct)).toBe('CLOSE');
    expect(ct.expires[syn.ct]).toBe(410);
    ct.gc(410);
    expect(ct.count).toBe(0);
  });

  it('an RST as the only reply deletes the entry at once but the RST itself stays tracked', () => {
    const ct = new Conntrack({ max: 1000 });
    const syn = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 1000 }), 100);
    const rst = pass(ct, tcp(S, 3306, C, 40000, 'RA', { seq: 0, ack: 1001 }), 100.1);
    expect(rst.ct).toBe(syn.ct);
    expect(rst.ctState).toBe(CT_ESTABLISHED);
    expect(rst.ctDir).toBe(1);
    expect(ct.count).toBe(0);
    expect(ct.ids()).toEqual([]);
  });

  it('picks up a mid-stream connection (nf_conntrack_tcp_loose=1): a bare ACK is NEW, state ESTABLISHED', () => {
    const ct = new Conntrack({ max: 1000 });
    const a = pass(ct, tcp(C, 40000, S, 3306, 'PA', { seq: 777777, ack: 4242, payload: 'mid-stream' }), 50);
    expect(a.ctState).toBe(CT_NEW);
    expect(ct.tcpStateName(a.ct)).toBe('ESTABLISHED');
    // ESTABLISHED without SEEN_REPLY: the 300 s unacknowledged timeout, not 5 days.
    expect(ct.expires[a.ct]).toBe(50 + 300);
    const r = pass(ct, tcp(S, 3306, C, 40000, 'A', { seq: 4242, ack: 777787 }), 51);
    expect(r.ct).toBe(a.ct);
    expect(r.ctState).toBe(CT_ESTABLISHED);
    expect(r.ctDir).toBe(1);
    const b = pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 777787, ack: 4242 }), 52);
    expect(b.ctState).toBe(CT_ESTABLISHED);
    expect(ct.status[a.ct]! & IPS_ASSURED).toBe(IPS_ASSURED);
    expect(ct.expires[a.ct]).toBe(52 + 432000);
  });

  it('does not pick up mid-stream connections with nf_conntrack_tcp_loose=0', () => {
    const ct = new Conntrack({ max: 1000, tcpLoose: false });
    const a = pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 1, ack: 1 }), 50);
    expect(a.ctState).toBe(CT_INVALID);
    expect(a.ct).toBe(-1);
    expect(ct.count).toBe(0);
  });

  it('marks an unsolicited SYN-ACK, a lone RST and a lone FIN INVALID without creating entries', () => {
    const ct = new Conntrack({ max: 1000 });
    for (const flags of ['SA', 'R', 'RA', 'FA']) {
      const s = pass(ct, tcp(S, 3306, C, 40000, flags, { seq: 5000, ack: 1001 }), 10);
      expect(s.ctState, flags).toBe(CT_INVALID);
      expect(s.ct).toBe(-1);
    }
    expect(ct.count).toBe(0);
  });

  it('marks invalid flag combinations INVALID (SYN+FIN, no flags)', () => {
    const ct = new Conntrack({ max: 1000 });
    expect(pass(ct, tcp(C, 1, S, 2, 'SF'), 1).ctState).toBe(CT_INVALID);
    expect(pass(ct, tcp(C, 1, S, 2, ''), 1).ctState).toBe(CT_INVALID);
    expect(pass(ct, tcp(C, 1, S, 2, 'SRA'), 1).ctState).toBe(CT_INVALID);
    expect(ct.count).toBe(0);
  });

  it('marks a bad TCP checksum INVALID at PREROUTING (nf_conntrack_checksum=1) and takes no entry', () => {
    const ct = new Conntrack({ max: 1000 });
    const bad = corruptL4(tcp(C, 40000, S, 3306, 'S', { seq: 1000 }));
    const s = pass(ct, bad, 1);
    expect(s.ctState).toBe(CT_INVALID);
    expect(ct.count).toBe(0);
  });

  it('accepts a bad TCP checksum with nf_conntrack_checksum=0, and never checks on OUTPUT', () => {
    const bad = corruptL4(tcp(C, 40000, S, 3306, 'S', { seq: 1000 }));
    const off = new Conntrack({ max: 1000, checksum: false });
    expect(pass(off, bad, 1).ctState).toBe(CT_NEW);
    const on = new Conntrack({ max: 1000 });
    expect(pass(on, bad, 1, HOOK_OUTPUT).ctState).toBe(CT_NEW);
  });

  it('a retransmitted SYN reuses its entry, stays NEW and does not renew the timeout', () => {
    const ct = new Conntrack({ max: 1000 });
    const a = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 1000 }), 100);
    const b = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 1000 }), 101);
    const c = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 1000 }), 103);
    expect(b.ct).toBe(a.ct);
    expect(c.ct).toBe(a.ct);
    expect(b.ctState).toBe(CT_NEW);
    expect(c.ctState).toBe(CT_NEW);
    expect(ct.count).toBe(1);
    expect(ct.expires[a.ct]).toBe(220);
    // After the SYN_SENT timeout, the same SYN makes a new entry.
    const d = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 1000 }), 220);
    expect(d.ctState).toBe(CT_NEW);
    expect(ct.expires[d.ct]).toBe(340);
    expect(ct.count).toBe(1);
  });

  it('ignores a SYN on an established connection (tracked, state kept)', () => {
    const ct = new Conntrack({ max: 1000 });
    const { syn } = handshake(ct);
    const s = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 123456 }), 200);
    expect(s.ct).toBe(syn.ct);
    expect(s.ctState).toBe(CT_ESTABLISHED);
    expect(ct.tcpStateName(syn.ct)).toBe('ESTABLISHED');
  });

  it('window tracking: data beyond the receiver window is INVALID unless nf_conntrack_tcp_be_liberal=1', () => {
    for (const liberal of [false, true]) {
      const ct = new Conntrack({ max: 1000, tcpBeLiberal: liberal });
      const syn = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 1000, win: 1000 }), 1);
      pass(ct, tcp(S, 3306, C, 40000, 'SA', { seq: 5000, ack: 1001, win: 1000 }), 1.1);
      pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 1001, ack: 5001, win: 1000 }), 1.2);
      // 10 MB further than anything seen: SEQ over the upper bound.
      const far = pass(ct, tcp(C, 40000, S, 3306, 'PA', { seq: 1001 + 10_000_000, ack: 5001, payload: 'x' }), 2);
      expect(far.ctState, `liberal=${liberal}`).toBe(liberal ? CT_ESTABLISHED : CT_INVALID);
      // An ACK of data never sent: ACK over the upper bound.
      const ackFar = pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 1001, ack: 5001 + 5_000_000 }), 3);
      expect(ackFar.ctState).toBe(liberal ? CT_ESTABLISHED : CT_INVALID);
      expect(ct.tcpStateName(syn.ct)).toBe('ESTABLISHED');
    }
  });

  it('tracks window scaling from the SYN options', () => {
    const ct = new Conntrack({ max: 1000 });
    // MSS, NOP, WS=7, SACK_PERM
    const opts = new Uint8Array([2, 4, 5, 180, 1, 3, 3, 7, 4, 2, 0, 0]);
    const syn = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 1000, win: 64240, options: opts }), 1);
    pass(ct, tcp(S, 3306, C, 40000, 'SA', { seq: 5000, ack: 1001, win: 65160, options: opts }), 1.1);
    pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 1001, ack: 5001, win: 502 }), 1.2);
    const id = syn.ct;
    expect(ct.tdScaleOf(id, 0)).toBe(7);
    expect(ct.tdScaleOf(id, 1)).toBe(7);
    // 502 << 7 = 64256 bytes of window: 60000 bytes of data from the server are in window.
    const big = pass(ct, tcp(S, 3306, C, 40000, 'PA', { seq: 5001, ack: 1001, payload: new Uint8Array(1400) }), 2);
    expect(big.ctState).toBe(CT_ESTABLISHED);
  });

  it('tracks sequence numbers across the 2^32 wrap', () => {
    const ct = new Conntrack({ max: 1000 });
    const isn = 0xfffffff0;
    const syn = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: isn }), 1);
    pass(ct, tcp(S, 3306, C, 40000, 'SA', { seq: 0x7ffffff0, ack: isn + 1 }), 1.1);
    pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: isn + 1, ack: 0x7ffffff1 }), 1.2);
    expect(ct.status[syn.ct]! & IPS_ASSURED).toBe(IPS_ASSURED);
    // 32 bytes from 0xfffffff1 to 0x00000011: wraps.
    const d = pass(ct, tcp(C, 40000, S, 3306, 'PA', { seq: isn + 1, ack: 0x7ffffff1, payload: new Uint8Array(32) }), 2);
    expect(d.ctState).toBe(CT_ESTABLISHED);
    expect(ct.expires[syn.ct]).toBe(2 + 300); // unacknowledged
    const a = pass(ct, tcp(S, 3306, C, 40000, 'A', { seq: 0x7ffffff1, ack: (isn + 33) % 2 ** 32 }), 3);
    expect(a.ctState).toBe(CT_ESTABLISHED);
    expect(ct.expires[syn.ct]).toBe(3 + 432000);
    const far = pass(ct, tcp(C, 40000, S, 3306, 'PA', { seq: 0x40000000, ack: 0x7ffffff1, payload: 'x' }), 4);
    expect(far.ctState).toBe(CT_INVALID);
  });

  it('handles a simultaneous open (SYN_SENT2)', () => {
    const ct = new Conntrack({ max: 1000 });
    const a = pass(ct, tcp(C, 5000, S, 6000, 'S', { seq: 100 }), 1);
    pass(ct, tcp(S, 6000, C, 5000, 'S', { seq: 500 }), 1.1);
    expect(ct.tcpStateName(a.ct)).toBe('SYN_SENT2');
    pass(ct, tcp(C, 5000, S, 6000, 'SA', { seq: 100, ack: 501 }), 1.2);
    expect(ct.tcpStateName(a.ct)).toBe('SYN_RECV');
    const last = pass(ct, tcp(S, 6000, C, 5000, 'A', { seq: 501, ack: 101 }), 1.3);
    expect(last.ctState).toBe(CT_ESTABLISHED);
    expect(ct.tcpStateName(a.ct)).toBe('ESTABLISHED');
  });

  it('an RST with an inexact sequence number keeps ESTABLISHED (challenge ACK) with the close timeout', () => {
    const ct = new Conntrack({ max: 1000 });
    const { syn } = handshake(ct);
    pass(ct, tcp(S, 3306, C, 40000, 'A', { seq: 5001, ack: 1001 }), 150); // server's max ack: 1001
    const r = pass(ct, tcp(C, 40000, S, 3306, 'R', { seq: 1001 + 100 }), 200);
    expect(r.ctState).toBe(CT_ESTABLISHED);
    expect(ct.tcpStateName(syn.ct)).toBe('ESTABLISHED');
    expect(ct.expires[syn.ct]).toBe(210);
    const exact = pass(ct, tcp(C, 40000, S, 3306, 'R', { seq: 1001 }), 201);
    expect(exact.ctState).toBe(CT_ESTABLISHED);
    expect(ct.tcpStateName(syn.ct)).toBe('CLOSE');
  });

  it('gets back in sync when a SYN it ignored is answered (SYN/ACK acknowledging the ignored SYN)', () => {
    const ct = new Conntrack({ max: 1000 });
    const { syn } = handshake(ct);
    // The client restarted: a new SYN on the same tuple while we think ESTABLISHED: ignored.
    const s2 = pass(ct, tcp(C, 40000, S, 3306, 'S', { seq: 900000 }), 200);
    expect(s2.ctState).toBe(CT_ESTABLISHED);
    expect(ct.tcpStateName(syn.ct)).toBe('ESTABLISHED');
    // The server accepts it: SYN/ACK acking 900001 → resync to SYN_RECV.
    pass(ct, tcp(S, 3306, C, 40000, 'SA', { seq: 700000, ack: 900001 }), 200.1);
    expect(ct.tcpStateName(syn.ct)).toBe('SYN_RECV');
    pass(ct, tcp(C, 40000, S, 3306, 'A', { seq: 900001, ack: 700001 }), 200.2);
    expect(ct.tcpStateName(syn.ct)).toBe('ESTABLISHED');
  });

  it('leaves NOTRACK packets UNTRACKED', () => {
    const ct = new Conntrack({ max: 1000 });
    const s = skbOf(tcp(C, 40000, S, 3306, 'S'), 1);
    s.notrack = true;
    expect(ct.lookup(s)).toBe(true);
    expect(s.ctState).toBe(CT_UNTRACKED);
    expect(s.ct).toBe(-1);
    expect(ct.count).toBe(0);
  });

  it('abandon() forgets an unconfirmed entry; an unconfirmed entry nobody confirms is reclaimed later', () => {
    const ct = new Conntrack({ max: 1000 });
    const s = skbOf(tcp(C, 40000, S, 3306, 'S'), 1);
    ct.lookup(s);
    expect(ct.count).toBe(1);
    ct.abandon(s);
    expect(ct.count).toBe(0);
    // Leaked (neither confirmed nor abandoned): gone after enough lookups.
    const l = skbOf(tcp(C, 40001, S, 3306, 'S'), 1);
    ct.lookup(l);
    expect(ct.count).toBe(1);
    for (let i = 0; i < 300; i++) ct.lookup(skbOf(tcp(C, 1, S, 2, 'SF'), 1)); // INVALID packets
    expect(ct.count).toBe(0);
    // A new SYN for it is NEW again.
    expect(pass(ct, tcp(C, 40001, S, 3306, 'S'), 2).ctState).toBe(CT_NEW);
  });
});
