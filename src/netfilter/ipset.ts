/**
 * ipsets from `ipset save` text (`create NAME TYPE [options]`, `add NAME ENTRY [options]`) and
 * their membership tests as the kernel's ip_set types do them, for `-m set --match-set`.
 *
 * Types: hash:ip (with netmask), hash:net (longest prefix first, `nomatch` entries), hash:ip,port
 * (key ip, proto, port), bitmap:port, list:set. Lookups take numbers and allocate nothing.
 * `family inet6` sets are parsed (entries validated) but never match an IPv4 packet, as
 * ip_set_test does for a family mismatch.
 *
 * Entry and set timeouts are accepted but entries never expire in dpemu (the save has no
 * timestamp to count from); counters, comments and skbinfo extensions have no effect on
 * matching and are accepted.
 *
 * Kernel sources: net/netfilter/ipset/ip_set_core.c (ip_set_test), ip_set_hash_gen.h
 * (mtype_test_cidrs: most specific prefix first, nomatch → no match), ip_set_getport.c
 * (ip_set_get_ip4_port), ip_set_bitmap_port.c, ip_set_list_set.c.
 */
import { Address6 } from 'ip-address';
import { RulesetError } from './errors.js';
import { IntMap, IntPairMap } from './inthash.js';
import { parseIcmpType, parseProtocol, parseUint } from './extensions.js';
import { parseCidr, parseIpv4, prefixMask } from '../packet/addr.js';
import type { PacketView } from '../packet/view.js';

export const IPSET_HASH_IP = 1;
export const IPSET_HASH_NET = 2;
export const IPSET_HASH_IP_PORT = 3;
export const IPSET_BITMAP_PORT = 4;
export const IPSET_LIST_SET = 5;

const TYPE_BY_NAME: Readonly<Record<string, number>> = {
  'hash:ip': IPSET_HASH_IP,
  'hash:net': IPSET_HASH_NET,
  'hash:ip,port': IPSET_HASH_IP_PORT,
  'bitmap:port': IPSET_BITMAP_PORT,
  'list:set': IPSET_LIST_SET,
};

/** Dimension of each type (the number of src/dst flags a match needs). */
const TYPE_DIM = [0, 1, 1, 2, 1, 1];

/** Result flags stored for hash:net entries. */
const NET_MATCH = 1;
const NET_NOMATCH = 2;

export class Ipset {
  readonly name: string;
  readonly typeName: string;
  readonly type: number;
  readonly family: 'inet' | 'inet6';
  /** Line of the `create`. */
  readonly line: number;
  /** hash:ip netmask (prefix length). */
  netmask = 32;
  private netmaskBits = 0xffffffff;
  /** hash:ip: address → 1. */
  private readonly ips = new IntMap();
  /** hash:net: (network, prefix length) → NET_MATCH | NET_NOMATCH. */
  private readonly nets = new IntPairMap();
  /** hash:net: prefix lengths in use, most specific first. */
  private prefixes = new Int32Array(0);
  private prefixMasks = new Int32Array(0);
  /** hash:ip,port: (ip, proto << 16 | port) → 1. */
  private readonly ipPorts = new IntPairMap();
  /** bitmap:port. */
  private bitmap: Uint8Array | null = null;
  firstPort = 0;
  lastPort = 65535;
  /** list:set members in order. */
  readonly members: Ipset[] = [];
  /** Number of entries (inet6 entries included). */
  size = 0;
  /** inet6 entries, validated and kept as text (never match IPv4 packets). */
  readonly entries6: string[] = [];
  private readonly dim: number;

  constructor(name: string, typeName: string, family: 'inet' | 'inet6', line: number) {
    this.name = name;
    this.typeName = typeName;
    this.type = TYPE_BY_NAME[typeName]!;
    this.family = family;
    this.line = line;
    this.dim = TYPE_DIM[this.type]!;
  }

  setNetmask(len: number): void {
    this.netmask = len;
    this.netmaskBits = prefixMask(len);
  }

  initBitmap(first: number, last: number): void {
    this.firstPort = first;
    this.lastPort = last;
    this.bitmap = new Uint8Array(65536);
  }

  addIp(ip: number): void {
    const k = (ip & this.netmaskBits) | 0;
    if (this.ips.get(k) < 0) this.size++;
    this.ips.set(k, 1);
  }

  addNet(net: number, len: number, nomatch: boolean): void {
    const k = (net & prefixMask(len)) | 0;
    if (this.nets.get(k, len) < 0) this.size++;
    this.nets.set(k, len, nomatch ? NET_NOMATCH : NET_MATCH);
    if (!Array.from(this.prefixes).includes(len)) {
      const p = [...this.prefixes, len].sort((a, b) => b - a);
      this.prefixes = Int32Array.from(p);
      this.prefixMasks = Int32Array.from(p.map((l) => prefixMask(l) | 0));
    }
  }

  addIpPort(ip: number, proto: number, port: number): void {
    if (this.ipPorts.get(ip | 0, (proto << 16) | port) < 0) this.size++;
    this.ipPorts.set(ip | 0, (proto << 16) | port, 1);
  }

  addPort(port: number): void {
    if (this.bitmap![port] === 0) this.size++;
    this.bitmap![port] = 1;
  }

  /** hash:ip / hash:net membership of one address (no packet needed). */
  hasIp(ip: number): boolean {
    if (this.type === IPSET_HASH_IP) return this.ips.get((ip & this.netmaskBits) | 0) >= 0;
    if (this.type === IPSET_HASH_NET) {
      const pre = this.prefixes;
      const masks = this.prefixMasks;
      for (let i = 0; i < pre.length; i++) {
        const f = this.nets.get(ip & masks[i]!, pre[i]!);
        if (f >= 0) return f === NET_MATCH;
      }
      return false;
    }
    return false;
  }

  /** hash:ip,port membership of a key. */
  hasIpPort(ip: number, proto: number, port: number): boolean {
    return this.ipPorts.get(ip | 0, (proto << 16) | port) >= 0;
  }

  /**
   * ip_set_test for an IPv4 packet: `dirs` bit i set = dimension i takes the source
   * (src,dst,... flags of --match-set), `dim` = number of flags given.
   */
  test(v: PacketView, dirs: number, dim: number): boolean {
    // ip_set_test: fewer flags than the set's dimension, or another family, never matches.
    if (dim < this.dim) return false;
    switch (this.type) {
      case IPSET_HASH_IP:
        if (this.family !== 'inet') return false;
        return this.ips.get(((dirs & 1 ? v.srcIp : v.dstIp) & this.netmaskBits) | 0) >= 0;
      case IPSET_HASH_NET: {
        if (this.family !== 'inet') return false;
        const ip = dirs & 1 ? v.srcIp : v.dstIp;
        const pre = this.prefixes;
        const masks = this.prefixMasks;
        for (let i = 0; i < pre.length; i++) {
          const f = this.nets.get(ip & masks[i]!, pre[i]!);
          if (f >= 0) return f === NET_MATCH;
        }
        return false;
      }
      case IPSET_HASH_IP_PORT: {
        if (this.family !== 'inet') return false;
        // ip_set_get_ip4_port: no ports in a non-first fragment of TCP/UDP/SCTP/UDPLITE/ICMP;
        // other protocols match with port 0; ICMP uses type << 8 | code.
        const proto = v.ipProto;
        if (proto <= 0) return false;
        let port = 0;
        if (proto === 6 || proto === 17 || proto === 132 || proto === 136) {
          if (v.l4Off < 0) return false;
          port = dirs & 2 ? v.srcPort : v.dstPort;
        } else if (proto === 1) {
          if (v.l4Off < 0) return false;
          port = (v.icmpType << 8) | v.icmpCode;
        }
        return this.ipPorts.get((dirs & 1 ? v.srcIp : v.dstIp) | 0, (proto << 16) | port) >= 0;
      }
      case IPSET_BITMAP_PORT: {
        const proto = v.ipProto;
        if ((proto !== 6 && proto !== 17) || v.l4Off < 0) return false;
        const port = dirs & 1 ? v.srcPort : v.dstPort;
        return this.bitmap![port] === 1;
      }
      case IPSET_LIST_SET: {
        const m = this.members;
        for (let i = 0; i < m.length; i++) if (m[i]!.test(v, dirs, dim)) return true;
        return false;
      }
    }
    return false;
  }
}

/** The ipsets of a node by name; what `-m set` is compiled against. */
export class IpsetRegistry {
  readonly sets = new Map<string, Ipset>();

  get(name: string): Ipset | undefined {
    return this.sets.get(name);
  }

  /** Parse `ipset save` output. Throws RulesetError naming file and line. */
  static parse(text: string, file = '<ipset>'): IpsetRegistry {
    const reg = new IpsetRegistry();
    reg.load(text, file);
    return reg;
  }

  load(text: string, file = '<ipset>'): void {
    const lines = text.split('\n');
    for (let ln = 1; ln <= lines.length; ln++) {
      const trimmed = lines[ln - 1]!.replace(/\r$/, '').trim();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      const fail = (reason: string, token = ''): never => {
        throw new RulesetError(file, ln, reason, token);
      };
      let tok: string[];
      try {
        tok = tokenizeIpset(trimmed);
      } catch (e) {
        return fail((e as Error).message);
      }
      const cmd = tok[0]!;
      if (cmd === 'create' || cmd === '-N' || cmd === 'n' || cmd === '-exist') {
        if (cmd !== 'create') fail(`"${cmd}": only the "create" and "add" lines of ipset save are read`, cmd);
        this.parseCreate(tok, ln, fail);
      } else if (cmd === 'add') {
        this.parseAdd(tok, ln, fail);
      } else {
        fail(`unknown ipset command "${cmd}" (ipset save files hold "create" and "add" lines)`, cmd);
      }
    }
  }

  private parseCreate(tok: string[], ln: number, fail: (r: string, t?: string) => never): void {
    const name = tok[1];
    const typeName = tok[2];
    if (name === undefined || typeName === undefined) fail(`"create" needs a set name and a type`, 'create');
    if (name.length > 31) fail(`set name "${name}" too long (at most 31 characters)`, name);
    if (this.sets.has(name)) fail(`set ${name} already exists (created at line ${this.sets.get(name)!.line})`, name);
    if (TYPE_BY_NAME[typeName] === undefined) fail(`unsupported set type "${typeName}" (hash:ip, hash:net, hash:ip,port, bitmap:port, list:set)`, typeName);
    const type = TYPE_BY_NAME[typeName]!;
    let family: 'inet' | 'inet6' = 'inet';
    let netmask = -1;
    let range: [number, number] | null = null;
    for (let i = 3; i < tok.length; i++) {
      const o = tok[i]!;
      const arg = (): string => {
        const a = tok[i + 1];
        if (a === undefined) fail(`option "${o}" needs a value`, o);
        i++;
        return a;
      };
      const num = (min: number, max: number): number => {
        const a = arg();
        const v = parseUint(a, min, max);
        if (v === null) fail(`bad value "${a}" for ${o} (${min}-${max})`, a);
        return v;
      };
      switch (o) {
        case 'family': {
          const f = arg();
          if (f !== 'inet' && f !== 'inet6') fail(`bad family "${f}" (inet or inet6)`, f);
          if (type === IPSET_BITMAP_PORT || type === IPSET_LIST_SET) fail(`${typeName} takes no family`, o);
          family = f;
          break;
        }
        case 'hashsize':
        case 'maxelem':
        case 'bucketsize':
          if (type !== IPSET_HASH_IP && type !== IPSET_HASH_NET && type !== IPSET_HASH_IP_PORT) fail(`option "${o}" is not valid for ${typeName}`, o);
          num(1, 0xffffffff);
          break;
        case 'initval':
          if (!/^0x[0-9a-fA-F]{1,8}$/.test(arg())) fail(`bad initval "${tok[i]}"`, tok[i]);
          break;
        case 'timeout':
          num(0, 2147483);
          break;
        case 'size':
          if (type !== IPSET_LIST_SET) fail(`option "size" is only valid for list:set`, o);
          num(1, 0xffffffff);
          break;
        case 'netmask':
          if (type !== IPSET_HASH_IP) fail(`option "netmask" is not valid for ${typeName}`, o);
          netmask = num(1, 32);
          break;
        case 'range': {
          if (type !== IPSET_BITMAP_PORT) fail(`option "range" is only valid for bitmap:port`, o);
          const r = arg();
          const m = /^([0-9]+)-([0-9]+)$/.exec(r);
          if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) > 65535) fail(`bad port range "${r}"`, r);
          range = [Number(m[1]), Number(m[2])];
          break;
        }
        case 'counters':
        case 'comment':
        case 'skbinfo':
        case 'forceadd':
          break;
        default:
          fail(`unknown option "${o}" for ipset create ${typeName}`, o);
      }
    }
    if (type === IPSET_BITMAP_PORT && range === null) fail(`bitmap:port needs "range FROM-TO"`, typeName);
    const set = new Ipset(name, typeName, family, ln);
    if (netmask >= 0) {
      if (family === 'inet6') fail(`netmask of an inet6 set is not supported`, 'netmask');
      set.setNetmask(netmask);
    }
    if (range) set.initBitmap(range[0], range[1]);
    this.sets.set(name, set);
  }

  private parseAdd(tok: string[], ln: number, fail: (r: string, t?: string) => never): void {
    const name = tok[1];
    const entry = tok[2];
    if (name === undefined || entry === undefined) fail(`"add" needs a set name and an entry`, 'add');
    const set = this.sets.get(name);
    if (!set) fail(`set ${name} does not exist (no "create" line before)`, name);
    let nomatch = false;
    for (let i = 3; i < tok.length; i++) {
      const o = tok[i]!;
      const arg = (): string => {
        const a = tok[i + 1];
        if (a === undefined) fail(`option "${o}" needs a value`, o);
        i++;
        return a;
      };
      switch (o) {
        case 'nomatch':
          if (set.type !== IPSET_HASH_NET) fail(`"nomatch" is only supported for hash:net here`, o);
          nomatch = true;
          break;
        case 'timeout':
        case 'packets':
        case 'bytes':
        case 'skbprio':
        case 'skbqueue': {
          const a = arg();
          if (o === 'skbprio' ? !/^[0-9a-fA-F]+:[0-9a-fA-F]+$/.test(a) : parseUint(a, 0, Number.MAX_SAFE_INTEGER) === null) fail(`bad value "${a}" for ${o}`, a);
          break;
        }
        case 'skbmark': {
          const a = arg();
          if (!/^0x[0-9a-fA-F]+(\/0x[0-9a-fA-F]+)?$/.test(a)) fail(`bad value "${a}" for skbmark`, a);
          break;
        }
        case 'comment':
          arg();
          break;
        default:
          fail(`unknown option "${o}" for ipset add to ${set.typeName} set ${name}`, o);
      }
    }
    this.addEntry(set, entry, nomatch, fail);
  }

  private addEntry(set: Ipset, entry: string, nomatch: boolean, fail: (r: string, t?: string) => never): void {
    if (set.family === 'inet6') {
      const addr = set.type === IPSET_HASH_IP_PORT ? entry.slice(0, entry.lastIndexOf(',')) : entry;
      if (!Address6.isValid(addr)) fail(`invalid IPv6 entry "${entry}" for inet6 set ${set.name}`, entry);
      set.entries6.push(entry);
      set.size++;
      return;
    }
    switch (set.type) {
      case IPSET_HASH_IP: {
        if (entry.includes('/') || entry.includes('-')) fail(`hash:ip entry "${entry}": ranges and networks are expanded by ipset save; give one address`, entry);
        set.addIp(ipOrFail(entry, fail));
        return;
      }
      case IPSET_HASH_NET: {
        if (entry.includes('-')) fail(`hash:net entry "${entry}": address ranges are not in ipset save output; give CIDRs`, entry);
        let c;
        try {
          c = parseCidr(entry);
        } catch {
          return fail(`invalid hash:net entry "${entry}"`, entry);
        }
        if (c.prefix < 1) fail(`hash:net entry "${entry}": prefix length must be 1-32`, entry);
        set.addNet(c.network, c.prefix, nomatch);
        return;
      }
      case IPSET_HASH_IP_PORT: {
        const comma = entry.indexOf(',');
        if (comma < 0) fail(`hash:ip,port entry "${entry}" needs "ip,[proto:]port"`, entry);
        const ip = ipOrFail(entry.slice(0, comma), fail);
        let pp = entry.slice(comma + 1);
        let proto = 6;
        const colon = pp.indexOf(':');
        if (colon >= 0) {
          const pn = pp.slice(0, colon);
          const p = parseProtocol(pn);
          if (p === null || p === 0) fail(`unknown protocol "${pn}" in "${entry}"`, entry);
          proto = p;
          pp = pp.slice(colon + 1);
        }
        let port: number;
        if (proto === 1) {
          // ipset's icmp names carry a code (echo-request = 8/0); numbers are "type/code".
          if (/^[0-9]+$/.test(pp)) fail(`ICMP entry "${entry}" needs "type/code" or a name`, entry);
          const t = parseIcmpType({ fail: (_i, r) => fail(`${r} in "${entry}"`, entry) }, 0, pp);
          if (t.type === 0xff) fail(`ICMP entry "${entry}" needs a type`, entry);
          port = (t.type << 8) | t.codeMin;
        } else {
          const v = /^[0-9]+$/.test(pp) ? Number(pp) : NaN;
          if (!(v >= 0 && v <= 65535)) fail(`bad port "${pp}" in "${entry}"`, entry);
          if (v !== 0 && proto !== 6 && proto !== 17 && proto !== 132 && proto !== 136) fail(`protocol ${proto} has no ports: use port 0 in "${entry}"`, entry);
          port = v;
        }
        set.addIpPort(ip, proto, port);
        return;
      }
      case IPSET_BITMAP_PORT: {
        const m = /^(?:(tcp|udp):)?([0-9]+)(?:-([0-9]+))?$/.exec(entry);
        if (!m) fail(`bad bitmap:port entry "${entry}"`, entry);
        const lo = Number(m[2]);
        const hi = m[3] !== undefined ? Number(m[3]) : lo;
        if (lo > hi || lo < set.firstPort || hi > set.lastPort) fail(`port "${entry}" is outside the range ${set.firstPort}-${set.lastPort} of ${set.name}`, entry);
        for (let p = lo; p <= hi; p++) set.addPort(p);
        return;
      }
      case IPSET_LIST_SET: {
        const member = this.sets.get(entry);
        if (!member) fail(`list:set member "${entry}" does not exist`, entry);
        if (member.type === IPSET_LIST_SET) fail(`a list:set cannot contain another list:set ("${entry}")`, entry);
        if (set.members.includes(member)) fail(`"${entry}" is already a member of ${set.name}`, entry);
        set.members.push(member);
        set.size++;
        return;
      }
    }
  }
}

function ipOrFail(s: string, fail: (r: string, t?: string) => never): number {
  try {
    return parseIpv4(s);
  } catch {
    return fail(`invalid IPv4 address "${s}"`, s);
  }
}

/** ipset restore tokens: blanks separate, double quotes group (comments). */
function tokenizeIpset(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) throw new Error('unterminated double quote');
      out.push(line.slice(i + 1, end));
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < line.length && line[j] !== ' ' && line[j] !== '\t') j++;
    out.push(line.slice(i, j));
    i = j;
  }
  return out;
}
