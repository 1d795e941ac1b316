/**
 * Cost of a packet that traverses N rules (the FORWARD chain of the filter table), for three
 * rule sets:
 *  - `indexed`: kube-proxy-like rules (`-d VIP/32 -p tcp --dport 80`), the packet matching the
 *    last one; dpemu's evaluator indexes such a chain (exact /32, protocol/port), so the packet
 *    only visits its candidate rules. The target (10,000 rules ≤ 2× the cost of 10) is on this.
 *  - `linear`: the same rules evaluated linearly (`index: false`), the kernel's cost model.
 *  - `unindexable`: rules no index holds (`-s a.b.c.0/24`), a packet that matches none of the
 *    first N−1 and the last (`-j ACCEPT`): every rule is visited, as in the kernel.
 */
import { Conntrack } from '../src/netfilter/conntrack.js';
import { Ruleset } from '../src/netfilter/ruleset.js';
import { HOOK_FORWARD, Skb, TABLE_FILTER, VERDICT_ACCEPT } from '../src/netfilter/skb.js';
import { buildFrame } from '../src/packet/build.js';
import { LINKTYPE_ETHERNET, PARSE_OK } from '../src/packet/view.js';
import { Prng } from '../src/util/prng.js';
import type { MicroCase } from './measure.js';
import { stubEnv } from './stages.js';

export type RuleFlavour = 'indexed' | 'linear' | 'unindexable';

/** Chart legends of the rule series (these and those of rules.bench.ts). */
export const FLAVOUR_NAMES: Record<string, string> = {
  indexed: 'last of N rules (-d VIP/32 -p tcp --dport 80), indexed',
  linear: 'same rules, linear (the kernel\u2019s cost model)',
  unindexable: 'unindexable rules (-s a.b.c.0/24), all visited',
  'kube indexed': 'kube-proxy nat, random service, indexed',
  'kube linear': 'kube-proxy nat, random service, linear',
  calico: 'Calico from-workload dispatch, indexed',
};

const vip = (i: number): string => `10.96.${(i >> 8) & 255}.${i & 255}`;

export function rulesText(n: number, flavour: RuleFlavour): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]'];
  if (flavour === 'unindexable') {
    for (let i = 0; i < n - 1; i++) lines.push(`-A FORWARD -s 10.${64 + ((i >> 8) & 63)}.${i & 255}.0/24 -j DROP`);
    lines.push('-A FORWARD -j ACCEPT');
  } else {
    for (let i = 0; i < n; i++) lines.push(`-A FORWARD -d ${vip(i)}/32 -p tcp -m tcp --dport 80 -m comment --comment "svc ${i}" -j ACCEPT`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export function ruleCases(counts: number[], flavours: RuleFlavour[] = ['indexed', 'linear', 'unindexable']): MicroCase[] {
  const out: MicroCase[] = [];
  const ct = new Conntrack({ max: 1024 });
  for (const flavour of flavours) {
    for (const n of counts) {
      const rs = Ruleset.fromText(rulesText(n, flavour), { env: stubEnv, ct, prng: new Prng(1), index: flavour !== 'linear', file: `rules-${flavour}-${n}` });
      // 64 packets from different clients, all to the last rule's VIP (or matched by the last rule).
      const skbs: Skb[] = [];
      for (let k = 0; k < 64; k++) {
        const f = buildFrame({
          srcMac: '02:00:00:00:00:01',
          dstMac: '02:00:00:00:00:02',
          ip: { src: `172.30.${k}.${k + 1}`, dst: vip(n - 1) },
          l4: { kind: 'tcp', sport: 40000 + k, dport: 80, flags: 'A', seq: 1, ack: 1, payload: 'x'.repeat(20) },
        });
        const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
        const skb = new Skb();
        skb.reset(f, dv, 0);
        skb.nowSec = 1;
        if (skb.v.parse(f, dv, 0, f.length, LINKTYPE_ETHERNET) !== PARSE_OK) throw new Error('rules case: frame does not parse');
        skb.hook = HOOK_FORWARD;
        skb.outIf = 1;
        if (rs.run(TABLE_FILTER, HOOK_FORWARD, skb) !== VERDICT_ACCEPT) throw new Error(`rules case ${flavour}/${n}: the packet is not accepted by the last rule`);
        skbs.push(skb);
      }
      const m = skbs.length;
      out.push({
        id: `rules-${flavour}-${n}`,
        section: 'rules',
        name: `${n.toLocaleString('en-US')} rules, ${flavour}`,
        framesPerOp: m,
        bytesPerOp: 0,
        x: n,
        series: flavour,
        fn: () => {
          for (let k = 0; k < m; k++) rs.run(TABLE_FILTER, HOOK_FORWARD, skbs[k]!);
        },
      });
    }
  }
  return out;
}
