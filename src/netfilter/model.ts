/**
 * The parsed form of an `iptables-save` file: tables → chains → rules, each rule with its
 * IP-header part (-s/-d/-i/-o/-p/-f), its matches and its target with their options, as
 * iptables' own extensions parse them (values as the kernel receives them: addresses masked,
 * statistic probability as a 31-bit fraction, MARK as xt_mark_tginfo2 mask/value ...).
 *
 * Produced by src/netfilter/iptables-save.ts (parseIptablesSave), compiled by
 * src/netfilter/ruleset.ts, printed back by formatIptablesSave. Addresses are unsigned 32-bit
 * numbers in host order.
 */

export const TABLE_BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
};

/** `-s`/`-d` and address options: (ip & mask) == net, `!` inverts. */
export interface AddrSpec {
  net: number;
  mask: number;
  invert: boolean;
}

/** `-i`/`-o`: the name as written (a trailing '+' is a prefix wildcard). */
export interface IfaceSpec {
  name: string;
  invert: boolean;
}

/** `-p`: protocol number (0 = all) and the spelling to print back. */
export interface ProtoSpec {
  num: number;
  text: string;
  invert: boolean;
}

/** An inclusive port range (a single port has lo == hi). */
export interface PortRange {
  lo: number;
  hi: number;
  invert: boolean;
}

interface MatchBase {
  /** Extension name as written after -m (e.g. "state" for the conntrack alias), or the implied protocol match. */
  name: string;
  /** Index of the `-m` token in the rule's line as tokenized (or of the option that loaded an implicit match). */
  tokenIndex: number;
}

export interface TcpUdpMatch extends MatchBase {
  kind: 'tcp' | 'udp';
  sport: PortRange | null;
  dport: PortRange | null;
  /** tcp only: --tcp-flags MASK COMP / --syn. */
  tcpFlags: { mask: number; cmp: number; invert: boolean } | null;
  /** tcp only: --tcp-option N. */
  tcpOption: { num: number; invert: boolean } | null;
}

export interface IcmpMatch extends MatchBase {
  kind: 'icmp';
  /** 0xff = any. */
  type: number;
  codeMin: number;
  codeMax: number;
  invert: boolean;
}

export interface MultiportMatch extends MatchBase {
  kind: 'multiport';
  mode: 'src' | 'dst' | 'any';
  /** [lo, hi] pairs; a single port has lo == hi. */
  ranges: [number, number][];
  invert: boolean;
}

export interface ConntrackMatch extends MatchBase {
  kind: 'conntrack';
  /** Written as `-m state --state`. */
  stateAlias: boolean;
  /** CT_* bits. */
  state: { mask: number; invert: boolean } | null;
  ctproto: { num: number; invert: boolean } | null;
  origSrc: AddrSpec | null;
  origDst: AddrSpec | null;
  replSrc: AddrSpec | null;
  replDst: AddrSpec | null;
  origSrcPort: PortRange | null;
  origDstPort: PortRange | null;
  replSrcPort: PortRange | null;
  replDstPort: PortRange | null;
  /** IPS_* bits. */
  status: { mask: number; invert: boolean } | null;
  dir: 'ORIGINAL' | 'REPLY' | null;
}

export interface StatisticMatch extends MatchBase {
  kind: 'statistic';
  mode: 'random' | 'nth';
  /** random: lround(p * 2^31), compared with (prandom_u32() & 0x7fffffff) as xt_statistic does. */
  probability: number;
  /** nth: userspace stores --every N as N-1 (libxt_statistic). */
  every: number;
  packet: number;
  invert: boolean;
}

export interface RecentMatch extends MatchBase {
  kind: 'recent';
  op: 'set' | 'rcheck' | 'update' | 'remove';
  invert: boolean;
  seconds: number;
  reap: boolean;
  hitcount: number;
  rttl: boolean;
  listName: string;
  mask: number;
  side: 'src' | 'dst';
}

export interface MarkMatch extends MatchBase {
  kind: 'mark';
  value: number;
  mask: number;
  invert: boolean;
}

export interface CommentMatch extends MatchBase {
  kind: 'comment';
  comment: string;
}

export interface AddrtypeMatch extends MatchBase {
  kind: 'addrtype';
  /** ADDRTYPE_* masks (0 = not given). */
  src: number;
  dst: number;
  invSrc: boolean;
  invDst: boolean;
  limitIn: boolean;
  limitOut: boolean;
}

export interface SetMatch extends MatchBase {
  kind: 'set';
  setName: string;
  /** Per dimension: true = src, false = dst. */
  dirs: boolean[];
  invert: boolean;
}

export interface RpfilterMatch extends MatchBase {
  kind: 'rpfilter';
  loose: boolean;
  validmark: boolean;
  acceptLocal: boolean;
  invert: boolean;
}

export interface NfacctMatch extends MatchBase {
  kind: 'nfacct';
  acctName: string;
}

export type Match =
  | TcpUdpMatch
  | IcmpMatch
  | MultiportMatch
  | ConntrackMatch
  | StatisticMatch
  | RecentMatch
  | MarkMatch
  | CommentMatch
  | AddrtypeMatch
  | SetMatch
  | RpfilterMatch
  | NfacctMatch;

interface TargetBase {
  /** Target name as written after -j/-g. */
  name: string;
  /** Index of the -j/-g token in the rule's line as tokenized. */
  tokenIndex: number;
}

export interface StandardTarget extends TargetBase {
  kind: 'ACCEPT' | 'DROP' | 'RETURN';
}

export interface ChainTarget extends TargetBase {
  kind: 'chain';
  chain: string;
}

export interface RejectTarget extends TargetBase {
  kind: 'REJECT';
  /** REJECT_* of skb.ts. */
  with: number;
}

export interface NatTarget extends TargetBase {
  kind: 'DNAT' | 'SNAT' | 'MASQUERADE' | 'REDIRECT';
  /** NF_NAT_RANGE_* flags. */
  flags: number;
  minIp: number;
  maxIp: number;
  minPort: number;
  maxPort: number;
}

export interface NetmapTarget extends TargetBase {
  kind: 'NETMAP';
  net: number;
  mask: number;
}

export interface MarkTarget extends TargetBase {
  kind: 'MARK';
  /** xt_mark_tginfo2: mark = (mark & ~mask) ^ value. */
  value: number;
  mask: number;
}

export interface CtTarget extends TargetBase {
  /** `-j CT --notrack` or `-j NOTRACK` (name tells which). */
  kind: 'CT';
}

export interface LogTarget extends TargetBase {
  kind: 'LOG';
  prefix: string;
  level: number;
  /** XT_LOG_* flags. */
  logFlags: number;
}

export interface NflogTarget extends TargetBase {
  kind: 'NFLOG';
  group: number;
  prefix: string;
  len: number;
  /** --nflog-size (XT_NFLOG_F_COPY_LEN) rather than --nflog-range. */
  copyLen: boolean;
  threshold: number;
}

export interface TraceTarget extends TargetBase {
  kind: 'TRACE';
}

export type Target =
  | StandardTarget
  | ChainTarget
  | RejectTarget
  | NatTarget
  | NetmapTarget
  | MarkTarget
  | CtTarget
  | LogTarget
  | NflogTarget
  | TraceTarget;

export interface Rule {
  table: string;
  chain: string;
  /** 1-based position in its chain. */
  num: number;
  /** 1-based line in the file. */
  line: number;
  src: AddrSpec | null;
  dst: AddrSpec | null;
  inIface: IfaceSpec | null;
  outIface: IfaceSpec | null;
  proto: ProtoSpec | null;
  /** -f: matches non-first fragments (`! -f`: first fragments and unfragmented packets). */
  fragment: { invert: boolean } | null;
  matches: Match[];
  /** null: no -j (the rule only counts). */
  target: Target | null;
  /** -g rather than -j. */
  goto: boolean;
}

export interface Chain {
  name: string;
  builtin: boolean;
  /** Built-in chains: ACCEPT or DROP; user chains: null. */
  policy: 'ACCEPT' | 'DROP' | null;
  /** Line of the `:CHAIN` declaration (0 for a built-in chain used without one). */
  line: number;
  rules: Rule[];
}

export interface Table {
  name: string;
  line: number;
  chains: Chain[];
  chainByName: Map<string, Chain>;
}

export interface RulesetModel {
  file: string;
  tables: Table[];
}
