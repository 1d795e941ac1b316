/**
 * Quick micro-benchmark of conntrack and NAT: ns per operation and heap bytes allocated per
 * operation, with 1k and 1M live entries. Build and run:
 *
 *   npx tsc --outDir /tmp/ctb --rootDir . --module NodeNext --moduleResolution NodeNext \
 *     --target ES2022 --strict --skipLibCheck --types node scripts/bench-conntrack.ts
 *   echo '{"type":"module"}' > /tmp/ctb/package.json; ln -s "$PWD/node_modules" /tmp/ctb/
 *   node --expose-gc /tmp/ctb/scripts/bench-conntrack.js
 *
 * As in the element, one Skb is re-pointed at each packet: per iteration the flow's addresses
 * and ports are written into one hot packet buffer and the view re-parsed; that loop is timed
 * alone and subtracted ("baseline"), so the figures are conntrack/NAT's own cost with a cold
 * table and a hot packet. Flows are visited in random order.
 */
import { buildFrame } from '../src/packet/build.js';
import { LINKTYPE_ETHERNET } from '../src/packet/view.js';
import { Conntrack } from '../src/netfilter/conntrack.js';
import { Nat } from '../src/netfilter/nat.js';
import { HOOK_POSTROUTING, HOOK_PREROUTING, NAT_MANIP_DST, NAT_MANIP_SRC, NatRange, NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED, Skb } from '../src/netfilter/skb.js';
import type { NetfilterEnv } from '../src/netfilter/env.js';
import { Prng } from '../src/util/prng.js';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

const env: NetfilterEnv = { interfaceNames: ['eth0', 'eth1'], addrType: () => 2, masqueradeAddress: () => 0x0a000005 };

const mac = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };
const UDP_TEMPLATE = buildFrame({ ...mac, ip: { src: '10.0.0.1', dst: '10.1.0.1' }, l4: { kind: 'udp', sport: 1, dport: 53, payload: 'benchmark!', noChecksum: true } });
const TCP_TEMPLATE = buildFrame({ ...mac, ip: { src: '10.0.0.1', dst: '10.1.0.1' }, l4: { kind: 'tcp', sport: 1, dport: 80, flags: 'A', seq: 1001, ack: 5001, window: 4000 } });

/** Flow i: 10.x.y.z:(1024 + i % 60000) → 172.20.x.y:dport (addresses above 2^31 included). */
function flowSrc(i: number): number {
  return (0x0a000000 | ((i >>> 4) & 0xffffff)) >>> 0;
}
function flowDst(i: number): number {
  return (0xac140000 | (i & 0xffff)) >>> 0;
}
function flowSport(i: number): number {
  return 1024 + (i % 60000);
}

/** One hot packet, re-pointed at flow i each time. */
class Packet {
  readonly buf: Uint8Array;
  readonly dv: DataView;
  readonly skb = new Skb();
  readonly tcp: boolean;
  constructor(tpl: Uint8Array) {
    this.buf = tpl.slice();
    this.dv = new DataView(this.buf.buffer);
    this.tcp = this.buf[23] === 6;
  }
  /** Write flow i (reply direction if rev) with destination port dport; parse; reset the Skb. */
  set(i: number, rev: boolean, dport: number, now: number): Skb {
    const dv = this.dv;
    const s = flowSrc(i);
    const d = flowDst(i);
    const sp = flowSport(i);
    dv.setUint32(26, rev ? d : s);
    dv.setUint32(30, rev ? s : d);
    dv.setUint16(34, rev ? dport : sp);
    dv.setUint16(36, rev ? sp : dport);
    if (this.tcp) fixTcp(this.buf, dv);
    const skb = this.skb;
    skb.reset(this.buf, dv, 0, now);
    skb.v.parse(this.buf, dv, 0, this.buf.length, LINKTYPE_ETHERNET);
    return skb;
  }
}

/** Full TCP checksum (the benchmark's TCP packets must pass nf_conntrack_checksum). */
function fixTcp(buf: Uint8Array, dv: DataView): void {
  const ipOff = 14;
  const len = dv.getUint16(ipOff + 2) - 20;
  dv.setUint16(ipOff + 20 + 16, 0);
  const src = dv.getUint32(ipOff + 12);
  const dst = dv.getUint32(ipOff + 16);
  let sum = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + 6 + len;
  for (let k = 0; k < len; k += 2) sum += (buf[ipOff + 20 + k]! << 8) | (k + 1 < len ? buf[ipOff + 21 + k]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  dv.setUint16(ipOff + 20 + 16, ~sum & 0xffff);
}

/**
 * Runs body, prints ns/op of CPU time (user + system: the machine may be shared, and CPU time
 * does not count the time this process waits for a core) minus `baselineNs`, and heap B/op.
 */
function time(label: string, ops: number, body: () => void, baselineNs = 0): number {
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  body();
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  const h1 = process.memoryUsage().heapUsed;
  const ns = ((c1.user + c1.system) * 1000) / ops;
  const wall = Number(t1 - t0) / ops;
  const own = ns - baselineNs;
  console.log(
    `  ${label.padEnd(48)} ${own.toFixed(0).padStart(6)} ns/op${baselineNs ? ` (${ns.toFixed(0)} - baseline)` : ''}   wall ${wall.toFixed(0)} ns/op   heap ${((h1 - h0) / ops).toFixed(2)} B/op`,
  );
  return ns;
}

function bench(n: number): void {
  console.log(`\n== ${n} live entries ==`);
  const big = { udp: 1e9, udpStream: 1e9, tcpEstablished: 1e9, tcpUnacknowledged: 1e9, tcpMaxRetrans: 1e9, tcpSynSent: 1e9 };
  const ct = new Conntrack({ max: n + 400000, timeouts: big });
  const pk = new Packet(UDP_TEMPLATE);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const skb = pk.set(i, false, 53, 0);
    ct.lookup(skb);
    ct.confirm(skb);
  }
  console.log(`  filled in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms (${ct.count} entries, ${ct.buckets} buckets)`);
  const OPS = 2_000_000;
  const prng = new Prng(1);
  const order = new Int32Array(1 << 20);
  for (let k = 0; k < order.length; k++) order[k] = prng.nextInt(0, n - 1);
  const M = order.length - 1;

  const base = time('baseline: write flow into the packet + parse', OPS, () => {
    for (let i = 0; i < OPS; i++) pk.set(order[i & M]!, (i & 1) === 1, 53, 1);
  });
  time('lookup hit (UDP, either direction)', OPS, () => {
    for (let i = 0; i < OPS; i++) ct.lookup(pk.set(order[i & M]!, (i & 1) === 1, 53, 1));
  }, base);
  time('lookup miss (new tuple → unconfirmed) + abandon', OPS, () => {
    for (let i = 0; i < OPS; i++) {
      const skb = pk.set(order[i & M]!, false, 5353, 1);
      ct.lookup(skb);
      ct.abandon(skb);
    }
  }, base);
  // Creation: lookup miss + confirm; the entry made RM creations ago is killed (size held).
  const RM = (n >= 1 << 16 ? 1 << 16 : 1 << 9) - 1;
  const ring = new Int32Array(RM + 1).fill(-1);
  const CR = 1_000_000;
  time('create (lookup miss + confirm) + 1 kill', CR, () => {
    for (let i = 0; i < CR; i++) {
      const old = ring[i & RM]!;
      if (old >= 0) ct.killEntry(old);
      const skb = pk.set(n + 200000 + (i % 900000), false, 5353, 1);
      ct.lookup(skb);
      ct.confirm(skb);
      ring[i & RM] = skb.ct;
    }
  }, base);
  for (let k = 0; k < ring.length; k++) if (ring[k]! >= 0) ct.killEntry(ring[k]!);

  // TCP: established flows (handshake each), then ACKs of random flows.
  const tp = new Packet(TCP_TEMPLATE);
  const T = Math.min(n, 100000);
  for (let k = 0; k < T; k++) {
    const i = 2_000_000 + k;
    let skb = tp.set(i, false, 80, 1);
    tp.buf[47] = 0x02; // SYN
    tp.dv.setUint32(38, 1000);
    tp.dv.setUint32(42, 0);
    skb = tp.set(i, false, 80, 1);
    ct.lookup(skb);
    ct.confirm(skb);
    tp.buf[47] = 0x12; // SYN-ACK
    tp.dv.setUint32(38, 5000);
    tp.dv.setUint32(42, 1001);
    ct.lookup(tp.set(i, true, 80, 1));
    tp.buf[47] = 0x10; // ACK
    tp.dv.setUint32(38, 1001);
    tp.dv.setUint32(42, 5001);
    ct.lookup(tp.set(i, false, 80, 1));
  }
  const tbase = time('baseline: TCP packet (incl. full checksum) + parse', OPS, () => {
    for (let i = 0; i < OPS; i++) tp.set(2_000_000 + (order[i & M]! % T), false, 80, 1);
  });
  time('lookup hit (TCP ACK, window tracking, checksum)', OPS, () => {
    for (let i = 0; i < OPS; i++) ct.lookup(tp.set(2_000_000 + (order[i & M]! % T), false, 80, 1));
  }, tbase);

  // DNAT rewrite: flows DNATed to 10.190.12.6:8080; apply(DST) on original-direction packets.
  const nat = new Nat(ct, env, new Prng(2));
  const r = new NatRange();
  r.manip = NAT_MANIP_DST;
  r.flags = NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED;
  r.minIp = r.maxIp = 0x0abe0c06;
  r.minPort = r.maxPort = 8080;
  const D = Math.min(n, 100000);
  const dp = new Packet(UDP_TEMPLATE);
  for (let k = 0; k < D; k++) {
    const skb = dp.set(3_000_000 + k, false, 80, 1);
    skb.hook = HOOK_PREROUTING;
    ct.lookup(skb);
    skb.natRange.set(r);
    skb.natRangeSet = true;
    nat.setup(skb, NAT_MANIP_DST);
    nat.apply(skb, NAT_MANIP_DST);
    skb.hook = HOOK_POSTROUTING;
    skb.natRangeSet = false;
    nat.setup(skb, NAT_MANIP_SRC);
    ct.confirm(skb);
  }
  const dbase = time('baseline: lookup hit of a DNATed flow', OPS, () => {
    for (let i = 0; i < OPS; i++) ct.lookup(dp.set(3_000_000 + (order[i & M]! % D), false, 80, 1));
  });
  time('DNAT rewrite (nat.apply: IP + port + checksums)', OPS, () => {
    for (let i = 0; i < OPS; i++) {
      const skb = dp.set(3_000_000 + (order[i & M]! % D), false, 80, 1);
      ct.lookup(skb);
      nat.apply(skb, NAT_MANIP_DST);
    }
  }, dbase);
}

console.log(`node ${process.version}`);
bench(1000);
bench(1_000_000);
