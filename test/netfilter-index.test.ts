/**
 * The indexed evaluator against the kernel's linear semantics: random rule sets (jumps, gotos,
 * returns, marks, side-effecting `statistic nth` matches before and after port matches) and
 * random packets (fragments included), checked against a naive reference interpreter written
 * here from ipt_do_table, and against the same rules compiled without indexes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIptablesSave } from '../src/netfilter/iptables-save.js';
import type { Chain, Rule, RulesetModel } from '../src/netfilter/model.js';
import { Ruleset } from '../src/netfilter/ruleset.js';
import { HOOK_FORWARD, Skb, TABLE_FILTER, VERDICT_ACCEPT, VERDICT_DROP, VERDICT_REJECT } from '../src/netfilter/skb.js';
import { Prng } from '../src/util/prng.js';
import { parseIpv4 } from '../src/packet/addr.js';
import { FakeCt, FakeEnv } from './netfilter-helpers.js';

const env = new FakeEnv({ eth0: [], eth1: [], tunl0: [], cali1f2a3b4c5d6: [], cali9e8d7c6b5a4: [], caliaaaaaaaaaaa: [], calibbbbbbbbbbb: [] });
const ct = new FakeCt();
const NIF = env.interfaceNames.length;

const ADDRS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.1.1', '10.0.1.2', '192.168.0.1', '172.21.0.10', '172.21.0.20'];
const CIDRS = ['10.0.0.0/24', '10.0.0.0/8', '10.0.1.0/24', '172.21.0.0/16', '0.0.0.0/1'];
const PORTS = [22, 53, 80, 443, 8080, 8443];
const IFPATS = ['eth0', 'eth1', 'eth+', 'cali+', 'cali1f2a3b4c5d6', 'cali9e8d7c6b5a4', 'caliaaaaaaaaaaa', 'tunl0', 'nosuch0'];

interface Pkt {
  src: number;
  dst: number;
  proto: number;
  sport: number;
  dport: number;
  inIf: number;
  outIf: number;
  mark: number;
  frag: number;
  flags: number;
}

const inv = (): fc.Arbitrary<string> => fc.constantFrom('', '', '', '! ');

type Style = 'dst' | 'port' | 'iface' | 'mixed';

/**
 * One rule's text after "-A CHAIN", for chain index `ci` among `nChains` user chains. The
 * chain's style biases the rules towards one index dimension (exact destinations, ports,
 * input interfaces) so that every dimension gets chosen and exercised.
 */
function ruleArb(ci: number, nChains: number, style: Style): fc.Arbitrary<string> {
  const later = Array.from({ length: nChains - ci - 1 }, (_, k) => `U${ci + 1 + k}`);
  const targets: fc.Arbitrary<string>[] = [
    fc.constantFrom('-j ACCEPT', '-j DROP', '-j RETURN', '-j REJECT', ''),
    fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 })).map(([v, m]) => `-j MARK --set-xmark 0x${v.toString(16)}/0x${m.toString(16)}`),
  ];
  if (later.length) targets.push(fc.tuple(fc.constantFrom('-j', '-j', '-g'), fc.constantFrom(...later)).map(([j, c]) => `${j} ${c}`));
  const often = (a: fc.Arbitrary<string>, yes: boolean): fc.Arbitrary<string> => (yes ? fc.oneof(a, a, a, fc.constant('')) : fc.oneof(fc.constant(''), fc.constant(''), a));
  return fc
    .record({
      src: fc.oneof(fc.constant(''), fc.constant(''), fc.tuple(inv(), fc.constantFrom(...ADDRS, ...CIDRS)).map(([i, a]) => `${i}-s ${a}`)),
      dst: often(fc.oneof(fc.tuple(inv(), fc.constantFrom(...ADDRS)).map(([i, a]) => `${i}-d ${a}`), fc.constantFrom(...ADDRS).map((a) => `-d ${a}`), fc.tuple(inv(), fc.constantFrom(...CIDRS)).map(([i, a]) => `${i}-d ${a}`)), style === 'dst'),
      iif: often(fc.oneof(fc.tuple(inv(), fc.constantFrom(...IFPATS)).map(([i, p]) => `${i}-i ${p}`), fc.constantFrom(...IFPATS).map((p) => `-i ${p}`)), style === 'iface'),
      oif: fc.oneof(fc.constant(''), fc.constant(''), fc.tuple(inv(), fc.constantFrom(...IFPATS)).map(([i, p]) => `${i}-o ${p}`)),
      proto: style === 'port' ? fc.constantFrom('tcp', 'tcp', 'udp', '') : fc.constantFrom('', 'tcp', 'tcp', 'udp', 'udp', 'icmp', '! tcp'),
      ports: fc.oneof(
        fc.constant(''),
        fc.tuple(inv(), fc.constantFrom(...PORTS)).map(([i, p]) => `${i}--dport ${p}`),
        fc.constantFrom(...PORTS).map((p) => `--dport ${p}`),
        fc.constantFrom(...PORTS).map((p) => `--dport ${p}`),
        fc.tuple(fc.constantFrom(...PORTS), fc.integer({ min: 0, max: 30 })).map(([p, n]) => `--dport ${p}:${p + n}`),
        fc.tuple(inv(), fc.constantFrom(...PORTS)).map(([i, p]) => `${i}--sport ${p}`),
        fc.tuple(inv(), fc.subarray(PORTS, { minLength: 1, maxLength: 4 })).map(([i, l]) => `-m multiport ${i}--dports ${l.join(',')}`),
      ),
      mark: fc.oneof(fc.constant(''), fc.constant(''), fc.tuple(inv(), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 3 })).map(([i, v, m]) => `-m mark ${i}--mark 0x${v & m}/0x${m}`)),
      nth: style === 'port' ? fc.constantFrom('', 'before', 'after') : fc.constantFrom('', '', '', 'before', 'after'),
      every: fc.integer({ min: 2, max: 3 }),
      target: fc.oneof(...targets),
    })
    .map((r) => {
      const parts = [r.src, r.dst, r.iif, r.oif];
      const isPortProto = r.proto === 'tcp' || r.proto === 'udp';
      if (r.proto) parts.push(`${r.proto.startsWith('!') ? '! -p tcp' : `-p ${r.proto}`}`);
      const stat = `-m statistic --mode nth --every ${r.every}`;
      if (r.nth === 'before') parts.push(stat);
      if (isPortProto && r.ports) parts.push(r.ports.startsWith('-m') ? r.ports : `-m ${r.proto} ${r.ports}`);
      if (r.mark) parts.push(r.mark);
      if (r.nth === 'after') parts.push(stat);
      // Goto/jump targets are later chains (no loops).
      parts.push(r.target);
      return parts.filter((p) => p !== '').join(' ');
    });
}

const styleArb = fc.constantFrom<Style>('dst', 'port', 'iface', 'mixed');

const rulesetArb: fc.Arbitrary<string> = fc.integer({ min: 0, max: 3 }).chain((nUser) =>
  fc
    .tuple(
      fc.constantFrom('ACCEPT', 'DROP'),
      styleArb.chain((st) => fc.array(ruleArb(-1, nUser, st), { minLength: 0, maxLength: 40 })),
      fc.tuple(...Array.from({ length: nUser }, (_, i) => styleArb.chain((st) => fc.array(ruleArb(i, nUser, st), { minLength: 0, maxLength: 30 })))),
    )
    .map(([policy, fwd, users]) => {
      const lines = ['*filter', ':INPUT ACCEPT [0:0]', `:FORWARD ${policy} [0:0]`, ':OUTPUT ACCEPT [0:0]'];
      for (let i = 0; i < nUser; i++) lines.push(`:U${i} - [0:0]`);
      for (const r of fwd) lines.push(`-A FORWARD ${r}`);
      users.forEach((rs, i) => rs.forEach((r) => lines.push(`-A U${i} ${r}`)));
      lines.push('COMMIT', '');
      return lines.join('\n');
    }),
);

const pktArb: fc.Arbitrary<Pkt> = fc.record({
  src: fc.oneof(fc.constantFrom(...ADDRS).map(parseIpv4), fc.integer({ min: 0, max: 0xffffffff })),
  dst: fc.oneof(fc.constantFrom(...ADDRS).map(parseIpv4), fc.integer({ min: 0, max: 0xffffffff })),
  proto: fc.constantFrom(6, 6, 6, 17, 17, 1, 47),
  sport: fc.oneof(fc.constantFrom(...PORTS), fc.integer({ min: 0, max: 65535 })),
  dport: fc.oneof(fc.constantFrom(...PORTS), fc.constantFrom(...PORTS), fc.constantFrom(...PORTS.map((p) => p + 7)), fc.integer({ min: 0, max: 65535 })),
  inIf: fc.integer({ min: -1, max: NIF - 1 }),
  outIf: fc.integer({ min: -1, max: NIF - 1 }),
  mark: fc.integer({ min: 0, max: 7 }),
  frag: fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 8, 8, 16),
  flags: fc.integer({ min: 0, max: 63 }),
});

function setPacket(skb: Skb, p: Pkt): void {
  skb.reset(skb.buf, skb.dv, p.inIf);
  skb.nowSec = 0;
  const v = skb.v;
  v.srcIp = p.src;
  v.dstIp = p.dst;
  v.ipProto = p.proto;
  v.fragOffset = p.frag;
  const l4 = p.frag === 0 && (p.proto === 6 || p.proto === 17 || p.proto === 1);
  v.l4Off = p.frag === 0 ? 20 : -1;
  v.srcPort = l4 && p.proto !== 1 ? p.sport : 0;
  v.dstPort = l4 && p.proto !== 1 ? p.dport : 0;
  v.tcpFlags = l4 && p.proto === 6 ? p.flags : 0;
  v.icmpType = l4 && p.proto === 1 ? p.sport & 15 : -1;
  v.icmpCode = l4 && p.proto === 1 ? 0 : -1;
  skb.outIf = p.outIf;
  skb.mark = p.mark;
}

// ---- the reference: ipt_do_table written as plainly as possible over the model ----

interface RefResult {
  verdict: number;
  ref: string;
  mark: number;
}

class Reference {
  private readonly nth = new Map<Rule, number>();
  constructor(private readonly model: RulesetModel) {}

  run(p: Pkt): RefResult {
    const t = this.model.tables[0]!;
    let mark = p.mark;
    const l4ok = p.frag === 0;
    const sport = l4ok && p.proto !== 1 ? p.sport : 0;
    const dport = l4ok && p.proto !== 1 ? p.dport : 0;
    const ifname = (i: number): string => (i < 0 ? '' : env.interfaceNames[i]!);
    const ifmatch = (pat: string, name: string): boolean => (pat.endsWith('+') ? name.startsWith(pat.slice(0, -1)) : name === pat);
    const matchRule = (r: Rule): boolean | 'hotdrop' => {
      if (r.src && (((p.src & r.src.mask) >>> 0) === r.src.net) === r.src.invert) return false;
      if (r.dst && (((p.dst & r.dst.mask) >>> 0) === r.dst.net) === r.dst.invert) return false;
      if (r.inIface && ifmatch(r.inIface.name, ifname(p.inIf)) === r.inIface.invert) return false;
      if (r.outIface && ifmatch(r.outIface.name, ifname(p.outIf)) === r.outIface.invert) return false;
      if (r.proto && (p.proto === r.proto.num) === r.proto.invert) return false;
      for (const m of r.matches) {
        switch (m.kind) {
          case 'tcp':
          case 'udp':
            if (p.frag !== 0) return m.kind === 'tcp' && p.frag === 8 ? 'hotdrop' : false;
            if (m.sport && (sport >= m.sport.lo && sport <= m.sport.hi) === m.sport.invert) return false;
            if (m.dport && (dport >= m.dport.lo && dport <= m.dport.hi) === m.dport.invert) return false;
            break;
          case 'multiport': {
            if (p.frag !== 0) return false;
            const hit = m.ranges.some(([lo, hi]) => (m.mode !== 'dst' && sport >= lo && sport <= hi) || (m.mode !== 'src' && dport >= lo && dport <= hi));
            if (hit === m.invert) return false;
            break;
          }
          case 'mark':
            if ((((mark & m.mask) >>> 0) === m.value) === m.invert) return false;
            break;
          case 'statistic': {
            const o = this.nth.get(r) ?? m.every - m.packet;
            const n = o === m.every ? 0 : o + 1;
            this.nth.set(r, n);
            if ((n === 0) === m.invert) return false;
            break;
          }
          default:
            throw new Error(`reference does not know ${m.kind}`);
        }
      }
      return true;
    };
    type Res = { verdict: number; ref: string } | null;
    const runChain = (c: Chain): Res => {
      for (const r of c.rules) {
        const m = matchRule(r);
        if (m === 'hotdrop') return { verdict: VERDICT_DROP, ref: `filter/${c.name} rule ${r.num} hotdrop` };
        if (!m) continue;
        const tg = r.target;
        if (!tg) continue;
        switch (tg.kind) {
          case 'ACCEPT':
            return { verdict: VERDICT_ACCEPT, ref: `filter/${c.name} rule ${r.num}` };
          case 'DROP':
            return { verdict: VERDICT_DROP, ref: `filter/${c.name} rule ${r.num}` };
          case 'REJECT':
            return { verdict: VERDICT_REJECT, ref: `filter/${c.name} rule ${r.num}` };
          case 'RETURN':
            return null;
          case 'MARK':
            mark = ((mark & ~tg.mask) ^ tg.value) >>> 0;
            continue;
          case 'chain': {
            const next = t.chainByName.get(tg.chain)!;
            // A goto is a tail call: its chain's RETURN returns to our caller.
            if (r.goto) return runChain(next);
            const res = runChain(next);
            if (res) return res;
            continue;
          }
          default:
            throw new Error(`reference does not know ${tg.kind}`);
        }
      }
      return null;
    };
    const fwd = t.chainByName.get('FORWARD')!;
    const res = runChain(fwd) ?? { verdict: fwd.policy === 'DROP' ? VERDICT_DROP : VERDICT_ACCEPT, ref: `filter/FORWARD policy ${fwd.policy}` };
    return { ...res, mark };
  }
}

function shortRef(ref: string): string {
  const m = /^(filter\/\S+ rule \d+) \(line \d+\): hotdrop/.exec(ref);
  if (m) return `${m[1]} hotdrop`;
  const r = /^(filter\/\S+ rule \d+) \(line/.exec(ref);
  return r ? r[1]! : ref;
}

describe('indexed evaluation = linear kernel semantics', () => {
  it('same verdict, deciding rule and mark as a naive ipt_do_table and as the unindexed build', () => {
    let indexedChains = 0;
    fc.assert(
      fc.property(rulesetArb, fc.array(pktArb, { minLength: 1, maxLength: 60 }), (text, pkts) => {
        const model = parseIptablesSave(text);
        const indexed = Ruleset.compile(model, { env, ct, prng: new Prng(1) });
        const linear = Ruleset.compile(model, { env, ct, prng: new Prng(1), index: false });
        indexedChains += indexed.describeIndex().length;
        const ref = new Reference(model);
        const a = new Skb();
        const b = new Skb();
        for (const p of pkts) {
          setPacket(a, p);
          setPacket(b, p);
          const va = indexed.run(TABLE_FILTER, HOOK_FORWARD, a);
          const vb = linear.run(TABLE_FILTER, HOOK_FORWARD, b);
          const want = ref.run(p);
          expect({ v: va, ref: shortRef(a.verdictRef), mark: a.mark }).toEqual({ v: want.verdict, ref: want.ref, mark: want.mark });
          expect({ v: vb, ref: b.verdictRef, mark: b.mark }).toEqual({ v: va, ref: a.verdictRef, mark: a.mark });
        }
      }),
      { numRuns: 400, seed: 20251122 },
    );
    // The generator must actually exercise the indexes.
    expect(indexedChains).toBeGreaterThan(100);
  });

  it('a kube-proxy-sized KUBE-SERVICES (2000 services) gives the linear answers', () => {
    const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-MARK-MASQ - [0:0]'];
    const svc: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const c = `KUBE-SVC-${String(i).padStart(12, '0')}`;
      lines.push(`:${c} - [0:0]`);
      svc.push(`-A KUBE-SERVICES -d 172.21.${i >> 8}.${i & 255}/32 -p ${i % 3 ? 'tcp' : 'udp'} -m comment --comment "ns/svc${i}:p cluster IP" -m ${i % 3 ? 'tcp' : 'udp'} --dport ${80 + (i % 5)} -j ${c}`);
      svc.push(`-A ${c} -j MARK --set-xmark 0x${(i % 7).toString(16)}/0xff`);
    }
    lines.push('-A PREROUTING -j KUBE-SERVICES', ...svc);
    for (let i = 0; i < 300; i++) lines.push(`-A KUBE-NODEPORTS -p tcp -m tcp --dport ${30000 + i} -j KUBE-MARK-MASQ`);
    lines.push('-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS', '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000', 'COMMIT', '');
    const model = parseIptablesSave(lines.join('\n'));
    const fenv = new FakeEnv();
    const a = Ruleset.compile(model, { env: fenv, ct, prng: new Prng(1) });
    const b = Ruleset.compile(model, { env: fenv, ct, prng: new Prng(1), index: false });
    expect(a.describeIndex()).toEqual(['nat/KUBE-SERVICES: 2001 rules, index -d, 1 unindexed', 'nat/KUBE-NODEPORTS: 300 rules, index proto/dport, 0 unindexed']);
    const sa = new Skb();
    const sb = new Skb();
    const rnd = new Prng(5);
    for (let k = 0; k < 5000; k++) {
      const i = rnd.nextInt(0, 2100);
      const p: Pkt = {
        src: parseIpv4('10.0.0.1'),
        dst: k % 4 === 0 ? parseIpv4('10.177.1.10') : parseIpv4(`172.21.${i >> 8}.${i & 255}`),
        proto: rnd.nextInt(0, 2) ? 6 : 17,
        sport: 1234,
        dport: k % 4 === 0 ? 30000 + rnd.nextInt(0, 400) : 80 + rnd.nextInt(0, 5),
        inIf: 0,
        outIf: -1,
        mark: 0,
        frag: 0,
        flags: 2,
      };
      setPacket(sa, p);
      setPacket(sb, p);
      expect(a.run(2, 0, sa)).toBe(b.run(2, 0, sb));
      expect(sa.verdictRef).toBe(sb.verdictRef);
      expect(sa.mark).toBe(sb.mark);
    }
  });
});

describe('IntMap (typed-array hash used by indexes, ipsets, recent lists)', () => {
  it('behaves like a Map under random set/delete/get, keys over the whole int32 range', async () => {
    const { IntMap } = await import('../src/netfilter/inthash.js');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('set', 'set', 'del', 'get'), fc.oneof(fc.integer({ min: -40, max: 40 }), fc.integer()), fc.nat(1000)), { maxLength: 400 }),
        (ops) => {
          const m = new IntMap(2);
          const ref = new Map<number, number>();
          for (const [op, k, v] of ops) {
            if (op === 'set') {
              m.set(k, v);
              ref.set(k | 0, v);
            } else if (op === 'del') {
              expect(m.delete(k)).toBe(ref.delete(k | 0));
            } else {
              expect(m.get(k)).toBe(ref.get(k | 0) ?? -1);
            }
            expect(m.size).toBe(ref.size);
          }
          for (const [k, v] of ref) expect(m.get(k)).toBe(v);
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });
});
