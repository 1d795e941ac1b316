import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIptablesSave, formatRule, parseIptablesSave, RulesetError, tokenizeLine } from '../src/netfilter/iptables-save.js';
import type { ConntrackMatch, MarkTarget, NatTarget, StatisticMatch, TcpUdpMatch } from '../src/netfilter/model.js';
import { CT_DNAT, CT_ESTABLISHED, CT_RELATED, NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_RANDOM_FULLY, NF_NAT_RANGE_PROTO_SPECIFIED } from '../src/netfilter/skb.js';
import { CALICO_SAVE, KUBE_PROXY_SAVE } from './netfilter-fixtures.js';
import { table } from './netfilter-helpers.js';

/** Lines that matter for equality: no comments, chain counters zeroed. */
function norm(s: string): string[] {
  return s
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ' [0:0]'));
}

function errorOf(text: string, file = 'node.rules'): RulesetError {
  try {
    parseIptablesSave(text, { file });
  } catch (e) {
    if (e instanceof RulesetError) return e;
    throw e;
  }
  throw new Error('no error');
}

const filter = (rules: string[], chains: string[] = []): string => table('filter', ['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT', ...chains], rules);

describe('tokenizer (iptables add_param_to_argv)', () => {
  it('groups double quotes, escapes inside quotes only', () => {
    expect(tokenizeLine('-A X -m comment --comment "a b"')).toEqual(['-A', 'X', '-m', 'comment', '--comment', 'a b']);
    expect(tokenizeLine('--comment "say \\"hi\\" it\\\'s"')).toEqual(['--comment', 'say "hi" it\'s']);
    expect(tokenizeLine('--comment ""')).toEqual(['--comment', '']);
    expect(tokenizeLine('a\\b   c\t d')).toEqual(['a\\b', 'c', 'd']);
    // A quote opening mid-word continues the word; a closing quote ends it.
    expect(tokenizeLine('ab"c d"e')).toEqual(['abc d', 'e']);
    expect(() => tokenizeLine('"open')).toThrow(/unterminated/);
  });

  it('a line without quotes splits as the quoting tokenizer splits it', () => {
    // A line without '"' takes a slicing fast path; a trailing `""` (one more, empty argument)
    // sends the same line through the character-by-character path.
    const line = fc.string({ unit: fc.constantFrom('a', '-', 'Z', '0', '\\', "'", '!', ' ', '\t', '\r', '\n', 'é'), maxLength: 40 });
    fc.assert(
      fc.property(line, (l) => {
        expect(tokenizeLine(l)).toEqual(tokenizeLine(l + ' ""').slice(0, -1));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('real dumps', () => {
  it('kube-proxy: parses and prints back equal modulo counters', () => {
    const m = parseIptablesSave(KUBE_PROXY_SAVE, { file: 'kube.rules' });
    expect(m.tables.map((t) => t.name)).toEqual(['mangle', 'filter', 'nat']);
    expect(norm(formatIptablesSave(m))).toEqual(norm(KUBE_PROXY_SAVE));
    const nat = m.tables[2]!;
    const svc = nat.chainByName.get('KUBE-SVC-WEBAPPHTTP3EPXYZ')!;
    expect(svc.builtin).toBe(false);
    expect(svc.policy).toBeNull();
    const st = svc.rules[1]!.matches[1] as StatisticMatch;
    expect(st.kind).toBe('statistic');
    expect(st.probability).toBe(Math.round(0.33333333349 * 2 ** 31));
    expect(svc.rules[1]!.line).toBeGreaterThan(0);
    expect(svc.rules[1]!.num).toBe(2);
    // The comment with escaped quotes survives.
    const quoted = nat.chainByName.get('KUBE-SERVICES')!.rules[6]!;
    expect(quoted.matches[0]).toMatchObject({ kind: 'comment', comment: 'default/"quoted" svc: it\'s here' });
    expect(formatRule(quoted)).toContain('--comment "default/\\"quoted\\" svc: it\\\'s here"');
    // MARK --set-xmark in KUBE-POSTROUTING (the --xor-mark 0x4000 kube-proxy writes).
    const post = nat.chainByName.get('KUBE-POSTROUTING')!;
    expect(post.rules[1]!.target).toMatchObject({ kind: 'MARK', value: 0x4000, mask: 0 });
    expect(post.rules[2]!.target).toMatchObject({ kind: 'MASQUERADE', flags: NF_NAT_RANGE_PROTO_RANDOM_FULLY });
    const dnat = nat.chainByName.get('KUBE-SEP-2ZNNUYEU7RVNLDLZ')!.rules[1]!.target as NatTarget;
    expect(dnat).toMatchObject({ kind: 'DNAT', minIp: 0xac1e0105, maxIp: 0xac1e0105, minPort: 8080, maxPort: 8080 });
    expect(dnat.flags).toBe(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED);
    const fw = m.tables[1]!.chainByName.get('KUBE-FIREWALL')!.rules[0]!;
    expect(fw.src).toEqual({ net: 0x7f000000, mask: 0xff000000, invert: true });
    const ctm = fw.matches[1] as ConntrackMatch;
    expect(ctm.state).toEqual({ mask: CT_RELATED | CT_ESTABLISHED | CT_DNAT, invert: true });
  });

  it('calico: parses and prints back equal modulo counters', () => {
    const m = parseIptablesSave(CALICO_SAVE, { file: 'calico.rules' });
    expect(m.tables.map((t) => t.name)).toEqual(['raw', 'mangle', 'nat', 'filter']);
    expect(norm(formatIptablesSave(m))).toEqual(norm(CALICO_SAVE));
    const f = m.tables[3]!;
    const input = f.chainByName.get('cali-INPUT')!;
    expect(input.rules[0]!.proto).toEqual({ num: 4, text: 'ipv4', invert: false });
    expect(input.rules[0]!.matches.map((x) => x.kind)).toEqual(['comment', 'comment', 'set', 'addrtype']);
    expect(input.rules[2]!.goto).toBe(true);
    expect(input.rules[2]!.inIface).toEqual({ name: 'cali+', invert: false });
    const fwd = f.chainByName.get('cali-FORWARD')!;
    expect(fwd.rules[0]!.target as MarkTarget).toMatchObject({ value: 0, mask: 0xe0000 });
  });

  it('reads kube-proxy restore input forms and prints the iptables-save form', () => {
    const m = parseIptablesSave(
      table(
        'nat',
        ['PREROUTING ACCEPT', 'INPUT ACCEPT', 'OUTPUT ACCEPT', 'POSTROUTING ACCEPT', 'KUBE-MARK-MASQ', 'KUBE-SVC-X', 'KUBE-SEP-A', 'KUBE-POSTROUTING'],
        [
          '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
          '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
          '-A KUBE-SVC-X -m comment --comment "ns/svc:p -> 10.0.0.1:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A',
          '-A KUBE-SEP-A -m comment --comment ns/svc:p -m tcp -p tcp -j DNAT --to-destination 10.0.0.1:80',
          '-A KUBE-SVC-X -d 10.96.0.5 -p tcp --dport 80 -j KUBE-SEP-A',
        ],
      ),
    );
    const lines = norm(formatIptablesSave(m));
    expect(lines).toContain('-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000');
    expect(lines).toContain('-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0');
    expect(lines).toContain('-A KUBE-SVC-X -m comment --comment "ns/svc:p -> 10.0.0.1:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-A');
    // -p is printed before the matches, the implicit tcp match where --dport was read.
    expect(lines).toContain('-A KUBE-SEP-A -p tcp -m comment --comment "ns/svc:p" -m tcp -j DNAT --to-destination 10.0.0.1:80');
    expect(lines).toContain('-A KUBE-SVC-X -d 10.96.0.5/32 -p tcp -m tcp --dport 80 -j KUBE-SEP-A');
  });

  it('normalises values as iptables stores them', () => {
    const m = parseIptablesSave(
      filter([
        '-A INPUT -s 10.1.2.3/8 -d 192.168.0.0/255.255.0.0 -p TCP -m tcp --sport 1024: --dport :1023 --tcp-flags SYN,RST,ACK,FIN SYN -j ACCEPT',
        '-A INPUT -p tcp --syn -j ACCEPT',
        '-A INPUT -p udp -m multiport --dports 53,8000:8010 -j ACCEPT',
        '-A INPUT -p icmp --icmp-type echo-request -j ACCEPT',
        '-A INPUT -p icmp -m icmp --icmp-type port-unreach -j ACCEPT',
        '-A INPUT -p 47 -j ACCEPT',
        '-A INPUT -p all -s 0.0.0.0/0 -i + -j ACCEPT',
        '-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT',
        '-A INPUT -m mark --mark 0x10000/0x10000 -m mark ! --mark 5 -j ACCEPT',
        '-A INPUT -j MARK --set-mark 0x1/0xff',
        '-A INPUT -j MARK --and-mark 0xffff00ff',
        '-A INPUT -j REJECT',
        '-A INPUT -p tcp -j REJECT --reject-with tcp-rst',
        '-A INPUT -m statistic --mode nth --every 3 -j ACCEPT',
        '-A INPUT -m recent --name ssh --update --seconds 60 --hitcount 4 --rdest -j DROP',
        '-A INPUT -m addrtype --dst-type LOCAL,BROADCAST --limit-iface-in -j ACCEPT',
        '-A INPUT -j LOG --log-prefix "dropped: " --log-level warning',
        '-A INPUT -j NFLOG --nflog-group 30 --nflog-prefix DROP',
        '-A INPUT -m conntrack --ctorigdst 10.0.0.1 --ctorigdstport 80:90 --ctstatus ASSURED,SEEN_REPLY --ctdir REPLY -j ACCEPT',
        '-A INPUT -f -j DROP',
        '-A INPUT ! -f -j ACCEPT',
        '-A INPUT -c 10 20 -j ACCEPT',
      ]),
    );
    expect(norm(formatIptablesSave(m)).slice(4, -1)).toEqual([
      '-A INPUT -s 10.0.0.0/8 -d 192.168.0.0/16 -p tcp -m tcp --sport 1024:65535 --dport 0:1023 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT',
      '-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT',
      '-A INPUT -p udp -m multiport --dports 53,8000:8010 -j ACCEPT',
      '-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT',
      '-A INPUT -p icmp -m icmp --icmp-type 3/3 -j ACCEPT',
      '-A INPUT -p 47 -j ACCEPT',
      '-A INPUT -j ACCEPT',
      '-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT',
      '-A INPUT -m mark --mark 0x10000/0x10000 -m mark ! --mark 0x5 -j ACCEPT',
      '-A INPUT -j MARK --set-xmark 0x1/0xff',
      '-A INPUT -j MARK --set-xmark 0x0/0xff00',
      '-A INPUT -j REJECT --reject-with icmp-port-unreachable',
      '-A INPUT -p tcp -j REJECT --reject-with tcp-reset',
      '-A INPUT -m statistic --mode nth --every 3 --packet 0 -j ACCEPT',
      '-A INPUT -m recent --update --seconds 60 --hitcount 4 --name ssh --mask 255.255.255.255 --rdest -j DROP',
      '-A INPUT -m addrtype --dst-type LOCAL,BROADCAST --limit-iface-in -j ACCEPT',
      '-A INPUT -j LOG --log-prefix "dropped: "',
      '-A INPUT -j NFLOG --nflog-prefix DROP --nflog-group 30',
      '-A INPUT -m conntrack --ctorigdst 10.0.0.1 --ctorigdstport 80:90 --ctstatus SEEN_REPLY,ASSURED --ctdir REPLY -j ACCEPT',
      '-A INPUT -f -j DROP',
      '-A INPUT ! -f -j ACCEPT',
      '-A INPUT -j ACCEPT',
    ]);
    const r0 = m.tables[0]!.chains[0]!.rules[0]!;
    expect((r0.matches[0] as TcpUdpMatch).tcpFlags).toEqual({ mask: 0x17, cmp: 0x02, invert: false });
  });

  it('reads -I, -N, -P and counters prefixes', () => {
    const m = parseIptablesSave(
      ['*filter', ':INPUT DROP [5:300]', '-N MYCHAIN', '[1:60] -A INPUT -j MYCHAIN', '-I INPUT -p tcp -j ACCEPT', '-I INPUT 2 -p udp -j ACCEPT', '-P FORWARD DROP', 'COMMIT', ''].join('\n'),
    );
    const t = m.tables[0]!;
    expect(t.chains.map((c) => `${c.name}:${c.policy}`)).toEqual(['INPUT:DROP', 'FORWARD:DROP', 'MYCHAIN:null']);
    expect(t.chains[0]!.rules.map((r) => formatRule(r))).toEqual(['-A INPUT -p tcp -j ACCEPT', '-A INPUT -p udp -j ACCEPT', '-A INPUT -j MYCHAIN']);
    expect(t.chains[0]!.rules.map((r) => r.num)).toEqual([1, 2, 3]);
  });
});

describe('errors name the file, the line and the token', () => {
  const cases: [string, string, string][] = [
    ['unknown match', filter(['-A INPUT -m foo -j ACCEPT']), 'node.rules:5: unknown match "-m foo"'],
    ['unsupported match', filter(['-A INPUT -m physdev --physdev-in eth0 -j ACCEPT']), 'node.rules:5: match "-m physdev" is not supported by dpemu'],
    ['unknown option of a known match', filter(['-A INPUT -p tcp -m tcp --dprt 80 -j ACCEPT']), 'node.rules:5: unknown option "--dprt"'],
    ['option without its match', filter(['-A INPUT --dport 80 -j ACCEPT']), 'node.rules:5: unknown option "--dport" (needs -p tcp/udp or -m tcp/udp before it)'],
    ['unknown target', filter(['-A INPUT -j FOO']), 'node.rules:5: unknown target or chain "-j FOO" (no chain FOO in table filter)'],
    ['unsupported target', filter(['-A INPUT -j CONNMARK --save-mark']), 'node.rules:5: target "-j CONNMARK" is not supported by dpemu'],
    ['jump to undefined chain', filter(['-A INPUT -j KUBE-SERVICES']), 'node.rules:5: unknown target or chain "-j KUBE-SERVICES" (no chain KUBE-SERVICES in table filter)'],
    ['bad port', filter(['-A INPUT -p tcp --dport 99999 -j ACCEPT']), 'node.rules:5: invalid port "99999"'],
    ['service name', filter(['-A INPUT -p tcp --dport http -j ACCEPT']), 'node.rules:5: port "http": service names are not supported, use the number'],
    ['bad address', filter(['-A INPUT -s 10.0.0.300 -j ACCEPT']), 'node.rules:5: invalid address "10.0.0.300" (invalid IPv4 CIDR: "10.0.0.300" (bad address))'],
    ['host name', filter(['-A INPUT -s example.com -j ACCEPT']), 'node.rules:5: invalid address "example.com" (host names are not resolved; use a numeric address)'],
    ['bad mark', filter(['-A INPUT -m mark --mark 0xzz -j ACCEPT']), 'node.rules:5: invalid mark value "0xzz" (must be 0-4294967295)'],
    ['bad probability', filter(['-A INPUT -m statistic --mode random --probability 1.5 -j ACCEPT']), 'node.rules:5: bad --probability "1.5" (must be 0-1)'],
    ['missing option', filter(['-A INPUT -m statistic --mode random -j ACCEPT']), 'node.rules:5: --probability must be specified when using random mode'],
    ['tcp match without -p tcp', filter(['-A INPUT -m tcp --dport 22 -j ACCEPT']), 'node.rules:5: tcp needs "-p tcp" (the kernel\'s tcp match is only valid for protocol 6)'],
    ['tcp-reset without -p tcp', filter(['-A INPUT -j REJECT --reject-with tcp-reset']), 'node.rules:5: REJECT --reject-with tcp-reset is only valid with "-p tcp" (kernel: TCP_RESET invalid for non-tcp)'],
    ['option given twice', filter(['-A INPUT -p tcp --dport 1 --dport 2 -j ACCEPT']), 'node.rules:5: tcp: option "--dport" can only be used once'],
    ['option that cannot be inverted', filter(['-A INPUT -m comment ! --comment x -j ACCEPT']), 'node.rules:5: comment: option "--comment" cannot be inverted'],
    ['intrapositioned negation', filter(['-A INPUT -s ! 10.0.0.1 -j ACCEPT']), 'node.rules:5: using intrapositioned negation ("-s ! this") is not allowed, write "! -s this"'],
    ['-i in OUTPUT', filter(['-A OUTPUT -i eth0 -j ACCEPT']), "node.rules:5: can't use -i with OUTPUT"],
    ['two targets', filter(['-A INPUT -j ACCEPT -j DROP']), 'node.rules:5: multiple -j/-g flags not allowed'],
    ['missing argument', filter(['-A INPUT -p']), 'node.rules:5: option "-p" requires an argument'],
    ['unknown protocol', filter(['-A INPUT -p foo -j ACCEPT']), 'node.rules:5: unknown protocol "foo" specified'],
    ['jump to built-in chain', filter(['-A INPUT -j FORWARD']), 'node.rules:5: cannot jump to built-in chain FORWARD'],
    ['DNAT outside nat', filter(['-A INPUT -p tcp -j DNAT --to-destination 1.2.3.4:80']), 'node.rules:5: target "-j DNAT" is only valid in the nat table, not filter'],
    ['DNAT port without -p', table('nat', ['PREROUTING ACCEPT'], ['-A PREROUTING -j DNAT --to-destination 1.2.3.4:80']), 'node.rules:3: DNAT: need TCP, UDP, SCTP or DCCP with port specification (-p)'],
    ['bad user chain policy', table('filter', ['INPUT ACCEPT', 'X ACCEPT'], []), 'node.rules:3: policy "ACCEPT" for user chain X: only built-in chains have a policy (use "-")'],
    ['bad built-in policy', table('filter', ['INPUT RETURN'], []), 'node.rules:2: bad policy "RETURN" for built-in chain INPUT (ACCEPT or DROP)'],
    ['unknown table', '*foo\nCOMMIT\n', 'node.rules:1: unknown table "foo" (raw, mangle, nat or filter)'],
    ['rule before a table', '-A INPUT -j ACCEPT\n', 'node.rules:1: "-A" outside a table (missing "*table" line)'],
    ['missing COMMIT', '# x\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n', 'node.rules:2: table filter is never committed (missing COMMIT)'],
    ['table opened twice', '*filter\n*nat\n', 'node.rules:2: "*nat" before COMMIT of table filter (opened at line 1)'],
    ['unterminated quote', filter(['-A INPUT -m comment --comment "abc -j ACCEPT']), 'node.rules:5: unterminated double quote'],
    ['unsupported command', filter(['-D INPUT 1']), 'node.rules:5: unsupported command "-D" (iptables-save files hold -A rules; -I, -N and -P are also read)'],
    ['ctexpire', filter(['-A INPUT -m conntrack --ctexpire 10 -j ACCEPT']), 'node.rules:5: "--ctexpire" is not supported by dpemu (the conntrack view has no timeouts)'],
  ];
  for (const [what, text, msg] of cases) {
    it(what, () => {
      const e = errorOf(text);
      expect(e.message).toBe(msg);
      expect(e.file).toBe('node.rules');
    });
  }

  it('records the offending token', () => {
    const e = errorOf(filter(['-A INPUT -m foo -j ACCEPT']));
    expect(e.line).toBe(5);
    expect(e.token).toBe('foo');
    expect(errorOf(filter(['-A INPUT -p tcp --dport 99999 -j ACCEPT'])).token).toBe('99999');
  });

  it('checks hooks through user chains (REJECT, MASQUERADE, DNAT)', () => {
    expect(errorOf(table('nat', ['PREROUTING ACCEPT', 'POSTROUTING ACCEPT', 'X'], ['-A PREROUTING -j X', '-A POSTROUTING -j X', '-A X -j MASQUERADE'])).message).toBe(
      'node.rules:7: target "-j MASQUERADE" is only usable from POSTROUTING, but chain X is reached from PREROUTING, POSTROUTING',
    );
    expect(errorOf(table('nat', ['POSTROUTING ACCEPT', 'X'], ['-A POSTROUTING -j X', '-A X -p tcp -j DNAT --to-destination 10.0.0.1'])).message).toBe(
      'node.rules:5: target "-j DNAT" is only usable from PREROUTING, OUTPUT, but chain X is reached from POSTROUTING',
    );
    expect(errorOf(table('mangle', ['INPUT ACCEPT'], ['-A INPUT -j REJECT'])).message).toBe('node.rules:3: target "-j REJECT" is only valid in the filter table, not mangle');
    // An unreachable chain is not checked (the kernel checks with an empty hook mask).
    expect(() => parseIptablesSave(table('nat', ['POSTROUTING ACCEPT', 'X'], ['-A X -p tcp -j DNAT --to-destination 10.0.0.1']))).not.toThrow();
  });

  it('detects chain loops and the nf_tables depth limit', () => {
    expect(errorOf(filter(['-A INPUT -j A', '-A A -j B', '-A B -g A'], ['A', 'B'])).message).toBe('node.rules:9: chain loop: B goes to A, which leads back to B');
    // INPUT -j C0 -j C1 ... : C(k) is at level k+1; nf_tables accepts level 15, not 16.
    const nest = (n: number): string => {
      const chains = Array.from({ length: n }, (_, i) => `C${i}`);
      return filter(['-A INPUT -j C0', ...chains.slice(0, -1).map((c, i) => `-A ${c} -${i % 2 ? 'g' : 'j'} C${i + 1}`)], chains);
    };
    expect(() => parseIptablesSave(nest(15))).not.toThrow();
    expect(errorOf(nest(16)).message).toBe('node.rules:36: chain C15 would be reached at depth 16 from filter/INPUT (nf_tables allows at most 15 nested jumps)');
    expect(() => parseIptablesSave(nest(40), { maxChainDepth: 100 })).not.toThrow();
  });
});
