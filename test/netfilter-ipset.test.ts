import { describe, expect, it } from 'vitest';
import { IPSET_HASH_IP_PORT, IPSET_HASH_NET, IpsetRegistry } from '../src/netfilter/ipset.js';
import { RulesetError } from '../src/netfilter/errors.js';
import { Skb } from '../src/netfilter/skb.js';
import { parseIpv4 } from '../src/packet/addr.js';
import { CALICO_IPSET } from './netfilter-fixtures.js';
import { icmp, load, tcp, udp } from './netfilter-helpers.js';

const ip = parseIpv4;

function RulesetErrorOf(f: () => unknown): RulesetError {
  try {
    f();
  } catch (e) {
    if (e instanceof RulesetError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('ipset save parser', () => {
  it('reads the Calico sets', () => {
    const reg = IpsetRegistry.parse(CALICO_IPSET, 'sets.txt');
    expect([...reg.sets.keys()]).toEqual([
      'cali40all-ipam-pools',
      'cali40masq-ipam-pools',
      'cali40all-hosts-net',
      'cali40s:Vx8mG2NxtmBhU5yWkpyTVw',
      'cali40n:3hMtBWDxkyNUs4bPg',
      'cali60all-ipam-pools',
    ]);
    const hosts = reg.get('cali40all-hosts-net')!;
    expect(hosts.type).toBe(IPSET_HASH_NET);
    expect(hosts.size).toBe(3);
    expect(hosts.hasIp(ip('10.177.1.11'))).toBe(true);
    expect(hosts.hasIp(ip('10.177.1.13'))).toBe(false);
    expect(reg.get('cali40n:3hMtBWDxkyNUs4bPg')!.type).toBe(IPSET_HASH_IP_PORT);
    expect(reg.get('cali60all-ipam-pools')!.family).toBe('inet6');
  });

  it('hash:net: most specific prefix first, nomatch entries', () => {
    const sel = IpsetRegistry.parse(CALICO_IPSET).get('cali40s:Vx8mG2NxtmBhU5yWkpyTVw')!;
    expect(sel.hasIp(ip('172.30.1.5'))).toBe(true);
    expect(sel.hasIp(ip('172.30.1.6'))).toBe(false);
    expect(sel.hasIp(ip('172.30.2.5'))).toBe(true); // in /24
    expect(sel.hasIp(ip('172.30.2.200'))).toBe(false); // in the /25 nomatch inside the /24
  });

  it('hash:ip with netmask stores and looks up the masked address', () => {
    const reg = IpsetRegistry.parse('create s hash:ip family inet netmask 24\nadd s 10.1.2.3\n');
    const s = reg.get('s')!;
    expect(s.hasIp(ip('10.1.2.250'))).toBe(true);
    expect(s.hasIp(ip('10.1.3.1'))).toBe(false);
    expect(s.size).toBe(1);
  });

  it('tests packets by direction flags, as ip_set_test', () => {
    const reg = IpsetRegistry.parse(CALICO_IPSET);
    const skb = new Skb();
    const np = reg.get('cali40n:3hMtBWDxkyNUs4bPg')!;
    load(skb, ...tcp('172.30.9.9', '172.30.1.5', 40000, 8080));
    expect(np.test(skb.v, 0b00, 2)).toBe(true); // dst,dst
    expect(np.test(skb.v, 0b01, 2)).toBe(false); // src,dst
    expect(np.test(skb.v, 0b00, 1)).toBe(false); // fewer flags than the set's dimension
    load(skb, ...udp('172.30.9.9', '172.30.1.5', 40000, 8080));
    expect(np.test(skb.v, 0, 2)).toBe(false); // udp:8080 is not in the set
    load(skb, ...udp('172.30.9.9', '172.30.1.5', 40000, 53));
    expect(np.test(skb.v, 0, 2)).toBe(true);
    load(skb, ...icmp('172.30.9.9', '172.30.2.7', 8));
    expect(np.test(skb.v, 0, 2)).toBe(true); // icmp:echo-request = type 8 code 0
    load(skb, ...icmp('172.30.9.9', '172.30.2.7', 0));
    expect(np.test(skb.v, 0, 2)).toBe(false);
    const v6 = reg.get('cali60all-ipam-pools')!;
    load(skb, ...tcp('172.30.1.1', '172.30.1.2', 1, 2));
    expect(v6.test(skb.v, 1, 1)).toBe(false);
  });

  it('bitmap:port and list:set', () => {
    const reg = IpsetRegistry.parse(
      ['create ports bitmap:port range 1000-2000', 'add ports 1024', 'add ports tcp:1500-1502', 'create a hash:ip family inet', 'add a 10.0.0.1', 'create b hash:net family inet', 'add b 10.1.0.0/16', 'create l list:set size 8', 'add l a', 'add l b', ''].join('\n'),
    );
    const skb = new Skb();
    load(skb, ...tcp('1.1.1.1', '10.1.2.3', 1501, 1024));
    expect(reg.get('ports')!.test(skb.v, 0, 1)).toBe(true);
    expect(reg.get('ports')!.test(skb.v, 1, 1)).toBe(true);
    load(skb, ...tcp('1.1.1.1', '10.1.2.3', 1503, 1025));
    expect(reg.get('ports')!.test(skb.v, 0, 1)).toBe(false);
    expect(reg.get('l')!.test(skb.v, 0, 1)).toBe(true); // 10.1.2.3 in b
    load(skb, ...tcp('10.0.0.1', '10.2.0.1', 1, 2));
    expect(reg.get('l')!.test(skb.v, 1, 1)).toBe(true); // src 10.0.0.1 in a
    expect(reg.get('l')!.test(skb.v, 0, 1)).toBe(false);
  });

  it('errors name file, line and token', () => {
    const cases: [string, string][] = [
      ['create x hash:mac\n', 'sets.txt:1: unsupported set type "hash:mac" (hash:ip, hash:net, hash:ip,port, bitmap:port, list:set)'],
      ['create x hash:ip family inet frobnicate 3\n', 'sets.txt:1: unknown option "frobnicate" for ipset create hash:ip'],
      ['create x hash:ip\nadd y 1.2.3.4\n', 'sets.txt:2: set y does not exist (no "create" line before)'],
      ['create x hash:ip\nadd x 1.2.3.400\n', 'sets.txt:2: invalid IPv4 address "1.2.3.400"'],
      ['create x hash:net\nadd x 10.0.0.0/8 nomatch bogus\n', 'sets.txt:2: unknown option "bogus" for ipset add to hash:net set x'],
      ['create x hash:ip,port\nadd x 1.2.3.4,tcp:99999\n', 'sets.txt:2: bad port "99999" in "1.2.3.4,tcp:99999"'],
      ['create x hash:ip\ncreate x hash:ip\n', 'sets.txt:2: set x already exists (created at line 1)'],
      ['flush x\n', 'sets.txt:1: unknown ipset command "flush" (ipset save files hold "create" and "add" lines)'],
      ['create l list:set\nadd l nope\n', 'sets.txt:2: list:set member "nope" does not exist'],
    ];
    for (const [text, msg] of cases) expect(RulesetErrorOf(() => IpsetRegistry.parse(text, 'sets.txt')).message).toBe(msg);
  });
});
