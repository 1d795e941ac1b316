import { describe, expect, it } from 'vitest';
import { parseNodeConfig, ConfigError } from '../src/elements/linux/config.js';
import { RoutingTable, RT_LOCAL, RT_UNICAST, RT_BLACKHOLE, RT_BROADCAST } from '../src/elements/linux/routing.js';
import { parseIpv4 } from '../src/packet/addr.js';
import { ADDRTYPE_BROADCAST, ADDRTYPE_LOCAL, ADDRTYPE_MULTICAST, ADDRTYPE_UNICAST } from '../src/netfilter/env.js';

const base = `name: r
interfaces:
  - { name: eth0, mac: "02:00:00:00:00:01", addresses: [10.0.1.1/24] }
  - { name: eth1, mac: "02:00:00:00:00:02", addresses: [10.0.2.1/24, 10.0.3.1/24], mtu: 1400 }
tunnels:
  - { name: vxlan0, type: vxlan, vni: 42, local: 10.0.2.1, remote: 10.0.2.2, dstport: 4789, dev: eth1, mac: "02:00:00:00:00:aa", addresses: [192.168.50.1/24] }
  - { name: tunl0, type: ipip, addresses: [172.30.1.0/32] }
routes:
  - default via 10.0.1.254
  - 10.20.0.0/16 via 10.0.2.2 dev eth1
  - 172.30.5.0/26 via 10.9.9.9 dev tunl0 onlink
  - blackhole 10.99.0.0/16
neighbors:
  - 10.0.1.254 lladdr 02:00:00:00:00:fe dev eth0
sysctls:
  net.ipv4.ip_forward: 1
  net.ipv4.ip_local_port_range: "40000 50000"
`;

function errorOf(text: string): string {
  try {
    parseNodeConfig(text, 'n.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('no error');
}

describe('node file', () => {
  it('loads interfaces, tunnels, routes, neighbours and sysctls', () => {
    const c = parseNodeConfig(base, 'n.yaml');
    expect(c.interfaces.map((i) => [i.name, i.kind, i.mtu])).toEqual([
      ['eth0', 'ether', 1500],
      ['eth1', 'ether', 1400],
      ['vxlan0', 'vxlan', 1450],
      ['tunl0', 'ipip', 1480],
    ]);
    expect(c.interfaces[2]!.vxlan).toMatchObject({ vni: 42, dstport: 4789, udpcsum: true, dev: 'eth1' });
    expect(c.routes).toHaveLength(4);
    expect(c.routes[2]).toMatchObject({ onlink: true, dev: 'tunl0', prefix: 26 });
    expect(c.neighbors[0]!.dev).toBe('eth0');
    expect(c.sysctls.localPortRange).toEqual([40000, 50000]);
  });

  it('names the line and the token of every mistake', () => {
    expect(errorOf(base.replace('default via 10.0.1.254', 'default via 10.0.1.254 frobnicate'))).toMatch(/^n\.yaml:9: route .*unknown token "frobnicate"/);
    expect(errorOf(base.replace('dev eth1\n  - 172', 'dev eth9\n  - 172'))).toMatch(/^n\.yaml:10: .*dev "eth9" is not an interface/);
    expect(errorOf(base.replace('lladdr 02:00:00:00:00:fe', 'lladdr 02:00:zz'))).toMatch(/^n\.yaml:14: neighbour .*not a MAC/);
    expect(errorOf(base.replace('net.ipv4.ip_forward: 1', 'net.ipv4.tcp_frob: 1'))).toMatch(/^n\.yaml:16: unsupported sysctl "net.ipv4.tcp_frob"/);
    expect(errorOf(base + 'bogus: 1\n')).toMatch(/^n\.yaml:18: unknown key "bogus"/);
    expect(errorOf(base.replace('type: ipip', 'type: gre'))).toMatch(/^n\.yaml:7: unknown tunnel type "gre"/);
    expect(errorOf(base.replace('10.20.0.0/16', '10.20.0.1/16'))).toMatch(/host bits set/);
    expect(errorOf('name: [')).toMatch(/^n\.yaml:1: YAML/);
  });

  it('routes by longest prefix, local table first, with connected routes from addresses', () => {
    const c = parseNodeConfig(base, 'n.yaml');
    const rt = new RoutingTable(c.interfaces, c.routes);
    const ip = parseIpv4;
    expect(rt.lookup(ip('10.0.1.1'))!.type).toBe(RT_LOCAL);
    expect(rt.lookup(ip('10.0.1.255'))!.type).toBe(RT_BROADCAST);
    expect(rt.lookup(ip('10.0.1.77'))).toMatchObject({ type: RT_UNICAST, outIf: 0, via: 0 });
    expect(rt.lookup(ip('10.20.5.5'))).toMatchObject({ outIf: 1, via: ip('10.0.2.2') });
    expect(rt.lookup(ip('8.8.8.8'))).toMatchObject({ outIf: 0, via: ip('10.0.1.254') });
    expect(rt.lookup(ip('172.30.5.9'))).toMatchObject({ outIf: 3, via: ip('10.9.9.9') });
    expect(rt.lookup(ip('10.99.1.1'))!.type).toBe(RT_BLACKHOLE);
    expect(rt.addrType(ip('10.0.3.1'), -1)).toBe(ADDRTYPE_LOCAL);
    expect(rt.addrType(ip('10.0.3.1'), 0)).toBe(ADDRTYPE_UNICAST);
    expect(rt.addrType(ip('10.0.3.1'), 1)).toBe(ADDRTYPE_LOCAL);
    expect(rt.addrType(ip('10.0.2.255'), -1)).toBe(ADDRTYPE_BROADCAST);
    expect(rt.addrType(ip('224.0.0.5'), -1)).toBe(ADDRTYPE_MULTICAST);
    expect(rt.addrType(ip('8.8.8.8'), -1)).toBe(ADDRTYPE_UNICAST);
    expect(rt.selectAddr(1, ip('10.0.3.9'))).toBe(ip('10.0.3.1'));
    expect(rt.selectAddr(1, ip('8.8.8.8'))).toBe(ip('10.0.2.1'));
  });

  it('refuses a gateway that is not on a connected network', () => {
    const c = parseNodeConfig(base.replace('default via 10.0.1.254', 'default via 10.7.7.7'), 'n.yaml');
    expect(() => new RoutingTable(c.interfaces, c.routes)).toThrow(/gateway 10.7.7.7 is not on a connected network/);
  });
});
