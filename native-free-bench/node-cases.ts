/**
 * The Linux nodes the benchmarks run, as node files (YAML text: the CLI reads them from disk,
 * the in-process cases parse the same text), and the per-frame node cases: LinuxNode.receive
 * over frames held in memory, with a sink that only counts, so no file I/O is measured.
 *
 * Addresses: clients (pods) 172.30.0.0/16 arrive on eth0, whose MAC is the destination MAC of
 * the generated captures; the node's own eth0 address is outside the clients' range.
 */
import { parseNodeConfig, type NodeConfig } from '../src/elements/linux/config.js';
import { FATE_LEFT, LinuxNode, type FrameSink } from '../src/elements/linux/node.js';
import { LINKTYPE_ETHERNET } from '../src/pcap/types.js';
import { buildFrame } from '../src/packet/build.js';
import { FrameSet } from './inputs.js';
import { kubeServices } from './rules.bench.js';
import type { MicroCase } from './measure.js';

const NAT_HEAD = `  *nat
  :PREROUTING ACCEPT [0:0]
  :INPUT ACCEPT [0:0]
  :OUTPUT ACCEPT [0:0]
  :POSTROUTING ACCEPT [0:0]`;

/**
 * The full node pipeline: a worker-node-like router with a kube-proxy Service
 * 172.21.0.10:80 over 3 endpoints (statistic random, as kube-proxy renders it), MASQUERADE
 * out of eth1, and a 20-rule FORWARD filter (18 rules that do not match, then conntrack
 * ESTABLISHED and NEW accepts; policy DROP).
 */
export function fullPipelineYaml(filterRules = 20): string {
  const filler: string[] = [];
  for (let i = 0; i < filterRules - 2; i++) filler.push(`-A FORWARD -s 192.168.${i >> 8}.${i & 255}/32 -p tcp --dport ${1000 + i} -j DROP`);
  return `name: bench-worker
interfaces:
  - { name: eth0, mac: "02:00:00:00:00:02", addresses: [172.29.0.1/24] }
  - { name: eth1, mac: "02:00:00:00:01:02", addresses: [10.190.12.1/24] }
routes:
  - 172.30.0.0/16 via 172.29.0.254 dev eth0
  - default via 10.190.12.254 dev eth1
neighbors:
  - 172.29.0.254 lladdr 02:00:00:00:1d:fe dev eth0
  - 10.190.12.6 lladdr 02:00:00:00:0c:06 dev eth1
  - 10.190.12.7 lladdr 02:00:00:00:0c:07 dev eth1
  - 10.190.12.8 lladdr 02:00:00:00:0c:08 dev eth1
  - 10.190.12.254 lladdr 02:00:00:00:0c:fe dev eth1
iptables: |
${NAT_HEAD}
  :KUBE-SERVICES - [0:0]
  :KUBE-SVC-BENCH - [0:0]
  :KUBE-SEP-A - [0:0]
  :KUBE-SEP-B - [0:0]
  :KUBE-SEP-C - [0:0]
  -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
  -A POSTROUTING -o eth1 -j MASQUERADE
  -A KUBE-SERVICES -d 172.21.0.10/32 -p tcp -m comment --comment "default/bench:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-BENCH
  -A KUBE-SVC-BENCH -m comment --comment "default/bench:http -> 10.190.12.6:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A
  -A KUBE-SVC-BENCH -m comment --comment "default/bench:http -> 10.190.12.7:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-B
  -A KUBE-SVC-BENCH -m comment --comment "default/bench:http -> 10.190.12.8:80" -j KUBE-SEP-C
  -A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.190.12.6:80
  -A KUBE-SEP-B -p tcp -m tcp -j DNAT --to-destination 10.190.12.7:80
  -A KUBE-SEP-C -p tcp -m tcp -j DNAT --to-destination 10.190.12.8:80
  COMMIT
  *filter
  :INPUT ACCEPT [0:0]
  :FORWARD DROP [0:0]
  :OUTPUT ACCEPT [0:0]
${filler.map((l) => '  ' + l).join('\n')}
  -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  -A FORWARD -i eth0 -o eth1 -p tcp -m conntrack --ctstate NEW -j ACCEPT
  COMMIT
`;
}

/**
 * A two-interface router: eth0 towards the clients (the generated captures' destination MAC),
 * eth1 with address `eth1` (a /24) and a default route via `gw` (`gwMac`); `tail` is appended
 * (an iptables block).
 */
function routerYaml(name: string, eth1: string, gw: string, gwMac: string, tail: string): string {
  return `name: ${name}
interfaces:
  - { name: eth0, mac: "02:00:00:00:00:02", addresses: [172.29.0.1/24] }
  - { name: eth1, mac: "02:00:00:00:01:02", addresses: [${eth1}/24] }
routes:
  - default via ${gw} dev eth1
neighbors:
  - ${gw} lladdr ${gwMac} dev eth1
${tail}`;
}

/**
 * A worker node with kube-proxy's nat table for n Services of 3 endpoints each (kubeServices:
 * 11 rules per Service): what a big cluster's node file costs to load. The generated Service
 * captures go to Service 10 (172.21.0.10:80), which exists for n > 10.
 */
export function kubeNodeYaml(n: number): string {
  const rules = kubeServices(n)
    .split('\n')
    .map((l) => '  ' + l)
    .join('\n');
  return routerYaml(`bench-kube-${n}`, '10.190.12.1', '10.190.12.254', '02:00:00:00:0c:fe', `iptables: |\n${rules}\n`);
}

/** A router with no rules: routing, TTL, MAC rewrite, conntrack. */
export function forwardYaml(iptables = ''): string {
  return routerYaml('bench-router', '10.250.0.1', '10.250.0.254', '02:00:00:00:0f:fe', iptables);
}

/**
 * The rewrite of the tcprewrite comparison: `--dstipmap=${REWRITE.dstMap} --srcipmap=${REWRITE.srcMap}`
 * is, on a Linux router, NETMAP in PREROUTING (destination) and in POSTROUTING (source).
 */
export const REWRITE = {
  dstFrom: '10.0.0.0/24',
  dstTo: '10.190.12.0/24',
  srcFrom: '172.30.0.0/16',
  srcTo: '100.64.0.0/16',
  get dstMap(): string {
    return `${this.dstFrom}:${this.dstTo}`;
  },
  get srcMap(): string {
    return `${this.srcFrom}:${this.srcTo}`;
  },
};

export function rewriteYaml(): string {
  return forwardYaml(`iptables: |
${NAT_HEAD}
  -A PREROUTING -d ${REWRITE.dstFrom} -j NETMAP --to ${REWRITE.dstTo}
  -A POSTROUTING -s ${REWRITE.srcFrom} -j NETMAP --to ${REWRITE.srcTo}
  COMMIT
`);
}

const TUNNEL_NODE = (tunnel: string, route: string, extraNeigh: string): string => `name: bench-tunnel
interfaces:
  - { name: eth0, mac: "02:00:00:00:0e:05", addresses: [10.190.14.5/24] }
  - { name: eth1, mac: "02:00:00:00:00:02", addresses: [172.29.0.1/24] }
tunnels:
  - ${tunnel}
routes:
  - ${route}
  - 172.30.0.0/16 via 172.29.0.254 dev eth1
neighbors:
  - 10.190.14.6 lladdr 02:00:00:00:0e:06 dev eth0
  - 172.29.0.254 lladdr 02:00:00:00:1d:fe dev eth1
${extraNeigh}`;

export const VTEP_MAC = '66:00:00:00:00:05';
export const REMOTE_VTEP_MAC = '66:00:00:00:00:06';

/** Routes 10.0.0.0/24 into vxlan0 (VNI 4096, remote 10.190.14.6) and decapsulates what arrives on UDP 4789. */
export function vxlanYaml(): string {
  return TUNNEL_NODE(
    `{ name: vxlan0, type: vxlan, vni: 4096, local: 10.190.14.5, remote: 10.190.14.6, dstport: 4789, dev: eth0, mac: "${VTEP_MAC}", addresses: [172.31.0.5/32], mtu: 1450 }`,
    '10.0.0.0/24 via 172.31.0.6 dev vxlan0 onlink',
    `  - 172.31.0.6 lladdr ${REMOTE_VTEP_MAC} dev vxlan0\n`,
  );
}

/** Routes 10.0.0.0/24 into tunl0 (outer destination 10.190.14.6) and decapsulates protocol 4. */
export function ipipYaml(): string {
  return TUNNEL_NODE('{ name: tunl0, type: ipip, addresses: [172.31.0.5/32] }', '10.0.0.0/24 via 10.190.14.6 dev tunl0 onlink', '');
}

export function nodeConfig(yaml: string, name: string): NodeConfig {
  return parseNodeConfig(yaml, name);
}

/** VXLAN frames from the remote VTEP 10.190.14.6 to this node, around each inner frame. */
export function vxlanWrap(inner: readonly Uint8Array[]): Uint8Array[] {
  return inner.map((f, i) => {
    const payload = new Uint8Array(8 + f.length);
    payload[0] = 0x08; // I flag
    payload[4] = 0x00;
    payload[5] = 0x10; // VNI 4096 = 0x001000
    payload[6] = 0x00;
    payload.set(f, 8);
    return buildFrame({
      srcMac: '02:00:00:00:0e:06',
      dstMac: '02:00:00:00:0e:05',
      ip: { src: '10.190.14.6', dst: '10.190.14.5', ttl: 64, id: i & 0xffff },
      l4: { kind: 'udp', sport: 32768 + (i % 4096), dport: 4789, payload, noChecksum: true },
    });
  });
}

/** IP-in-IP packets from 10.190.14.6 to this node, around the IPv4 packet of each inner frame. */
export function ipipWrap(inner: readonly Uint8Array[]): Uint8Array[] {
  return inner.map((f, i) =>
    buildFrame({
      srcMac: '02:00:00:00:0e:06',
      dstMac: '02:00:00:00:0e:05',
      ip: { src: '10.190.14.6', dst: '10.190.14.5', ttl: 64, id: i & 0xffff },
      l4: { kind: 'raw', proto: 4, payload: f.subarray(14) },
    }),
  );
}

class CountingSink implements FrameSink {
  frames = 0;
  bytes = 0;
  frame(_buf: Uint8Array, _off: number, len: number): void {
    this.frames++;
    this.bytes += len;
  }
}

/**
 * A per-frame case: every frame of `frames` enters `yaml`'s node on `inIf`; the op is one pass
 * over all of them. Before timing, one pass checks that every frame leaves the node (a
 * misconfigured case would otherwise measure the cost of a drop). The node runs in place, as
 * the engine runs it (it rewrites the input buffer), so each pass first restores the frames
 * from a pristine copy with one bulk copy (included in the figure: ~1–3 ns per frame).
 * `flowMemo` false: every packet walks every table (the node's flow memo is off).
 */
export function nodeCase(id: string, name: string, yaml: string, frameList: readonly Uint8Array[], inIf: string, note?: string, flowMemo = true, passSeconds = 0): MicroCase {
  const node = new LinuxNode(nodeConfig(yaml, `${id}.yaml`), { seed: 1, comments: false, inPlace: true, flowMemo });
  const fs = new FrameSet(frameList);
  const pristine = fs.buf.slice();
  const ifc = node.ifIndex(inIf);
  if (ifc < 0) throw new Error(`${id}: no interface ${inIf}`);
  const sink = new CountingSink();
  // passSeconds > 0: capture time moves on by that much before each pass, so the connections of
  // the previous pass have expired and every pass opens its connections again (churn).
  let now = 1_700_000_000;
  const fsDv = new DataView(fs.buf.buffer, fs.buf.byteOffset, fs.buf.byteLength);
  for (let i = 0; i < fs.count; i++) {
    const fate = node.receive(fs.buf, fsDv, fs.off[i]!, fs.len[i]!, fs.len[i]!, LINKTYPE_ETHERNET, 0, ifc, now, 0, sink);
    if (fate !== FATE_LEFT) throw new Error(`${id}: frame ${i} did not leave the node: ${node.reason}`);
  }
  const { buf, off, len, count } = fs;
  return {
    id,
    section: 'node',
    name,
    framesPerOp: count,
    bytesPerOp: fs.bytes,
    note,
    fn: () => {
      now += passSeconds;
      buf.set(pristine);
      for (let i = 0; i < count; i++) node.receive(buf, fsDv, off[i]!, len[i]!, len[i]!, LINKTYPE_ETHERNET, 0, ifc, now, 0, sink);
    },
  };
}

/** What nodeCase takes, as a structured-cloneable object (for runMicroIsolated). */
export interface NodeCaseSpec {
  id: string;
  name: string;
  yaml: string;
  frames: readonly Uint8Array[];
  inIf: string;
  note?: string;
  flowMemo?: boolean;
  /** Capture time added before each pass (see nodeCase). */
  passSeconds?: number;
}

/** The isolated-worker entry point: the node case of `spec`. */
export function buildCase(spec: NodeCaseSpec): MicroCase {
  return nodeCase(spec.id, spec.name, spec.yaml, spec.frames, spec.inIf, spec.note, spec.flowMemo ?? true, spec.passSeconds ?? 0);
}
