import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Conntrack } from '../src/netfilter/conntrack.js';
import { CT_ESTABLISHED, CT_NEW, IPS_ASSURED } from '../src/netfilter/skb.js';
import { reciprocalScale } from '../src/netfilter/tuple-hash.js';
import { Prng } from '../src/util/prng.js';
import { icmp, masquerade, Node, skbOf, tcp, udp } from './conntrack-helpers.js';

function pass(ct: Conntrack, frame: Uint8Array, now: number) {
  const skb = skbOf(frame, now);
  const ok = ct.lookup(skb);
  if (ok && skb.ct >= 0) ct.confirm(skb);
  return { skb, ok };
}

function establish(ct: Conntrack, sport: number, now: number): number {
  const s = pass(ct, tcp('10.0.0.1', sport, '10.0.0.2', 80, 'S', { seq: 100 }), now).skb;
  pass(ct, tcp('10.0.0.2', 80, '10.0.0.1', sport, 'SA', { seq: 900, ack: 101 }), now);
  pass(ct, tcp('10.0.0.1', sport, '10.0.0.2', 80, 'A', { seq: 101, ack: 901 }), now);
  return s.ct;
}

describe('conntrack: the table', () => {
  it('is bounded by nf_conntrack_max: with only ASSURED entries a new connection is dropped', () => {
    const ct = new Conntrack({ max: 4, buckets: 4 });
    for (let i = 0; i < 4; i++) establish(ct, 1000 + i, 1);
    expect(ct.count).toBe(4);
    const r = pass(ct, tcp('10.0.0.1', 2000, '10.0.0.2', 80, 'S'), 2);
    expect(r.ok).toBe(false); // NF_DROP: "table full, dropping packet"
    expect(r.skb.ct).toBe(-1);
    expect(ct.count).toBe(4);
    expect(ct.tableFullDrops).toBe(1);
    // Existing connections keep working.
    expect(pass(ct, tcp('10.0.0.1', 1000, '10.0.0.2', 80, 'A', { seq: 101, ack: 901 }), 3).skb.ctState).toBe(CT_ESTABLISHED);
  });

  it('early_drop evicts a non-ASSURED entry to make room', () => {
    const ct = new Conntrack({ max: 4, buckets: 4 });
    for (let i = 0; i < 3; i++) establish(ct, 1000 + i, 1);
    const u = pass(ct, udp('10.0.0.1', 53, '10.0.0.3', 53), 1).skb.ct;
    expect(ct.count).toBe(4);
    const r = pass(ct, tcp('10.0.0.1', 2000, '10.0.0.2', 80, 'S'), 2);
    expect(r.ok).toBe(true);
    expect(r.skb.ctState).toBe(CT_NEW);
    expect(ct.count).toBe(4);
    expect(ct.earlyDrops).toBe(1);
    expect(ct.dump().some((l) => l.startsWith('udp'))).toBe(false);
    expect(ct.isLive(u)).toBe(false);
    // Next new flow: the SYN_SENT entry (not ASSURED) is the one evicted now.
    expect(pass(ct, udp('10.0.0.1', 53, '10.0.0.3', 53), 3).ok).toBe(true);
    expect(ct.earlyDrops).toBe(2);
    expect(ct.count).toBe(4);
    expect(ct.dump().filter((l) => l.includes('[SYN_SENT]'))).toEqual([]);
  });

  it('reclaims expired entries when the table is full', () => {
    const ct = new Conntrack({ max: 2, buckets: 2 });
    pass(ct, udp('10.0.0.1', 1, '10.0.0.2', 1), 0);
    pass(ct, udp('10.0.0.1', 2, '10.0.0.2', 1), 0);
    expect(ct.count).toBe(2);
    const r = pass(ct, udp('10.0.0.1', 3, '10.0.0.2', 1), 31);
    expect(r.ok).toBe(true);
    expect(ct.count).toBe(1);
    expect(ct.earlyDrops).toBe(0);
  });

  it('expires entries by capture time (gc) and forgets them for lookups at once', () => {
    const ct = new Conntrack({ max: 100, gcStep: 0 });
    pass(ct, udp('10.0.0.1', 1, '10.0.0.2', 1), 0); // 30 s
    pass(ct, icmp('10.0.0.1', '10.0.0.2', 8, 0, 1), 0); // 30 s
    const t = establish(ct, 5, 0); // 5 days
    expect(ct.count).toBe(3);
    ct.gc(29.999);
    expect(ct.count).toBe(3);
    ct.gc(30); // nf_ct_is_expired: expired when now >= timeout
    expect(ct.count).toBe(1);
    expect(ct.isLive(t)).toBe(true);
    ct.gc(432000 - 0.001);
    expect(ct.count).toBe(1);
    ct.gc(432000);
    expect(ct.count).toBe(0);
    // Without a gc pass: an expired entry is not found; its tuple starts a new connection.
    const a = pass(ct, udp('10.0.0.1', 7, '10.0.0.2', 7), 1000).skb;
    const b = pass(ct, udp('10.0.0.1', 7, '10.0.0.2', 7), 1030).skb;
    expect(b.ctState).toBe(CT_NEW);
    expect(ct.count).toBe(1);
    expect(a.ct).toBe(b.ct); // the freed id is reused (LIFO free list)
  });

  it('grows past its initial capacity and finds every entry again (10 000 flows)', () => {
    const ct = new Conntrack({ max: 20000 });
    const ids: number[] = [];
    for (let i = 0; i < 10000; i++) ids.push(pass(ct, udp('10.1.0.1', 1024 + (i % 50000), `10.2.${(i >> 8) & 255}.${i & 255}`, 53), 1).skb.ct);
    expect(ct.count).toBe(10000);
    expect(new Set(ids).size).toBe(10000);
    for (let i = 0; i < 10000; i += 97) {
      const r = pass(ct, udp(`10.2.${(i >> 8) & 255}.${i & 255}`, 53, '10.1.0.1', 1024 + (i % 50000)), 2).skb;
      expect(r.ct).toBe(ids[i]);
      expect(r.ctDir).toBe(1);
    }
  });

  it('matches a reference model on random UDP traffic (hash chains, expiry, free-list reuse)', () => {
    type Entry = { orig: string; repl: string; streamTs: number; seenReply: boolean; assured: boolean; expires: number; id: number };
    fc.assert(
      fc.property(
        fc.array(fc.record({ a: fc.integer({ min: 0, max: 3 }), b: fc.integer({ min: 0, max: 3 }), pa: fc.integer({ min: 1, max: 3 }), pb: fc.integer({ min: 1, max: 3 }), dt: fc.integer({ min: 0, max: 25 }) }), { minLength: 1, maxLength: 150 }),
        fc.integer({ min: 0, max: 3 }),
        (pkts, gcStep) => {
          const ct = new Conntrack({ max: 1000, buckets: 4, gcStep });
          const model = new Map<string, Entry>();
          let now = 0;
          for (const p of pkts) {
            now += p.dt / 4;
            const src = `10.0.0.${p.a + 1}`;
            const dst = `10.0.1.${p.b + 1}`;
            // Half of the packets go the other way.
            const rev = (p.a + p.pa) % 2 === 1;
            const key = rev ? `${dst}:${p.pb}>${src}:${p.pa}` : `${src}:${p.pa}>${dst}:${p.pb}`;
            const frame = rev ? udp(dst, p.pb, src, p.pa) : udp(src, p.pa, dst, p.pb);
            for (const [k, e] of model) if (now >= e.expires) model.delete(k);
            let e: Entry | undefined;
            let dir = 0;
            for (const x of model.values()) {
              if (x.orig === key) e = x;
              else if (x.repl === key) {
                e = x;
                dir = 1;
              }
            }
            const { skb } = pass(ct, frame, now);
            if (!e) {
              const [l, r] = key.split('>');
              model.set(key, { orig: key, repl: `${r}>${l}`, streamTs: now + 2, seenReply: false, assured: false, expires: now + 30, id: skb.ct });
              expect(skb.ctState).toBe(CT_NEW);
              expect(skb.ctDir).toBe(0);
            } else {
              expect(skb.ct).toBe(e.id);
              expect(skb.ctDir).toBe(dir);
              expect(skb.ctState).toBe(dir === 1 || e.seenReply ? CT_ESTABLISHED : CT_NEW);
              if (e.seenReply) {
                if (now > e.streamTs) {
                  e.expires = now + 120;
                  e.assured = true;
                } else e.expires = now + 30;
              } else e.expires = now + 30;
              if (dir === 1) e.seenReply = true;
              expect(ct.expires[e.id]).toBe(e.expires);
            }
          }
          ct.gc(now);
          for (const [k, e] of model) if (now >= e.expires) model.delete(k);
          expect(ct.ids().length).toBe(model.size);
          expect(ct.count).toBe(model.size);
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });

  it('keeps the open-addressing table consistent through inserts, kills, expiry and growth', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ op: fc.integer({ min: 0, max: 9 }), a: fc.integer({ min: 0, max: 40 }), b: fc.integer({ min: 0, max: 5 }), dt: fc.integer({ min: 0, max: 12 }) }), { minLength: 1, maxLength: 300 }),
        (ops) => {
          const ct = new Conntrack({ max: 100000, initialSlots: 16, gcStep: 1 });
          let now = 0;
          for (const o of ops) {
            now += o.dt;
            if (o.op < 7) {
              pass(ct, udp(`10.0.0.${o.a}`, 1000 + o.b, '10.9.0.1', 53), now);
            } else if (o.op < 9) {
              const ids = ct.ids();
              if (ids.length > 0) ct.killEntry(ids[o.a % ids.length]!);
            } else {
              pass(ct, udp('10.9.0.1', 53, `10.0.0.${o.a}`, 1000 + o.b), now); // a reply (or a new flow)
            }
            const bad = ct.checkInvariants(now);
            if (bad) throw new Error(bad);
          }
        },
      ),
      { numRuns: 150, seed: 11 },
    );
  });

  it('early_drop evicts exactly the non-ASSURED entries of the first of 8 kernel buckets holding any', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 120 }), fc.integer(), fc.integer({ min: 1, max: 1000 }), (kb, nflows, h, seed) => {
        const ct = new Conntrack({ max: 100000, buckets: kb, initialSlots: 16 });
        const g = new Prng(seed);
        for (let i = 0; i < nflows; i++) {
          const a = `10.${g.nextInt(0, 3)}.0.${g.nextInt(1, 200)}`;
          const sp = g.nextInt(1, 5000);
          pass(ct, udp(a, sp, '10.9.0.1', 53), 0);
          if (g.nextInt(0, 1) === 1) {
            pass(ct, udp('10.9.0.1', 53, a, sp), 0.5);
            pass(ct, udp(a, sp, '10.9.0.1', 53), 3); // stream: ASSURED
          }
        }
        let expected: number[] = [];
        let b = reciprocalScale(h | 0, kb);
        for (let i = 0; i < 8; i++) {
          if (i > 0) b = (b + 1) % kb;
          expected = ct.kernelBucketIds(b).filter((id) => !(ct.status[id]! & IPS_ASSURED));
          if (expected.length > 0) break;
        }
        const before = ct.ids();
        const dropped = ct.earlyDropForTest(h | 0, 4);
        expect(dropped).toBe(expected.length > 0);
        const after = new Set(ct.ids());
        const gone = before.filter((id) => !after.has(id));
        expect(gone.sort((x, y) => x - y)).toEqual(expected.sort((x, y) => x - y));
        expect(ct.checkInvariants(4)).toBe('');
      }),
      { numRuns: 300, seed: 3 },
    );
  });

  it('is deterministic: the same packets and seed give the same table and the same bytes', () => {
    function run(): string[] {
      const n = new Node({ max: 64, buckets: 16 }, 1234);
      const g = new Prng(99);
      const out: string[] = [];
      let now = 0;
      for (let i = 0; i < 400; i++) {
        now += g.nextInt(0, 3);
        const a = `10.0.0.${g.nextInt(1, 4)}`;
        const b = `10.9.0.${g.nextInt(1, 4)}`;
        const sp = g.nextInt(1000, 1003);
        const k = g.nextInt(0, 4);
        let f: Uint8Array;
        if (k === 0) f = tcp(a, sp, b, 80, 'S', { seq: g.nextU32() });
        else if (k === 1) f = tcp(b, 80, a, sp, 'SA', { seq: g.nextU32(), ack: g.nextU32() });
        else if (k === 2) f = udp(a, sp, b, 53);
        else if (k === 3) f = udp(b, 53, a, sp);
        else f = icmp(a, b, 8, 0, sp);
        const r = n.forward(f, now, { snat: masquerade() });
        out.push(`${r.verdict} ${r.skb.ct} ${r.skb.ctState} ${Buffer.from(r.skb.buf).toString('hex')}`);
      }
      return out.concat(n.ct.dump());
    }
    const a = run();
    const b = run();
    expect(b).toEqual(a);
  });
});
