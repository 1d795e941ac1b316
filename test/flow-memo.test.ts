/**
 * The flow memo (src/elements/linux/flow-memo.ts) must never change what a node does: the same
 * frames through a node with the memo and through one without give byte-identical output frames
 * on the same interfaces with the same comments, and the same fate and reason for every input.
 * Random traffic (seeded) over configurations that mix pure rules with every kind of rule that
 * must defeat the memo (TCP flags, statistic nth/random, recent), marks from raw and mangle,
 * REJECT, MASQUERADE and DNAT with replies, TTL expiry, MTU (fragmentation and frag-needed),
 * bad checksums and connection churn (RST, FIN, expiry by capture time).
 */
import { describe, expect, it } from 'vitest';
import { parseNodeConfig } from '../src/elements/linux/config.js';
import { LinuxNode } from '../src/elements/linux/node.js';
import { buildFrame } from '../src/packet/build.js';
import { LINKTYPE_ETHERNET, PacketView, PARSE_OK } from '../src/packet/view.js';
import { Prng } from '../src/util/prng.js';

const NAT_HEAD = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]`;

/** Clients 172.30.0.0/24 on eth0; servers 10.190.12.0/24 on eth1 (MTU 1000); a Service VIP 172.21.0.10. */
function nodeYaml(filter: string, extra = '', nat = ''): string {
  return `name: memo
interfaces:
  - { name: eth0, mac: "02:00:00:00:00:02", addresses: [172.29.0.1/24] }
  - { name: eth1, mac: "02:00:00:00:01:02", addresses: [10.190.12.1/24], mtu: 1000 }
routes:
  - 172.30.0.0/16 via 172.29.0.254 dev eth0
  - default via 10.190.12.254 dev eth1
neighbors:
  - 172.29.0.254 lladdr 02:00:00:00:1d:fe dev eth0
  - 10.190.12.254 lladdr 02:00:00:00:0c:fe dev eth1
  - 10.190.12.6 lladdr 02:00:00:00:0c:06 dev eth1
  - 10.190.12.7 lladdr 02:00:00:00:0c:07 dev eth1
sysctls: { net.netfilter.nf_conntrack_max: 48 }
iptables: |
${[
  '*raw',
  ':PREROUTING ACCEPT [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  '-A PREROUTING -i eth0 -p udp --dport 53 -j MARK --set-xmark 0x10/0xff',
  'COMMIT',
  '*mangle',
  ':PREROUTING ACCEPT [0:0]',
  ':INPUT ACCEPT [0:0]',
  ':FORWARD ACCEPT [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  ':POSTROUTING ACCEPT [0:0]',
  '-A PREROUTING -m conntrack --ctstate NEW -j MARK --or-mark 0x100',
  '-A FORWARD -m mark --mark 0x10/0xff -j MARK --or-mark 0x200',
  'COMMIT',
  ...NAT_HEAD.split('\n'),
  ':KUBE-SVC - [0:0]',
  ...(nat ? nat.split('\n') : []),
  '-A PREROUTING -d 172.21.0.10/32 -p tcp --dport 80 -j KUBE-SVC',
  '-A PREROUTING -d 172.21.0.10/32 -p udp --dport 53 -j DNAT --to-destination 10.190.12.7:5353',
  '-A KUBE-SVC -p tcp -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.190.12.6:8080',
  '-A KUBE-SVC -p tcp -j DNAT --to-destination 10.190.12.7:8080',
  '-A POSTROUTING -o eth1 -j MASQUERADE',
  'COMMIT',
  '*filter',
  ':INPUT ACCEPT [0:0]',
  ':FORWARD DROP [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  ...filter.split('\n'),
  'COMMIT',
]
  .map((l) => '  ' + l)
  .join('\n')}
${extra}`;
}

const FILTERS: Record<string, string> = {
  /** Only pure matches: the memo serves most packets. */
  pure: [
    '-A FORWARD -p tcp --dport 25 -j REJECT --reject-with tcp-reset',
    '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A FORWARD -m mark --mark 0x200/0x200 -j ACCEPT',
    '-A FORWARD -i eth0 -o eth1 -m conntrack --ctstate NEW -j ACCEPT',
  ].join('\n'),
  /** Per-packet and stateful matches on the path of established packets. */
  impure: [
    '-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST,ACK,FIN SYN -m conntrack --ctstate ESTABLISHED -j DROP',
    '-A FORWARD -p udp -m statistic --mode nth --every 7 --packet 3 -j DROP',
    '-A FORWARD -p tcp --dport 8080 -m recent --name seen --set --rsource',
    '-A FORWARD -p tcp --sport 8080 -m statistic --mode random --probability 0.1 -j REJECT',
    '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A FORWARD -i eth0 -o eth1 -m conntrack --ctstate NEW -j ACCEPT',
  ].join('\n'),
  /**
   * Rules whose outcome differs between a connection's first packet and the next ones (the nat
   * chains run for the first only): a mark set in the nat table (kube-proxy's KUBE-MARK-MASQ), and
   * the status bits, SNAT/DNAT states and reply tuple that NAT set-up and confirmation change.
   */
  natSensitive: [
    '-A FORWARD -p tcp --dport 25 -j REJECT --reject-with tcp-reset',
    '-A FORWARD -m mark --mark 0x4000/0x4000 -p udp -j ACCEPT',
    '-A FORWARD -p udp -s 172.30.0.2 -m conntrack --ctstate SNAT -j DROP',
    '-A FORWARD -p tcp --dport 8080 -m conntrack --ctstatus CONFIRMED -j REJECT',
    '-A FORWARD -p tcp -s 172.30.0.3 -m conntrack --ctrepldst 10.190.12.1 -j DROP',
    '-A FORWARD -p tcp -s 172.30.0.4 -m conntrack --ctstate DNAT -j DROP',
    '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A FORWARD -i eth0 -o eth1 -m conntrack --ctstate NEW -j ACCEPT',
].join('\n'),
};

/** nat rules of the natSensitive case (before the Service rules). */
const NAT_SENSITIVE = '-A PREROUTING -p udp --dport 53 -m statistic --mode nth --every 2 -j MARK --set-xmark 0x4000/0x4000';

interface Flow {
  udp: boolean;
  client: number;
  sport: number;
  dst: number;
  dport: number;
  seq: number;
  ack: number;
  /** The last frame the reference node sent for this flow on eth1 (the server side sees it). */
  seen: PacketView | null;
}

const ip = (s: string): number => s.split('.').reduce((a, b) => a * 256 + Number(b), 0);

function makeFlows(rng: Prng, n: number): Flow[] {
  const flows: Flow[] = [];
  for (let i = 0; i < n; i++) {
    const udp = rng.nextFloat() < 0.3;
    const svc = rng.nextFloat() < 0.5;
    flows.push({
      udp,
      // Few clients and ports: MASQUERADE clashes and port reuse after RST/expiry happen.
      client: ip('172.30.0.0') + 1 + rng.nextInt(0, 5),
      sport: 40000 + rng.nextInt(0, 8),
      dst: svc ? ip('172.21.0.10') : ip('10.190.12.6') + rng.nextInt(0, 1),
      dport: udp ? 53 : svc ? 80 : [80, 25, 8080][rng.nextInt(0, 2)]!,
      seq: rng.nextU32(),
      ack: rng.nextU32(),
      seen: null,
    });
  }
  return flows;
}

const TCP_FLAGS = ['S', 'A', 'A', 'A', 'PA', 'PA', 'FA', 'R', 'SA'];

/** One frame of traffic: a client packet, or a server reply to what the node last forwarded. */
function nextFrame(rng: Prng, f: Flow): { frame: Uint8Array; inIf: string } {
  const size = rng.nextFloat() < 0.05 ? rng.nextInt(1000, 1400) : rng.nextInt(0, 60);
  const payload = new Uint8Array(size);
  for (let k = 0; k < size; k++) payload[k] = rng.nextU32() & 255;
  const ttl = rng.nextFloat() < 0.03 ? 1 : 64;
  const df = rng.nextFloat() < 0.5;
  const corrupt = rng.nextFloat() < 0.02;
  // A reply comes from the server side (eth1) to what the node last forwarded for this flow.
  const s = f.seen !== null && rng.nextFloat() < 0.4 ? f.seen : null;
  const flags = f.udp ? '' : s !== null ? TCP_FLAGS[rng.nextInt(1, TCP_FLAGS.length - 1)]! : TCP_FLAGS[rng.nextInt(0, TCP_FLAGS.length - 2)]!;
  const [src, dst, sport, dport, seq, ack] = s !== null ? [s.dstIp, s.srcIp, s.dstPort, s.srcPort, f.ack, f.seq] : [f.client, f.dst, f.sport, f.dport, f.seq, f.ack];
  const frame = buildFrame({
    srcMac: s !== null ? '02:00:00:00:0c:fe' : '02:00:00:00:1d:fe',
    dstMac: s !== null ? '02:00:00:00:01:02' : '02:00:00:00:00:02',
    ip: { src, dst, ttl, df },
    l4: f.udp ? { kind: 'udp', sport, dport, payload } : { kind: 'tcp', sport, dport, seq, ack, flags, payload },
  });
  const inIf = s !== null ? 'eth1' : 'eth0';
  const advance = size + (flags.includes('S') || flags.includes('F') ? 1 : 0);
  if (!f.udp && s !== null) f.ack = (f.ack + advance) >>> 0;
  else if (!f.udp) f.seq = (f.seq + advance) >>> 0;
  // UDP without a checksum (0, RFC 768): NAT must leave it 0.
  if (f.udp && rng.nextFloat() < 0.2) frame[14 + 20 + 6] = frame[14 + 20 + 7] = 0;
  if (corrupt) frame[frame.length - 1] ^= 0x5a; // bad L4 checksum (or payload byte of a UDP 0-checksum)
  return { frame, inIf };
}

interface Sent {
  outIf: number;
  bytes: number[];
  comments: string;
}

function walk(node: LinuxNode, frame: Uint8Array, inIf: number, now: number): { fate: number; reason: string; sent: Sent[] } {
  const sent: Sent[] = [];
  const sink = {
    frame: (b: Uint8Array, off: number, len: number, outIf: number, comments: readonly string[] | null) =>
      sent.push({ outIf, bytes: Array.from(b.subarray(off, off + len)), comments: (comments ?? []).join(' | ') }),
  };
  // In place, as the engine runs it: the node may rewrite this copy.
  const copy = frame.slice();
  const fate = node.receive(copy, new DataView(copy.buffer), 0, copy.length, copy.length, LINKTYPE_ETHERNET, 0, inIf, Math.floor(now), Math.round((now - Math.floor(now)) * 1e6) * 1000, sink);
  return { fate, reason: node.reason, sent };
}

function compare(filter: string, seed: number, frames: number): { hits: number; stores: number; freed: number } {
  const cfg = parseNodeConfig(nodeYaml(FILTERS[filter]!, '', filter === 'natSensitive' ? NAT_SENSITIVE : ''), `${filter}.yaml`);
  const withMemo = new LinuxNode(cfg, { seed: 5, comments: true, inPlace: true });
  const without = new LinuxNode(cfg, { seed: 5, comments: true, inPlace: true, flowMemo: false });
  let freed = 0;
  const forget = withMemo.ct.onFree!;
  withMemo.ct.onFree = (id) => {
    freed++;
    forget(id);
  };
  const rng = new Prng(seed);
  const flows = makeFlows(rng, 40);
  let now = 1_700_000_000;
  for (let i = 0; i < frames; i++) {
    const f = flows[rng.nextInt(0, flows.length - 1)]!;
    const { frame, inIf } = nextFrame(rng, f);
    // Mostly close together; now and then a long gap that expires UDP and unreplied TCP entries.
    now += rng.nextFloat() < 0.01 ? 400 : rng.nextFloat() * 0.01;
    const ifc = withMemo.ifIndex(inIf);
    const a = walk(withMemo, frame, ifc, now);
    const b = walk(without, frame, ifc, now);
    const where = `${filter} seed ${seed} frame ${i}`;
    expect(a.fate, where).toBe(b.fate);
    expect(a.reason, where).toBe(b.reason);
    expect(a.sent, where).toEqual(b.sent);
    for (const s of b.sent) {
      if (s.outIf !== cfg.interfaces.findIndex((x) => x.name === 'eth1')) continue;
      const v = new PacketView();
      const bytes = Uint8Array.from(s.bytes);
      if (v.parse(bytes, new DataView(bytes.buffer), 0, bytes.length, LINKTYPE_ETHERNET) === PARSE_OK && v.ipProto === (f.udp ? 17 : 6) && v.mf === 0 && v.fragOffset === 0) f.seen = v;
    }
  }
  return { hits: withMemo.memo!.hits, stores: withMemo.memo!.stores, freed };
}

describe('flow memo', () => {
  it('changes nothing on pure rule sets, and serves packets of established flows', () => {
    let hits = 0;
    for (const seed of [1, 2, 3]) hits += compare('pure', seed, 3000).hits;
    // This traffic is churny (flags at random, many INVALID): ~18 % of the frames are hits.
    expect(hits).toBeGreaterThan(1000);
  });

  it('changes nothing when established packets meet TCP flags, statistic and recent matches', () => {
    let stores = 0;
    for (const seed of [4, 5, 6]) stores += compare('impure', seed, 3000).stores;
    // Every forwarded packet evaluates one of them (TCP: the flags rule, UDP: nth): none is kept.
    expect(stores).toBe(0);
  });

  it("serves a connection's second packet from its first packet's walk (NAT set up on it)", () => {
    // Three packets of one Service connection (DNAT by statistic random, MASQUERADE): the first
    // walks every table and is kept, the next two come from the memo, with the walk's bytes.
    const cfg = parseNodeConfig(nodeYaml(FILTERS.pure!), 'first.yaml');
    const withMemo = new LinuxNode(cfg, { seed: 5, comments: true, inPlace: true });
    const without = new LinuxNode(cfg, { seed: 5, comments: true, inPlace: true, flowMemo: false });
    const f: Flow = { udp: false, client: ip('172.30.0.9'), sport: 40001, dst: ip('172.21.0.10'), dport: 80, seq: 1, ack: 0, seen: null };
    const ifc = withMemo.ifIndex('eth0');
    let now = 1_700_000_000;
    for (const flags of ['S', 'S', 'S']) {
      const frame = buildFrame({
        srcMac: '02:00:00:00:1d:fe',
        dstMac: '02:00:00:00:00:02',
        ip: { src: f.client, dst: f.dst, ttl: 64 },
        l4: { kind: 'tcp', sport: f.sport, dport: f.dport, seq: f.seq, ack: 0, flags, payload: new Uint8Array(0) },
      });
      now += 1;
      const a = walk(withMemo, frame, ifc, now);
      const b = walk(without, frame, ifc, now);
      expect(a).toEqual(b);
      expect(a.sent.length).toBe(1);
    }
    expect(withMemo.memo!.stores).toBe(1);
    expect(withMemo.memo!.hits).toBe(2);
  });

  it('keeps the walks of first packets only when the next packets would walk the same way', () => {
    let stores = 0;
    for (const seed of [8, 9, 10]) stores += compare('natSensitive', seed, 3000).stores;
    expect(stores).toBeGreaterThan(20);
  });

  it('stays exact while conntrack entry ids are reused by other connections', () => {
    // nf_conntrack_max 48 with 40 flows, RSTs and expiry gaps: ids are recycled constantly.
    const r = compare('pure', 7, 6000);
    expect(r.freed).toBeGreaterThan(200);
    expect(r.stores).toBeGreaterThan(40);
  });
});
