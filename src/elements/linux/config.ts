/**
 * The node file: one Linux network stack described in YAML, with the parts that have a standard
 * text form kept in that form (routes in `ip route` syntax, neighbours in `ip neigh` syntax,
 * rules as `iptables-save` and `ipset save` output, inline or in files next to the node file).
 *
 * ```yaml
 * name: edge
 * interfaces:
 *   - { name: eth0, mac: "02:00:00:00:01:01", addresses: [10.0.1.1/24], mtu: 1500 }
 * tunnels:
 *   - { name: vxlan0, type: vxlan, vni: 42, local: 10.0.2.1, remote: 10.0.2.2, dstport: 4789,
 *       dev: eth1, mac: "02:00:00:00:02:aa", addresses: [192.168.50.1/24], mtu: 1450 }
 *   - { name: tunl0, type: ipip, addresses: [172.30.1.0/32] }
 * routes:
 *   - default via 10.0.1.254
 *   - 10.20.0.0/16 via 10.0.2.2 dev eth1
 *   - 172.30.5.0/26 via 10.0.3.7 dev tunl0 onlink
 *   - blackhole 10.99.0.0/16
 * neighbors:
 *   - 10.0.1.254 lladdr 02:00:00:00:00:fe dev eth0
 * sysctls:
 *   net.ipv4.ip_forward: 1
 *   net.netfilter.nf_conntrack_max: 262144
 * iptables: |            # or iptablesFile: rules.txt
 *   *filter
 *   ...
 * ipset: |               # or ipsetFile: sets.txt
 * ```
 *
 * Every error names the file and the line (and the token where there is one).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode, type YAMLMap } from 'yaml';
import { parseCidr, parseIpv4, parseMac } from '../../packet/addr.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type InterfaceKind = 'ether' | 'vxlan' | 'ipip';

export interface AddressConfig {
  ip: number;
  prefix: number;
  text: string;
}

export interface VxlanConfig {
  vni: number;
  local: number;
  /** 0 when not given (then the FDB / a neighbour-like `remote` per destination is needed). */
  remote: number;
  dstport: number;
  udpcsum: boolean;
  /** Underlay device name (`dev`), optional. */
  dev?: string;
  /** Outer TTL; 0 = the kernel's default for vxlan (64 unless `ttl inherit`). */
  ttl: number;
  ttlInherit: boolean;
  /** Outer TOS; 'inherit' copies the inner TOS; a number sets it; ECN is always propagated. */
  tos: number | 'inherit';
  /** Outer UDP source port range; default ip_local_port_range. */
  srcPortMin?: number;
  srcPortMax?: number;
}

export interface IpipConfig {
  local: number;
  remote: number;
  /** 0 = inherit (tunl0's default). */
  ttl: number;
  /** 'inherit' (tunl0: tos 0 with ECN propagated; 'inherit' copies the inner TOS). */
  tos: number | 'inherit';
  pmtudisc: boolean;
}

export interface InterfaceConfig {
  index: number;
  name: string;
  kind: InterfaceKind;
  /** 6 bytes; ipip devices have none. */
  mac: Uint8Array | undefined;
  addresses: AddressConfig[];
  mtu: number;
  vxlan?: VxlanConfig;
  ipip?: IpipConfig;
  line: number;
}

export type RouteType = 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'local';

export interface RouteConfig {
  type: RouteType;
  dst: number;
  prefix: number;
  via: number;
  dev: string | undefined;
  onlink: boolean;
  src: number;
  metric: number;
  text: string;
  line: number;
}

export interface NeighborConfig {
  ip: number;
  mac: Uint8Array;
  dev: string;
  text: string;
  line: number;
}

export interface Sysctls {
  ipForward: boolean;
  tcpLoose: boolean;
  conntrackChecksum: boolean;
  tcpBeLiberal: boolean;
  conntrackMax: number;
  localPortRange: [number, number];
}

export interface TextSource {
  text: string;
  /** File the text came from (or the node file for inline text). */
  file: string;
  /** Line in `file` where the text starts (1 for a separate file). */
  firstLine: number;
}

export interface NodeConfig {
  file: string;
  name: string;
  interfaces: InterfaceConfig[];
  routes: RouteConfig[];
  neighbors: NeighborConfig[];
  sysctls: Sysctls;
  iptables?: TextSource;
  ipset?: TextSource;
}

export const DEFAULT_SYSCTLS: Sysctls = {
  // A router is what dpemu emulates; say ip_forward: 0 to get a host.
  ipForward: true,
  tcpLoose: true,
  conntrackChecksum: true,
  tcpBeLiberal: false,
  conntrackMax: 262144,
  localPortRange: [32768, 60999],
};

const KNOWN_SYSCTLS = new Set([
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.forwarding',
  'net.netfilter.nf_conntrack_tcp_loose',
  'net.netfilter.nf_conntrack_checksum',
  'net.netfilter.nf_conntrack_tcp_be_liberal',
  'net.netfilter.nf_conntrack_max',
  'net.nf_conntrack_max',
  'net.ipv4.ip_local_port_range',
]);

export function loadNodeConfig(path: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: cannot read node file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseNodeConfig(text, path);
}

export function parseNodeConfig(text: string, file: string): NodeConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const lineOf = (n: YamlNode | null | undefined): number => (n?.range ? lc.linePos(n.range[0]).line : 0);
  const fail = (n: YamlNode | null | undefined, msg: string): never => {
    const line = lineOf(n);
    throw new ConfigError(`${file}${line ? `:${line}` : ''}: ${msg}`);
  };
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    throw new ConfigError(`${file}${line ? `:${line}` : ''}: YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (!isMap(root)) fail(root, 'a node file is a YAML mapping (name, interfaces, routes, ...)');
  const top = root as YAMLMap;
  const allowed = new Set(['name', 'interfaces', 'tunnels', 'routes', 'neighbors', 'neighbours', 'sysctls', 'iptables', 'iptablesFile', 'ipset', 'ipsetFile']);
  for (const item of top.items) {
    const k = isScalar(item.key) ? String(item.key.value) : '';
    if (!allowed.has(k)) fail(item.key as YamlNode, `unknown key "${k}" (expected one of ${[...allowed].join(', ')})`);
  }
  const get = (m: YAMLMap, key: string): YamlNode | undefined => m.get(key, true) as YamlNode | undefined;
  const str = (n: YamlNode | undefined, what: string): string => {
    if (!isScalar(n) || (typeof n.value !== 'string' && typeof n.value !== 'number')) fail(n, `${what} must be a string`);
    return String((n as { value: unknown }).value);
  };
  const num = (n: YamlNode | undefined, what: string, min: number, max: number): number => {
    const v = isScalar(n) ? Number(n.value) : NaN;
    if (!Number.isInteger(v) || v < min || v > max) fail(n, `${what} must be an integer in ${min}..${max}`);
    return v;
  };
  const bool = (n: YamlNode | undefined, what: string): boolean => {
    if (isScalar(n) && (n.value === true || n.value === false)) return n.value;
    if (isScalar(n) && (n.value === 0 || n.value === 1)) return n.value === 1;
    return fail(n, `${what} must be true or false`);
  };
  const ip = (n: YamlNode | undefined, what: string): number => {
    const s = str(n, what);
    try {
      return parseIpv4(s);
    } catch {
      return fail(n, `${what}: "${s}" is not an IPv4 address`);
    }
  };
  const mac = (n: YamlNode | undefined, what: string): Uint8Array => {
    const s = str(n, what);
    try {
      return parseMac(s);
    } catch {
      return fail(n, `${what}: "${s}" is not a MAC address`);
    }
  };
  const seq = (n: YamlNode | undefined, what: string): YamlNode[] => {
    if (n === undefined) return [];
    if (!isSeq(n)) fail(n, `${what} must be a list`);
    return (n as { items: YamlNode[] }).items;
  };
  const checkKeys = (m: YAMLMap, keys: string[], what: string): void => {
    for (const item of m.items) {
      const k = isScalar(item.key) ? String(item.key.value) : '';
      if (!keys.includes(k)) fail(item.key as YamlNode, `${what}: unknown key "${k}" (expected one of ${keys.join(', ')})`);
    }
  };

  const nameNode = get(top, 'name');
  const name = nameNode === undefined ? 'node' : str(nameNode, 'name');
  const interfaces: InterfaceConfig[] = [];
  const byName = new Map<string, InterfaceConfig>();
  const addIface = (ifc: InterfaceConfig, n: YamlNode): void => {
    if (byName.has(ifc.name)) fail(n, `interface "${ifc.name}" is defined twice`);
    if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifc.name)) fail(n, `interface name "${ifc.name}" is not a valid Linux name (1-15 characters)`);
    byName.set(ifc.name, ifc);
    interfaces.push(ifc);
  };
  const addresses = (m: YAMLMap): AddressConfig[] =>
    seq(get(m, 'addresses'), 'addresses').map((a) => {
      const s = str(a, 'address');
      try {
        const c = parseCidr(s.includes('/') ? s : `${s}/32`);
        return { ip: parseIpv4(s.split('/')[0]!), prefix: c.prefix, text: s };
      } catch {
        return fail(a, `address "${s}" is not IPv4/prefix`);
      }
    });

  for (const n of seq(get(top, 'interfaces'), 'interfaces')) {
    if (!isMap(n)) fail(n, 'an interface is a mapping (name, mac, addresses, mtu)');
    const m = n as YAMLMap;
    checkKeys(m, ['name', 'mac', 'addresses', 'mtu'], 'interface');
    const ifName = str(get(m, 'name'), 'interface name');
    const macNode = get(m, 'mac');
    if (macNode === undefined) fail(n, `interface "${ifName}" needs a mac`);
    addIface(
      {
        index: interfaces.length,
        name: ifName,
        kind: 'ether',
        mac: mac(macNode, 'mac'),
        addresses: addresses(m),
        mtu: get(m, 'mtu') === undefined ? 1500 : num(get(m, 'mtu'), 'mtu', 68, 65535),
        line: lineOf(n),
      },
      n,
    );
  }
  for (const n of seq(get(top, 'tunnels'), 'tunnels')) {
    if (!isMap(n)) fail(n, 'a tunnel is a mapping (name, type, ...)');
    const m = n as YAMLMap;
    const tName = str(get(m, 'name'), 'tunnel name');
    const type = str(get(m, 'type'), 'tunnel type');
    const tos = (k: string): number | 'inherit' => {
      const t = get(m, k);
      if (t === undefined) return 0;
      if (isScalar(t) && t.value === 'inherit') return 'inherit';
      return num(t, k, 0, 255);
    };
    if (type === 'vxlan') {
      checkKeys(m, ['name', 'type', 'vni', 'local', 'remote', 'dstport', 'udpcsum', 'dev', 'mac', 'addresses', 'mtu', 'ttl', 'tos', 'srcport'], 'vxlan tunnel');
      const ttlNode = get(m, 'ttl');
      const ttlInherit = isScalar(ttlNode) && ttlNode.value === 'inherit';
      const sp = get(m, 'srcport');
      let srcPortMin: number | undefined;
      let srcPortMax: number | undefined;
      if (sp !== undefined) {
        const parts = str(sp, 'srcport').split(/[\s-]+/);
        srcPortMin = Number(parts[0]);
        srcPortMax = Number(parts[1]);
        if (!(srcPortMin >= 1 && srcPortMax <= 65536 && srcPortMin < srcPortMax)) fail(sp, 'srcport must be "MIN MAX"');
      }
      const dev = get(m, 'dev') === undefined ? undefined : str(get(m, 'dev'), 'dev');
      addIface(
        {
          index: interfaces.length,
          name: tName,
          kind: 'vxlan',
          mac: mac(get(m, 'mac') ?? fail(n, `vxlan "${tName}" needs a mac`), 'mac'),
          addresses: addresses(m),
          mtu: get(m, 'mtu') === undefined ? 1450 : num(get(m, 'mtu'), 'mtu', 68, 65535),
          vxlan: {
            vni: num(get(m, 'vni') ?? fail(n, `vxlan "${tName}" needs a vni`), 'vni', 0, 0xffffff),
            local: ip(get(m, 'local') ?? fail(n, `vxlan "${tName}" needs local`), 'local'),
            remote: get(m, 'remote') === undefined ? 0 : ip(get(m, 'remote'), 'remote'),
            // The kernel's default is 8472 (drivers/net/vxlan: vxlan_port); iproute2 warns about it.
            dstport: get(m, 'dstport') === undefined ? 8472 : num(get(m, 'dstport'), 'dstport', 1, 65535),
            udpcsum: get(m, 'udpcsum') === undefined ? true : bool(get(m, 'udpcsum'), 'udpcsum'),
            dev,
            ttl: ttlNode === undefined || ttlInherit ? 0 : num(ttlNode, 'ttl', 1, 255),
            ttlInherit,
            tos: tos('tos'),
            srcPortMin,
            srcPortMax,
          },
          line: lineOf(n),
        },
        n,
      );
    } else if (type === 'ipip') {
      checkKeys(m, ['name', 'type', 'local', 'remote', 'addresses', 'mtu', 'ttl', 'tos', 'pmtudisc'], 'ipip tunnel');
      const ttlNode = get(m, 'ttl');
      addIface(
        {
          index: interfaces.length,
          name: tName,
          kind: 'ipip',
          mac: undefined,
          addresses: addresses(m),
          mtu: get(m, 'mtu') === undefined ? 1480 : num(get(m, 'mtu'), 'mtu', 68, 65535),
          ipip: {
            local: get(m, 'local') === undefined ? 0 : ip(get(m, 'local'), 'local'),
            remote: get(m, 'remote') === undefined ? 0 : ip(get(m, 'remote'), 'remote'),
            ttl: ttlNode === undefined || (isScalar(ttlNode) && ttlNode.value === 'inherit') ? 0 : num(ttlNode, 'ttl', 1, 255),
            tos: tos('tos'),
            // tunl0: "ttl inherit nopmtudisc"
            pmtudisc: get(m, 'pmtudisc') === undefined ? false : bool(get(m, 'pmtudisc'), 'pmtudisc'),
          },
          line: lineOf(n),
        },
        n,
      );
    } else {
      fail(get(m, 'type'), `unknown tunnel type "${type}" (expected vxlan or ipip)`);
    }
  }
  for (const ifc of interfaces) {
    const dev = ifc.vxlan?.dev;
    if (dev !== undefined && !byName.has(dev)) throw new ConfigError(`${file}:${ifc.line}: vxlan "${ifc.name}": dev "${dev}" is not an interface of this node`);
  }

  const routes: RouteConfig[] = seq(get(top, 'routes'), 'routes').map((n) => {
    const line = lineOf(n);
    const textr = str(n, 'route');
    return parseRoute(textr, (msg) => {
      throw new ConfigError(`${file}:${line}: route "${textr}": ${msg}`);
    }, byName, line);
  });

  const neighNodes = [...seq(get(top, 'neighbors'), 'neighbors'), ...seq(get(top, 'neighbours'), 'neighbours')];
  const neighbors: NeighborConfig[] = neighNodes.map((n) => {
    const line = lineOf(n);
    const t = str(n, 'neighbour');
    const bad = (msg: string): never => {
      throw new ConfigError(`${file}:${line}: neighbour "${t}": ${msg}`);
    };
    // ip neigh syntax: ADDR lladdr MAC dev IF [nud permanent]
    const tok = t.trim().split(/\s+/);
    let ipv: number | undefined;
    let macv: Uint8Array | undefined;
    let dev: string | undefined;
    for (let i = 0; i < tok.length; i++) {
      const w = tok[i]!;
      if (w === 'lladdr') macv = parseOr(() => parseMac(tok[++i] ?? ''), () => bad(`"${tok[i]}" is not a MAC address`));
      else if (w === 'dev') dev = tok[++i];
      else if (w === 'nud') {
        const s = tok[++i];
        if (s !== 'permanent' && s !== 'noarp' && s !== 'reachable' && s !== 'stale') bad(`unknown nud state "${s}"`);
      } else if (ipv === undefined) ipv = parseOr(() => parseIpv4(w), () => bad(`"${w}" is not an IPv4 address`));
      else bad(`unexpected token "${w}"`);
    }
    if (ipv === undefined) bad('no address');
    if (macv === undefined) bad('no lladdr');
    if (dev === undefined) bad('no dev');
    if (!byName.has(dev!)) bad(`dev "${dev}" is not an interface of this node`);
    return { ip: ipv!, mac: macv!, dev: dev!, text: t, line };
  });

  const sysctls: Sysctls = { ...DEFAULT_SYSCTLS, localPortRange: [...DEFAULT_SYSCTLS.localPortRange] };
  const sys = get(top, 'sysctls');
  if (sys !== undefined) {
    if (!isMap(sys)) fail(sys, 'sysctls is a mapping of sysctl names to values');
    for (const item of (sys as YAMLMap).items) {
      const k = isScalar(item.key) ? String(item.key.value) : '';
      const vn = item.value as YamlNode;
      if (!KNOWN_SYSCTLS.has(k)) fail(item.key as YamlNode, `unsupported sysctl "${k}" (dpemu models: ${[...KNOWN_SYSCTLS].join(', ')})`);
      switch (k) {
        case 'net.ipv4.ip_forward':
        case 'net.ipv4.conf.all.forwarding':
          sysctls.ipForward = num(vn, k, 0, 1) === 1;
          break;
        case 'net.netfilter.nf_conntrack_tcp_loose':
          sysctls.tcpLoose = num(vn, k, 0, 1) === 1;
          break;
        case 'net.netfilter.nf_conntrack_checksum':
          sysctls.conntrackChecksum = num(vn, k, 0, 1) === 1;
          break;
        case 'net.netfilter.nf_conntrack_tcp_be_liberal':
          sysctls.tcpBeLiberal = num(vn, k, 0, 1) === 1;
          break;
        case 'net.netfilter.nf_conntrack_max':
        case 'net.nf_conntrack_max':
          sysctls.conntrackMax = num(vn, k, 1, 1 << 26);
          break;
        case 'net.ipv4.ip_local_port_range': {
          const parts = str(vn, k).trim().split(/\s+/).map(Number);
          if (parts.length !== 2 || !parts.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535) || parts[0]! > parts[1]!) fail(vn, `${k} must be "LOW HIGH"`);
          sysctls.localPortRange = [parts[0]!, parts[1]!];
          break;
        }
      }
    }
  }

  const source = (inlineKey: string, fileKey: string): TextSource | undefined => {
    const inl = get(top, inlineKey);
    const fil = get(top, fileKey);
    if (inl !== undefined && fil !== undefined) fail(fil, `give either ${inlineKey} or ${fileKey}, not both`);
    if (inl !== undefined) {
      // A block scalar's text starts on the line after the key.
      return { text: str(inl, inlineKey), file, firstLine: lineOf(inl) + (isScalar(inl) && String(inl.type).startsWith('BLOCK') ? 1 : 0) };
    }
    if (fil !== undefined) {
      const p = resolve(dirname(file), str(fil, fileKey));
      try {
        return { text: readFileSync(p, 'utf8'), file: p, firstLine: 1 };
      } catch (e) {
        return fail(fil, `${fileKey}: cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    return undefined;
  };

  return {
    file,
    name,
    interfaces,
    routes,
    neighbors,
    sysctls,
    iptables: source('iptables', 'iptablesFile'),
    ipset: source('ipset', 'ipsetFile'),
  };
}

function parseOr<T>(f: () => T, onErr: () => never): T {
  try {
    return f();
  } catch {
    return onErr();
  }
}

/** One `ip route` line: [TYPE] PREFIX|default [via GW] [dev IF] [onlink] [src A] [metric N] [proto P] [scope S]. */
export function parseRoute(text: string, bad: (msg: string) => never, ifaces: Map<string, unknown>, line = 0): RouteConfig {
  const tok = text.trim().split(/\s+/);
  let i = 0;
  let type: RouteType = 'unicast';
  if (tok[0] === 'blackhole' || tok[0] === 'unreachable' || tok[0] === 'prohibit' || tok[0] === 'local' || tok[0] === 'unicast') {
    type = tok[0];
    i++;
  }
  const dstTok = tok[i++];
  if (dstTok === undefined) bad('no destination');
  let dst = 0;
  let prefix = 0;
  if (dstTok !== 'default') {
    try {
      const c = parseCidr(dstTok!.includes('/') ? dstTok! : `${dstTok}/32`);
      dst = c.addr;
      prefix = c.prefix;
    } catch {
      bad(`"${dstTok}" is not a destination prefix`);
    }
    if ((dst & ~(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0)) >>> 0 !== 0) bad(`"${dstTok}": host bits set (the kernel says "Invalid prefix for given prefix length")`);
  }
  let via = 0;
  let dev: string | undefined;
  let onlink = false;
  let src = 0;
  let metric = 0;
  for (; i < tok.length; i++) {
    const w = tok[i]!;
    const arg = (): string => tok[++i] ?? bad(`"${w}" needs a value`);
    switch (w) {
      case 'via':
        via = parseOr(() => parseIpv4(arg()), () => bad(`via "${tok[i]}" is not an IPv4 address`));
        break;
      case 'dev':
        dev = arg();
        if (!ifaces.has(dev)) bad(`dev "${dev}" is not an interface of this node`);
        break;
      case 'onlink':
        onlink = true;
        break;
      case 'src':
        src = parseOr(() => parseIpv4(arg()), () => bad(`src "${tok[i]}" is not an IPv4 address`));
        break;
      case 'metric':
      case 'preference': {
        const v = Number(arg());
        if (!Number.isInteger(v) || v < 0) bad(`bad metric "${tok[i]}"`);
        metric = v;
        break;
      }
      case 'proto':
      case 'scope':
        arg(); // accepted for copy-paste from `ip route` output; no effect on forwarding
        break;
      case 'table': {
        const t = arg();
        // Only the main table is modelled (no `ip rule` policy routing yet).
        if (t !== 'main' && t !== '254') bad(`table "${t}": only the main table is modelled`);
        break;
      }
      default:
        bad(`unknown token "${w}"`);
    }
  }
  if (type === 'unicast' && via === 0 && dev === undefined) bad('needs "via GATEWAY" or "dev IF"');
  return { type, dst, prefix, via, dev, onlink, src, metric, text, line };
}
