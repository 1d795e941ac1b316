/**
 * Benchmark cases of the Linux node: the full pipeline (kube-proxy Service DNAT over 3
 * endpoints + MASQUERADE + a 20-rule FORWARD filter), replayed pcap → pcap on one thread.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { genCapture } from '../src/engine/gen.js';
import { replayNode } from '../src/engine/node-replay.js';
import { parseNodeConfig, type NodeConfig } from '../src/elements/linux/config.js';

export interface BenchCase {
  name: string;
  frames: number;
  bytes: number;
  fn: () => void;
}

/** A worker-node-like router: pods on eth0, a Service 172.21.0.10:80 with 3 endpoints behind eth1. */
export function fullPipelineNode(filterRules = 20): NodeConfig {
  const filler: string[] = [];
  for (let i = 0; i < filterRules - 2; i++) filler.push(`-A FORWARD -s 192.168.${i >> 8}.${i & 255}/32 -p tcp --dport ${1000 + i} -j DROP`);
  const text = `name: bench-worker
interfaces:
  - { name: eth0, mac: "02:00:00:00:00:02", addresses: [172.30.0.1/16] }
  - { name: eth1, mac: "02:00:00:00:01:02", addresses: [10.190.12.1/24] }
routes:
  - default via 10.190.12.254 dev eth1
neighbors:
  - 10.190.12.6 lladdr 02:00:00:00:0c:06 dev eth1
  - 10.190.12.7 lladdr 02:00:00:00:0c:07 dev eth1
  - 10.190.12.8 lladdr 02:00:00:00:0c:08 dev eth1
  - 10.190.12.254 lladdr 02:00:00:00:0c:fe dev eth1
iptables: |
  *nat
  :PREROUTING ACCEPT [0:0]
  :INPUT ACCEPT [0:0]
  :OUTPUT ACCEPT [0:0]
  :POSTROUTING ACCEPT [0:0]
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
  return parseNodeConfig(text, 'bench-worker.yaml');
}

export function nodeBenchCases(dir: string, frames: number): BenchCase[] {
  const path = join(dir, `svc-${frames}.pcap`);
  const bytesPath = path + '.bytes';
  if (!existsSync(path) || !existsSync(bytesPath)) {
    // Pods 172.30.x.y → the Service VIP 172.21.0.10:80, 4096 flows (TCP ACKs with data: loose pickup).
    const bytes = genCapture(path, { frames, seed: 11, minLen: 60, maxLen: 100, serverNet: 0xac15000a - 1, servers: 1, ports: [80], udpShare: 0, dstMac: '02:00:00:00:00:02' });
    writeFileSync(bytesPath, String(bytes));
  }
  const bytes = Number(readFileSync(bytesPath, 'utf8'));
  const node = fullPipelineNode(20);
  const out = join(dir, 'svc-out.pcap');
  return [
    {
      name: 'node pipeline: DNAT(3 ep)+MASQUERADE+20-rule filter, pcap->pcap',
      frames,
      bytes,
      fn: () => {
        const r = replayNode({ inPath: path, outPath: out, format: 'pcap', node, seed: 1, comments: false });
        if (r.acct.left !== frames) throw new Error(`node pipeline: ${r.acct.left} of ${frames} frames left: ${JSON.stringify(r.acct.toJSON())}`);
      },
    },
  ];
}
