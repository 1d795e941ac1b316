/**
 * Conntrack versus the number of live connections: the table is filled with N confirmed UDP
 * flows, then
 *  - lookup hit, UDP: packets of random live flows (half of them replies);
 *  - lookup hit, TCP: ACKs of established flows (window tracking), 4,096 of them added to the N;
 *  - lookup miss: a new tuple (an unconfirmed entry is allocated), then abandoned;
 *  - creation: lookup miss + confirm (hashing both tuples); the entry created K creations
 *    earlier is killed, so the table keeps its size.
 * As in the node, one Skb is pointed at each packet in turn and its headers parsed before the
 * lookup, so every figure includes a header parse (the "header parse" stage, about 30–50 ns
 * here). K distinct packets per op (up to 16,384) held in one buffer, their flows spread over
 * the whole table, so a large table pays its cache misses.
 */
import { Conntrack } from '../src/netfilter/conntrack.js';
import { HOOK_PREROUTING, Skb } from '../src/netfilter/skb.js';
import { buildFrame } from '../src/packet/build.js';
import { LINKTYPE_ETHERNET } from '../src/packet/view.js';
import { Prng } from '../src/util/prng.js';
import type { MicroCase } from './measure.js';
import { FrameSet } from './inputs.js';

const BIG = { udp: 1e9, udpStream: 1e9, tcpEstablished: 1e9, tcpUnacknowledged: 1e9, tcpMaxRetrans: 1e9, tcpSynSent: 1e9 };

const UDP = buildFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', ip: { src: '10.0.0.1', dst: '10.1.0.1' }, l4: { kind: 'udp', sport: 1, dport: 53, payload: 'benchmark query bytes' } });
const TCP = buildFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', ip: { src: '10.0.0.1', dst: '10.1.0.1' }, l4: { kind: 'tcp', sport: 1, dport: 80, flags: 'A', seq: 1001, ack: 5001, window: 4000, payload: 'GET / HTTP/1.1\r\n' } });

/** Flow i: 10.(i>>12).(i>>4) : 1024 + i % 60000 → 10.200.(i>>8).(i) : dport (unique for i < 2^24). */
function tuple(i: number): [number, number, number] {
  return [(0x0a000000 | ((i >>> 4) & 0xffffff)) >>> 0, (0x0ac80000 | (i & 0xffff)) >>> 0, 1024 + (i % 60000)];
}

/** A copy of a template with flow i's tuple (reverse: the reply direction) and correct checksums. */
function frame(tpl: Uint8Array, i: number, reverse: boolean): Uint8Array {
  const buf = tpl.slice();
  const dv = new DataView(buf.buffer);
  const [s, d, sp] = tuple(i);
  const dport = buf[23] === 6 ? 80 : 53;
  dv.setUint32(26, reverse ? d : s);
  dv.setUint32(30, reverse ? s : d);
  dv.setUint16(34, reverse ? dport : sp);
  dv.setUint16(36, reverse ? sp : dport);
  fixChecksums(buf, dv);
  return buf;
}

function fixChecksums(buf: Uint8Array, dv: DataView): void {
  const ip = 14;
  const ihl = (buf[ip]! & 15) * 4;
  dv.setUint16(ip + 10, 0);
  let s = 0;
  for (let k = 0; k < ihl; k += 2) s += dv.getUint16(ip + k);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  dv.setUint16(ip + 10, ~s & 0xffff);
  const proto = buf[ip + 9]!;
  const l4 = ip + ihl;
  const l4len = dv.getUint16(ip + 2) - ihl;
  const at = proto === 6 ? 16 : 6;
  dv.setUint16(l4 + at, 0);
  s = dv.getUint16(ip + 12) + dv.getUint16(ip + 14) + dv.getUint16(ip + 16) + dv.getUint16(ip + 18) + proto + l4len;
  for (let k = 0; k + 1 < l4len; k += 2) s += dv.getUint16(l4 + k);
  if (l4len & 1) s += buf[l4 + l4len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  let c = ~s & 0xffff;
  if (proto === 17 && c === 0) c = 0xffff;
  dv.setUint16(l4 + at, c);
}

/** What the node does per packet: point its one Skb at the frame, parse, conntrack lookup. */
function lookup(ct: Conntrack, skb: Skb, fs: FrameSet, k: number): void {
  skb.reset(fs.buf, fs.dv, 0);
  skb.nowSec = 1;
  skb.v.parse(fs.buf, fs.dv, fs.off[k]!, fs.len[k]!, LINKTYPE_ETHERNET);
  skb.hook = HOOK_PREROUTING;
  ct.lookup(skb);
}

export interface ConntrackScale {
  cases: MicroCase[];
  /** Free the table (the next size builds its own). */
  release(): void;
  fillMs: number;
}

export const CT_SERIES = {
  'hit-udp': 'lookup hit, UDP',
  'hit-tcp': 'lookup hit, TCP established (window tracking)',
  miss: 'lookup miss (new unconfirmed entry) + abandon',
  create: 'creation: lookup miss + confirm',
} as const;

export function conntrackCases(n: number): ConntrackScale {
  const K = Math.min(16384, 1 << Math.floor(Math.log2(Math.max(2, n))));
  const KT = Math.min(4096, K);
  let ct: Conntrack | null = new Conntrack({ max: n + KT + 4 * K + 1024, timeouts: BIG });
  const skb = new Skb();
  const t0 = performance.now();
  {
    const buf = frame(UDP, 0, false);
    const dv = new DataView(buf.buffer);
    dv.setUint16(40, 0); // no UDP checksum: conntrack accepts it without summing
    for (let i = 0; i < n; i++) {
      const [s, d, sp] = tuple(i);
      dv.setUint32(26, s);
      dv.setUint32(30, d);
      dv.setUint16(34, sp);
      skb.reset(buf, dv, 0);
      skb.nowSec = 1;
      skb.v.parse(buf, dv, 0, buf.length, LINKTYPE_ETHERNET);
      skb.hook = HOOK_PREROUTING;
      ct.lookup(skb);
      if (!ct.confirm(skb) || skb.ct < 0) throw new Error(`conntrack fill: flow ${i} not confirmed`);
    }
  }
  const fillMs = performance.now() - t0;
  if (ct.count !== n) throw new Error(`conntrack fill: ${ct.count} live entries, expected ${n}`);
  const prng = new Prng(5);
  const label = n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n);

  const hits = new FrameSet(Array.from({ length: K }, (_, k) => frame(UDP, prng.nextU32() % n, (k & 1) === 1)));
  const acks = new FrameSet(Array.from({ length: KT }, (_, k) => frame(TCP, n + K + k, false)));
  for (let k = 0; k < KT; k++) {
    // Loose pickup of an ACK: a new flow, confirmed, then seen again.
    lookup(ct, skb, acks, k);
    if (!ct.confirm(skb) || skb.ct < 0) throw new Error('conntrack: TCP flow not confirmed');
    lookup(ct, skb, acks, k);
  }
  const miss = new FrameSet(Array.from({ length: K }, (_, k) => frame(UDP, n + 2 * K + k, false)));
  const fresh = new FrameSet(Array.from({ length: K }, (_, k) => frame(UDP, n + 3 * K + k, false)));
  const ring = new Int32Array(K).fill(-1);
  let ri = 0;

  const c = ct;
  const mk = (key: keyof typeof CT_SERIES, fn: () => void, per: number): MicroCase => ({
    id: `ct-${key}-${n}`,
    section: 'conntrack',
    name: `${CT_SERIES[key]}, ${label} live`,
    framesPerOp: per,
    bytesPerOp: 0,
    x: n,
    series: key,
    fn,
  });
  const cases = [
    mk(
      'hit-udp',
      () => {
        for (let k = 0; k < K; k++) lookup(c, skb, hits, k);
      },
      K,
    ),
    mk(
      'hit-tcp',
      () => {
        for (let k = 0; k < KT; k++) lookup(c, skb, acks, k);
      },
      KT,
    ),
    mk(
      'miss',
      () => {
        for (let k = 0; k < K; k++) {
          lookup(c, skb, miss, k);
          c.abandon(skb);
        }
      },
      K,
    ),
    mk(
      'create',
      () => {
        for (let k = 0; k < K; k++) {
          const old = ring[ri]!;
          if (old >= 0) c.killEntry(old);
          lookup(c, skb, fresh, k);
          c.confirm(skb);
          ring[ri] = skb.ct;
          ri = (ri + 1) % K;
        }
      },
      K,
    ),
  ];
  // Sanity: a hit finds its flow, a miss does not.
  lookup(c, skb, hits, 0);
  if (skb.ct < 0 || !c.isConfirmed(skb.ct)) throw new Error('conntrack: a live flow was not found');
  lookup(c, skb, miss, 0);
  if (skb.ct >= 0 && c.isConfirmed(skb.ct)) throw new Error('conntrack: a new tuple was found');
  c.abandon(skb);
  return {
    cases,
    fillMs,
    release: () => {
      ct = null;
    },
  };
}
