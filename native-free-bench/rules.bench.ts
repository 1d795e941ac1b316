/**
 * Rule evaluation micro-benchmarks (section "rules"): Ruleset.run over packets held in memory
 * (PacketView fields set directly; no parsing, no conntrack), for chains of 10 / 100 / 1k / 10k
 * rules, indexed (default) and linear (`index: false`, the kernel's algorithm), plus the
 * kube-proxy and Calico shapes and the ~30-rule node pipeline.
 *
 * `ruleBenchCases()` gives MicroCases for run.ts; run this file directly for a quick table:
 *   npx tsc -p tsconfig.bench.json && node dist-bench/native-free-bench/rules.bench.js [--quick]
 */
import { Ruleset } from '../src/netfilter/ruleset.js';
import { ADDRTYPE_LOCAL, ADDRTYPE_UNICAST, type ConntrackView, type NetfilterEnv } from '../src/netfilter/env.js';
import { CT_ESTABLISHED, CT_NEW, HOOK_FORWARD, HOOK_POSTROUTING, HOOK_PREROUTING, Skb, TABLE_FILTER, TABLE_NAT } from '../src/netfilter/skb.js';
import { Prng } from '../src/util/prng.js';
import { consume, type MicroCase } from './measure.js';

const IFACES = ['eth0', 'eth1', 'tunl0', ...Array.from({ length: 2000 }, (_, i) => `cali${i.toString(16).padStart(11, '0')}`)];

class BenchEnv implements NetfilterEnv {
  readonly interfaceNames = IFACES;
  addrType(ip: number): number {
    return ip === 0x0ab1010a ? ADDRTYPE_LOCAL : ADDRTYPE_UNICAST;
  }
  masqueradeAddress(): number {
    return 0x0abe0c01;
  }
}

function ctView(): ConntrackView {
  const n = 16;
  return {
    status: new Uint32Array(n),
    proto: new Uint8Array(n),
    origSrc: new Uint32Array(n),
    origDst: new Uint32Array(n),
    origSport: new Uint16Array(n),
    origDport: new Uint16Array(n),
    replSrc: new Uint32Array(n),
    replDst: new Uint32Array(n),
    replSport: new Uint16Array(n),
    replDport: new Uint16Array(n),
  };
}

const env = new BenchEnv();
const ct = ctView();

function compile(text: string, index: boolean): Ruleset {
  return Ruleset.fromText(text, { env, ct, prng: new Prng(1), index, maxChainDepth: 64 });
}

/** A packet as the rule evaluator sees it (no bytes: rules only read the parsed fields). */
function skbOf(src: number, dst: number, proto: number, sport: number, dport: number, inIf: number, outIf: number, ctState = CT_NEW): Skb {
  const s = new Skb();
  s.reset(s.buf, s.dv, inIf);
  s.nowSec = 0;
  const v = s.v;
  v.srcIp = src >>> 0;
  v.dstIp = dst >>> 0;
  v.ipProto = proto;
  v.l4Off = 34;
  v.fragOffset = 0;
  v.srcPort = sport;
  v.dstPort = dport;
  v.tcpFlags = 0x02;
  v.ttl = 64;
  s.outIf = outIf;
  s.ct = 0;
  s.ctState = ctState;
  return s;
}

const ip = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

/** FORWARD with n rules that do not match (each -s x/32 -p tcp --dport p -j DROP), policy ACCEPT. */
export function linearChain(n: number): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = 0; i < n; i++) lines.push(`-A FORWARD -s 192.168.${(i >> 8) & 255}.${i & 255}/32 -p tcp -m tcp --dport ${1000 + (i % 50000)} -j DROP`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** kube-proxy nat table with n ClusterIP services of 3 endpoints each. */
export function kubeServices(n: number): string {
  const l = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-POSTROUTING - [0:0]'];
  const rules: string[] = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  for (let s = 0; s < n; s++) {
    const svc = `KUBE-SVC-${String(s).padStart(16, '0')}`;
    l.push(`:${svc} - [0:0]`);
    const vip = `172.21.${(s >> 8) & 255}.${s & 255}`;
    rules.push(`-A KUBE-SERVICES -d ${vip}/32 -p tcp -m comment --comment "ns/svc-${s}:http cluster IP" -m tcp --dport 80 -j ${svc}`);
    rules.push(`-A ${svc} ! -s 172.30.0.0/16 -d ${vip}/32 -p tcp -m comment --comment "ns/svc-${s}:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`);
    const probs = ['0.33333333349', '0.50000000000'];
    for (let e = 0; e < 3; e++) {
      const sep = `KUBE-SEP-${String(s).padStart(14, '0')}E${e}`;
      l.push(`:${sep} - [0:0]`);
      const epIp = `172.30.${(s >> 6) & 255}.${((s & 63) << 2) + e + 1}`;
      rules.push(`-A ${svc} -m comment --comment "ns/svc-${s}:http -> ${epIp}:8080"${e < 2 ? ` -m statistic --mode random --probability ${probs[e]}` : ''} -j ${sep}`);
      rules.push(`-A ${sep} -s ${epIp}/32 -m comment --comment "ns/svc-${s}:http" -j KUBE-MARK-MASQ`);
      rules.push(`-A ${sep} -p tcp -m comment --comment "ns/svc-${s}:http" -m tcp -j DNAT --to-destination ${epIp}:8080`);
    }
  }
  rules.push('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  return [...l, ...rules, 'COMMIT', ''].join('\n');
}

/** Calico-like filter: cali-FORWARD dispatching n workload interfaces to per-endpoint chains. */
export function calicoDispatch(n: number): string {
  const l = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ':cali-FORWARD - [0:0]', ':cali-from-wl-dispatch - [0:0]', ':cali-pro-kns.default - [0:0]'];
  const r = [
    '-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD',
    '-A FORWARD -m comment --comment "cali:S93hcgKJrXEqnTfs" -m comment --comment "Policy explicitly accepted packet." -m mark --mark 0x10000/0x10000 -j ACCEPT',
    '-A cali-FORWARD -m comment --comment "cali:vjrMJCRpqwy5oRoX" -j MARK --set-xmark 0x0/0xe0000',
    '-A cali-FORWARD -i cali+ -m comment --comment "cali:8ZoYfO5HKXWbB3pk" -j cali-from-wl-dispatch',
    '-A cali-pro-kns.default -m comment --comment "cali:oLzzje5WExbgfib5" -j MARK --set-xmark 0x10000/0x10000',
    '-A cali-pro-kns.default -m comment --comment "cali:4goskqvxh5xcGw3s" -m mark --mark 0x10000/0x10000 -j RETURN',
  ];
  for (let i = 0; i < n; i++) {
    const ifn = IFACES[3 + i]!;
    const ch = `cali-fw-${ifn}`;
    l.push(`:${ch} - [0:0]`);
    r.push(`-A cali-from-wl-dispatch -i ${ifn} -m comment --comment "cali:d${i}" -g ${ch}`);
    r.push(`-A ${ch} -m comment --comment "cali:a${i}" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    r.push(`-A ${ch} -m comment --comment "cali:b${i}" -m conntrack --ctstate INVALID -j DROP`);
    r.push(`-A ${ch} -m comment --comment "cali:c${i}" -j MARK --set-xmark 0x0/0x10000`);
    r.push(`-A ${ch} -m comment --comment "cali:e${i}" -j cali-pro-kns.default`);
    r.push(`-A ${ch} -m comment --comment "cali:f${i}" -m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 -j RETURN`);
    r.push(`-A ${ch} -m comment --comment "cali:g${i}" -m comment --comment "Drop if no profiles matched" -j DROP`);
  }
  r.push('-A cali-from-wl-dispatch -m comment --comment "cali:zTj6P0TIgYvgz-md" -m comment --comment "Unknown interface" -j DROP');
  return [...l, ...r, 'COMMIT', ''].join('\n');
}

/** The full node pipeline of node-cases.ts (DNAT to 3 endpoints, MASQUERADE, 20-rule FORWARD). */
export function pipeline(): string {
  const f = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = 0; i < 18; i++) f.push(`-A FORWARD -s 192.168.${i >> 8}.${i & 255}/32 -p tcp -m tcp --dport ${1000 + i} -j DROP`);
  f.push('-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT', '-A FORWARD -m conntrack --ctstate NEW -j ACCEPT', 'COMMIT', '');
  return kubeServices(1).replace('-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING', '-A POSTROUTING -o eth1 -j MASQUERADE') + f.join('\n');
}

const PKTS = 1024;

/** A case whose rule set is built on first use (warm-up), so that building one does not load the heap of the others. */
function lazy(c: Omit<MicroCase, 'fn'>, build: () => () => void): MicroCase {
  let impl: (() => void) | null = null;
  return {
    ...c,
    fn: () => {
      if (impl === null) impl = build();
      impl();
    },
  };
}

export function ruleBenchCases(): MicroCase[] {
  const cases: MicroCase[] = [];
  // 1. A packet that traverses every rule of an N-rule chain (no rule matches).
  for (const n of [10, 100, 1000, 10000]) {
    for (const index of [false, true]) {
      cases.push(
        lazy(
          {
            id: `rules-linear-${n}-${index ? 'indexed' : 'linear'}`,
            section: 'rules',
            name: `${n} non-matching rules, ${index ? 'indexed' : 'linear (kernel algorithm)'}`,
            framesPerOp: PKTS,
            bytesPerOp: 0,
            x: n,
            series: index ? 'indexed' : 'linear',
          },
          () => {
            const rs = compile(linearChain(n), index);
            const skbs = Array.from({ length: PKTS }, (_, k) => skbOf(ip(10, 0, k >> 8, k & 255), ip(10, 9, 9, 9), 6, 40000 + k, 80, 0, 1));
            return () => {
              let acc = 0;
              for (let k = 0; k < PKTS; k++) acc += rs.run(TABLE_FILTER, HOOK_FORWARD, skbs[k]!);
              consume(acc);
            };
          },
        ),
      );
    }
  }
  // 2. kube-proxy: N services, packets to random services (DNAT through SVC/SEP chains).
  for (const n of [10, 100, 1000, 3333]) {
    for (const index of [false, true]) {
      cases.push(
        lazy(
          {
            id: `rules-kube-${n}-${index ? 'indexed' : 'linear'}`,
            section: 'rules',
            name: `kube-proxy KUBE-SERVICES, ${n} services (${n * 11 + 7} rules), nat PREROUTING, ${index ? 'indexed' : 'linear'}`,
            framesPerOp: PKTS,
            bytesPerOp: 0,
            x: n * 11 + 7,
            series: index ? 'kube indexed' : 'kube linear',
          },
          () => {
            const rs = compile(kubeServices(n), index);
            const rnd = new Prng(3);
            const skbs = Array.from({ length: PKTS }, (_, k) => {
              const s = rnd.nextInt(0, n - 1);
              return skbOf(ip(172, 30, 200, k & 255), ip(172, 21, (s >> 8) & 255, s & 255), 6, 40000 + k, 80, 0, -1);
            });
            return () => {
              let acc = 0;
              for (let k = 0; k < PKTS; k++) {
                const s = skbs[k]!;
                s.mark = 0;
                acc += rs.run(TABLE_NAT, HOOK_PREROUTING, s) + s.natRange.minIp;
              }
              consume(acc);
            };
          },
        ),
      );
    }
  }
  // 2b. The largest set, but packets to only 8 services (cache-warm): separates the algorithm from cache misses.
  cases.push(
    lazy(
      {
        id: 'rules-kube-3333-hot8',
        section: 'rules',
        name: 'kube-proxy KUBE-SERVICES, 3333 services (36670 rules), packets to 8 of them, indexed',
        framesPerOp: PKTS,
        bytesPerOp: 0,
        x: 3333 * 11 + 7,
        series: 'kube indexed hot',
      },
      () => {
        const rs = compile(kubeServices(3333), true);
        const skbs = Array.from({ length: PKTS }, (_, k) => {
          const s = (k & 7) * 397;
          return skbOf(ip(172, 30, 200, k & 255), ip(172, 21, (s >> 8) & 255, s & 255), 6, 40000 + k, 80, 0, -1);
        });
        return () => {
          let acc = 0;
          for (let k = 0; k < PKTS; k++) {
            const s = skbs[k]!;
            s.mark = 0;
            acc += rs.run(TABLE_NAT, HOOK_PREROUTING, s) + s.natRange.minIp;
          }
          consume(acc);
        };
      },
    ),
  );
  // 3. Calico: N workload interfaces in the from-workload dispatch chain.
  for (const n of [10, 100, 1000]) {
    cases.push(
      lazy(
        {
          id: `rules-calico-${n}`,
          section: 'rules',
          name: `Calico from-workload dispatch, ${n} workloads, filter FORWARD, indexed`,
          framesPerOp: PKTS,
          bytesPerOp: 0,
          x: n,
          series: 'calico',
        },
        () => {
          const rs = compile(calicoDispatch(n), true);
          const rnd = new Prng(4);
          const skbs = Array.from({ length: PKTS }, (_, k) => skbOf(ip(172, 30, 1, k & 255), ip(8, 8, 8, 8), 6, 40000 + k, 443, 3 + rnd.nextInt(0, n - 1), 1));
          return () => {
            let acc = 0;
            for (let k = 0; k < PKTS; k++) {
              const s = skbs[k]!;
              s.mark = 0;
              acc += rs.run(TABLE_FILTER, HOOK_FORWARD, s);
            }
            consume(acc);
          };
        },
      ),
    );
  }
  // 4. The node pipeline: nat PREROUTING (DNAT, 3 endpoints) + filter FORWARD (20 rules) + nat POSTROUTING (MASQUERADE).
  for (const index of [true, false]) {
    cases.push(
      lazy(
        {
          id: `rules-pipeline-${index ? 'indexed' : 'linear'}`,
          section: 'rules',
          name: `node pipeline: nat PREROUTING (DNAT, 3 endpoints) + 20-rule FORWARD + nat POSTROUTING (MASQUERADE), ${index ? 'indexed' : 'linear'}`,
          framesPerOp: PKTS,
          bytesPerOp: 0,
        },
        () => {
          const rs = compile(pipeline(), index);
          const skbs = Array.from({ length: PKTS }, (_, k) => skbOf(ip(172, 30, 3, k & 255), ip(172, 21, 0, 0), 6, 40000 + k, 80, 0, 1, CT_NEW));
          return () => {
            let acc = 0;
            for (let k = 0; k < PKTS; k++) {
              const s = skbs[k]!;
              s.mark = 0;
              acc += rs.run(TABLE_NAT, HOOK_PREROUTING, s);
              acc += rs.run(TABLE_FILTER, HOOK_FORWARD, s);
              acc += rs.run(TABLE_NAT, HOOK_POSTROUTING, s);
            }
            consume(acc);
          };
        },
      ),
    );
  }
  for (const index of [true, false]) {
    cases.push(
      lazy(
        {
          id: `rules-filter20-${index ? 'indexed' : 'linear'}`,
          section: 'rules',
          name: `20-rule filter FORWARD, ESTABLISHED accept by rule 19 (${index ? 'indexed: 2 candidates' : 'linear: 19 rules visited'})`,
          framesPerOp: PKTS,
          bytesPerOp: 0,
        },
        () => {
          const rs = compile(pipeline(), index);
          const est = Array.from({ length: PKTS }, (_, k) => skbOf(ip(172, 30, 3, k & 255), ip(172, 21, 0, 0), 6, 40000 + k, 80, 0, 1, CT_ESTABLISHED));
          return () => {
            let acc = 0;
            for (let k = 0; k < PKTS; k++) acc += rs.run(TABLE_FILTER, HOOK_FORWARD, est[k]!);
            consume(acc);
          };
        },
      ),
    );
  }
  return cases;
}

/** CPU time of this thread in ns (user + system): descheduled time on a busy machine is not counted. */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** A trivial loop (one typed-array load and add per iteration) to calibrate the machine. */
function calibrate(): number {
  const a = new Int32Array(1 << 16).map((_, i) => i * 7);
  let acc = 0;
  const t0 = cpuNs();
  for (let i = 0; i < 2000; i++) for (let k = 0; k < 10240; k++) acc = (acc + a[(k * 13) & 0xffff]!) | 0;
  consume(acc);
  return (cpuNs() - t0) / (2000 * 10240);
}

/** Quick standalone measurement: CPU time per packet, median (and min) of rounds. */
function quickTable(): void {
  const quick = process.argv.includes('--quick');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
  const cases = ruleBenchCases().filter((c) => only === undefined || c.id.includes(only));
  const rounds = quick ? 3 : 7;
  const minNs = quick ? 100e6 : 300e6;
  for (let i = 0; i < 3; i++) calibrate();
  console.log(`calibration: ${calibrate().toFixed(2)} ns (CPU) per trivial loop iteration (typed-array load + add)`);
  console.log(`${'case'.padEnd(100)} ns/packet (median, min)`);
  for (const c of cases) {
    for (let i = 0; i < 50; i++) c.fn();
    const res: number[] = [];
    for (let r = 0; r < rounds; r++) {
      let ops = 0;
      const t0 = cpuNs();
      let t = t0;
      while (t - t0 < minNs) {
        c.fn();
        ops++;
        t = cpuNs();
      }
      res.push((t - t0) / (ops * c.framesPerOp));
    }
    res.sort((a, b) => a - b);
    console.log(`${c.name.padEnd(100)} ${res[rounds >> 1]!.toFixed(1)}, ${res[0]!.toFixed(1)}`);
  }
  console.log(`calibration after: ${calibrate().toFixed(2)} ns`);
}

if (process.argv[1] && /rules\.bench\.(js|ts)$/.test(process.argv[1])) quickTable();
