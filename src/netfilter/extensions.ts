/**
 * The iptables extensions dpemu understands: for each match (-m NAME) and target (-j NAME) the
 * options it takes, how they are parsed into the values the kernel receives (as libxt_*.c does)
 * and how `iptables-save` prints them back (the extension's save function).
 *
 * Sources: iptables extensions/libxt_{tcp,udp,multiport,conntrack,statistic,recent,mark,comment,
 * addrtype,set,rpfilter,nfacct,MARK,CT,NFLOG,LOG,DNAT}.c, libipt_{icmp,REJECT,SNAT,MASQUERADE,
 * NETMAP}.c; libxtables xtables_save_string for quoting.
 */
import {
  ADDRTYPE_ANYCAST,
  ADDRTYPE_BLACKHOLE,
  ADDRTYPE_BROADCAST,
  ADDRTYPE_LOCAL,
  ADDRTYPE_MULTICAST,
  ADDRTYPE_NAT,
  ADDRTYPE_PROHIBIT,
  ADDRTYPE_THROW,
  ADDRTYPE_UNICAST,
  ADDRTYPE_UNREACHABLE,
  ADDRTYPE_UNSPEC,
  ADDRTYPE_XRESOLVE,
} from './env.js';
import {
  CT_DNAT,
  CT_ESTABLISHED,
  CT_INVALID,
  CT_NEW,
  CT_RELATED,
  CT_SNAT,
  CT_UNTRACKED,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_EXPECTED,
  IPS_SEEN_REPLY,
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
} from './skb.js';
import { ipv4ToString, maskToPrefix, parseCidr, parseIpv4 } from '../packet/addr.js';
import type {
  AddrSpec,
  AddrtypeMatch,
  CommentMatch,
  ConntrackMatch,
  CtTarget,
  IcmpMatch,
  LogTarget,
  MarkMatch,
  MarkTarget,
  Match,
  MultiportMatch,
  NatTarget,
  NetmapTarget,
  NfacctMatch,
  NflogTarget,
  PortRange,
  RecentMatch,
  RejectTarget,
  RpfilterMatch,
  Rule,
  SetMatch,
  StatisticMatch,
  Target,
  TcpUdpMatch,
  TraceTarget,
} from './model.js';

// ---------------------------------------------------------------------------------------------
// Shared value parsers (libxtables)

/** Context of the option being parsed: raise an error naming the token. */
export interface ExtCtx {
  fail(tokenIndex: number, reason: string): never;
}

/** xtables_strtoui with base 0: decimal, 0x hex, leading-0 octal; null when not a number in range. */
export function parseUint(s: string, min: number, max: number): number | null {
  let v: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) v = parseInt(s.slice(2), 16);
  else if (/^0[0-7]*$/.test(s)) v = parseInt(s, 8);
  else if (/^[1-9][0-9]*$/.test(s)) v = parseInt(s, 10);
  else return null;
  if (!Number.isSafeInteger(v) || v < min || v > max) return null;
  return v;
}

function uintOrFail(ctx: ExtCtx, tok: number, s: string, min: number, max: number, what: string): number {
  const v = parseUint(s, min, max);
  if (v === null) ctx.fail(tok, `invalid ${what} "${s}" (must be ${min}-${max})`);
  return v;
}

/** A port number (iptables also accepts /etc/services names; dpemu only numbers). */
export function parsePortOrFail(ctx: ExtCtx, tok: number, s: string): number {
  if (/^[0-9]+$/.test(s)) {
    const v = Number(s);
    if (v <= 65535) return v;
  }
  if (/^[A-Za-z]/.test(s)) ctx.fail(tok, `port "${s}": service names are not supported, use the number`);
  return ctx.fail(tok, `invalid port "${s}"`);
}

/** "a", "a:b", ":b", "a:" (libxt_tcp's port range; iptables-save prints a:b). */
function parsePortRange(ctx: ExtCtx, tok: number, s: string, invert: boolean): PortRange {
  const colon = s.indexOf(':');
  if (colon < 0) {
    const p = parsePortOrFail(ctx, tok, s);
    return { lo: p, hi: p, invert };
  }
  const a = s.slice(0, colon);
  const b = s.slice(colon + 1);
  const lo = a === '' ? 0 : parsePortOrFail(ctx, tok, a);
  const hi = b === '' ? 65535 : parsePortOrFail(ctx, tok, b);
  if (lo > hi) ctx.fail(tok, `invalid port range "${s}" (min > max)`);
  return { lo, hi, invert };
}

function savePortRange(r: PortRange): string {
  return r.lo === r.hi ? `${r.lo}` : `${r.lo}:${r.hi}`;
}

/** An address with optional /len or /dotted-mask, masked as iptables stores it. */
export function parseAddrOrFail(ctx: ExtCtx, tok: number, s: string, invert: boolean): AddrSpec {
  if (s.includes(',')) ctx.fail(tok, `address lists ("${s}") are not in iptables-save output: write one rule per address`);
  if (/^[0-9.]+(\/[0-9.]+)?$/.test(s)) {
    try {
      const c = parseCidr(s);
      return { net: c.network, mask: c.mask, invert };
    } catch (e) {
      ctx.fail(tok, `invalid address "${s}" (${(e as Error).message})`);
    }
  }
  return ctx.fail(tok, `invalid address "${s}" (host names are not resolved; use a numeric address)`);
}

/** iptables-save's a.b.c.d/len (mask_to_str: a non-contiguous mask prints dotted). */
export function saveAddrMask(a: AddrSpec): string {
  const p = maskToPrefix(a.mask);
  return `${ipv4ToString(a.net)}/${p >= 0 ? p : ipv4ToString(a.mask)}`;
}

/** xtables_ipaddr_to_numeric + xtables_ipmask_to_numeric: "/32" is omitted. */
function saveAddrNumeric(a: AddrSpec): string {
  if (a.mask === 0xffffffff) return ipv4ToString(a.net);
  const p = maskToPrefix(a.mask);
  return `${ipv4ToString(a.net)}/${p >= 0 ? p : ipv4ToString(a.mask)}`;
}

/** "value[/mask]" (XTTYPE_MARKMASK32): mask defaults to 0xffffffff. */
function parseMarkMask(ctx: ExtCtx, tok: number, s: string): { value: number; mask: number } {
  const slash = s.indexOf('/');
  const vs = slash < 0 ? s : s.slice(0, slash);
  const value = uintOrFail(ctx, tok, vs, 0, 0xffffffff, 'mark value');
  const mask = slash < 0 ? 0xffffffff : uintOrFail(ctx, tok, s.slice(slash + 1), 0, 0xffffffff, 'mark mask');
  return { value, mask };
}

function hex(v: number): string {
  return `0x${(v >>> 0).toString(16)}`;
}

/**
 * xtables_save_string: bare when only [A-Za-z0-9_-], else double-quoted with `"`, `\` and `'`
 * escaped by a backslash. Returns the text with its leading space.
 */
export function saveString(value: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(value)) return ` ${value}`;
  return ` "${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

// ---------------------------------------------------------------------------------------------
// Protocols

/** /etc/protocols (Debian netbase) names iptables resolves with getprotobyname, plus its own table. */
const PROTO_BY_NAME: Readonly<Record<string, number>> = {
  ip: 0,
  hopopt: 0,
  icmp: 1,
  igmp: 2,
  ggp: 3,
  ipencap: 4,
  ipv4: 4,
  st: 5,
  tcp: 6,
  egp: 8,
  igp: 9,
  pup: 12,
  udp: 17,
  hmp: 20,
  'xns-idp': 22,
  rdp: 27,
  'iso-tp4': 29,
  dccp: 33,
  xtp: 36,
  ddp: 37,
  'idpr-cmtp': 38,
  ipv6: 41,
  'ipv6-route': 43,
  'ipv6-frag': 44,
  idrp: 45,
  rsvp: 46,
  gre: 47,
  esp: 50,
  ah: 51,
  skip: 57,
  icmpv6: 58,
  'ipv6-icmp': 58,
  'ipv6-nonxt': 59,
  'ipv6-opts': 60,
  rspf: 73,
  vmtp: 81,
  eigrp: 88,
  ospf: 89,
  'ax.25': 93,
  ipip: 94,
  etherip: 97,
  encap: 98,
  pim: 103,
  ipcomp: 108,
  vrrp: 112,
  l2tp: 115,
  isis: 124,
  sctp: 132,
  fc: 133,
  'mobility-header': 135,
  mh: 135,
  udplite: 136,
  'mpls-in-ip': 137,
  manet: 138,
  hip: 139,
  shim6: 140,
  wesp: 141,
  rohc: 142,
  ethernet: 143,
};

/** xtables_chain_protos: the names iptables-save prints for these numbers. */
const PROTO_SAVE_NAME: Readonly<Record<number, string>> = {
  6: 'tcp',
  132: 'sctp',
  17: 'udp',
  136: 'udplite',
  1: 'icmp',
  58: 'icmpv6',
  50: 'esp',
  51: 'ah',
  135: 'mh',
};

/** `-p`/`--ctproto` value → number, or null. Case-insensitive as iptables lowercases it. */
export function parseProtocol(s: string): number | null {
  const n = parseUint(s, 0, 255);
  if (n !== null) return n;
  const lower = s.toLowerCase();
  if (lower === 'all') return 0;
  const v = PROTO_BY_NAME[lower];
  return v === undefined ? null : v;
}

/** Spelling of `-p` to print: the builtin name for well-known numbers, else as written. */
export function protoSaveText(num: number, written: string): string {
  const canon = PROTO_SAVE_NAME[num];
  if (canon !== undefined) return canon;
  return parseUint(written, 0, 255) !== null ? `${num}` : written.toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// Extension interfaces

export interface OptSpec {
  /** Long option name without "--" (the canonical one, printed by save). */
  name: string;
  aliases?: readonly string[];
  /** Number of arguments that follow the option. */
  args: number;
  /** Accepts a preceding "!". */
  invert?: boolean;
}

export interface MatchExtension {
  /** Canonical extension name (what the kernel module is). */
  readonly name: string;
  readonly opts: readonly OptSpec[];
  /** Protocol the rule must have (-p, not inverted), as the kernel's xt_match.proto. */
  readonly proto?: number;
  create(written: string, tokenIndex: number): Match;
  option(m: Match, opt: string, args: string[], invert: boolean, tok: number, ctx: ExtCtx): void;
  /** Final checks once the rule is parsed (required options, -p requirements). */
  finish(m: Match, rule: Rule, seen: ReadonlySet<string>, ctx: ExtCtx): void;
  /** The options as iptables-save prints them, each with a leading space. */
  save(m: Match): string;
}

export interface TargetExtension {
  readonly name: string;
  readonly opts: readonly OptSpec[];
  create(written: string, tokenIndex: number): Target;
  option(t: Target, opt: string, args: string[], invert: boolean, tok: number, ctx: ExtCtx): void;
  finish(t: Target, rule: Rule, seen: ReadonlySet<string>, ctx: ExtCtx): void;
  save(t: Target): string;
}

/** Look an option up by name or alias. */
export function findOpt(opts: readonly OptSpec[], name: string): OptSpec | undefined {
  for (const o of opts) if (o.name === name || (o.aliases !== undefined && o.aliases.includes(name))) return o;
  return undefined;
}

function requireProto(rule: Rule, proto: number, what: string, m: { tokenIndex: number }, ctx: ExtCtx): void {
  if (rule.proto === null || rule.proto.num !== proto || rule.proto.invert) {
    ctx.fail(m.tokenIndex, `${what} needs "-p ${PROTO_SAVE_NAME[proto] ?? proto}" (the kernel's ${what} match is only valid for protocol ${proto})`);
  }
}

// ---------------------------------------------------------------------------------------------
// tcp / udp (xt_tcpudp.c, libxt_tcp.c, libxt_udp.c)

const TCP_FLAG_NAMES: readonly [string, number][] = [
  ['FIN', 0x01],
  ['SYN', 0x02],
  ['RST', 0x04],
  ['PSH', 0x08],
  ['ACK', 0x10],
  ['URG', 0x20],
  ['ALL', 0x3f],
  ['NONE', 0],
];

function parseTcpFlags(ctx: ExtCtx, tok: number, s: string): number {
  let v = 0;
  for (const part of s.split(',')) {
    const e = TCP_FLAG_NAMES.find(([n]) => n.toLowerCase() === part.toLowerCase());
    if (e === undefined) ctx.fail(tok, `unknown TCP flag "${part}" in "${s}"`);
    v |= e[1];
  }
  return v;
}

/** libxt_tcp print_tcpf. */
function saveTcpFlags(flags: number): string {
  const out: string[] = [];
  let f = flags;
  while (f) {
    let i = 0;
    while ((f & TCP_FLAG_NAMES[i]![1]) === 0) i++;
    out.push(TCP_FLAG_NAMES[i]![0]);
    f &= ~TCP_FLAG_NAMES[i]![1];
  }
  return out.length ? out.join(',') : 'NONE';
}

function tcpUdpExt(kind: 'tcp' | 'udp'): MatchExtension {
  const opts: OptSpec[] = [
    { name: 'sport', aliases: ['source-port'], args: 1, invert: true },
    { name: 'dport', aliases: ['destination-port'], args: 1, invert: true },
  ];
  if (kind === 'tcp') {
    opts.push({ name: 'tcp-flags', args: 2, invert: true }, { name: 'syn', args: 0, invert: true }, { name: 'tcp-option', args: 1, invert: true });
  }
  return {
    name: kind,
    opts,
    proto: kind === 'tcp' ? 6 : 17,
    create: (written, tokenIndex): TcpUdpMatch => ({ kind, name: written, tokenIndex, sport: null, dport: null, tcpFlags: null, tcpOption: null }),
    option(mm, opt, args, invert, tok, ctx) {
      const m = mm as TcpUdpMatch;
      switch (opt) {
        case 'sport':
          m.sport = parsePortRange(ctx, tok + 1, args[0]!, invert);
          break;
        case 'dport':
          m.dport = parsePortRange(ctx, tok + 1, args[0]!, invert);
          break;
        case 'tcp-flags':
          if (m.tcpFlags) ctx.fail(tok, `"--tcp-flags" and "--syn" can only be given once`);
          m.tcpFlags = { mask: parseTcpFlags(ctx, tok + 1, args[0]!), cmp: parseTcpFlags(ctx, tok + 2, args[1]!), invert };
          break;
        case 'syn':
          if (m.tcpFlags) ctx.fail(tok, `"--tcp-flags" and "--syn" can only be given once`);
          m.tcpFlags = { mask: 0x17, cmp: 0x02, invert };
          break;
        case 'tcp-option':
          m.tcpOption = { num: uintOrFail(ctx, tok + 1, args[0]!, 1, 255, 'TCP option'), invert };
          break;
      }
    },
    finish(mm, rule, _seen, ctx) {
      requireProto(rule, kind === 'tcp' ? 6 : 17, kind, mm, ctx);
    },
    save(mm) {
      const m = mm as TcpUdpMatch;
      let s = '';
      if (m.sport && (m.sport.lo !== 0 || m.sport.hi !== 65535 || m.sport.invert)) s += `${m.sport.invert ? ' !' : ''} --sport ${savePortRange(m.sport)}`;
      if (m.dport && (m.dport.lo !== 0 || m.dport.hi !== 65535 || m.dport.invert)) s += `${m.dport.invert ? ' !' : ''} --dport ${savePortRange(m.dport)}`;
      if (m.tcpOption) s += `${m.tcpOption.invert ? ' !' : ''} --tcp-option ${m.tcpOption.num}`;
      if (m.tcpFlags && (m.tcpFlags.mask !== 0 || m.tcpFlags.invert)) {
        s += `${m.tcpFlags.invert ? ' !' : ''} --tcp-flags ${saveTcpFlags(m.tcpFlags.mask)} ${saveTcpFlags(m.tcpFlags.cmp)}`;
      }
      return s;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// icmp (libipt_icmp.c, xt_tcpudp.c icmp_match)

const ICMP_CODES: readonly [string, number, number, number][] = [
  ['any', 0xff, 0, 0xff],
  ['echo-reply', 0, 0, 0xff],
  ['pong', 0, 0, 0xff],
  ['destination-unreachable', 3, 0, 0xff],
  ['network-unreachable', 3, 0, 0],
  ['host-unreachable', 3, 1, 1],
  ['protocol-unreachable', 3, 2, 2],
  ['port-unreachable', 3, 3, 3],
  ['fragmentation-needed', 3, 4, 4],
  ['source-route-failed', 3, 5, 5],
  ['network-unknown', 3, 6, 6],
  ['host-unknown', 3, 7, 7],
  ['network-prohibited', 3, 9, 9],
  ['host-prohibited', 3, 10, 10],
  ['TOS-network-unreachable', 3, 11, 11],
  ['TOS-host-unreachable', 3, 12, 12],
  ['communication-prohibited', 3, 13, 13],
  ['host-precedence-violation', 3, 14, 14],
  ['precedence-cutoff', 3, 15, 15],
  ['source-quench', 4, 0, 0xff],
  ['redirect', 5, 0, 0xff],
  ['network-redirect', 5, 0, 0],
  ['host-redirect', 5, 1, 1],
  ['TOS-network-redirect', 5, 2, 2],
  ['TOS-host-redirect', 5, 3, 3],
  ['echo-request', 8, 0, 0xff],
  ['ping', 8, 0, 0xff],
  ['router-advertisement', 9, 0, 0xff],
  ['router-solicitation', 10, 0, 0xff],
  ['time-exceeded', 11, 0, 0xff],
  ['ttl-exceeded', 11, 0, 0xff],
  ['ttl-zero-during-transit', 11, 0, 0],
  ['ttl-zero-during-reassembly', 11, 1, 1],
  ['parameter-problem', 12, 0, 0xff],
  ['ip-header-bad', 12, 0, 0],
  ['required-option-missing', 12, 1, 1],
  ['timestamp-request', 13, 0, 0xff],
  ['timestamp-reply', 14, 0, 0xff],
  ['address-mask-request', 17, 0, 0xff],
  ['address-mask-reply', 18, 0, 0xff],
];

/** An ICMP type by name (unique case-insensitive prefix, as libipt_icmp) or "type[/code]". */
export function parseIcmpType(ctx: ExtCtx, tok: number, s: string): { type: number; codeMin: number; codeMax: number } {
  if (/^[0-9]/.test(s)) {
    const slash = s.indexOf('/');
    const type = uintOrFail(ctx, tok, slash < 0 ? s : s.slice(0, slash), 0, 255, 'ICMP type');
    if (slash < 0) return { type, codeMin: 0, codeMax: 0xff };
    const code = uintOrFail(ctx, tok, s.slice(slash + 1), 0, 255, 'ICMP code');
    return { type, codeMin: code, codeMax: code };
  }
  let found: (typeof ICMP_CODES)[number] | undefined;
  for (const e of ICMP_CODES) {
    if (e[0].toLowerCase().startsWith(s.toLowerCase())) {
      if (found) ctx.fail(tok, `ambiguous ICMP type "${s}": "${found[0]}" or "${e[0]}"?`);
      found = e;
    }
  }
  if (!found) ctx.fail(tok, `unknown ICMP type "${s}"`);
  return { type: found[1], codeMin: found[2], codeMax: found[3] };
}

const icmpExt: MatchExtension = {
  name: 'icmp',
  opts: [{ name: 'icmp-type', args: 1, invert: true }],
  proto: 1,
  create: (written, tokenIndex): IcmpMatch => ({ kind: 'icmp', name: written, tokenIndex, type: 0xff, codeMin: 0, codeMax: 0xff, invert: false }),
  option(mm, _opt, args, invert, tok, ctx) {
    const m = mm as IcmpMatch;
    const t = parseIcmpType(ctx, tok + 1, args[0]!);
    m.type = t.type;
    m.codeMin = t.codeMin;
    m.codeMax = t.codeMax;
    m.invert = invert;
  },
  finish(mm, rule, _seen, ctx) {
    requireProto(rule, 1, 'icmp', mm, ctx);
  },
  save(mm) {
    const m = mm as IcmpMatch;
    let s = m.invert ? ' !' : '';
    if (m.type === 0xff) return `${s} --icmp-type any`;
    s += ` --icmp-type ${m.type}`;
    if (m.codeMin !== 0 || m.codeMax !== 0xff) s += `/${m.codeMin}`;
    return s;
  },
};

// ---------------------------------------------------------------------------------------------
// multiport (libxt_multiport.c v1, xt_multiport.c)

const multiportExt: MatchExtension = {
  name: 'multiport',
  opts: [
    { name: 'sports', aliases: ['source-ports'], args: 1, invert: true },
    { name: 'dports', aliases: ['destination-ports'], args: 1, invert: true },
    { name: 'ports', args: 1, invert: true },
  ],
  create: (written, tokenIndex): MultiportMatch => ({ kind: 'multiport', name: written, tokenIndex, mode: 'dst', ranges: [], invert: false }),
  option(mm, opt, args, invert, tok, ctx) {
    const m = mm as MultiportMatch;
    if (m.ranges.length) ctx.fail(tok, `multiport can only have one option of --sports, --dports, --ports`);
    m.mode = opt === 'sports' ? 'src' : opt === 'dports' ? 'dst' : 'any';
    m.invert = invert;
    let slots = 0;
    for (const part of args[0]!.split(',')) {
      const colon = part.indexOf(':');
      if (colon < 0) {
        const p = parsePortOrFail(ctx, tok + 1, part);
        m.ranges.push([p, p]);
        slots += 1;
      } else {
        const lo = parsePortOrFail(ctx, tok + 1, part.slice(0, colon));
        const hi = parsePortOrFail(ctx, tok + 1, part.slice(colon + 1));
        if (lo > hi) ctx.fail(tok + 1, `invalid port range "${part}" (min > max)`);
        m.ranges.push([lo, hi]);
        slots += 2;
      }
    }
    // XT_MULTI_PORTS = 15, a range takes two slots.
    if (slots > 15) ctx.fail(tok + 1, `too many ports specified in "${args[0]}" (at most 15, a range counts as 2)`);
  },
  finish(mm, rule, seen, ctx) {
    if (seen.size === 0) ctx.fail(mm.tokenIndex, `multiport needs one of --sports, --dports, --ports`);
    const p = rule.proto;
    if (p === null || p.invert || ![6, 17, 136, 132, 33].includes(p.num)) {
      ctx.fail(mm.tokenIndex, `multiport needs "-p tcp", "-p udp", "-p udplite", "-p sctp" or "-p dccp"`);
    }
  },
  save(mm) {
    const m = mm as MultiportMatch;
    const list = m.ranges.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}:${hi}`)).join(',');
    return `${m.invert ? ' !' : ''} --${m.mode === 'src' ? 'sports' : m.mode === 'dst' ? 'dports' : 'ports'} ${list}`;
  },
};

// ---------------------------------------------------------------------------------------------
// conntrack / state (libxt_conntrack.c v3 and its "state" alias, xt_conntrack.c)

const CT_STATE_NAMES: readonly [string, number][] = [
  ['INVALID', CT_INVALID],
  ['NEW', CT_NEW],
  ['RELATED', CT_RELATED],
  ['ESTABLISHED', CT_ESTABLISHED],
  ['UNTRACKED', CT_UNTRACKED],
  ['SNAT', CT_SNAT],
  ['DNAT', CT_DNAT],
];

const CT_STATUS_NAMES: readonly [string, number][] = [
  ['EXPECTED', IPS_EXPECTED],
  ['SEEN_REPLY', IPS_SEEN_REPLY],
  ['ASSURED', IPS_ASSURED],
  ['CONFIRMED', IPS_CONFIRMED],
];

function parseNameList(ctx: ExtCtx, tok: number, s: string, table: readonly [string, number][], what: string, allowNone: boolean): number {
  let v = 0;
  for (const part of s.split(',')) {
    if (allowNone && part.toUpperCase() === 'NONE') continue;
    const e = table.find(([n]) => n === part.toUpperCase());
    if (e === undefined) ctx.fail(tok, `bad ${what} "${part}" in "${s}"`);
    v |= e[1];
  }
  return v;
}

function saveNameList(mask: number, table: readonly [string, number][], none: string): string {
  const out = table.filter(([, b]) => (mask & b) !== 0).map(([n]) => n);
  return out.length ? out.join(',') : none;
}

function conntrackExt(alias: boolean): MatchExtension {
  const opts: OptSpec[] = alias
    ? [{ name: 'state', args: 1, invert: true }]
    : [
        { name: 'ctstate', args: 1, invert: true },
        { name: 'ctproto', args: 1, invert: true },
        { name: 'ctorigsrc', args: 1, invert: true },
        { name: 'ctorigdst', args: 1, invert: true },
        { name: 'ctreplsrc', args: 1, invert: true },
        { name: 'ctrepldst', args: 1, invert: true },
        { name: 'ctorigsrcport', args: 1, invert: true },
        { name: 'ctorigdstport', args: 1, invert: true },
        { name: 'ctreplsrcport', args: 1, invert: true },
        { name: 'ctrepldstport', args: 1, invert: true },
        { name: 'ctstatus', args: 1, invert: true },
        { name: 'ctexpire', args: 1, invert: true },
        { name: 'ctdir', args: 1 },
      ];
  return {
    name: alias ? 'state' : 'conntrack',
    opts,
    create: (written, tokenIndex): ConntrackMatch => ({
      kind: 'conntrack',
      name: written,
      tokenIndex,
      stateAlias: alias,
      state: null,
      ctproto: null,
      origSrc: null,
      origDst: null,
      replSrc: null,
      replDst: null,
      origSrcPort: null,
      origDstPort: null,
      replSrcPort: null,
      replDstPort: null,
      status: null,
      dir: null,
    }),
    option(mm, opt, args, invert, tok, ctx) {
      const m = mm as ConntrackMatch;
      const a = args[0]!;
      switch (opt) {
        case 'state':
          m.state = { mask: parseNameList(ctx, tok + 1, a, CT_STATE_NAMES.slice(0, 5), 'state', false), invert };
          break;
        case 'ctstate':
          m.state = { mask: parseNameList(ctx, tok + 1, a, CT_STATE_NAMES, 'ctstate', false), invert };
          break;
        case 'ctproto': {
          const p = parseProtocol(a);
          if (p === null) return ctx.fail(tok + 1, `unknown protocol "${a}"`);
          if (p === 0 && invert) ctx.fail(tok + 1, `conntrack: rule would never match protocol`);
          m.ctproto = { num: p, invert };
          break;
        }
        case 'ctorigsrc':
          m.origSrc = parseAddrOrFail(ctx, tok + 1, a, invert);
          break;
        case 'ctorigdst':
          m.origDst = parseAddrOrFail(ctx, tok + 1, a, invert);
          break;
        case 'ctreplsrc':
          m.replSrc = parseAddrOrFail(ctx, tok + 1, a, invert);
          break;
        case 'ctrepldst':
          m.replDst = parseAddrOrFail(ctx, tok + 1, a, invert);
          break;
        case 'ctorigsrcport':
          m.origSrcPort = parsePortRange(ctx, tok + 1, a, invert);
          break;
        case 'ctorigdstport':
          m.origDstPort = parsePortRange(ctx, tok + 1, a, invert);
          break;
        case 'ctreplsrcport':
          m.replSrcPort = parsePortRange(ctx, tok + 1, a, invert);
          break;
        case 'ctrepldstport':
          m.replDstPort = parsePortRange(ctx, tok + 1, a, invert);
          break;
        case 'ctstatus':
          m.status = { mask: parseNameList(ctx, tok + 1, a, CT_STATUS_NAMES, 'ctstatus', true), invert };
          break;
        case 'ctexpire':
          ctx.fail(tok, `"--ctexpire" is not supported by dpemu (the conntrack view has no timeouts)`);
          break;
        case 'ctdir': {
          const d = a.toUpperCase();
          if (d !== 'ORIGINAL' && d !== 'REPLY') ctx.fail(tok + 1, `bad --ctdir "${a}" (ORIGINAL or REPLY)`);
          m.dir = d as 'ORIGINAL' | 'REPLY';
          break;
        }
      }
    },
    finish(mm, _rule, seen, ctx) {
      if (seen.size === 0) ctx.fail(mm.tokenIndex, alias ? `state match needs --state` : `conntrack: at least one option is required`);
    },
    save(mm) {
      const m = mm as ConntrackMatch;
      let s = '';
      const inv = (b: boolean): string => (b ? ' !' : '');
      if (m.state) s += `${inv(m.state.invert)} --${m.stateAlias ? 'state' : 'ctstate'} ${saveNameList(m.state.mask, CT_STATE_NAMES, 'none')}`;
      if (m.ctproto) s += `${inv(m.ctproto.invert)} --ctproto ${m.ctproto.num}`;
      if (m.origSrc) s += `${inv(m.origSrc.invert)} --ctorigsrc ${saveAddrNumeric(m.origSrc)}`;
      if (m.origDst) s += `${inv(m.origDst.invert)} --ctorigdst ${saveAddrNumeric(m.origDst)}`;
      if (m.replSrc) s += `${inv(m.replSrc.invert)} --ctreplsrc ${saveAddrNumeric(m.replSrc)}`;
      if (m.replDst) s += `${inv(m.replDst.invert)} --ctrepldst ${saveAddrNumeric(m.replDst)}`;
      if (m.origSrcPort) s += `${inv(m.origSrcPort.invert)} --ctorigsrcport ${savePortRange(m.origSrcPort)}`;
      if (m.origDstPort) s += `${inv(m.origDstPort.invert)} --ctorigdstport ${savePortRange(m.origDstPort)}`;
      if (m.replSrcPort) s += `${inv(m.replSrcPort.invert)} --ctreplsrcport ${savePortRange(m.replSrcPort)}`;
      if (m.replDstPort) s += `${inv(m.replDstPort.invert)} --ctrepldstport ${savePortRange(m.replDstPort)}`;
      if (m.status) s += `${inv(m.status.invert)} --ctstatus ${saveNameList(m.status.mask, CT_STATUS_NAMES, 'NONE')}`;
      if (m.dir) s += ` --ctdir ${m.dir}`;
      return s;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// statistic (libxt_statistic.c, xt_statistic.c)

const statisticExt: MatchExtension = {
  name: 'statistic',
  opts: [
    { name: 'mode', args: 1 },
    { name: 'probability', args: 1, invert: true },
    { name: 'every', args: 1, invert: true },
    { name: 'packet', args: 1 },
  ],
  create: (written, tokenIndex): StatisticMatch => ({ kind: 'statistic', name: written, tokenIndex, mode: 'random', probability: 0, every: 0, packet: 0, invert: false }),
  option(mm, opt, args, invert, tok, ctx) {
    const m = mm as StatisticMatch;
    const a = args[0]!;
    if (invert) m.invert = true;
    switch (opt) {
      case 'mode':
        if (a !== 'random' && a !== 'nth') ctx.fail(tok + 1, `bad statistic mode "${a}" (random or nth)`);
        m.mode = a as 'random' | 'nth';
        break;
      case 'probability': {
        const p = /^[+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/.test(a) ? Number(a) : NaN;
        if (!(p >= 0 && p <= 1)) ctx.fail(tok + 1, `bad --probability "${a}" (must be 0-1)`);
        // libxt_statistic: lround(0x80000000 * p); the kernel compares (prandom_u32() & 0x7fffffff) < it.
        m.probability = Math.round(0x80000000 * p);
        break;
      }
      case 'every':
        m.every = uintOrFail(ctx, tok + 1, a, 1, 0xffffffff, '--every') - 1;
        break;
      case 'packet':
        m.packet = uintOrFail(ctx, tok + 1, a, 0, 0xffffffff, '--packet');
        break;
    }
  },
  finish(mm, _rule, seen, ctx) {
    const m = mm as StatisticMatch;
    if (!seen.has('mode')) ctx.fail(m.tokenIndex, `statistic needs --mode`);
    if (m.mode === 'random') {
      if (!seen.has('probability')) ctx.fail(m.tokenIndex, `--probability must be specified when using random mode`);
      if (seen.has('every') || seen.has('packet')) ctx.fail(m.tokenIndex, `--every/--packet cannot be used in random mode`);
    } else {
      if (!seen.has('every')) ctx.fail(m.tokenIndex, `--every must be specified when using nth mode`);
      if (seen.has('probability')) ctx.fail(m.tokenIndex, `--probability cannot be used in nth mode`);
      if (m.packet > m.every) ctx.fail(m.tokenIndex, `the --packet p must be 0 <= p <= n-1`);
    }
  },
  save(mm) {
    const m = mm as StatisticMatch;
    const inv = m.invert ? ' !' : '';
    if (m.mode === 'random') return ` --mode random${inv} --probability ${(m.probability / 0x80000000).toFixed(11)}`;
    return ` --mode nth${inv} --every ${m.every + 1} --packet ${m.packet}`;
  },
};

// ---------------------------------------------------------------------------------------------
// recent (libxt_recent.c v1, xt_recent.c)

const recentExt: MatchExtension = {
  name: 'recent',
  opts: [
    { name: 'set', args: 0, invert: true },
    { name: 'rcheck', args: 0, invert: true },
    { name: 'update', args: 0, invert: true },
    { name: 'remove', args: 0, invert: true },
    { name: 'seconds', args: 1 },
    { name: 'reap', args: 0 },
    { name: 'hitcount', args: 1 },
    { name: 'rttl', args: 0 },
    { name: 'name', args: 1 },
    { name: 'rsource', args: 0 },
    { name: 'rdest', args: 0 },
    { name: 'mask', args: 1 },
  ],
  create: (written, tokenIndex): RecentMatch => ({
    kind: 'recent',
    name: written,
    tokenIndex,
    op: 'set',
    invert: false,
    seconds: 0,
    reap: false,
    hitcount: 0,
    rttl: false,
    listName: 'DEFAULT',
    mask: 0xffffffff,
    side: 'src',
  }),
  option(mm, opt, args, invert, tok, ctx) {
    const m = mm as RecentMatch;
    switch (opt) {
      case 'set':
      case 'rcheck':
      case 'update':
      case 'remove':
        m.op = opt;
        if (invert) m.invert = true;
        break;
      case 'seconds':
        m.seconds = uintOrFail(ctx, tok + 1, args[0]!, 1, 0xffffffff, '--seconds');
        break;
      case 'reap':
        m.reap = true;
        break;
      case 'hitcount':
        // xt_recent: hit_count >= XT_RECENT_MAX_NSTAMPS (256) is rejected.
        m.hitcount = uintOrFail(ctx, tok + 1, args[0]!, 0, 255, '--hitcount');
        break;
      case 'rttl':
        m.rttl = true;
        break;
      case 'name': {
        const n = args[0]!;
        // xt_check_proc_name: 1..199 chars, no '/', not "." or "..".
        if (n.length === 0 || n.length >= 200 || n.includes('/') || n === '.' || n === '..') ctx.fail(tok + 1, `invalid recent list name "${n}"`);
        m.listName = n;
        break;
      }
      case 'rsource':
        m.side = 'src';
        break;
      case 'rdest':
        m.side = 'dst';
        break;
      case 'mask': {
        try {
          m.mask = parseIpv4(args[0]!);
        } catch {
          ctx.fail(tok + 1, `invalid --mask "${args[0]}"`);
        }
        break;
      }
    }
  },
  finish(mm, _rule, seen, ctx) {
    const m = mm as RecentMatch;
    const ops = ['set', 'rcheck', 'update', 'remove'].filter((o) => seen.has(o));
    if (ops.length === 0) ctx.fail(m.tokenIndex, `recent: you must specify one of --set, --rcheck, --update or --remove`);
    if (ops.length > 1) ctx.fail(m.tokenIndex, `recent: --${ops[0]} and --${ops[1]} cannot be used together`);
    if (seen.has('reap') && !seen.has('seconds')) ctx.fail(m.tokenIndex, `recent: --reap needs --seconds`);
    if (m.rttl && (m.op === 'set' || m.op === 'remove')) ctx.fail(m.tokenIndex, `recent: --rttl cannot be used with --${m.op}`);
    // recent_mt_check: --set/--remove take no --seconds, --hitcount, --reap, --rttl.
    if ((m.op === 'set' || m.op === 'remove') && (m.seconds || m.hitcount || m.reap)) {
      ctx.fail(m.tokenIndex, `recent: --${m.op} cannot be combined with --seconds, --hitcount or --reap (the kernel rejects it)`);
    }
  },
  save(mm) {
    const m = mm as RecentMatch;
    let s = m.invert ? ' !' : '';
    s += ` --${m.op}`;
    if (m.seconds) s += ` --seconds ${m.seconds}`;
    if (m.reap) s += ' --reap';
    if (m.hitcount) s += ` --hitcount ${m.hitcount}`;
    if (m.rttl) s += ' --rttl';
    s += ` --name ${m.listName}`;
    s += ` --mask ${ipv4ToString(m.mask)}`;
    s += m.side === 'src' ? ' --rsource' : ' --rdest';
    return s;
  },
};

// ---------------------------------------------------------------------------------------------
// mark (libxt_mark.c), comment, nfacct

const markExt: MatchExtension = {
  name: 'mark',
  opts: [{ name: 'mark', args: 1, invert: true }],
  create: (written, tokenIndex): MarkMatch => ({ kind: 'mark', name: written, tokenIndex, value: 0, mask: 0xffffffff, invert: false }),
  option(mm, _opt, args, invert, tok, ctx) {
    const m = mm as MarkMatch;
    const v = parseMarkMask(ctx, tok + 1, args[0]!);
    m.value = v.value;
    m.mask = v.mask;
    m.invert = invert;
  },
  finish(mm, _rule, seen, ctx) {
    if (!seen.has('mark')) ctx.fail(mm.tokenIndex, `mark match needs --mark`);
  },
  save(mm) {
    const m = mm as MarkMatch;
    return `${m.invert ? ' !' : ''} --mark ${hex(m.value)}${m.mask !== 0xffffffff ? `/${hex(m.mask)}` : ''}`;
  },
};

const commentExt: MatchExtension = {
  name: 'comment',
  opts: [{ name: 'comment', args: 1 }],
  create: (written, tokenIndex): CommentMatch => ({ kind: 'comment', name: written, tokenIndex, comment: '' }),
  option(mm, _opt, args, _invert, tok, ctx) {
    const m = mm as CommentMatch;
    // XT_MAX_COMMENT_LEN 256 including the NUL.
    if (Buffer.byteLength(args[0]!) > 255) ctx.fail(tok + 1, `comment too long (at most 255 bytes)`);
    m.comment = args[0]!;
  },
  finish(mm, _rule, seen, ctx) {
    if (!seen.has('comment')) ctx.fail(mm.tokenIndex, `comment match needs --comment`);
  },
  save: (mm) => ` --comment${saveString((mm as CommentMatch).comment)}`,
};

const nfacctExt: MatchExtension = {
  name: 'nfacct',
  opts: [{ name: 'nfacct-name', args: 1 }],
  create: (written, tokenIndex): NfacctMatch => ({ kind: 'nfacct', name: written, tokenIndex, acctName: '' }),
  option(mm, _opt, args) {
    (mm as NfacctMatch).acctName = args[0]!;
  },
  finish(mm, _rule, seen, ctx) {
    if (!seen.has('nfacct-name')) ctx.fail(mm.tokenIndex, `nfacct match needs --nfacct-name`);
  },
  save: (mm) => ` --nfacct-name${saveString((mm as NfacctMatch).acctName)}`,
};

// ---------------------------------------------------------------------------------------------
// addrtype (libxt_addrtype.c v1, xt_addrtype.c)

const ADDRTYPE_NAMES: readonly [string, number][] = [
  ['UNSPEC', ADDRTYPE_UNSPEC],
  ['UNICAST', ADDRTYPE_UNICAST],
  ['LOCAL', ADDRTYPE_LOCAL],
  ['BROADCAST', ADDRTYPE_BROADCAST],
  ['ANYCAST', ADDRTYPE_ANYCAST],
  ['MULTICAST', ADDRTYPE_MULTICAST],
  ['BLACKHOLE', ADDRTYPE_BLACKHOLE],
  ['UNREACHABLE', ADDRTYPE_UNREACHABLE],
  ['PROHIBIT', ADDRTYPE_PROHIBIT],
  ['THROW', ADDRTYPE_THROW],
  ['NAT', ADDRTYPE_NAT],
  ['XRESOLVE', ADDRTYPE_XRESOLVE],
];

const addrtypeExt: MatchExtension = {
  name: 'addrtype',
  opts: [
    { name: 'src-type', args: 1, invert: true },
    { name: 'dst-type', args: 1, invert: true },
    { name: 'limit-iface-in', args: 0 },
    { name: 'limit-iface-out', args: 0 },
  ],
  create: (written, tokenIndex): AddrtypeMatch => ({ kind: 'addrtype', name: written, tokenIndex, src: 0, dst: 0, invSrc: false, invDst: false, limitIn: false, limitOut: false }),
  option(mm, opt, args, invert, tok, ctx) {
    const m = mm as AddrtypeMatch;
    switch (opt) {
      case 'src-type':
        m.src = parseNameList(ctx, tok + 1, args[0]!, ADDRTYPE_NAMES, 'address type', false);
        m.invSrc = invert;
        break;
      case 'dst-type':
        m.dst = parseNameList(ctx, tok + 1, args[0]!, ADDRTYPE_NAMES, 'address type', false);
        m.invDst = invert;
        break;
      case 'limit-iface-in':
        m.limitIn = true;
        break;
      case 'limit-iface-out':
        m.limitOut = true;
        break;
    }
  },
  finish(mm, _rule, seen, ctx) {
    const m = mm as AddrtypeMatch;
    if (!seen.has('src-type') && !seen.has('dst-type')) ctx.fail(m.tokenIndex, `addrtype: you must specify --src-type or --dst-type`);
    if (m.limitIn && m.limitOut) ctx.fail(m.tokenIndex, `addrtype: you can't specify both --limit-iface-in and --limit-iface-out`);
  },
  save(mm) {
    const m = mm as AddrtypeMatch;
    let s = '';
    if (m.src) s += `${m.invSrc ? ' !' : ''} --src-type ${saveNameList(m.src, ADDRTYPE_NAMES, '')}`;
    if (m.dst) s += `${m.invDst ? ' !' : ''} --dst-type ${saveNameList(m.dst, ADDRTYPE_NAMES, '')}`;
    if (m.limitIn) s += ' --limit-iface-in';
    if (m.limitOut) s += ' --limit-iface-out';
    return s;
  },
};

// ---------------------------------------------------------------------------------------------
// set (libxt_set.c rev 4, xt_set.c)

const setExt: MatchExtension = {
  name: 'set',
  opts: [
    { name: 'match-set', aliases: ['set'], args: 2, invert: true },
    { name: 'return-nomatch', args: 0 },
    { name: 'update-counters', args: 0, invert: true },
    { name: 'update-subcounters', args: 0, invert: true },
    { name: 'packets-eq', args: 1, invert: true },
    { name: 'packets-lt', args: 1 },
    { name: 'packets-gt', args: 1 },
    { name: 'bytes-eq', args: 1, invert: true },
    { name: 'bytes-lt', args: 1 },
    { name: 'bytes-gt', args: 1 },
  ],
  create: (written, tokenIndex): SetMatch => ({ kind: 'set', name: written, tokenIndex, setName: '', dirs: [], invert: false }),
  option(mm, opt, args, invert, tok, ctx) {
    const m = mm as SetMatch;
    if (opt !== 'match-set') ctx.fail(tok, `set match option "--${opt}" is not supported by dpemu`);
    if (m.setName) ctx.fail(tok, `--match-set can only be given once per set match`);
    m.setName = args[0]!;
    if (m.setName.length === 0 || m.setName.length > 31) ctx.fail(tok + 1, `invalid set name "${m.setName}"`);
    const dirs = args[1]!.split(',');
    if (dirs.length > 6) ctx.fail(tok + 2, `can't be more src/dst options than 6`);
    for (const d of dirs) {
      if (d !== 'src' && d !== 'dst') ctx.fail(tok + 2, `you must specify (the comma separated list of) 'src' or 'dst', not "${args[1]}"`);
      m.dirs.push(d === 'src');
    }
    m.invert = invert;
  },
  finish(mm, _rule, seen, ctx) {
    if (!seen.has('match-set')) ctx.fail(mm.tokenIndex, `set match needs --match-set`);
  },
  save(mm) {
    const m = mm as SetMatch;
    return `${m.invert ? ' !' : ''} --match-set ${m.setName} ${m.dirs.map((d) => (d ? 'src' : 'dst')).join(',')}`;
  },
};

// ---------------------------------------------------------------------------------------------
// rpfilter (libxt_rpfilter.c, ipt_rpfilter.c)

const rpfilterExt: MatchExtension = {
  name: 'rpfilter',
  opts: [
    { name: 'loose', args: 0 },
    { name: 'validmark', args: 0 },
    { name: 'accept-local', args: 0 },
    { name: 'invert', args: 0 },
  ],
  create: (written, tokenIndex): RpfilterMatch => ({ kind: 'rpfilter', name: written, tokenIndex, loose: false, validmark: false, acceptLocal: false, invert: false }),
  option(mm, opt) {
    const m = mm as RpfilterMatch;
    if (opt === 'loose') m.loose = true;
    else if (opt === 'validmark') m.validmark = true;
    else if (opt === 'accept-local') m.acceptLocal = true;
    else m.invert = true;
  },
  finish() {},
  save(mm) {
    const m = mm as RpfilterMatch;
    return `${m.loose ? ' --loose' : ''}${m.validmark ? ' --validmark' : ''}${m.acceptLocal ? ' --accept-local' : ''}${m.invert ? ' --invert' : ''}`;
  },
};

export const MATCH_EXTENSIONS: ReadonlyMap<string, MatchExtension> = new Map<string, MatchExtension>([
  ['tcp', tcpUdpExt('tcp')],
  ['udp', tcpUdpExt('udp')],
  ['icmp', icmpExt],
  ['multiport', multiportExt],
  ['conntrack', conntrackExt(false)],
  ['state', conntrackExt(true)],
  ['statistic', statisticExt],
  ['recent', recentExt],
  ['mark', markExt],
  ['comment', commentExt],
  ['addrtype', addrtypeExt],
  ['set', setExt],
  ['rpfilter', rpfilterExt],
  ['nfacct', nfacctExt],
]);

/** Real iptables matches dpemu knows by name but does not emulate. */
export const UNSUPPORTED_MATCHES: ReadonlySet<string> = new Set([
  'physdev', 'limit', 'hashlimit', 'connlimit', 'connmark', 'connbytes', 'connlabel', 'owner', 'pkttype', 'length', 'ttl', 'tos',
  'dscp', 'ecn', 'iprange', 'mac', 'string', 'u32', 'bpf', 'cgroup', 'socket', 'policy', 'helper', 'time', 'quota', 'sctp', 'dccp',
  'esp', 'ah', 'udplite', 'realm', 'devgroup', 'cpu', 'cluster', 'osf', 'ipvs', 'l2tp', 'ipcomp', 'rateest', 'tcpmss', 'hl',
  'frag', 'icmp6', 'ipv6header', 'mh', 'rt', 'hbh', 'dst', 'srh', 'nfacct_', 'geoip', 'account', 'condition', 'fuzzy', 'lscan',
  'psd', 'quota2', 'dhcpmac', 'iface', 'ipp2p', 'ipv4options', 'pknock',
]);

// ---------------------------------------------------------------------------------------------
// Targets

function simpleTarget(kind: 'ACCEPT' | 'DROP' | 'RETURN'): TargetExtension {
  return {
    name: kind,
    opts: [],
    create: (written, tokenIndex): Target => ({ kind, name: written, tokenIndex }),
    option() {},
    finish() {},
    save: () => '',
  };
}

const REJECT_NAMES: readonly [string, string, number][] = [
  ['icmp-net-unreachable', 'net-unreach', REJECT_ICMP_NET_UNREACHABLE],
  ['icmp-host-unreachable', 'host-unreach', REJECT_ICMP_HOST_UNREACHABLE],
  ['icmp-proto-unreachable', 'proto-unreach', REJECT_ICMP_PROT_UNREACHABLE],
  ['icmp-port-unreachable', 'port-unreach', REJECT_ICMP_PORT_UNREACHABLE],
  ['icmp-net-prohibited', 'net-prohib', REJECT_ICMP_NET_PROHIBITED],
  ['icmp-host-prohibited', 'host-prohib', REJECT_ICMP_HOST_PROHIBITED],
  ['tcp-reset', 'tcp-rst', REJECT_TCP_RESET],
  ['icmp-admin-prohibited', 'admin-prohib', REJECT_ICMP_ADMIN_PROHIBITED],
];

/** Name iptables-save prints for a REJECT_* kind. */
export function rejectName(w: number): string {
  return REJECT_NAMES.find((e) => e[2] === w)?.[0] ?? `${w}`;
}

const rejectExt: TargetExtension = {
  name: 'REJECT',
  opts: [{ name: 'reject-with', args: 1 }],
  create: (written, tokenIndex): RejectTarget => ({ kind: 'REJECT', name: written, tokenIndex, with: REJECT_ICMP_PORT_UNREACHABLE }),
  option(tt, _opt, args, _invert, tok, ctx) {
    const t = tt as RejectTarget;
    const a = args[0]!;
    const e = REJECT_NAMES.find((x) => x[0] === a || x[1] === a);
    if (e === undefined) {
      if (a === 'echo-reply' || a === 'echoreply') ctx.fail(tok + 1, `REJECT --reject-with echo-reply is no longer supported`);
      return ctx.fail(tok + 1, `unknown REJECT type "${a}"`);
    }
    t.with = e[2];
  },
  finish(tt, rule, _seen, ctx) {
    const t = tt as RejectTarget;
    // reject_tg_check: TCP RST needs -p tcp (not inverted).
    if (t.with === REJECT_TCP_RESET && (rule.proto === null || rule.proto.num !== 6 || rule.proto.invert)) {
      ctx.fail(t.tokenIndex, `REJECT --reject-with tcp-reset is only valid with "-p tcp" (kernel: TCP_RESET invalid for non-tcp)`);
    }
  },
  save: (tt) => ` --reject-with ${rejectName((tt as RejectTarget).with)}`,
};

/** Protocols for which a NAT port range may be given (libxt_DNAT / libipt_SNAT portok). */
function natPortOk(rule: Rule): boolean {
  return rule.proto !== null && [6, 17, 132, 33, 1].includes(rule.proto.num) && !rule.proto.invert;
}

function parseNatPorts(t: NatTarget, s: string, tok: number, ctx: ExtCtx): void {
  const dash = s.indexOf('-');
  const a = dash < 0 ? s : s.slice(0, dash);
  if (s.includes(':')) ctx.fail(tok, `invalid port:port syntax in "${s}" - use dash`);
  const lo = parsePortOrFail(ctx, tok, a);
  const hi = dash < 0 ? lo : parsePortOrFail(ctx, tok, s.slice(dash + 1));
  if (hi < lo) ctx.fail(tok, `port range "${s}" funky (min > max)`);
  if (s.slice(dash + 1).includes('/')) ctx.fail(tok, `shifted port ranges ("${s}") are not supported`);
  t.minPort = lo;
  t.maxPort = hi;
  t.flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
}

/** "[ip[-ip]][:port[-port]]" (libxt_DNAT parse_to / libipt_SNAT parse_to). */
function parseNatTo(t: NatTarget, s: string, tok: number, ctx: ExtCtx): void {
  const colon = s.indexOf(':');
  if (colon >= 0) {
    parseNatPorts(t, s.slice(colon + 1), tok, ctx);
    if (colon === 0) return;
  }
  const ips = colon >= 0 ? s.slice(0, colon) : s;
  const dash = ips.indexOf('-');
  try {
    t.minIp = parseIpv4(dash < 0 ? ips : ips.slice(0, dash));
    t.maxIp = dash < 0 ? t.minIp : parseIpv4(ips.slice(dash + 1));
  } catch {
    ctx.fail(tok, `bad IP address in "${s}"`);
  }
  if (t.maxIp < t.minIp) ctx.fail(tok, `bad IP range "${ips}" (min > max)`);
  t.flags |= NF_NAT_RANGE_MAP_IPS;
}

function saveNatRange(t: NatTarget): string {
  let s = '';
  if (t.flags & NF_NAT_RANGE_MAP_IPS) {
    s += ipv4ToString(t.minIp);
    if (t.maxIp !== t.minIp) s += `-${ipv4ToString(t.maxIp)}`;
  }
  if (t.flags & NF_NAT_RANGE_PROTO_SPECIFIED) {
    s += `:${t.minPort}`;
    if (t.maxPort !== t.minPort) s += `-${t.maxPort}`;
  }
  return s;
}

function natExt(kind: NatTarget['kind']): TargetExtension {
  const opts: OptSpec[] =
    kind === 'DNAT'
      ? [{ name: 'to-destination', args: 1 }, { name: 'random', args: 0 }, { name: 'persistent', args: 0 }]
      : kind === 'SNAT'
        ? [{ name: 'to-source', args: 1 }, { name: 'random', args: 0 }, { name: 'random-fully', args: 0 }, { name: 'persistent', args: 0 }]
        : kind === 'MASQUERADE'
          ? [{ name: 'to-ports', args: 1 }, { name: 'random', args: 0 }, { name: 'random-fully', args: 0 }]
          : [{ name: 'to-ports', args: 1 }, { name: 'random', args: 0 }];
  return {
    name: kind,
    opts,
    create: (written, tokenIndex): NatTarget => ({ kind, name: written, tokenIndex, flags: 0, minIp: 0, maxIp: 0, minPort: 0, maxPort: 0 }),
    option(tt, opt, args, _invert, tok, ctx) {
      const t = tt as NatTarget;
      switch (opt) {
        case 'to-destination':
        case 'to-source':
          parseNatTo(t, args[0]!, tok + 1, ctx);
          break;
        case 'to-ports':
          parseNatPorts(t, args[0]!, tok + 1, ctx);
          break;
        case 'random':
          t.flags |= NF_NAT_RANGE_PROTO_RANDOM;
          break;
        case 'random-fully':
          t.flags |= NF_NAT_RANGE_PROTO_RANDOM_FULLY;
          break;
        case 'persistent':
          t.flags |= NF_NAT_RANGE_PERSISTENT;
          break;
      }
    },
    finish(tt, rule, seen, ctx) {
      const t = tt as NatTarget;
      if (kind === 'DNAT' && !seen.has('to-destination')) ctx.fail(t.tokenIndex, `DNAT needs --to-destination`);
      if (kind === 'SNAT' && !seen.has('to-source')) ctx.fail(t.tokenIndex, `SNAT needs --to-source`);
      if (t.flags & NF_NAT_RANGE_PROTO_SPECIFIED && !natPortOk(rule)) {
        ctx.fail(t.tokenIndex, `${kind}: need TCP, UDP, SCTP or DCCP with port specification (-p)`);
      }
    },
    save(tt) {
      const t = tt as NatTarget;
      let s = '';
      if (kind === 'DNAT') {
        const r = saveNatRange(t);
        if (r) s += ` --to-destination ${r}`;
        if (t.flags & NF_NAT_RANGE_PROTO_RANDOM) s += ' --random';
        if (t.flags & NF_NAT_RANGE_PERSISTENT) s += ' --persistent';
      } else if (kind === 'SNAT') {
        s += ` --to-source ${saveNatRange(t)}`;
        if (t.flags & NF_NAT_RANGE_PROTO_RANDOM) s += ' --random';
        if (t.flags & NF_NAT_RANGE_PROTO_RANDOM_FULLY) s += ' --random-fully';
        if (t.flags & NF_NAT_RANGE_PERSISTENT) s += ' --persistent';
      } else {
        if (t.flags & NF_NAT_RANGE_PROTO_SPECIFIED) s += ` --to-ports ${t.minPort}${t.maxPort !== t.minPort ? `-${t.maxPort}` : ''}`;
        if (t.flags & NF_NAT_RANGE_PROTO_RANDOM) s += ' --random';
        if (t.flags & NF_NAT_RANGE_PROTO_RANDOM_FULLY) s += ' --random-fully';
      }
      return s;
    },
  };
}

const netmapExt: TargetExtension = {
  name: 'NETMAP',
  opts: [{ name: 'to', args: 1 }],
  create: (written, tokenIndex): NetmapTarget => ({ kind: 'NETMAP', name: written, tokenIndex, net: 0, mask: 0xffffffff }),
  option(tt, _opt, args, _invert, tok, ctx) {
    const t = tt as NetmapTarget;
    const a = parseAddrOrFail(ctx, tok + 1, args[0]!, false);
    t.net = a.net;
    t.mask = a.mask;
  },
  finish(tt, _rule, seen, ctx) {
    if (!seen.has('to')) ctx.fail(tt.tokenIndex, `NETMAP needs --to`);
  },
  save(tt) {
    const t = tt as NetmapTarget;
    const p = maskToPrefix(t.mask);
    return ` --to ${ipv4ToString(t.net)}/${p >= 0 ? p : ipv4ToString(t.mask)}`;
  },
};

const markTargetExt: TargetExtension = {
  name: 'MARK',
  opts: [
    { name: 'set-xmark', args: 1 },
    { name: 'set-mark', args: 1 },
    { name: 'and-mark', args: 1 },
    { name: 'or-mark', args: 1 },
    { name: 'xor-mark', args: 1 },
  ],
  create: (written, tokenIndex): MarkTarget => ({ kind: 'MARK', name: written, tokenIndex, value: 0, mask: 0 }),
  option(tt, opt, args, _invert, tok, ctx) {
    const t = tt as MarkTarget;
    const a = args[0]!;
    // mark_tg_parse (libxt_MARK.c, revision 2) → xt_mark_tginfo2.
    switch (opt) {
      case 'set-xmark': {
        const v = parseMarkMask(ctx, tok + 1, a);
        t.value = v.value;
        t.mask = v.mask;
        break;
      }
      case 'set-mark': {
        const v = parseMarkMask(ctx, tok + 1, a);
        t.value = v.value;
        t.mask = (v.value | v.mask) >>> 0;
        break;
      }
      case 'and-mark':
        t.value = 0;
        t.mask = ~uintOrFail(ctx, tok + 1, a, 0, 0xffffffff, 'mark') >>> 0;
        break;
      case 'or-mark':
        t.value = t.mask = uintOrFail(ctx, tok + 1, a, 0, 0xffffffff, 'mark');
        break;
      case 'xor-mark':
        t.value = uintOrFail(ctx, tok + 1, a, 0, 0xffffffff, 'mark');
        t.mask = 0;
        break;
    }
  },
  finish(tt, _rule, seen, ctx) {
    if (seen.size === 0) ctx.fail(tt.tokenIndex, `MARK: one of the --set-xmark, --{and,or,xor,set}-mark options is required`);
    if (seen.size > 1) ctx.fail(tt.tokenIndex, `MARK: only one of --set-xmark, --{and,or,xor,set}-mark may be given`);
  },
  save(tt) {
    const t = tt as MarkTarget;
    return ` --set-xmark ${hex(t.value)}/${hex(t.mask)}`;
  },
};

function ctExt(name: 'CT' | 'NOTRACK'): TargetExtension {
  return {
    name,
    opts:
      name === 'CT'
        ? [
            { name: 'notrack', args: 0 },
            { name: 'helper', args: 1 },
            { name: 'ctevents', args: 1 },
            { name: 'expevents', args: 1 },
            { name: 'zone', args: 1 },
            { name: 'zone-orig', args: 1 },
            { name: 'zone-reply', args: 1 },
            { name: 'timeout', args: 1 },
          ]
        : [],
    create: (written, tokenIndex): CtTarget => ({ kind: 'CT', name: written, tokenIndex }),
    option(tt, opt, _args, _invert, tok, ctx) {
      if (opt !== 'notrack') ctx.fail(tok, `CT --${opt} is not supported by dpemu (only --notrack)`);
    },
    finish(tt, _rule, seen, ctx) {
      if (name === 'CT' && !seen.has('notrack')) ctx.fail(tt.tokenIndex, `CT without --notrack is not supported by dpemu`);
    },
    save: () => (name === 'CT' ? ' --notrack' : ''),
  };
}

const LOG_LEVELS: readonly [string, number][] = [
  ['alert', 1],
  ['crit', 2],
  ['debug', 7],
  ['emerg', 0],
  ['error', 3],
  ['info', 6],
  ['notice', 5],
  ['panic', 0],
  ['warning', 4],
  ['warn', 4],
  ['err', 3],
];

const LOG_FLAG_OPTS: readonly [string, number][] = [
  ['log-tcp-sequence', 0x01],
  ['log-tcp-options', 0x02],
  ['log-ip-options', 0x04],
  ['log-uid', 0x08],
  ['log-macdecode', 0x20],
];

const logExt: TargetExtension = {
  name: 'LOG',
  opts: [{ name: 'log-level', args: 1 }, { name: 'log-prefix', args: 1 }, ...LOG_FLAG_OPTS.map(([n]) => ({ name: n, args: 0 }))],
  create: (written, tokenIndex): LogTarget => ({ kind: 'LOG', name: written, tokenIndex, prefix: '', level: 4, logFlags: 0 }),
  option(tt, opt, args, _invert, tok, ctx) {
    const t = tt as LogTarget;
    if (opt === 'log-level') {
      const a = args[0]!;
      const n = parseUint(a, 0, 7);
      const named = LOG_LEVELS.find(([k]) => k === a.toLowerCase());
      if (n === null && named === undefined) ctx.fail(tok + 1, `invalid --log-level "${a}"`);
      t.level = n ?? named![1];
    } else if (opt === 'log-prefix') {
      const a = args[0]!;
      if (Buffer.byteLength(a) > 29) ctx.fail(tok + 1, `maximum prefix length 29 for --log-prefix`);
      if (a.includes('\n')) ctx.fail(tok + 1, `no newlines allowed in --log-prefix`);
      t.prefix = a;
    } else {
      t.logFlags |= LOG_FLAG_OPTS.find(([n]) => n === opt)![1];
    }
  },
  finish() {},
  save(tt) {
    const t = tt as LogTarget;
    let s = '';
    if (t.prefix !== '') s += ` --log-prefix${saveString(t.prefix)}`;
    if (t.level !== 4) s += ` --log-level ${t.level}`;
    for (const [n, b] of LOG_FLAG_OPTS) if (t.logFlags & b) s += ` --${n}`;
    return s;
  },
};

const nflogExt: TargetExtension = {
  name: 'NFLOG',
  opts: [
    { name: 'nflog-group', args: 1 },
    { name: 'nflog-prefix', args: 1 },
    { name: 'nflog-range', args: 1 },
    { name: 'nflog-size', args: 1 },
    { name: 'nflog-threshold', args: 1 },
  ],
  create: (written, tokenIndex): NflogTarget => ({ kind: 'NFLOG', name: written, tokenIndex, group: 0, prefix: '', len: 0, copyLen: false, threshold: 1 }),
  option(tt, opt, args, _invert, tok, ctx) {
    const t = tt as NflogTarget;
    const a = args[0]!;
    switch (opt) {
      case 'nflog-group':
        t.group = uintOrFail(ctx, tok + 1, a, 0, 65535, '--nflog-group');
        break;
      case 'nflog-prefix':
        if (Buffer.byteLength(a) > 63) ctx.fail(tok + 1, `maximum prefix length 63 for --nflog-prefix`);
        t.prefix = a;
        break;
      case 'nflog-range':
        t.len = uintOrFail(ctx, tok + 1, a, 0, 0xffffffff, '--nflog-range');
        break;
      case 'nflog-size':
        t.len = uintOrFail(ctx, tok + 1, a, 0, 0xffffffff, '--nflog-size');
        t.copyLen = true;
        break;
      case 'nflog-threshold':
        t.threshold = uintOrFail(ctx, tok + 1, a, 1, 65535, '--nflog-threshold');
        break;
    }
  },
  finish(tt, _rule, seen, ctx) {
    if (seen.has('nflog-range') && seen.has('nflog-size')) ctx.fail(tt.tokenIndex, `NFLOG: --nflog-range and --nflog-size are mutually exclusive`);
  },
  save(tt) {
    const t = tt as NflogTarget;
    let s = '';
    if (t.prefix !== '') s += ` --nflog-prefix${saveString(t.prefix)}`;
    if (t.group) s += ` --nflog-group ${t.group}`;
    if (t.copyLen) s += ` --nflog-size ${t.len}`;
    else if (t.len) s += ` --nflog-range ${t.len}`;
    if (t.threshold !== 1) s += ` --nflog-threshold ${t.threshold}`;
    return s;
  },
};

const traceExt: TargetExtension = {
  name: 'TRACE',
  opts: [],
  create: (written, tokenIndex): TraceTarget => ({ kind: 'TRACE', name: written, tokenIndex }),
  option() {},
  finish() {},
  save: () => '',
};

export const TARGET_EXTENSIONS: ReadonlyMap<string, TargetExtension> = new Map<string, TargetExtension>([
  ['ACCEPT', simpleTarget('ACCEPT')],
  ['DROP', simpleTarget('DROP')],
  ['RETURN', simpleTarget('RETURN')],
  ['REJECT', rejectExt],
  ['DNAT', natExt('DNAT')],
  ['SNAT', natExt('SNAT')],
  ['MASQUERADE', natExt('MASQUERADE')],
  ['REDIRECT', natExt('REDIRECT')],
  ['NETMAP', netmapExt],
  ['MARK', markTargetExt],
  ['CT', ctExt('CT')],
  ['NOTRACK', ctExt('NOTRACK')],
  ['LOG', logExt],
  ['NFLOG', nflogExt],
  ['TRACE', traceExt],
]);

/** Real iptables targets dpemu knows by name but does not emulate. */
export const UNSUPPORTED_TARGETS: ReadonlySet<string> = new Set([
  'CONNMARK', 'QUEUE', 'NFQUEUE', 'TCPMSS', 'TOS', 'DSCP', 'ECN', 'TTL', 'HL', 'CLASSIFY', 'CONNSECMARK', 'SECMARK', 'SET',
  'CHECKSUM', 'AUDIT', 'CLUSTERIP', 'TEE', 'TPROXY', 'IDLETIMER', 'LED', 'RATEEST', 'SYNPROXY', 'ULOG', 'MIRROR', 'SAME',
  'TCPOPTSTRIP', 'HMARK', 'CONNLABEL', 'JOOL', 'FULLCONENAT',
]);
