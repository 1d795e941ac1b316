import { describe, expect, it } from 'vitest';
import { Ruleset } from '../src/netfilter/ruleset.js';
import {
  CT_ESTABLISHED,
  CT_INVALID,
  CT_NEW,
  CT_RELATED,
  CT_UNTRACKED,
  HOOK_FORWARD,
  HOOK_INPUT,
  HOOK_OUTPUT,
  HOOK_POSTROUTING,
  HOOK_PREROUTING,
  IPS_ASSURED,
  IPS_DST_NAT,
  IPS_SEEN_REPLY,
  NAT_MANIP_DST,
  NAT_MANIP_SRC,
  NAT_RANGE_MASQUERADE,
  NAT_RANGE_NETMAP,
  NF_NAT_RANGE_MAP_IPS,
  NF_NAT_RANGE_PERSISTENT,
  NF_NAT_RANGE_PROTO_RANDOM,
  NF_NAT_RANGE_PROTO_RANDOM_FULLY,
  NF_NAT_RANGE_PROTO_SPECIFIED,
  REJECT_ICMP_ADMIN_PROHIBITED,
  REJECT_ICMP_HOST_PROHIBITED,
  REJECT_ICMP_HOST_UNREACHABLE,
  REJECT_ICMP_NET_PROHIBITED,
  REJECT_ICMP_NET_UNREACHABLE,
  REJECT_ICMP_PORT_UNREACHABLE,
  REJECT_ICMP_PROT_UNREACHABLE,
  REJECT_TCP_RESET,
  Skb,
  TABLE_FILTER,
  TABLE_MANGLE,
  TABLE_NAT,
  TABLE_RAW,
  VERDICT_ACCEPT,
  VERDICT_DROP,
  VERDICT_REJECT,
} from '../src/netfilter/skb.js';
import { Trace } from '../src/netfilter/trace.js';
import { RulesetError } from '../src/netfilter/errors.js';
import { Prng } from '../src/util/prng.js';
import { parseIpv4 } from '../src/packet/addr.js';
import { CALICO_IPSET, CALICO_SAVE, KUBE_PROXY_SAVE } from './netfilter-fixtures.js';
import { FakeCt, FakeEnv, icmp, load, table, tcp, udp, type PktOpts } from './netfilter-helpers.js';
import type { IpSpec, L4Spec } from './support/frames.js';

const env = new FakeEnv();
const ct = new FakeCt();
const ETH0 = env.ifIndex('eth0');
const ETH1 = env.ifIndex('eth1');
const TUNL0 = env.ifIndex('tunl0');
const CALI_A = env.ifIndex('cali1f2a3b4c5d6');
const CALI_B = env.ifIndex('cali9e8d7c6b5a4');

function compile(text: string, seed = 42, extra: Partial<Parameters<typeof Ruleset.fromText>[1]> = {}): Ruleset {
  return Ruleset.fromText(text, { file: 't.rules', env, ct, prng: new Prng(seed), ...extra });
}

const FILTER_HEAD = ['INPUT ACCEPT', 'FORWARD DROP', 'OUTPUT ACCEPT'];

/** Verdict of `rule` (in filter FORWARD, policy DROP) for a packet. */
function fwd(rules: string[], pkt: [IpSpec, L4Spec], o: PktOpts = {}, chains: string[] = []): { v: number; ref: string; skb: Skb } {
  const rs = compile(table('filter', [...FILTER_HEAD, ...chains], rules));
  const skb = load(new Skb(), ...pkt, o);
  const v = rs.run(TABLE_FILTER, HOOK_FORWARD, skb);
  return { v, ref: skb.verdictRef, skb };
}

/** Does the single rule `spec -j ACCEPT` match the packet? */
function matches(spec: string, pkt: [IpSpec, L4Spec], o: PktOpts = {}): boolean {
  return fwd([`-A FORWARD ${spec} -j ACCEPT`], pkt, o).v === VERDICT_ACCEPT;
}

const T = tcp('10.1.1.1', '10.2.2.2', 40000, 80);

describe('chains: jump, goto, return, policies', () => {
  const rules = table(
    'filter',
    ['INPUT DROP', 'FORWARD DROP', 'OUTPUT ACCEPT', 'A', 'B', 'C'],
    [
      '-A INPUT -j A', // 8
      '-A INPUT -p tcp --dport 2 -j REJECT', // 9
      '-A A -p tcp --dport 1 -j RETURN', // 10
      '-A A -p tcp --dport 2 -g B', // 11
      '-A A -p tcp --dport 3 -j B', // 12
      '-A A -p tcp -j ACCEPT', // 13
      '-A B -j RETURN', // 14
      '-A FORWARD -p udp -j RETURN', // 15
      '-A FORWARD -p tcp -g C', // 16
      '-A FORWARD -j ACCEPT', // 17
      '-A C -p tcp --dport 5 -j ACCEPT', // 18
    ],
  );
  const rs = compile(rules);
  const run = (hook: number, pkt: [IpSpec, L4Spec]): [number, string] => {
    const skb = load(new Skb(), ...pkt);
    return [rs.run(TABLE_FILTER, hook, skb), skb.verdictRef];
  };
  it('RETURN from a jumped-to chain continues after the jump', () => {
    expect(run(HOOK_INPUT, tcp('1.1.1.1', '2.2.2.2', 9, 3))).toEqual([VERDICT_ACCEPT, 'filter/A rule 4 (line 13): ACCEPT']);
  });
  it('RETURN from a goto-ed chain returns to the caller of the chain that did the goto', () => {
    expect(run(HOOK_INPUT, tcp('1.1.1.1', '2.2.2.2', 9, 2))).toEqual([VERDICT_REJECT, 'filter/INPUT rule 2 (line 9): REJECT --reject-with icmp-port-unreachable']);
  });
  it('RETURN and falling off a user chain return; falling off a built-in chain applies the policy', () => {
    expect(run(HOOK_INPUT, tcp('1.1.1.1', '2.2.2.2', 9, 1))).toEqual([VERDICT_DROP, 'filter/INPUT policy DROP']);
    expect(run(HOOK_INPUT, udp('1.1.1.1', '2.2.2.2', 9, 1))).toEqual([VERDICT_DROP, 'filter/INPUT policy DROP']);
    expect(run(HOOK_INPUT, tcp('1.1.1.1', '2.2.2.2', 9, 7))).toEqual([VERDICT_ACCEPT, 'filter/A rule 4 (line 13): ACCEPT']);
  });
  it('RETURN in a built-in chain applies its policy', () => {
    expect(run(HOOK_FORWARD, udp('1.1.1.1', '2.2.2.2', 9, 1))).toEqual([VERDICT_DROP, 'filter/FORWARD policy DROP']);
  });
  it('falling off a chain reached by goto from a built-in chain applies the built-in policy', () => {
    expect(run(HOOK_FORWARD, tcp('1.1.1.1', '2.2.2.2', 9, 5))).toEqual([VERDICT_ACCEPT, 'filter/C rule 1 (line 18): ACCEPT']);
    expect(run(HOOK_FORWARD, tcp('1.1.1.1', '2.2.2.2', 9, 6))).toEqual([VERDICT_DROP, 'filter/FORWARD policy DROP']);
  });
  it('returns through every level of a deep nest of jumps (gotos do not take a level)', () => {
    // FORWARD → L1 → L2 → ... → L8 by jumps, one goto in the middle (L4 goto G4, which jumps
    // on to L5); after each return a rule sets that level's mark bit. The stack must hold
    // every jump's frame: a frame lost would skip a level's mark or the final ACCEPT.
    const names = ['L1', 'L2', 'L3', 'L4', 'G4', 'L5', 'L6', 'L7', 'L8'];
    const rules: string[] = ['-A FORWARD -j L1', '-A FORWARD -m mark --mark 0xff/0xff -j ACCEPT'];
    for (let i = 1; i <= 7; i++) {
      const next = i === 4 ? '-g G4' : `-j L${i + 1}`;
      rules.push(`-A L${i} ${next}`, `-A L${i} -j MARK --set-xmark 0x${(1 << (i - 1)).toString(16)}/0x${(1 << (i - 1)).toString(16)}`);
    }
    rules.push('-A G4 -j L5', '-A L8 -j MARK --set-xmark 0x80/0x80', '-A L8 -j RETURN');
    const rs = compile(table('filter', [...FILTER_HEAD, ...names], rules));
    const skb = load(new Skb(), ...T);
    // L4's mark (bit 3) is lost: the goto replaced L4's frame, so G4's end returns to L3.
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_DROP);
    expect(skb.mark).toBe(0xff & ~0x08);
    const full = compile(table('filter', [...FILTER_HEAD, ...names], [...rules.slice(0, 1), '-A FORWARD -m mark --mark 0xf7/0xff -j ACCEPT', ...rules.slice(2)]));
    const skb2 = load(new Skb(), ...T);
    expect(full.run(TABLE_FILTER, HOOK_FORWARD, skb2)).toBe(VERDICT_ACCEPT);
  });

  it('accepts when the table or the hook chain is absent', () => {
    const skb = load(new Skb(), ...T);
    expect(rs.run(TABLE_NAT, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(rs.run(TABLE_FILTER, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(rs.hasTable(TABLE_FILTER)).toBe(true);
    expect(rs.hasTable(TABLE_NAT)).toBe(false);
    expect(rs.ruleCount).toBe(11);
  });
  it('a rule without a target only continues; comments go into the verdict reference', () => {
    const r = fwd(['-A FORWARD -p tcp', '-A FORWARD -m comment --comment "allow web" -m comment --comment "cali:x" -j ACCEPT'], T);
    expect(r.ref).toBe('filter/FORWARD rule 2 (line 6): ACCEPT "allow web; cali:x"');
  });
});

describe('matches', () => {
  it('-s / -d with CIDR, plain address and !', () => {
    expect(matches('-s 10.1.0.0/16', T)).toBe(true);
    expect(matches('-s 10.1.1.1', T)).toBe(true);
    expect(matches('-s 10.1.1.2', T)).toBe(false);
    expect(matches('! -s 10.1.0.0/16', T)).toBe(false);
    expect(matches('! -s 10.9.0.0/16', T)).toBe(true);
    expect(matches('-d 10.2.2.2/32', T)).toBe(true);
    expect(matches('-d 10.0.0.0/255.0.0.0', T)).toBe(true);
    expect(matches('! -d 10.2.2.2', T)).toBe(false);
    expect(matches('-s 0.0.0.0/0', T)).toBe(true);
    expect(matches('! -s 0.0.0.0/0', T)).toBe(false);
    expect(matches('-d 128.0.0.0/1', tcp('1.1.1.1', '200.1.1.1', 1, 2))).toBe(true);
  });
  it('-i / -o with + wildcards and !', () => {
    expect(matches('-i eth0', T, { inIf: ETH0 })).toBe(true);
    expect(matches('-i eth0', T, { inIf: ETH1 })).toBe(false);
    expect(matches('-i eth+', T, { inIf: ETH1 })).toBe(true);
    expect(matches('-i cali+', T, { inIf: ETH1 })).toBe(false);
    expect(matches('! -i cali+', T, { inIf: ETH1 })).toBe(true);
    expect(matches('-o cali+', T, { outIf: CALI_B })).toBe(true);
    expect(matches('-o cali1f2a3b4c5d6', T, { outIf: CALI_B })).toBe(false);
    expect(matches('! -o tunl0', T, { outIf: TUNL0 })).toBe(false);
    // No input device (a locally generated packet): only ! -i matches.
    expect(matches('-i eth+', T, { inIf: -1 })).toBe(false);
    expect(matches('! -i eth0', T, { inIf: -1 })).toBe(true);
  });
  it('-p with names, numbers, all and !', () => {
    expect(matches('-p tcp', T)).toBe(true);
    expect(matches('-p 6', T)).toBe(true);
    expect(matches('-p udp', T)).toBe(false);
    expect(matches('! -p udp', T)).toBe(true);
    expect(matches('-p all', T)).toBe(true);
    expect(matches('-p icmp', icmp('1.1.1.1', '2.2.2.2', 8))).toBe(true);
    expect(matches('-p ipencap', [{ src: '1.1.1.1', dst: '2.2.2.2', proto: 4 }, { kind: 'raw', payload: new Uint8Array(20) }])).toBe(true);
  });
  it('-f matches non-first fragments, ! -f the others', () => {
    const frag: [IpSpec, L4Spec] = [{ src: '1.1.1.1', dst: '2.2.2.2', proto: 17, fragOffset: 4 }, { kind: 'raw', payload: new Uint8Array(16) }];
    const first = udp('1.1.1.1', '2.2.2.2', 1, 2, { mf: true });
    expect(matches('-f', frag)).toBe(true);
    expect(matches('-f', first)).toBe(false);
    expect(matches('! -f', first)).toBe(true);
    expect(matches('! -f', frag)).toBe(false);
    // A port match never matches a non-first fragment.
    expect(matches('-p udp -m udp --dport 0:65535', frag)).toBe(false);
  });
  it('tcp/udp ports, ranges and !', () => {
    expect(matches('-p tcp --dport 80', T)).toBe(true);
    expect(matches('-p tcp --dport 81', T)).toBe(false);
    expect(matches('-p tcp ! --dport 81', T)).toBe(true);
    expect(matches('-p tcp --sport 39000:41000', T)).toBe(true);
    expect(matches('-p tcp --sport 40001:', T)).toBe(false);
    expect(matches('-p tcp -m tcp ! --sport :39999', T)).toBe(true);
    expect(matches('-p udp --dport 53', udp('1.1.1.1', '2.2.2.2', 5353, 53))).toBe(true);
    expect(matches('-p udp -m udp --sport 5353 --dport 54', udp('1.1.1.1', '2.2.2.2', 5353, 53))).toBe(false);
  });
  it('--tcp-flags, --syn and !', () => {
    expect(matches('-p tcp --syn', T)).toBe(true);
    expect(matches('-p tcp --syn', tcp('1.1.1.1', '2.2.2.2', 1, 80, 'SA'))).toBe(false);
    expect(matches('-p tcp ! --syn', tcp('1.1.1.1', '2.2.2.2', 1, 80, 'A'))).toBe(true);
    expect(matches('-p tcp --tcp-flags SYN,ACK SYN,ACK', tcp('1.1.1.1', '2.2.2.2', 1, 80, 'SA'))).toBe(true);
    expect(matches('-p tcp --tcp-flags ALL NONE', tcp('1.1.1.1', '2.2.2.2', 1, 80, ''))).toBe(true);
    expect(matches('-p tcp --tcp-flags ALL FIN,PSH,URG', tcp('1.1.1.1', '2.2.2.2', 1, 80, 'FPU'))).toBe(true);
  });
  it('--tcp-option', () => {
    // MSS (kind 2, len 4) + NOP NOP + SACK-permitted (4, 2).
    const opts = Uint8Array.from([2, 4, 5, 0xb4, 1, 1, 4, 2]);
    const syn: [IpSpec, L4Spec] = [{ src: '1.1.1.1', dst: '2.2.2.2' }, { kind: 'tcp', sport: 1, dport: 80, flags: 'S', options: opts }];
    expect(matches('-p tcp --tcp-option 2', syn)).toBe(true);
    expect(matches('-p tcp --tcp-option 4', syn)).toBe(true);
    expect(matches('-p tcp --tcp-option 8', syn)).toBe(false);
    expect(matches('-p tcp ! --tcp-option 8', syn)).toBe(true);
    expect(matches('-p tcp --tcp-option 2', T)).toBe(false);
  });
  it('a TCP fragment at offset 8 is hot-dropped by a tcp match (tcp_mt)', () => {
    const evil: [IpSpec, L4Spec] = [{ src: '1.1.1.1', dst: '2.2.2.2', proto: 6, fragOffset: 1 }, { kind: 'raw', payload: new Uint8Array(16) }];
    const r = fwd(['-A FORWARD -p tcp --dport 22 -j ACCEPT', '-A FORWARD -j ACCEPT'], evil);
    expect(r.v).toBe(VERDICT_DROP);
    expect(r.ref).toBe('filter/FORWARD rule 1 (line 5): hotdrop (TCP fragment at offset 8)');
    const later: [IpSpec, L4Spec] = [{ src: '1.1.1.1', dst: '2.2.2.2', proto: 6, fragOffset: 2 }, { kind: 'raw', payload: new Uint8Array(16) }];
    expect(fwd(['-A FORWARD -p tcp --dport 22 -j DROP', '-A FORWARD -j ACCEPT'], later).v).toBe(VERDICT_ACCEPT);
  });
  it('-m icmp --icmp-type names, numbers, type/code and !', () => {
    const echo = icmp('1.1.1.1', '2.2.2.2', 8);
    const unreach = icmp('1.1.1.1', '2.2.2.2', 3, 4);
    expect(matches('-p icmp --icmp-type echo-request', echo)).toBe(true);
    expect(matches('-p icmp --icmp-type 8', echo)).toBe(true);
    expect(matches('-p icmp --icmp-type 0', echo)).toBe(false);
    expect(matches('-p icmp ! --icmp-type echo-reply', echo)).toBe(true);
    expect(matches('-p icmp --icmp-type any', echo)).toBe(true);
    expect(matches('-p icmp --icmp-type destination-unreachable', unreach)).toBe(true);
    expect(matches('-p icmp --icmp-type fragmentation-needed', unreach)).toBe(true);
    expect(matches('-p icmp --icmp-type 3/3', unreach)).toBe(false);
    expect(matches('-p icmp -m icmp --icmp-type 3/4', unreach)).toBe(true);
  });
  it('-m multiport with --dports, --sports, --ports, ranges and !', () => {
    expect(matches('-p tcp -m multiport --dports 22,80,443', T)).toBe(true);
    expect(matches('-p tcp -m multiport --dports 22,8000:9000', T)).toBe(false);
    expect(matches('-p tcp -m multiport --dports 22,79:81', T)).toBe(true);
    expect(matches('-p tcp -m multiport ! --dports 22,443', T)).toBe(true);
    expect(matches('-p tcp -m multiport --sports 40000', T)).toBe(true);
    expect(matches('-p tcp -m multiport --ports 40000', T)).toBe(true);
    expect(matches('-p tcp -m multiport --ports 80', T)).toBe(true);
    expect(matches('-p tcp -m multiport --ports 81', T)).toBe(false);
  });
  it('-m conntrack --ctstate (incl. DNAT from the entry status) and -m state', () => {
    ct.entry(3, { proto: 6, src: '10.1.1.1', dst: '172.21.0.20', sport: 40000, dport: 80, replSrc: '172.30.1.5', replSport: 8080, status: IPS_DST_NAT | IPS_SEEN_REPLY | IPS_ASSURED });
    const est = { ct: 3, ctState: CT_ESTABLISHED };
    expect(matches('-m conntrack --ctstate RELATED,ESTABLISHED', T, est)).toBe(true);
    expect(matches('-m conntrack --ctstate NEW', T, est)).toBe(false);
    expect(matches('-m conntrack ! --ctstate NEW', T, est)).toBe(true);
    expect(matches('-m conntrack --ctstate DNAT', T, est)).toBe(true);
    expect(matches('-m conntrack --ctstate SNAT', T, est)).toBe(false);
    expect(matches('-m state --state ESTABLISHED', T, est)).toBe(true);
    expect(matches('-m state ! --state ESTABLISHED', T, est)).toBe(false);
    expect(matches('-m conntrack --ctstate INVALID', T, { ctState: CT_INVALID })).toBe(true);
    expect(matches('-m conntrack --ctstate INVALID', T, {})).toBe(true); // no conntrack entry at all
    expect(matches('-m conntrack --ctstate UNTRACKED', T, { ctState: CT_UNTRACKED })).toBe(true);
    expect(matches('-m conntrack --ctstate RELATED', T, { ct: 3, ctState: CT_RELATED })).toBe(true);
  });
  it('-m conntrack tuple, status and direction options; no entry → only the state test counts', () => {
    ct.entry(3, { proto: 6, src: '10.1.1.1', dst: '172.21.0.20', sport: 40000, dport: 80, replSrc: '172.30.1.5', replSport: 8080, status: IPS_DST_NAT | IPS_SEEN_REPLY | IPS_ASSURED });
    const est = { ct: 3, ctState: CT_ESTABLISHED };
    expect(matches('-m conntrack --ctorigdst 172.21.0.20 --ctorigdstport 80', T, est)).toBe(true);
    expect(matches('-m conntrack --ctorigdst 172.21.0.0/16 ! --ctorigdstport 80', T, est)).toBe(false);
    expect(matches('-m conntrack --ctorigsrc 10.1.1.1 --ctreplsrc 172.30.1.5 --ctreplsrcport 8000:9000', T, est)).toBe(true);
    expect(matches('-m conntrack ! --ctreplsrc 172.30.1.5', T, est)).toBe(false);
    expect(matches('-m conntrack --ctproto tcp --ctstatus ASSURED', T, est)).toBe(true);
    expect(matches('-m conntrack --ctstatus EXPECTED', T, est)).toBe(false);
    expect(matches('-m conntrack ! --ctstatus EXPECTED', T, est)).toBe(true);
    expect(matches('-m conntrack --ctdir ORIGINAL', T, est)).toBe(true);
    expect(matches('-m conntrack --ctdir REPLY', T, est)).toBe(false);
    expect(matches('-m conntrack --ctdir REPLY', T, { ...est, ctDir: 1 })).toBe(true);
    // conntrack_mt: without an entry, the match is its state test alone.
    expect(matches('-m conntrack --ctorigdst 172.21.0.20', T, { ctState: CT_INVALID })).toBe(false);
    expect(matches('-m conntrack --ctstate INVALID --ctorigdst 1.2.3.4', T, { ctState: CT_INVALID })).toBe(true);
  });
  it('-m mark with and without mask, !', () => {
    expect(matches('-m mark --mark 0x4000/0x4000', T, { mark: 0x14000 })).toBe(true);
    expect(matches('-m mark --mark 0x4000', T, { mark: 0x14000 })).toBe(false);
    expect(matches('-m mark ! --mark 0x4000/0x4000', T, { mark: 0x10000 })).toBe(true);
    expect(matches('-m mark --mark 0x0/0x10000', T, { mark: 0x4000 })).toBe(true);
    expect(matches('-m mark --mark 0x80000000/0x80000000', T, { mark: 0x80000001 })).toBe(true);
  });
  it('-m comment and -m nfacct always match', () => {
    expect(matches('-m comment --comment "x y"', T)).toBe(true);
    expect(matches('-m nfacct --nfacct-name localhost_nps_accepted_pkts', T)).toBe(true);
  });
  it('-m addrtype via the environment (lists, !, --limit-iface-in/out)', () => {
    const toNode = tcp('1.1.1.1', '10.177.1.10', 1, 80);
    expect(matches('-m addrtype --dst-type LOCAL', toNode)).toBe(true);
    expect(matches('-m addrtype --dst-type UNICAST,BROADCAST', toNode)).toBe(false);
    expect(matches('-m addrtype ! --dst-type LOCAL', toNode)).toBe(false);
    expect(matches('-m addrtype --src-type UNICAST --dst-type LOCAL', toNode)).toBe(true);
    expect(matches('-m addrtype --dst-type LOCAL --limit-iface-in', toNode, { inIf: ETH0 })).toBe(true);
    expect(matches('-m addrtype --dst-type LOCAL --limit-iface-in', toNode, { inIf: ETH1 })).toBe(false);
    expect(matches('-m addrtype --dst-type MULTICAST', udp('1.1.1.1', '224.0.0.251', 5353, 5353))).toBe(true);
    const err = (): unknown => compile(table('filter', FILTER_HEAD, ['-A INPUT -m addrtype --src-type LOCAL --limit-iface-out -j ACCEPT']));
    expect(err).toThrow('addrtype --limit-iface-out is not valid in PREROUTING and INPUT');
  });
  it('-m set src/dst and ! (hash:net, hash:ip,port)', () => {
    const ipsets = CALICO_IPSET;
    const m = (spec: string, pkt: [IpSpec, L4Spec]): boolean => {
      const rs = Ruleset.fromText(table('filter', FILTER_HEAD, [`-A FORWARD ${spec} -j ACCEPT`]), { env, ct, prng: new Prng(1), ipsetSave: ipsets });
      return rs.run(TABLE_FILTER, HOOK_FORWARD, load(new Skb(), ...pkt)) === VERDICT_ACCEPT;
    };
    const p = tcp('172.30.1.5', '8.8.8.8', 40000, 443);
    expect(m('-m set --match-set cali40all-ipam-pools src', p)).toBe(true);
    expect(m('-m set --match-set cali40all-ipam-pools dst', p)).toBe(false);
    expect(m('-m set ! --match-set cali40all-ipam-pools dst', p)).toBe(true);
    expect(m('-m set --match-set cali40n:3hMtBWDxkyNUs4bPg dst,dst', tcp('1.1.1.1', '172.30.1.5', 40000, 8080))).toBe(true);
    expect(m('-m set --match-set cali40n:3hMtBWDxkyNUs4bPg dst,dst', tcp('1.1.1.1', '172.30.1.5', 40000, 8081))).toBe(false);
    expect(m('-m set --match-set cali40n:3hMtBWDxkyNUs4bPg dst', tcp('1.1.1.1', '172.30.1.5', 40000, 8080))).toBe(false);
    expect(() => Ruleset.fromText(table('filter', FILTER_HEAD, ['-A FORWARD -m set --match-set nope src -j ACCEPT']), { file: 'n.rules', env, ct, prng: new Prng(1), ipsetSave: ipsets })).toThrow(
      'n.rules:5: set "nope" doesn\'t exist',
    );
  });
  it('-m rpfilter through the environment', () => {
    const e2 = new FakeEnv();
    const text = table('raw', ['PREROUTING ACCEPT', 'OUTPUT ACCEPT'], ['-A PREROUTING -m rpfilter --validmark --invert -j DROP']);
    const rs = Ruleset.fromText(text, { env: e2, ct, prng: new Prng(1) });
    const skb = load(new Skb(), ...T, { inIf: ETH0, mark: 0x40000 });
    expect(rs.run(TABLE_RAW, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(e2.rpfilterCalls[0]).toEqual({ src: parseIpv4('10.1.1.1'), dst: parseIpv4('10.2.2.2'), inIf: ETH0, mark: 0x40000, flags: 2 });
    e2.rpfilterResult = false;
    expect(rs.run(TABLE_RAW, HOOK_PREROUTING, skb)).toBe(VERDICT_DROP);
    expect(() => Ruleset.fromText(text, { env: new FakeEnv(undefined, false), ct, prng: new Prng(1) })).toThrow(/rpfilter needs a reverse-path lookup/);
  });
});

describe('statistic', () => {
  it('nth: a per-rule counter starting at every-1-packet, as xt_statistic/libxt_statistic', () => {
    const seq = (spec: string, n: number, pkt: (i: number) => [IpSpec, L4Spec] = () => T): number[] => {
      const rs = compile(table('filter', FILTER_HEAD, [`-A FORWARD ${spec} -j ACCEPT`]));
      const out: number[] = [];
      for (let i = 0; i < n; i++) if (rs.run(TABLE_FILTER, HOOK_FORWARD, load(new Skb(), ...pkt(i))) === VERDICT_ACCEPT) out.push(i);
      return out;
    };
    expect(seq('-m statistic --mode nth --every 3 --packet 0', 9)).toEqual([0, 3, 6]);
    expect(seq('-m statistic --mode nth --every 3 --packet 1', 9)).toEqual([1, 4, 7]);
    expect(seq('-m statistic --mode nth --every 3 --packet 2', 9)).toEqual([2, 5, 8]);
    expect(seq('-m statistic --mode nth ! --every 2', 6)).toEqual([1, 3, 5]);
    // The counter only moves when the match is evaluated (the rule's -p udp fails first for tcp).
    expect(seq('-p udp -m statistic --mode nth --every 2', 8, (i) => (i % 2 ? udp('1.1.1.1', '2.2.2.2', 1, 2) : T))).toEqual([1, 5]);
  });
  it('random: (prandom_u32() & 0x7fffffff) < lround(p * 2^31), drawn from the seeded Prng', () => {
    const run = (seed: number): boolean[] => {
      const rs = compile(table('filter', FILTER_HEAD, ['-A FORWARD -m statistic --mode random --probability 0.3 -j ACCEPT']), seed);
      return Array.from({ length: 64 }, () => rs.run(TABLE_FILTER, HOOK_FORWARD, load(new Skb(), ...T)) === VERDICT_ACCEPT);
    };
    const ref = new Prng(7);
    const expected = Array.from({ length: 64 }, () => (ref.nextU32() & 0x7fffffff) < Math.round(0.3 * 2 ** 31));
    expect(run(7)).toEqual(expected);
    expect(run(7)).toEqual(run(7));
    expect(run(8)).not.toEqual(run(7));
    const inv = compile(table('filter', FILTER_HEAD, ['-A FORWARD -m statistic --mode random ! --probability 0.3 -j ACCEPT']), 7);
    expect(Array.from({ length: 64 }, () => inv.run(TABLE_FILTER, HOOK_FORWARD, load(new Skb(), ...T)) === VERDICT_ACCEPT)).toEqual(expected.map((x) => !x));
  });
  it('kube-proxy endpoints get 1/n each; NAT ranges say how they were chosen', () => {
    const rs = compile(KUBE_PROXY_SAVE, 3);
    const counts = new Map<string, number>();
    const skb = new Skb();
    for (let i = 0; i < 30000; i++) {
      load(skb, ...tcp('10.177.1.50', '172.21.0.20', 1024 + (i % 60000), 80), { inIf: ETH0, ctState: CT_NEW });
      expect(rs.run(TABLE_NAT, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
      const k = `${skb.natRange.minIp.toString(16)} ${skb.natRange.how}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['ac1e0105 random', 'ac1e0207 random', 'ac1e0309 random']);
    for (const n of counts.values()) expect(Math.abs(n - 10000)).toBeLessThan(400);
  });
});

describe('recent', () => {
  const text = table('filter', FILTER_HEAD.concat(['SEEN']), [
    '-A FORWARD -p tcp --dport 1 -m recent --set --name L -j ACCEPT', // 6
    '-A FORWARD -p tcp --dport 2 -m recent --rcheck --seconds 10 --name L -j ACCEPT', // 7
    '-A FORWARD -p tcp --dport 3 -m recent --update --seconds 10 --hitcount 3 --name L -j ACCEPT', // 8
    '-A FORWARD -p tcp --dport 4 -m recent --remove --name L -j ACCEPT', // 9
    '-A FORWARD -p tcp --dport 5 -m recent --rcheck --seconds 10 --reap --name L -j ACCEPT', // 10
    '-A FORWARD -p tcp --dport 6 -m recent --set --name D --rdest --mask 255.255.255.0 -j ACCEPT', // 11
    '-A FORWARD -p tcp --dport 7 -m recent --rcheck --name D --rdest -j ACCEPT', // 12
    '-A FORWARD -p tcp --dport 8 -m recent ! --rcheck --name L -j ACCEPT', // 13
  ]);
  const go = (rs: Ruleset, src: string, dport: number, now: number, dst = '10.2.2.2'): boolean =>
    rs.run(TABLE_FILTER, HOOK_FORWARD, load(new Skb(), ...tcp(src, dst, 1000, dport), { now, inIf: ETH0, outIf: ETH1 })) === VERDICT_ACCEPT;

  it('--set, --rcheck --seconds, ! --rcheck', () => {
    const rs = compile(text);
    expect(go(rs, '10.0.0.1', 2, 100)).toBe(false);
    expect(go(rs, '10.0.0.1', 8, 100)).toBe(true);
    expect(go(rs, '10.0.0.1', 1, 100)).toBe(true);
    expect(go(rs, '10.0.0.1', 2, 105)).toBe(true);
    expect(go(rs, '10.0.0.1', 8, 105)).toBe(false);
    expect(go(rs, '10.0.0.2', 2, 105)).toBe(false);
    expect(go(rs, '10.0.0.1', 2, 110)).toBe(true); // exactly 10 s: still within
    expect(go(rs, '10.0.0.1', 2, 110.5)).toBe(false);
    expect(rs.recentTable('L')!.has(parseIpv4('10.0.0.1'))).toBe(true);
  });
  it('--update --hitcount counts stamps and refreshes them when it matches', () => {
    const rs = compile(text);
    go(rs, '10.0.0.1', 1, 0);
    expect(go(rs, '10.0.0.1', 3, 1)).toBe(false); // 1 stamp
    go(rs, '10.0.0.1', 1, 2);
    expect(go(rs, '10.0.0.1', 3, 3)).toBe(false); // 2 stamps
    go(rs, '10.0.0.1', 1, 4);
    expect(go(rs, '10.0.0.1', 3, 5)).toBe(true); // 3 stamps, and adds one
    expect(rs.recentTable('L')!.lastSeen(parseIpv4('10.0.0.1'))).toBe(5);
    // Stamps are now 0, 2, 4, 5: at 13 only 4 and 5 are within 10 s, at 12 also 2.
    expect(go(rs, '10.0.0.1', 3, 13)).toBe(false);
    expect(go(rs, '10.0.0.1', 3, 12)).toBe(true);
    expect(go(rs, '10.0.0.1', 3, 30)).toBe(false);
  });
  it('--remove and --reap', () => {
    const rs = compile(text);
    go(rs, '10.0.0.1', 1, 0);
    expect(go(rs, '10.0.0.1', 4, 1)).toBe(true);
    expect(go(rs, '10.0.0.1', 2, 1)).toBe(false);
    expect(go(rs, '10.0.0.1', 4, 1)).toBe(false);
    // --reap removes the oldest entry when its last stamp is older than --seconds.
    go(rs, '10.0.0.1', 1, 0);
    go(rs, '10.0.0.2', 1, 50);
    expect(go(rs, '10.0.0.2', 5, 55)).toBe(true);
    expect(rs.recentTable('L')!.has(parseIpv4('10.0.0.1'))).toBe(false);
    expect(rs.recentTable('L')!.has(parseIpv4('10.0.0.2'))).toBe(true);
  });
  it('--rdest and --mask key the list by the masked destination', () => {
    const rs = compile(text);
    go(rs, '10.0.0.1', 6, 0, '192.168.5.9');
    expect(go(rs, '10.0.0.7', 7, 1, '192.168.5.200')).toBe(true);
    expect(go(rs, '10.0.0.7', 7, 1, '192.168.6.1')).toBe(false);
  });
  it('a list holds ip_list_tot addresses, evicting the least recently updated', () => {
    const rs = compile(text, 42, { recentListSize: 3 });
    for (const [i, a] of ['10.0.0.1', '10.0.0.2', '10.0.0.3'].entries()) go(rs, a, 1, i);
    go(rs, '10.0.0.1', 1, 10); // refresh .1: .2 is now the oldest
    go(rs, '10.0.0.4', 1, 11);
    const t = rs.recentTable('L')!;
    expect(t.entries).toBe(3);
    expect(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'].map((a) => t.has(parseIpv4(a)))).toEqual([true, false, true, true]);
  });
  it('kube-proxy session affinity: the second connection goes to the same endpoint', () => {
    const rs = compile(KUBE_PROXY_SAVE, 11);
    const skb = new Skb();
    const first = new Map<string, number>();
    for (let c = 0; c < 50; c++) {
      const client = `10.177.2.${c + 1}`;
      for (let k = 0; k < 3; k++) {
        load(skb, ...tcp(client, '172.21.0.30', 30000 + k, 80), { inIf: ETH0, ctState: CT_NEW, now: 1000 + k });
        rs.run(TABLE_NAT, HOOK_PREROUTING, skb);
        if (k === 0) {
          first.set(client, skb.natRange.minIp);
          expect(skb.natRange.how).toBe('random');
        } else {
          expect(skb.natRange.minIp).toBe(first.get(client));
          expect(skb.natRange.how).toBe('recent');
          expect(skb.natRange.ruleRef).toMatch(/^KUBE-SEP-AFF[12]\w+ rule 2 \(line \d+\)$/);
        }
      }
    }
    expect(new Set(first.values()).size).toBe(2);
  });
});

describe('targets', () => {
  it('MARK arithmetic as xt_mark_tginfo2: mark = (mark & ~mask) ^ value', () => {
    const mark = (target: string, start: number): number => {
      const r = fwd([`-A FORWARD -j MARK ${target}`, '-A FORWARD -j ACCEPT'], T, { mark: start });
      return r.skb.mark;
    };
    expect(mark('--set-xmark 0x4000/0x4000', 0x10001)).toBe(0x14001);
    expect(mark('--set-xmark 0x4000/0x0', 0x14001)).toBe(0x10001);
    expect(mark('--set-xmark 0x0/0xf0000', 0xf4001)).toBe(0x4001);
    expect(mark('--set-mark 0x5', 0xffff)).toBe(5);
    expect(mark('--set-mark 0x5/0xf', 0xff)).toBe(0xf5);
    expect(mark('--or-mark 0x4000', 0x1)).toBe(0x4001);
    expect(mark('--and-mark 0xff', 0x1234)).toBe(0x34);
    expect(mark('--xor-mark 0x3', 0x5)).toBe(0x6);
    expect(mark('--set-xmark 0x80000000/0x80000000', 0)).toBe(0x80000000);
  });
  it('REJECT sets skb.rejectWith', () => {
    const kinds: [string, number][] = [
      ['', REJECT_ICMP_PORT_UNREACHABLE],
      ['--reject-with icmp-net-unreachable', REJECT_ICMP_NET_UNREACHABLE],
      ['--reject-with icmp-host-unreachable', REJECT_ICMP_HOST_UNREACHABLE],
      ['--reject-with icmp-port-unreachable', REJECT_ICMP_PORT_UNREACHABLE],
      ['--reject-with icmp-proto-unreachable', REJECT_ICMP_PROT_UNREACHABLE],
      ['--reject-with icmp-net-prohibited', REJECT_ICMP_NET_PROHIBITED],
      ['--reject-with icmp-host-prohibited', REJECT_ICMP_HOST_PROHIBITED],
      ['--reject-with icmp-admin-prohibited', REJECT_ICMP_ADMIN_PROHIBITED],
      ['--reject-with tcp-reset', REJECT_TCP_RESET],
    ];
    for (const [opt, w] of kinds) {
      const r = fwd([`-A FORWARD -p tcp -j REJECT ${opt}`], T);
      expect(r.v).toBe(VERDICT_REJECT);
      expect(r.skb.rejectWith).toBe(w);
    }
  });
  it('DNAT, SNAT, MASQUERADE fill the NAT range and accept', () => {
    const text = table('nat', ['PREROUTING ACCEPT', 'INPUT ACCEPT', 'OUTPUT ACCEPT', 'POSTROUTING ACCEPT', 'SEP'], [
      '-A PREROUTING -d 172.21.0.5/32 -p tcp --dport 80 -j SEP', // 7
      '-A PREROUTING -p udp -j DNAT --to-destination 10.0.0.1-10.0.0.3 --random --persistent', // 8
      '-A SEP -p tcp -j DNAT --to-destination 172.30.1.5:8080-8081', // 9
      '-A POSTROUTING -o eth0 -p tcp -j SNAT --to-source 10.177.1.10:1024-2048 --random-fully', // 10
      '-A POSTROUTING -o tunl0 -p udp -j MASQUERADE --to-ports 20000-30000 --random', // 11
      '-A POSTROUTING -o eth1 -j MASQUERADE', // 12
    ]);
    const rs = compile(text);
    const skb = load(new Skb(), ...tcp('10.1.1.1', '172.21.0.5', 1000, 80), { inIf: ETH0 });
    expect(rs.run(TABLE_NAT, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(skb.natRangeSet).toBe(true);
    expect({ ...skb.natRange }).toMatchObject({
      manip: NAT_MANIP_DST,
      flags: NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED,
      minIp: parseIpv4('172.30.1.5'),
      maxIp: parseIpv4('172.30.1.5'),
      minPort: 8080,
      maxPort: 8081,
      ruleRef: 'SEP rule 1 (line 9)',
      how: '',
    });
    expect(skb.verdictRef).toBe('nat/SEP rule 1 (line 9): DNAT --to-destination 172.30.1.5:8080-8081');
    load(skb, ...udp('10.1.1.1', '172.21.0.5', 1000, 53));
    rs.run(TABLE_NAT, HOOK_PREROUTING, skb);
    expect({ ...skb.natRange }).toMatchObject({ flags: NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_RANDOM | NF_NAT_RANGE_PERSISTENT, minIp: parseIpv4('10.0.0.1'), maxIp: parseIpv4('10.0.0.3') });
    load(skb, ...tcp('172.30.1.5', '8.8.8.8', 1000, 443), { outIf: ETH0 });
    rs.run(TABLE_NAT, HOOK_POSTROUTING, skb);
    expect({ ...skb.natRange }).toMatchObject({ manip: NAT_MANIP_SRC, flags: NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED | NF_NAT_RANGE_PROTO_RANDOM_FULLY, minPort: 1024, maxPort: 2048 });
    load(skb, ...udp('172.30.1.5', '8.8.8.8', 1000, 443), { outIf: TUNL0 });
    rs.run(TABLE_NAT, HOOK_POSTROUTING, skb);
    expect({ ...skb.natRange }).toMatchObject({ manip: NAT_MANIP_SRC, flags: NAT_RANGE_MASQUERADE | NF_NAT_RANGE_PROTO_SPECIFIED | NF_NAT_RANGE_PROTO_RANDOM, minPort: 20000, maxPort: 30000 });
    load(skb, ...udp('172.30.1.5', '8.8.8.8', 1000, 443), { outIf: ETH1 });
    rs.run(TABLE_NAT, HOOK_POSTROUTING, skb);
    expect(skb.natRange.flags).toBe(NAT_RANGE_MASQUERADE);
    // No NAT rule: accept without a range.
    load(skb, ...udp('172.30.1.5', '8.8.8.8', 1000, 443), { outIf: CALI_A });
    expect(rs.run(TABLE_NAT, HOOK_POSTROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(skb.natRangeSet).toBe(false);
  });
  it('NETMAP and REDIRECT', () => {
    const rs = compile(
      table('nat', ['PREROUTING ACCEPT', 'INPUT ACCEPT', 'OUTPUT ACCEPT', 'POSTROUTING ACCEPT'], [
        '-A PREROUTING -d 192.168.100.0/24 -j NETMAP --to 10.10.0.0/24',
        '-A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 3128',
        '-A OUTPUT -p tcp --dport 8080 -j REDIRECT',
        '-A POSTROUTING -s 10.10.0.0/24 -j NETMAP --to 192.168.100.0/24',
      ]),
    );
    const skb = load(new Skb(), ...tcp('1.1.1.1', '192.168.100.7', 1, 80), { inIf: ETH1 });
    rs.run(TABLE_NAT, HOOK_PREROUTING, skb);
    expect({ ...skb.natRange }).toMatchObject({ manip: NAT_MANIP_DST, flags: NF_NAT_RANGE_MAP_IPS | NAT_RANGE_NETMAP, minIp: parseIpv4('10.10.0.0'), maxIp: parseIpv4('10.10.0.255'), netmapMask: 0xffffff00 });
    load(skb, ...tcp('10.10.0.3', '1.1.1.1', 1, 80));
    rs.run(TABLE_NAT, HOOK_POSTROUTING, skb);
    expect(skb.natRange.manip).toBe(NAT_MANIP_SRC);
    load(skb, ...tcp('1.1.1.1', '2.2.2.2', 1, 8080), { inIf: ETH1 });
    rs.run(TABLE_NAT, HOOK_PREROUTING, skb);
    expect({ ...skb.natRange }).toMatchObject({ manip: NAT_MANIP_DST, minIp: parseIpv4('192.168.1.1'), minPort: 3128, maxPort: 3128 });
    load(skb, ...tcp('10.177.1.10', '2.2.2.2', 1, 8080));
    rs.run(TABLE_NAT, HOOK_OUTPUT, skb);
    expect({ ...skb.natRange }).toMatchObject({ manip: NAT_MANIP_DST, minIp: 0x7f000001, flags: NF_NAT_RANGE_MAP_IPS });
  });
  it('CT --notrack and NOTRACK set skb.notrack and continue; LOG/NFLOG do not stop', () => {
    const rs = compile(
      table('raw', ['PREROUTING ACCEPT', 'OUTPUT ACCEPT'], [
        '-A PREROUTING -p udp --dport 4789 -j NOTRACK',
        '-A PREROUTING -p udp --dport 4789 -j LOG --log-prefix "vxlan: "',
        '-A PREROUTING -p udp --dport 4789 -j NFLOG --nflog-group 5',
        '-A PREROUTING -m conntrack --ctstate UNTRACKED -j ACCEPT',
        '-A PREROUTING -j DROP',
        '-A OUTPUT -j CT --notrack',
      ]),
    );
    const skb = load(new Skb(), ...udp('10.0.0.1', '10.0.0.2', 1000, 4789));
    expect(rs.run(TABLE_RAW, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(skb.notrack).toBe(true);
    expect(skb.verdictRef).toBe('raw/PREROUTING rule 4 (line 7): ACCEPT');
    load(skb, ...udp('10.0.0.1', '10.0.0.2', 1000, 53));
    expect(rs.run(TABLE_RAW, HOOK_PREROUTING, skb)).toBe(VERDICT_DROP);
    expect(skb.notrack).toBe(false);
    expect(rs.run(TABLE_RAW, HOOK_OUTPUT, skb)).toBe(VERDICT_ACCEPT);
    expect(skb.notrack).toBe(true);
  });
});

describe('kube-proxy and Calico pipelines', () => {
  it('kube-proxy: DNAT + MARK-MASQ in nat PREROUTING, MASQUERADE --random-fully in POSTROUTING', () => {
    const rs = compile(KUBE_PROXY_SAVE, 5);
    ct.entry(5, { proto: 6, src: '1.1.1.1', dst: '2.2.2.2', sport: 1, dport: 2 });
    const skb = load(new Skb(), ...tcp('203.0.113.9', '10.177.1.10', 5555, 30080), { inIf: ETH0, ct: 5, ctState: CT_NEW });
    expect(rs.run(TABLE_NAT, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(skb.mark).toBe(0x4000); // KUBE-EXT → KUBE-MARK-MASQ
    expect(skb.natRange.manip).toBe(NAT_MANIP_DST);
    expect([0xac1e0105, 0xac1e0207, 0xac1e0309]).toContain(skb.natRange.minIp);
    skb.outIf = ETH1;
    expect(rs.run(TABLE_NAT, HOOK_POSTROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(skb.mark).toBe(0); // --set-xmark 0x4000/0x0
    expect(skb.natRange.flags).toBe(NAT_RANGE_MASQUERADE | NF_NAT_RANGE_PROTO_RANDOM_FULLY);
    expect(skb.verdictRef).toBe('nat/KUBE-POSTROUTING rule 3 (line 84): MASQUERADE --random-fully "kubernetes service traffic requiring SNAT"');
    // Pod → ClusterIP from inside the cluster: no masquerade mark.
    load(skb, ...udp('172.30.1.9', '172.21.0.10', 5353, 53), { inIf: CALI_A, ct: 5, ctState: CT_NEW });
    rs.run(TABLE_NAT, HOOK_PREROUTING, skb);
    expect(skb.mark).toBe(0);
    expect([0xac1e0102, 0xac1e0203]).toContain(skb.natRange.minIp);
    expect(skb.natRange.minPort).toBe(53);
    // A service without endpoints is rejected in filter.
    load(skb, ...tcp('172.30.1.9', '172.21.44.10', 5353, 80), { inIf: CALI_A, ct: 5, ctState: CT_NEW });
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_REJECT);
    expect(skb.rejectWith).toBe(REJECT_ICMP_PORT_UNREACHABLE);
    expect(skb.verdictRef).toBe('filter/KUBE-SERVICES rule 1 (line 43): REJECT --reject-with icmp-port-unreachable "default/no-endpoints:http has no endpoints"');
  });
  it('Calico: workload-to-workload ingress policy, profiles, IPIP from hosts, nat-outgoing', () => {
    const rs = Ruleset.fromText(CALICO_SAVE, { file: 'calico.rules', env, ct, prng: new Prng(1), ipsetSave: CALICO_IPSET, ipsetFile: 'sets.txt' });
    const skb = new Skb();
    ct.entry(5, { proto: 6, src: '1.1.1.1', dst: '2.2.2.2', sport: 1, dport: 2 });
    // B → A on 8080: egress profile of B accepts, A's ingress policy allows the selector source.
    load(skb, ...tcp('172.30.2.9', '172.30.1.5', 40000, 8080), { inIf: CALI_B, outIf: CALI_A, ct: 5, ctState: CT_NEW });
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_ACCEPT);
    expect(skb.verdictRef).toBe('filter/FORWARD rule 2 (line 95): ACCEPT "cali:S93hcgKJrXEqnTfs; Policy explicitly accepted packet."');
    // Port not allowed by the policy: end of tier drop.
    load(skb, ...tcp('172.30.2.9', '172.30.1.5', 40000, 9999), { inIf: CALI_B, outIf: CALI_A, ct: 5, ctState: CT_NEW });
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_DROP);
    expect(skb.verdictRef).toMatch(/^filter\/cali-tw-cali1f2a3b4c5d6 rule 7 \(line \d+\): DROP "cali:D1ifdA2j0iG6yuka; End of tier default. Drop if no policies passed packet"$/);
    // Source in the /25 nomatch part of the selector set.
    load(skb, ...tcp('172.30.2.200', '172.30.1.5', 40000, 8080), { inIf: CALI_B, outIf: CALI_A, ct: 5, ctState: CT_NEW });
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_DROP);
    // A → B: B has no policy, its profile accepts.
    load(skb, ...tcp('172.30.1.5', '172.30.2.9', 40000, 9999), { inIf: CALI_A, outIf: CALI_B, ct: 5, ctState: CT_NEW });
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_ACCEPT);
    // Unknown workload interface.
    load(skb, ...tcp('172.30.1.5', '172.30.2.9', 40000, 9999), { inIf: ETH0, outIf: CALI_B, ct: 5, ctState: CT_NEW });
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_ACCEPT);
    // Established traffic is accepted by the workload chains' conntrack rule.
    ct.entry(4, { proto: 6, src: '172.30.2.9', dst: '172.30.1.5', sport: 40000, dport: 9999 });
    load(skb, ...tcp('172.30.2.9', '172.30.1.5', 40000, 9999, 'A'), { inIf: CALI_B, outIf: CALI_A, ct: 4, ctState: CT_ESTABLISHED });
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_ACCEPT);
    // IPIP from a Calico host to this node; from elsewhere it is dropped.
    const ipip = (src: string): [IpSpec, L4Spec] => [{ src, dst: '10.177.1.10', proto: 4 }, { kind: 'raw', payload: new Uint8Array(40) }];
    load(skb, ...ipip('10.177.1.11'), { inIf: ETH0 });
    expect(rs.run(TABLE_FILTER, HOOK_INPUT, skb)).toBe(VERDICT_ACCEPT);
    load(skb, ...ipip('10.177.1.99'), { inIf: ETH0 });
    expect(rs.run(TABLE_FILTER, HOOK_INPUT, skb)).toBe(VERDICT_DROP);
    expect(skb.verdictRef).toBe('filter/cali-INPUT rule 2 (line 105): DROP "cali:_wjq-Yrma8Ly1Svo; Drop IPIP packets from non-Calico hosts"');
    // natOutgoing: pod → internet is masqueraded, pod → pod is not.
    load(skb, ...tcp('172.30.1.5', '8.8.8.8', 40000, 443), { outIf: ETH0, ct: 5, ctState: CT_NEW });
    rs.run(TABLE_NAT, HOOK_POSTROUTING, skb);
    expect(skb.natRangeSet).toBe(true);
    expect(skb.natRange.flags).toBe(NAT_RANGE_MASQUERADE | NF_NAT_RANGE_PROTO_RANDOM_FULLY);
    expect(skb.natRange.ruleRef).toBe('cali-nat-outgoing rule 1 (line 67)');
    load(skb, ...tcp('172.30.1.5', '172.30.2.9', 40000, 443), { outIf: TUNL0, ct: 5, ctState: CT_NEW });
    skb.natRangeSet = false;
    rs.run(TABLE_NAT, HOOK_POSTROUTING, skb);
    expect(skb.natRangeSet).toBe(false);
    // raw: workload traffic marked and reverse-path checked, VXLAN untracked.
    load(skb, ...udp('10.177.1.11', '10.177.1.10', 40000, 4789), { inIf: ETH0 });
    expect(rs.run(TABLE_RAW, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
    expect(skb.notrack).toBe(true);
    // mangle is traversed without a decision.
    expect(rs.run(TABLE_MANGLE, HOOK_PREROUTING, skb)).toBe(VERDICT_ACCEPT);
  });
});

describe('trace', () => {
  it('records chains, every rule with match / no match, targets, returns and the policy', () => {
    const rs = compile(
      table('filter', ['INPUT ACCEPT', 'FORWARD DROP', 'OUTPUT ACCEPT', 'A'], [
        '-A FORWARD -p udp -j ACCEPT',
        '-A FORWARD -m comment --comment "to A" -j A',
        '-A A -p tcp --dport 22 -j ACCEPT',
        '-A A -j MARK --set-xmark 0x1/0x1',
        '-A A -j LOG --log-prefix "A: "',
      ]),
    );
    const skb = load(new Skb(), ...T);
    skb.trace = new Trace();
    expect(rs.run(TABLE_FILTER, HOOK_FORWARD, skb)).toBe(VERDICT_DROP);
    expect(skb.trace.steps.map((s) => `${s.depth} ${s.kind} ${s.text}`)).toEqual([
      '0 chain filter/FORWARD (policy DROP)',
      '1 rule FORWARD rule 1 (line 6): -p udp -j ACCEPT -> no match',
      '1 rule FORWARD rule 2 (line 7) "to A": -m comment --comment "to A" -j A -> match',
      '1 jump -> A',
      '2 rule A rule 1 (line 8): -p tcp -m tcp --dport 22 -j ACCEPT -> no match',
      '2 rule A rule 2 (line 9): -j MARK --set-xmark 0x1/0x1 -> match',
      '2 mark mark 0x0 -> 0x1',
      '2 rule A rule 3 (line 10): -j LOG --log-prefix "A: " -> match',
      '2 log LOG --log-prefix "A: "',
      '2 return end of A: back to FORWARD',
      '1 policy filter/FORWARD policy DROP',
      '0 verdict DROP: filter/FORWARD policy DROP',
    ]);
    expect(skb.mark).toBe(1);
  });
  it('traced and fast runs agree, NAT decisions are described', () => {
    const fast = compile(KUBE_PROXY_SAVE, 9);
    const traced = compile(KUBE_PROXY_SAVE, 9);
    const a = new Skb();
    const b = new Skb();
    for (let i = 0; i < 200; i++) {
      load(a, ...tcp('10.177.1.50', '172.21.0.20', 2000 + i, 80), { inIf: ETH0, ctState: CT_NEW });
      load(b, ...tcp('10.177.1.50', '172.21.0.20', 2000 + i, 80), { inIf: ETH0, ctState: CT_NEW });
      b.trace = new Trace();
      expect(traced.run(TABLE_NAT, HOOK_PREROUTING, b)).toBe(fast.run(TABLE_NAT, HOOK_PREROUTING, a));
      expect(b.verdictRef).toBe(a.verdictRef);
      expect(b.natRange.minIp).toBe(a.natRange.minIp);
      const text = b.trace.toString();
      expect(text).toContain('jump');
      expect(text).toMatch(/nat +DNAT range 172\.30\.\d\.\d:8080 \(chosen by random\)/);
    }
  });
});

describe('API', () => {
  it('toIptablesSave prints the same rules with zero counters', () => {
    const rs = compile(KUBE_PROXY_SAVE);
    const out = rs.toIptablesSave();
    expect(out).toContain(':INPUT ACCEPT [0:0]');
    const strip = (s: string): string[] => s.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'));
    expect(strip(out)).toEqual(strip(KUBE_PROXY_SAVE));
  });
  it('errors carry the file and the line, also with firstLine for inline text', () => {
    const text = table('filter', FILTER_HEAD, ['-A FORWARD -m set --match-set x src -j ACCEPT']);
    let err: unknown;
    try {
      Ruleset.fromText(text, { file: 'node.yaml', firstLine: 20, env, ct, prng: new Prng(1), ipsetSave: 'create y hash:ip\n' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RulesetError);
    expect((err as RulesetError).message).toBe('node.yaml:24: set "x" doesn\'t exist');
  });
  it('resetState restarts statistic counters and empties recent lists', () => {
    const rs = compile(table('filter', FILTER_HEAD, ['-A FORWARD -m statistic --mode nth --every 2 -j ACCEPT']));
    const v = (): number => rs.run(TABLE_FILTER, HOOK_FORWARD, load(new Skb(), ...T));
    expect([v(), v(), v()]).toEqual([VERDICT_ACCEPT, VERDICT_DROP, VERDICT_ACCEPT]);
    rs.resetState();
    expect(v()).toBe(VERDICT_ACCEPT);
  });
  it('indexes large chains and reports it', () => {
    const rs = compile(KUBE_PROXY_SAVE);
    expect(rs.describeIndex()).toEqual(['nat/KUBE-SERVICES: 8 rules, index -d, 1 unindexed']);
  });
  it('allocates nothing per packet on the fast path (heap stays flat)', () => {
    const rs = compile(KUBE_PROXY_SAVE, 3);
    const skb = load(new Skb(), ...tcp('10.177.1.50', '172.21.0.20', 2000, 80), { inIf: ETH0, ctState: CT_NEW });
    for (let i = 0; i < 20000; i++) rs.run(TABLE_NAT, HOOK_PREROUTING, skb);
    const g = globalThis as { gc?: () => void };
    g.gc?.();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200000; i++) {
      skb.mark = 0;
      rs.run(TABLE_NAT, HOOK_PREROUTING, skb);
      rs.run(TABLE_FILTER, HOOK_FORWARD, skb);
    }
    const grown = process.memoryUsage().heapUsed - before;
    // 200k packets with one allocation each would be several MB.
    expect(grown).toBeLessThan(2_000_000);
    expect(ETH0).toBe(0);
  });
});
