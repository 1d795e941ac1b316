/** Helpers of the engine tests (test/engine-*.test.ts). */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { genCapture } from '../../src/engine/gen.js';
import { CaptureReader } from '../../src/pcap/reader.js';
import { RecordBatch } from '../../src/pcap/types.js';
import { CLI, ROOT } from './cli.js';

export { CLI, ROOT };

export interface Run {
  status: number;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** `dpemu ARGS` (the build), with extra environment and standard input. */
export function dpemuRun(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: Buffer; timeout?: number } = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    input: opts.input,
    env: { ...process.env, ...opts.env },
    maxBuffer: 512 << 20,
    timeout: opts.timeout ?? 120_000,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, signal: r.signal, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** The same, asynchronously (for tests that send signals). */
export function dpemuSpawn(args: string[], env?: NodeJS.ProcessEnv): ReturnType<typeof spawn> {
  return spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * A kube-proxy-like worker node (as the benchmarks' full pipeline): a Service over 3 endpoints
 * chosen by `statistic --mode random` (the seed matters), MASQUERADE, a FORWARD filter.
 */
export function serviceNodeYaml(): string {
  return `name: engine-worker
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
  *nat
  :PREROUTING ACCEPT [0:0]
  :INPUT ACCEPT [0:0]
  :OUTPUT ACCEPT [0:0]
  :POSTROUTING ACCEPT [0:0]
  :KUBE-SERVICES - [0:0]
  :KUBE-SVC-X - [0:0]
  :KUBE-SEP-A - [0:0]
  :KUBE-SEP-B - [0:0]
  :KUBE-SEP-C - [0:0]
  -A PREROUTING -j KUBE-SERVICES
  -A POSTROUTING -o eth1 -j MASQUERADE
  -A KUBE-SERVICES -d 172.21.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X
  -A KUBE-SVC-X -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A
  -A KUBE-SVC-X -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-B
  -A KUBE-SVC-X -j KUBE-SEP-C
  -A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.190.12.6:80
  -A KUBE-SEP-B -p tcp -m tcp -j DNAT --to-destination 10.190.12.7:80
  -A KUBE-SEP-C -p tcp -m tcp -j DNAT --to-destination 10.190.12.8:80
  COMMIT
  *filter
  :INPUT ACCEPT [0:0]
  :FORWARD DROP [0:0]
  :OUTPUT ACCEPT [0:0]
  -A FORWARD -s 192.168.0.1/32 -p tcp --dport 1000 -j DROP
  -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  -A FORWARD -i eth0 -o eth1 -p tcp -m conntrack --ctstate NEW -j ACCEPT
  COMMIT
`;
}

export function writeServiceNode(dir: string): string {
  const p = join(dir, 'engine-worker.yaml');
  writeFileSync(p, serviceNodeYaml());
  return p;
}

/** Frames for the service node (as the benchmarks make them): TCP to the Service from many clients. */
export function genServiceCapture(path: string, frames: number, seed = 11): void {
  genCapture(path, { frames, seed, minLen: 60, maxLen: 100, serverNet: 0xac15000a - 1, servers: 1, ports: [80], udpShare: 0, dstMac: '02:00:00:00:00:02' });
}

/** Every record of a capture: bytes, timestamp (ns), interface, comments. */
export function readRecords(path: string): { data: Buffer[]; ts: bigint[]; iface: number[]; comments: (string[] | undefined)[] } {
  const r = CaptureReader.open(path);
  const b = new RecordBatch(1024);
  const out = { data: [] as Buffer[], ts: [] as bigint[], iface: [] as number[], comments: [] as (string[] | undefined)[] };
  try {
    for (let n = r.next(b); n > 0; n = r.next(b)) {
      for (let i = 0; i < n; i++) {
        out.data.push(Buffer.from(b.buf.subarray(b.offset[i]!, b.offset[i]! + b.caplen[i]!)));
        out.ts.push(BigInt(b.tsSec[i]!) * 1_000_000_000n + BigInt(b.tsNsec[i]!));
        out.iface.push(b.iface[i]!);
        out.comments.push(b.comments[i]);
      }
    }
  } finally {
    r.close();
  }
  return out;
}

/** Number of records a capture holds (CaptureReader, stopping at damage). */
export function countRecords(path: string): number {
  const r = CaptureReader.open(path);
  const b = new RecordBatch(4096);
  let n = 0;
  try {
    for (;;) {
      const k = r.next(b);
      if (k === 0) break;
      n += k;
    }
  } catch {
    /* damage: the records before it */
  } finally {
    r.close();
  }
  return n;
}

export function sameBytes(a: string, b: string): boolean {
  return Buffer.compare(readFileSync(a), readFileSync(b)) === 0;
}

/** The accounting equation of a --json / --stats object. */
export function balanced(j: Record<string, unknown>): boolean {
  const sum = (o: unknown): number => Object.values((o ?? {}) as Record<string, number>).reduce((a, v) => a + v, 0);
  return j.in === (j.left as number) + (j.delivered as number) + sum(j.dropped) + sum(j.errors) && j.balanced === true;
}

/** Index of the first frame that differs (-1 when the lists are equal); cheaper than toEqual on large buffers. */
export function firstDifference(a: Buffer[], b: Buffer[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (!a[i]!.equals(b[i]!)) return i;
  return a.length === b.length ? -1 : n;
}
