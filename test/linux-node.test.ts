/**
 * The Linux node's own behaviours, beyond what the kernel differential tests cover: IP-in-IP
 * (this kernel has no ipip module, so it is checked against RFC 2003 and tshark), VXLAN and
 * IP-in-IP decapsulation, the drops and their reasons, ICMP errors from routes, reassembly
 * accounting, rpfilter, and the trace.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNodeConfig } from '../src/elements/linux/config.js';
import { FATE_DELIVERED, FATE_DROPPED, FATE_HELD, FATE_LEFT, LinuxNode } from '../src/elements/linux/node.js';
import { buildFrame, buildIpPacket } from '../src/packet/build.js';
import { PacketView, LINKTYPE_ETHERNET, PARSE_OK } from '../src/packet/view.js';
import { ipv4HeaderChecksumOk, l4ChecksumOk } from '../src/packet/checksum.js';
import { Trace } from '../src/netfilter/trace.js';
import { CaptureWriter } from '../src/pcap/writer.js';
import { runTool } from './support/tshark.js';
import { RPF_LOOSE } from '../src/netfilter/env.js';

const NODE = `name: w1
interfaces:
  - { name: eth0, mac: "02:00:00:00:00:01", addresses: [10.0.1.1/24] }
  - { name: eth1, mac: "02:00:00:00:00:02", addresses: [10.0.2.1/24], mtu: 1500 }
tunnels:
  - { name: tunl0, type: ipip, addresses: [172.30.1.0/32] }
  - { name: vxlan0, type: vxlan, vni: 42, local: 10.0.2.1, remote: 10.0.2.2, dstport: 4789, dev: eth1, mac: "02:00:00:00:00:aa", addresses: [192.168.50.1/24] }
routes:
  - 172.30.5.0/26 via 10.0.2.7 dev tunl0 onlink
  - 192.168.60.0/24 via 192.168.50.2 dev vxlan0
  - blackhole 10.99.0.0/16
  - unreachable 10.98.0.0/16
  - prohibit 10.97.0.0/16
neighbors:
  - 10.0.1.10 lladdr 02:00:00:00:01:0a dev eth0
  - 10.0.2.7 lladdr 02:00:00:00:02:07 dev eth1
  - 10.0.2.2 lladdr 02:00:00:00:02:02 dev eth1
  - 192.168.50.2 lladdr 02:00:00:00:50:02 dev vxlan0
`;

interface Out {
  outIf: number;
  bytes: Uint8Array;
}

function run(node: LinuxNode, frame: Uint8Array, inIf: number, trace: Trace | null = null): { fate: number; out: Out[] } {
  const out: Out[] = [];
  const sink = { frame: (b: Uint8Array, off: number, len: number, outIf: number) => out.push({ outIf, bytes: b.slice(off, off + len) }) };
  const fate = node.receive(frame, new DataView(frame.buffer, frame.byteOffset, frame.byteLength), 0, frame.length, frame.length, LINKTYPE_ETHERNET, 0, inIf, 1000, 0, sink, trace);
  return { fate, out };
}

function parse(bytes: Uint8Array): PacketView {
  const v = new PacketView();
  expect(v.parse(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.length, LINKTYPE_ETHERNET)).toBe(PARSE_OK);
  return v;
}

const fromPod = (ip: { src: string; dst: string; ttl?: number; tos?: number; df?: boolean }, l4 = { kind: 'udp' as const, sport: 5000, dport: 53, payload: new Uint8Array(20) }) =>
  buildFrame({ srcMac: '02:00:00:00:01:0a', dstMac: '02:00:00:00:00:01', ip, l4, pad: false });

describe('linux node', () => {
  const cfg = parseNodeConfig(NODE, 'w1.yaml');

  it('encapsulates IP-in-IP as RFC 2003 and tunl0 say: TTL and DF inherited, TOS 0 with ECN, protocol 4', () => {
    const node = new LinuxNode(cfg);
    const { fate, out } = run(node, fromPod({ src: '10.0.1.10', dst: '172.30.5.9', ttl: 30, tos: 0xb9, df: true }), 0);
    expect(fate).toBe(FATE_LEFT);
    expect(out).toHaveLength(1);
    const o = out[0]!;
    expect(o.outIf).toBe(1);
    const v = parse(o.bytes);
    expect(v.ipProto).toBe(4);
    expect(v.srcIp).toBe(0x0a000201); // route-selected source: eth1's address
    expect(v.dstIp).toBe(0x0a000207); // the onlink gateway
    expect(v.ttl).toBe(29); // inherit: the inner TTL after the forwarding decrement
    expect(v.df).toBe(1); // RFC 2003 §3.1: inner DF set => outer DF set
    expect(v.tos).toBe(0x01); // tos 0, ECN bits (ECT(1)) copied
    expect(ipv4HeaderChecksumOk(o.bytes, v.ipOff, v.ipHdrLen)).toBe(true);
    // The inner header: unchanged but for the TTL decrement (and its checksum).
    const inner = new PacketView();
    inner.parse(o.bytes, new DataView(o.bytes.buffer), v.ipOff + 20, v.ipTotalLen - 20, 228);
    expect(inner.ttl).toBe(29);
    expect(inner.tos).toBe(0xb9);
    expect(inner.dstIp).toBe(0xac1e0509);
    expect(ipv4HeaderChecksumOk(o.bytes, inner.ipOff, inner.ipHdrLen)).toBe(true);
    // Ethernet: eth1's MAC to the gateway's.
    expect(Array.from(o.bytes.subarray(0, 12))).toEqual([2, 0, 0, 0, 2, 7, 2, 0, 0, 0, 0, 2]);
  });

  it('writes IP-in-IP and VXLAN frames that tshark decodes with valid checksums', () => {
    const node = new LinuxNode(cfg);
    const frames = [
      ...run(node, fromPod({ src: '10.0.1.10', dst: '172.30.5.9' }), 0).out,
      ...run(node, fromPod({ src: '10.0.1.10', dst: '192.168.60.5' }, { kind: 'tcp', sport: 4000, dport: 80, seq: 1, flags: 'S' } as never), 0).out,
    ];
    expect(frames).toHaveLength(2);
    const dir = mkdtempSync(join(tmpdir(), 'dpemu-node-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'tun.pcapng');
    const w = CaptureWriter.open(path, { format: 'pcapng', interfaces: [{ name: 'eth1', linktype: 1 }] });
    frames.forEach((f, i) => w.writeRecord(f.bytes, 0, f.bytes.length, f.bytes.length, 1, i, 0));
    w.commit();
    const r = runTool('tshark', ['-r', path, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-e', 'frame.protocols', '-e', 'ip.checksum.status', '-e', 'udp.checksum.status', '-e', 'tcp.checksum.status', '-e', 'vxlan.vni', '-e', '_ws.malformed']);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    // Checksum status: 0 bad, 1 good, 2 unverified (tshark's proto_checksum_enum_e).
    const [p0, ip0, udp0, , , mal0] = lines[0]!.split('\t');
    expect(p0).toMatch(/^eth:ethertype:ip:ip:udp/);
    expect([ip0, udp0, mal0]).toEqual(['1,1', '1', '']);
    const [p1, ip1, udp1, tcp1, vni1, mal1] = lines[1]!.split('\t');
    expect(p1).toMatch(/^eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:tcp/);
    expect([ip1, udp1, tcp1, vni1, mal1]).toEqual(['1,1', '1', '1', '42', '']);
  });

  it('decapsulates VXLAN and IP-in-IP addressed to it and forwards the inner packet', () => {
    const node = new LinuxNode(cfg);
    const innerEth = buildFrame({ srcMac: '02:00:00:00:50:02', dstMac: '02:00:00:00:00:aa', ip: { src: '192.168.60.5', dst: '10.0.1.10', ttl: 20 }, l4: { kind: 'udp', sport: 1, dport: 2, payload: new Uint8Array(4) }, pad: false });
    const vx = new Uint8Array(8 + innerEth.length);
    vx[0] = 0x08;
    vx[4] = 0;
    vx[5] = 0;
    vx[6] = 42;
    vx.set(innerEth, 8);
    const outer = buildFrame({ srcMac: '02:00:00:00:02:02', dstMac: '02:00:00:00:00:02', ip: { src: '10.0.2.2', dst: '10.0.2.1' }, l4: { kind: 'udp', sport: 40000, dport: 4789, payload: vx }, pad: false });
    const r1 = run(node, outer, 1);
    expect(r1.fate).toBe(FATE_LEFT);
    expect(r1.out[0]!.outIf).toBe(0);
    expect(parse(r1.out[0]!.bytes).ttl).toBe(19);

    // A wrong VNI is dropped with its reason.
    vx[6] = 43;
    const bad = buildFrame({ srcMac: '02:00:00:00:02:02', dstMac: '02:00:00:00:00:02', ip: { src: '10.0.2.2', dst: '10.0.2.1' }, l4: { kind: 'udp', sport: 40000, dport: 4789, payload: vx }, pad: false });
    const r2 = run(node, bad, 1);
    expect(r2.fate).toBe(FATE_DROPPED);
    expect(node.reason).toMatch(/unknown VNI 43/);

    const innerIp = buildIpPacket({ ip: { src: '172.30.5.9', dst: '10.0.1.10', ttl: 9 }, l4: { kind: 'udp', sport: 1, dport: 2, payload: new Uint8Array(4) } });
    const ipip = buildFrame({ srcMac: '02:00:00:00:02:07', dstMac: '02:00:00:00:00:02', ip: { src: '10.0.2.7', dst: '10.0.2.1', proto: 4 }, l4: { kind: 'raw', proto: 4, payload: innerIp } as never, pad: false });
    const r3 = run(node, ipip, 1);
    expect(r3.fate).toBe(FATE_LEFT);
    expect(parse(r3.out[0]!.bytes).srcIp).toBe(0xac1e0509);
  });

  it('drops with the kernel reason and answers with the ICMP error the route asks for', () => {
    const node = new LinuxNode(cfg);
    const cases: [string, number, RegExp, number | null][] = [
      ['10.99.1.1', FATE_DROPPED, /blackhole/, null],
      ['10.98.1.1', FATE_DROPPED, /unreachable route/, 1],
      ['10.97.1.1', FATE_DROPPED, /prohibit route/, 13],
      ['8.8.8.8', FATE_DROPPED, /no route/, 0],
    ];
    for (const [dst, fate, reason, code] of cases) {
      const r = run(node, fromPod({ src: '10.0.1.10', dst }), 0);
      expect(r.fate, dst).toBe(fate);
      expect(node.reason).toMatch(reason);
      if (code === null) expect(r.out).toHaveLength(0);
      else {
        expect(r.out).toHaveLength(1);
        const v = parse(r.out[0]!.bytes);
        expect([v.icmpType, v.icmpCode]).toEqual([3, code]);
        expect(v.srcIp).toBe(0x0a000101);
        expect(l4ChecksumOk(r.out[0]!.bytes, v.l4Off, v.l4Len, 1, 0, 0)).toBe(true);
      }
    }
    // Not for this host's MAC, VLAN-tagged, bad header checksum, no neighbour.
    const other = buildFrame({ srcMac: '02:00:00:00:01:0a', dstMac: '02:00:00:00:00:99', ip: { src: '10.0.1.10', dst: '10.0.2.7' }, l4: { kind: 'udp', sport: 1, dport: 2 } });
    expect(run(node, other, 0).fate).toBe(FATE_DROPPED);
    expect(node.reason).toMatch(/PACKET_OTHERHOST/);
    const tagged = buildFrame({ srcMac: '02:00:00:00:01:0a', dstMac: '02:00:00:00:00:01', vlan: [100], ip: { src: '10.0.1.10', dst: '10.0.2.7' }, l4: { kind: 'udp', sport: 1, dport: 2 } });
    expect(run(node, tagged, 0).fate).toBe(FATE_DROPPED);
    expect(node.reason).toMatch(/VLAN-tagged/);
    const badSum = fromPod({ src: '10.0.1.10', dst: '10.0.2.7' });
    badSum[24] ^= 0xff;
    expect(run(node, badSum, 0).fate).toBe(FATE_DROPPED);
    expect(node.reason).toMatch(/bad IPv4 header checksum/);
    expect(run(node, fromPod({ src: '10.0.1.10', dst: '10.0.2.8' }), 0).fate).toBe(FATE_DROPPED);
    expect(node.reason).toMatch(/no neighbour entry for 10\.0\.2\.8 on eth1/);
  });

  it('answers pings to its own addresses and delivers other local traffic', () => {
    const node = new LinuxNode(cfg);
    const ping = fromPod({ src: '10.0.1.10', dst: '10.0.1.1', tos: 0x10 }, { kind: 'icmp', type: 8, code: 0, id: 7, seq: 1, payload: new Uint8Array(16).fill(0xab) } as never);
    const r = run(node, ping, 0);
    expect(r.fate).toBe(FATE_DELIVERED);
    expect(r.out).toHaveLength(1);
    const v = parse(r.out[0]!.bytes);
    expect([v.icmpType, v.icmpId, v.srcIp, v.dstIp, v.ttl, v.tos, v.df]).toEqual([0, 7, 0x0a000101, 0x0a00010a, 64, 0x10, 0]);
    expect(run(node, fromPod({ src: '10.0.1.10', dst: '10.0.2.1' }), 0).fate).toBe(FATE_DELIVERED);
  });

  it('holds fragments until their datagram is complete, then forwards it and accounts them together', () => {
    const node = new LinuxNode(cfg);
    const whole = buildIpPacket({ ip: { src: '10.0.1.10', dst: '10.0.2.7', id: 77 }, l4: { kind: 'udp', sport: 1, dport: 2, payload: new Uint8Array(100).fill(1) } });
    const payload = whole.subarray(20);
    const frag = (off: number, end: number, mf: boolean) =>
      buildFrame({ srcMac: '02:00:00:00:01:0a', dstMac: '02:00:00:00:00:01', ip: { src: '10.0.1.10', dst: '10.0.2.7', id: 77, mf, fragOffset: off, proto: 17 }, l4: { kind: 'raw', proto: 17, payload: payload.subarray(off, end) } as never, pad: false });
    expect(run(node, frag(0, 64, true), 0).fate).toBe(FATE_HELD);
    const r = run(node, frag(64, 108, false), 0);
    expect(r.fate).toBe(FATE_LEFT);
    expect(node.absorbed).toBe(1);
    expect(r.out).toHaveLength(2); // re-fragmented at the largest fragment received (84 bytes)
    expect(r.out.map((o) => parse(o.bytes).ipTotalLen)).toEqual([84, 64]);
  });

  it('picks the ingress interface by destination MAC among its Ethernet interfaces only', () => {
    const node = new LinuxNode(parseNodeConfig(NODE, 'n.yaml'));
    const at = (mac: string): number => {
      const b = new Uint8Array(8);
      b.set(mac.split(':').map((x) => parseInt(x, 16)), 2);
      return node.ifByMac(b, 2);
    };
    expect(at('02:00:00:00:00:01')).toBe(node.ifIndex('eth0'));
    expect(at('02:00:00:00:00:02')).toBe(node.ifIndex('eth1'));
    expect(at('02:00:00:00:00:aa')).toBe(-1); // vxlan0's MAC: frames arrive on it only decapsulated
    expect(at('02:00:00:00:00:03')).toBe(-1);
    expect(at('82:00:00:00:00:01')).toBe(-1); // high bit of the first byte (int32 sign) differs
  });

  it('implements rpfilter: strict through the incoming interface, loose through any', () => {
    const node = new LinuxNode(cfg);
    expect(node.rpfilter(0x0a00010a, 0x0a000201, 0, 0, 0)).toBe(true);
    expect(node.rpfilter(0x0a00010a, 0x0a000201, 1, 0, 0)).toBe(false);
    expect(node.rpfilter(0x0a00010a, 0x0a000201, 1, 0, RPF_LOOSE)).toBe(true);
    expect(node.rpfilter(0x08080808, 0x0a000201, 0, 0, RPF_LOOSE)).toBe(false);
  });

  it('traces every step with the rule that decided', () => {
    const withRules = parseNodeConfig(
      NODE +
        `iptables: |
  *filter
  :INPUT ACCEPT [0:0]
  :FORWARD ACCEPT [0:0]
  :OUTPUT ACCEPT [0:0]
  -A FORWARD -p udp --dport 53 -m comment --comment "no dns" -j DROP
  COMMIT
`,
      'w1.yaml',
    );
    const node = new LinuxNode(withRules);
    const t = new Trace();
    const r = run(node, fromPod({ src: '10.0.1.10', dst: '10.0.2.7' }), 0, t);
    expect(r.fate).toBe(FATE_DROPPED);
    const text = t.toString();
    expect(text).toMatch(/PREROUTING in eth0/);
    expect(text).toMatch(/conntrack/);
    expect(text).toMatch(/FORWARD eth0 -> eth1/);
    expect(text).toMatch(/filter\/FORWARD rule 1 \(line 24\)/);
    expect(text).toMatch(/no dns/);
    expect(node.reason).toMatch(/filter\/FORWARD rule 1 \(line 24\): DROP "no dns"/);
  });
});

void writeFileSync;
