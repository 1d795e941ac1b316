/**
 * The rule evaluator: a RulesetModel (parsed iptables-save) compiled into flat typed arrays and
 * run per packet with the kernel's semantics (ipt_do_table in net/ipv4/netfilter/ip_tables.c):
 * first match wins; built-in chain policies; `-j CHAIN` pushes a return point, `-g CHAIN` does
 * not (RETURN from a goto'd chain returns to the caller of the chain that did the goto); RETURN
 * in a built-in chain, or falling off a goto'd chain at the bottom of the stack, applies the
 * built-in chain's policy; falling off a user chain returns; a match that "hotdrops" (a TCP
 * fragment at offset 8, as tcp_mt) drops the packet.
 *
 * Speed. Each rule is a run of opcodes with arguments in one Int32Array, interpreted by a
 * single switch (no closures, nothing allocated per packet); a rule's first IP-header test
 * (source, destination or protocol) is done inline before the interpreter is called, and a rule
 * with nothing else to test is never passed to it. iptables is linear; dpemu is not: a chain of
 * 8 or more rules is indexed by up to three "dimensions" (exact /32 destination or source,
 * (protocol, destination port), input or output interface) chosen per chain by how many rules
 * they take out of the linear list. A packet visits only the candidate rules of its keys,
 * merged in rule order with the rules no index holds, so first-match semantics are unchanged.
 * A rule is only indexed on a predicate that the kernel evaluates before any match with side
 * effects (statistic counters and random draws, recent lists), and non-first fragments use the
 * full list of the port dimension (tcp_mt's hotdrop), so the set of evaluated side effects is
 * exactly the kernel's. Smaller chains are walked rule by rule.
 *
 * NAT ranges say `how` the decision was reached: the last `statistic` (nth / random) or
 * `recent --rcheck/--update` evaluated on the path to the NAT target, matched or not (the last
 * endpoint of a kube-proxy service is chosen by the random draws that failed for the others).
 *
 * A Ruleset holds per-rule state (statistic counters, recent lists) and is not re-entrant: one
 * instance per emulated node, used by one thread in packet order.
 *
 * Tracing (skb.trace non-null) runs the linear evaluator and records every chain, rule
 * (match / no match), target, return and policy, with line numbers and comments.
 */
import { RulesetError } from './errors.js';
import { IntMap } from './inthash.js';
import { IpsetRegistry, type Ipset } from './ipset.js';
import { formatIptablesSave, formatRuleBody, HOOK_OF_CHAIN, parseIptablesSave } from './iptables-save.js';
import { rejectName, TARGET_EXTENSIONS } from './extensions.js';
import type { Chain, Match, Rule, RulesetModel, Target } from './model.js';
import { RECENT_CHECK, RECENT_REMOVE, RECENT_SET, RECENT_UPDATE, RecentTable } from './recent.js';
import {
  CT_DNAT,
  CT_INVALID,
  CT_SNAT,
  CT_UNTRACKED,
  HOOK_OUTPUT,
  HOOK_PREROUTING,
  IPS_DST_NAT,
  IPS_SRC_NAT,
  NAT_MANIP_DST,
  NAT_MANIP_SRC,
  NAT_RANGE_MASQUERADE,
  NAT_RANGE_NETMAP,
  NatRange,
  NF_NAT_RANGE_MAP_IPS,
  TABLE_NAMES,
  VERDICT_ACCEPT,
  VERDICT_DROP,
  VERDICT_REJECT,
  type Skb,
} from './skb.js';
import { RPF_ACCEPT_LOCAL, RPF_LOOSE, RPF_VALID_MARK, type ConntrackView, type NetfilterEnv } from './env.js';
import type { Prng } from '../util/prng.js';
import { ipv4ToString } from '../packet/addr.js';

export { RulesetError } from './errors.js';

export interface RulesetOptions {
  /** File name for error messages. */
  file?: string;
  /** Line of the file where the text starts (rules inlined in a larger file); default 1. */
  firstLine?: number;
  ipsets?: IpsetRegistry;
  env: NetfilterEnv;
  ct: ConntrackView;
  prng: Prng;
  /** Index chains (default true); false evaluates every chain linearly, like the kernel. */
  index?: boolean;
  /** Maximum jump/goto nesting (default 16, nf_tables' NFT_JUMP_STACK_SIZE). */
  maxChainDepth?: number;
  /** Addresses per `recent` list (xt_recent ip_list_tot, default 100). */
  recentListSize?: number;
}

export interface RulesetTextOptions extends RulesetOptions {
  /** `ipset save` text for the sets `-m set` refers to. */
  ipsetSave?: string;
  ipsetFile?: string;
  ipsetFirstLine?: number;
}

// ---- opcodes (each followed by its arguments in `code`) ----
const OP_END = 0;
const OP_SRC = 1; // mask net inv
const OP_DST = 2; // mask net inv
const OP_IN = 3; // base inv
const OP_OUT = 4; // base inv
const OP_PROTO = 5; // proto inv
const OP_FRAG = 6; // inv
const OP_TCP_L4 = 7; // (tcp_mt: fragment → no match, offset 8 → hotdrop)
const OP_L4 = 8; // (udp/icmp/multiport: fragment → no match)
const OP_SPORT = 9; // lo hi inv
const OP_DPORT = 10; // lo hi inv
const OP_TCPFLAGS = 11; // mask cmp inv
const OP_TCPOPT = 12; // option inv
const OP_ICMP = 13; // type codeMin codeMax inv
const OP_MPORT = 14; // mode inv n lo0 hi0 ...
const OP_CTSTATE = 15; // mask inv
const OP_CTNULL = 16; // hasState skip
const OP_CTPROTO = 17; // proto inv
const OP_CTADDR = 18; // which mask net inv
const OP_CTPORT = 19; // which lo hi inv
const OP_CTSTATUS = 20; // mask inv
const OP_CTDIR = 21; // wantOriginal
const OP_MARK = 22; // mask value inv
const OP_NTH = 23; // slot every inv
const OP_RANDOM = 24; // probability-1 inv
const OP_RECENT = 25; // index
const OP_ADDRTYPE = 26; // srcMask dstMask flags
const OP_SET = 27; // setIndex dirs dim inv
const OP_RPFILTER = 28; // flags inv

// First-test operands of the fast path (index into Ruleset.keys).
const PRE_SRC = 1;
const PRE_DST = 2;
const PRE_PROTO = 3;

const MPORT_SRC = 1;
const MPORT_DST = 2;

const AT_INV_SRC = 1;
const AT_INV_DST = 2;
const AT_LIMIT_IN = 4;
const AT_LIMIT_OUT = 8;

// ---- target kinds ----
const T_NONE = 0;
const T_ACCEPT = 1;
const T_DROP = 2;
const T_RETURN = 3;
const T_JUMP = 4;
const T_GOTO = 5;
const T_REJECT = 6;
const T_NAT = 7;
const T_NETMAP = 8;
const T_REDIRECT = 9;
const T_MARK = 10;
const T_NOTRACK = 11;
const T_LOG = 12;

// ---- "how" a NAT decision was reached: the last statistic or recent check evaluated on the
// path to the target (a matched or a failed draw: the last of n endpoints is chosen by the
// random draws that did not pick the others) ----
const HOW_NTH = 1;
const HOW_RANDOM = 2;
const HOW_RECENT = 3;
const HOW_TEXT = ['', 'nth', 'random', 'recent'];

// ---- index dimensions ----
const DIM_DST = 0;
const DIM_SRC = 1;
const DIM_PORT = 2;
const DIM_IN = 3;
const DIM_OUT = 4;
const DIM_NAMES = ['-d', '-s', 'proto/dport', '-i', '-o'];
/** Chains with fewer rules are not indexed. */
const INDEX_MIN_RULES = 8;
/** A dimension is used when it takes at least this many rules out of the linear list. */
const INDEX_MIN_GAIN = 4;
/** Port ranges and multiport lists are expanded into keys up to this many ports. */
const INDEX_MAX_PORTS = 64;
const MAX_DIMS = 3;

/** Frame of the jump stack: chain, how, direct, then (pos, end) of up to 4 candidate lists. */
const FRAME = 11;

interface RecentInfo {
  table: RecentTable;
  op: number;
  invert: boolean;
  seconds: number;
  hitcount: number;
  reap: boolean;
  rttl: boolean;
  dst: boolean;
}

export class Ruleset {
  readonly model: RulesetModel;
  readonly ruleCount: number;

  private readonly env: NetfilterEnv;
  private readonly ctv: ConntrackView;
  private readonly prng: Prng;

  // ---- rules (global index r) ----
  private readonly code: Int32Array;
  private readonly ruleCode: Int32Array;
  /** Fast path: the rule's first test inline (PRE_*), then its code from ruleRest (-1: nothing left). */
  private readonly preKind: Uint8Array;
  private readonly preInv: Uint8Array;
  private readonly preMask: Int32Array;
  private readonly preVal: Int32Array;
  private readonly ruleRest: Int32Array;
  private readonly tKind: Uint8Array;
  private readonly tArg: Int32Array;
  private readonly tArg2: Int32Array;
  private readonly ruleOf: Rule[];
  /** e.g. `filter/FORWARD rule 3 (line 17): DROP "comment"`. */
  private readonly verdictRefs: string[];
  private readonly natTpl: (NatRange | null)[];

  // ---- chains (global index c) ----
  private readonly chainName: string[];
  private readonly chainTable: Int32Array;
  private readonly chainFirst: Int32Array;
  private readonly chainCount: Int32Array;
  private readonly chainPolicy: Int32Array;
  private readonly policyRefs: string[];
  private readonly chainAlways: Int32Array;
  private readonly chainNDims: Uint8Array;
  private readonly chainDimType: Int32Array;
  private readonly chainDimMap: (IntMap | Int32Array | null)[];
  private readonly chainDimAll: Int32Array;
  private readonly pool: Int32Array;
  /** Built-in chain of (table, hook), or -1. */
  private readonly hookChain: Int32Array;
  private readonly tablePresent: Uint8Array;

  // ---- match state ----
  private readonly ifTab: Uint8Array;
  private readonly ifCount1: number;
  private readonly nth: Uint32Array;
  private readonly nthInit: Uint32Array;
  private readonly recentInfo: RecentInfo[];
  private readonly recentTables = new Map<string, RecentTable>();
  private readonly sets: Ipset[];

  // ---- evaluation ----
  private readonly stack: Int32Array;
  private readonly linearStack: Int32Array;
  private readonly indexed: boolean;
  private hook = 0;
  /** HOW_* of the current path (saved and restored with the jump stack). */
  private curHow = 0;
  private ruleText: string[] | null = null;
  /** First-test operands of the packet being evaluated: [unused, src, dst, proto]. */
  private readonly keys = new Int32Array(4);
  private readonly altRefs = new Map<number, string>();

  /** Parse `iptables-save` text (and optionally `ipset save` text) and compile it. */
  static fromText(iptablesSave: string, opts: RulesetTextOptions): Ruleset {
    let ipsets = opts.ipsets;
    if (opts.ipsetSave !== undefined) {
      ipsets = IpsetRegistry.parse(offsetLines(opts.ipsetSave, opts.ipsetFirstLine), opts.ipsetFile ?? '<ipset>');
    }
    return Ruleset.compile(iptablesSave, { ...opts, ipsets });
  }

  /** Compile a parsed model (or iptables-save text). */
  static compile(modelOrText: RulesetModel | string, opts: RulesetOptions): Ruleset {
    const model =
      typeof modelOrText === 'string'
        ? parseIptablesSave(offsetLines(modelOrText, opts.firstLine), { file: opts.file, maxChainDepth: opts.maxChainDepth })
        : modelOrText;
    return new Ruleset(model, opts);
  }

  private constructor(model: RulesetModel, opts: RulesetOptions) {
    this.model = model;
    this.env = opts.env;
    this.ctv = opts.ct;
    this.prng = opts.prng;
    this.indexed = opts.index !== false;
    const file = model.file;
    const fail = (r: Rule, reason: string, token = ''): never => {
      throw new RulesetError(file, r.line, reason, token);
    };

    // ---- chains and rules in a global order ----
    const chains: { table: number; chain: Chain }[] = [];
    const rules: Rule[] = [];
    // Per table (TABLE_* index): chain name → c.
    const chainIndex: Map<string, number>[] = TABLE_NAMES.map(() => new Map<string, number>());
    this.tablePresent = new Uint8Array(4);
    for (const t of model.tables) {
      const ti = TABLE_NAMES.indexOf(t.name as (typeof TABLE_NAMES)[number]);
      this.tablePresent[ti] = 1;
      for (const c of t.chains) {
        chainIndex[ti]!.set(c.name, chains.length);
        chains.push({ table: ti, chain: c });
      }
    }
    const nc = chains.length;
    this.chainName = chains.map((x) => x.chain.name);
    this.chainTable = Int32Array.from(chains.map((x) => x.table));
    this.chainFirst = new Int32Array(nc);
    this.chainCount = new Int32Array(nc);
    this.chainPolicy = new Int32Array(nc);
    this.policyRefs = [];
    this.hookChain = new Int32Array(4 * 5).fill(-1);
    for (let c = 0; c < nc; c++) {
      const { table, chain } = chains[c]!;
      this.chainFirst[c] = rules.length;
      this.chainCount[c] = chain.rules.length;
      for (const r of chain.rules) rules.push(r);
      this.chainPolicy[c] = chain.policy === 'DROP' ? VERDICT_DROP : VERDICT_ACCEPT;
      this.policyRefs.push(`${TABLE_NAMES[table]}/${chain.name} policy ${chain.policy ?? '-'}`);
      if (chain.builtin) this.hookChain[table * 5 + HOOK_OF_CHAIN[chain.name]!] = c;
    }
    const nr = rules.length;
    this.ruleCount = nr;
    this.ruleOf = rules;

    // ---- interfaces ----
    const names = this.env.interfaceNames;
    this.ifCount1 = names.length + 1;
    const ifPatterns = new Map<string, number>();
    const ifBytes: number[] = [];
    const ifBase = (pattern: string): number => {
      let b = ifPatterns.get(pattern);
      if (b !== undefined) return b;
      b = ifBytes.length;
      ifPatterns.set(pattern, b);
      ifBytes.push(ifaceMatches(pattern, '') ? 1 : 0);
      for (const n of names) ifBytes.push(ifaceMatches(pattern, n) ? 1 : 0);
      return b;
    };

    // ---- per-rule code ----
    const code: number[] = [];
    this.ruleCode = new Int32Array(nr);
    this.tKind = new Uint8Array(nr);
    this.tArg = new Int32Array(nr);
    this.tArg2 = new Int32Array(nr);
    this.verdictRefs = new Array<string>(nr).fill('');
    this.natTpl = [];
    const nthInit: number[] = [];
    this.recentInfo = [];
    this.sets = [];
    const setIndex = new Map<string, number>();
    const ipsets = opts.ipsets;
    const recentSize = opts.recentListSize ?? 100;

    // Recent tables: mask from the first rule naming the list, stamps from the largest hitcount.
    for (const r of rules) {
      for (const m of r.matches) {
        if (m.kind !== 'recent') continue;
        const nstampMask = m.hitcount ? roundupPow2(m.hitcount) - 1 : 31;
        const t = this.recentTables.get(m.listName);
        if (t) t.widen(nstampMask);
        else this.recentTables.set(m.listName, new RecentTable(m.listName, m.mask, nstampMask, recentSize));
      }
    }

    for (let c = 0; c < nc; c++) {
      const { table } = chains[c]!;
      for (let k = 0; k < this.chainCount[c]!; k++) {
        const ri = this.chainFirst[c]! + k;
        const r = rules[ri]!;
        this.ruleCode[ri] = code.length;
        const inv = (b: boolean): number => (b ? 1 : 0);
        // IP header part first, in ip_packet_match's order.
        if (r.src) code.push(OP_SRC, r.src.mask | 0, r.src.net | 0, inv(r.src.invert));
        if (r.dst) code.push(OP_DST, r.dst.mask | 0, r.dst.net | 0, inv(r.dst.invert));
        if (r.inIface) code.push(OP_IN, ifBase(r.inIface.name), inv(r.inIface.invert));
        if (r.outIface) code.push(OP_OUT, ifBase(r.outIface.name), inv(r.outIface.invert));
        if (r.proto) code.push(OP_PROTO, r.proto.num, inv(r.proto.invert));
        if (r.fragment) code.push(OP_FRAG, inv(r.fragment.invert));
        for (const m of r.matches) this.compileMatch(m, r, code, nthInit, ipsets, setIndex, fail);
        code.push(OP_END);
        this.compileTarget(ri, r, table, chainIndex, fail);
      }
    }
    this.code = Int32Array.from(code);
    this.preKind = new Uint8Array(nr);
    this.preInv = new Uint8Array(nr);
    this.preMask = new Int32Array(nr);
    this.preVal = new Int32Array(nr);
    this.ruleRest = new Int32Array(nr);
    for (let ri = 0; ri < nr; ri++) {
      const pc = this.ruleCode[ri]!;
      const op = code[pc]!;
      this.ruleRest[ri] = pc;
      if (op === OP_SRC || op === OP_DST) {
        this.preKind[ri] = op === OP_SRC ? PRE_SRC : PRE_DST;
        this.preInv[ri] = code[pc + 3]!;
        this.preMask[ri] = code[pc + 1]!;
        this.preVal[ri] = code[pc + 2]!;
        this.ruleRest[ri] = pc + 4;
      } else if (op === OP_PROTO) {
        this.preKind[ri] = PRE_PROTO;
        this.preInv[ri] = code[pc + 2]!;
        this.preMask[ri] = -1;
        this.preVal[ri] = code[pc + 1]!;
        this.ruleRest[ri] = pc + 3;
      }
      // Nothing left after the first test: no call at all.
      if (code[this.ruleRest[ri]!] === OP_END) this.ruleRest[ri] = -1;
    }
    this.nthInit = Uint32Array.from(nthInit);
    this.nth = Uint32Array.from(nthInit);
    this.ifTab = Uint8Array.from(ifBytes);

    // ---- candidate lists ----
    const pool: number[] = [];
    const addList = (list: number[]): number => {
      const off = pool.length;
      pool.push(list.length);
      for (const x of list) pool.push(x);
      return off;
    };
    this.chainAlways = new Int32Array(nc);
    this.chainNDims = new Uint8Array(nc);
    this.chainDimType = new Int32Array(nc * MAX_DIMS);
    this.chainDimAll = new Int32Array(nc * MAX_DIMS).fill(-1);
    this.chainDimMap = new Array<IntMap | Int32Array | null>(nc * MAX_DIMS).fill(null);
    for (let c = 0; c < nc; c++) {
      const first = this.chainFirst[c]!;
      const count = this.chainCount[c]!;
      // Chains without index are walked by rule id; only indexed chains have lists.
      if (!this.indexed || count < INDEX_MIN_RULES) continue;
      const all: number[] = [];
      for (let k = 0; k < count; k++) all.push(first + k);
      this.buildIndex(c, all, rules, names.length, addList);
    }
    this.pool = Int32Array.from(pool);

    // ---- stacks: deepest run of jumps (gotos do not push) ----
    const depth = this.maxJumpDepth(chains.map((x) => x.chain));
    this.stack = new Int32Array((depth + 1) * FRAME);
    this.linearStack = new Int32Array((depth + 1) * 3);
  }

  // -------------------------------------------------------------------------------------------
  // compile helpers

  /** Emit the opcodes of one match. */
  private compileMatch(
    m: Match,
    r: Rule,
    code: number[],
    nthInit: number[],
    ipsets: IpsetRegistry | undefined,
    setIndex: Map<string, number>,
    fail: (r: Rule, reason: string, token?: string) => never,
  ): void {
    const inv = (b: boolean): number => (b ? 1 : 0);
    switch (m.kind) {
      case 'tcp':
      case 'udp':
        code.push(m.kind === 'tcp' ? OP_TCP_L4 : OP_L4);
        if (m.sport) code.push(OP_SPORT, m.sport.lo, m.sport.hi, inv(m.sport.invert));
        if (m.dport) code.push(OP_DPORT, m.dport.lo, m.dport.hi, inv(m.dport.invert));
        if (m.tcpFlags) code.push(OP_TCPFLAGS, m.tcpFlags.mask, m.tcpFlags.cmp, inv(m.tcpFlags.invert));
        if (m.tcpOption) code.push(OP_TCPOPT, m.tcpOption.num, inv(m.tcpOption.invert));
        return;
      case 'icmp':
        code.push(OP_ICMP, m.type, m.codeMin, m.codeMax, inv(m.invert));
        return;
      case 'multiport':
        code.push(OP_MPORT, m.mode === 'src' ? MPORT_SRC : m.mode === 'dst' ? MPORT_DST : MPORT_SRC | MPORT_DST, inv(m.invert), m.ranges.length);
        for (const [lo, hi] of m.ranges) code.push(lo, hi);
        return;
      case 'conntrack': {
        if (m.state) code.push(OP_CTSTATE, m.state.mask, inv(m.state.invert));
        const rest: number[] = [];
        if (m.dir) rest.push(OP_CTDIR, m.dir === 'ORIGINAL' ? 1 : 0);
        const addrs: [typeof m.origSrc, number][] = [
          [m.origSrc, 0],
          [m.origDst, 1],
          [m.replSrc, 2],
          [m.replDst, 3],
        ];
        for (const [a, w] of addrs) if (a) rest.push(OP_CTADDR, w, a.mask | 0, a.net | 0, inv(a.invert));
        if (m.ctproto) rest.push(OP_CTPROTO, m.ctproto.num, inv(m.ctproto.invert));
        const ports: [typeof m.origSrcPort, number][] = [
          [m.origSrcPort, 0],
          [m.origDstPort, 1],
          [m.replSrcPort, 2],
          [m.replDstPort, 3],
        ];
        for (const [p, w] of ports) if (p) rest.push(OP_CTPORT, w, p.lo, p.hi, inv(p.invert));
        if (m.status) rest.push(OP_CTSTATUS, m.status.mask, inv(m.status.invert));
        // conntrack_mt: without a conntrack entry the match is the state test alone.
        if (rest.length) code.push(OP_CTNULL, m.state ? 1 : 0, rest.length, ...rest);
        return;
      }
      case 'statistic':
        if (m.mode === 'nth') {
          // libxt_statistic: count = every - packet (every already N-1).
          code.push(OP_NTH, nthInit.length, m.every | 0, inv(m.invert));
          nthInit.push((m.every - m.packet) >>> 0);
          return;
        }
        code.push(OP_RANDOM, m.probability - 1, inv(m.invert));
        return;
      case 'recent': {
        const op = m.op === 'set' ? RECENT_SET : m.op === 'rcheck' ? RECENT_CHECK : m.op === 'update' ? RECENT_UPDATE : RECENT_REMOVE;
        code.push(OP_RECENT, this.recentInfo.length);
        this.recentInfo.push({
          table: this.recentTables.get(m.listName)!,
          op,
          invert: m.invert,
          seconds: m.seconds,
          hitcount: m.hitcount,
          reap: m.reap,
          rttl: m.rttl,
          dst: m.side === 'dst',
        });
        return;
      }
      case 'mark':
        code.push(OP_MARK, m.mask | 0, m.value | 0, inv(m.invert));
        return;
      case 'comment':
      case 'nfacct':
        return;
      case 'addrtype':
        code.push(
          OP_ADDRTYPE,
          m.src,
          m.dst,
          (m.invSrc ? AT_INV_SRC : 0) | (m.invDst ? AT_INV_DST : 0) | (m.limitIn ? AT_LIMIT_IN : 0) | (m.limitOut ? AT_LIMIT_OUT : 0),
        );
        return;
      case 'set': {
        const set = ipsets?.get(m.setName);
        if (!set) fail(r, `set "${m.setName}" doesn't exist${ipsets ? '' : ' (no ipset save was given)'}`, m.setName);
        let idx = setIndex.get(m.setName);
        if (idx === undefined) {
          idx = this.sets.length;
          this.sets.push(set);
          setIndex.set(m.setName, idx);
        }
        let dirs = 0;
        m.dirs.forEach((d, i) => (dirs |= d ? 1 << i : 0));
        code.push(OP_SET, idx, dirs, m.dirs.length, inv(m.invert));
        return;
      }
      case 'rpfilter':
        if (!this.env.rpfilter) fail(r, `-m rpfilter needs a reverse-path lookup that this node's environment does not provide`, 'rpfilter');
        code.push(OP_RPFILTER, (m.loose ? RPF_LOOSE : 0) | (m.validmark ? RPF_VALID_MARK : 0) | (m.acceptLocal ? RPF_ACCEPT_LOCAL : 0), inv(m.invert));
        return;
    }
  }

  private compileTarget(ri: number, r: Rule, table: number, chainIndex: readonly Map<string, number>[], fail: (r: Rule, reason: string, token?: string) => never): void {
    const t = r.target;
    const tname = TABLE_NAMES[table];
    this.natTpl[ri] = null;
    if (t === null) {
      this.tKind[ri] = T_NONE;
      return;
    }
    switch (t.kind) {
      case 'ACCEPT':
        this.tKind[ri] = T_ACCEPT;
        return;
      case 'DROP':
        this.tKind[ri] = T_DROP;
        return;
      case 'RETURN':
        this.tKind[ri] = T_RETURN;
        return;
      case 'chain': {
        const c = chainIndex[table]!.get(t.chain);
        if (c === undefined) fail(r, `chain ${t.chain} does not exist in table ${tname}`, t.chain);
        this.tKind[ri] = r.goto ? T_GOTO : T_JUMP;
        this.tArg[ri] = c;
        return;
      }
      case 'REJECT':
        this.tKind[ri] = T_REJECT;
        this.tArg[ri] = t.with;
        return;
      case 'DNAT':
      case 'SNAT':
      case 'MASQUERADE':
      case 'REDIRECT': {
        const nr = new NatRange();
        nr.manip = t.kind === 'DNAT' || t.kind === 'REDIRECT' ? NAT_MANIP_DST : NAT_MANIP_SRC;
        nr.flags = t.flags | (t.kind === 'MASQUERADE' ? NAT_RANGE_MASQUERADE : 0) | (t.kind === 'REDIRECT' ? NF_NAT_RANGE_MAP_IPS : 0);
        nr.minIp = t.minIp;
        nr.maxIp = t.maxIp;
        nr.minPort = t.minPort;
        nr.maxPort = t.maxPort;
        nr.ruleRef = ruleWhere(r);
        this.natTpl[ri] = nr;
        this.tKind[ri] = t.kind === 'REDIRECT' ? T_REDIRECT : T_NAT;
        return;
      }
      case 'NETMAP': {
        const nr = new NatRange();
        nr.flags = NF_NAT_RANGE_MAP_IPS | NAT_RANGE_NETMAP;
        nr.minIp = t.net;
        nr.maxIp = (t.net | ~t.mask) >>> 0;
        nr.netmapMask = t.mask;
        nr.ruleRef = ruleWhere(r);
        this.natTpl[ri] = nr;
        this.tKind[ri] = T_NETMAP;
        return;
      }
      case 'MARK':
        this.tKind[ri] = T_MARK;
        this.tArg[ri] = t.mask | 0;
        this.tArg2[ri] = t.value | 0;
        return;
      case 'CT':
        this.tKind[ri] = T_NOTRACK;
        return;
      case 'LOG':
      case 'NFLOG':
      case 'TRACE':
        this.tKind[ri] = T_LOG;
        return;
    }
  }

  /** Choose index dimensions for chain c and build its candidate lists. */
  private buildIndex(c: number, all: number[], rules: Rule[], nIf: number, addList: (l: number[]) => number): void {
    // Keys of each rule per dimension (undefined: the rule cannot be indexed on it).
    const keys: (number[] | undefined)[][] = all.map((ri) => ruleKeys(rules[ri]!, this.env.interfaceNames));
    const assigned = new Int32Array(all.length).fill(-1);
    const dims: number[] = [];
    for (let round = 0; round < MAX_DIMS; round++) {
      let best = -1;
      let bestGain = 0;
      let bestDistinct = 0;
      for (let d = 0; d < 5; d++) {
        if (dims.includes(d)) continue;
        let gain = 0;
        const distinct = new Set<number>();
        for (let k = 0; k < all.length; k++) {
          if (assigned[k] !== -1) continue;
          const ks = keys[k]![d];
          if (ks === undefined) continue;
          gain++;
          for (const x of ks) distinct.add(x);
        }
        if (gain > bestGain || (gain === bestGain && distinct.size > bestDistinct)) {
          best = d;
          bestGain = gain;
          bestDistinct = distinct.size;
        }
      }
      if (best < 0 || bestGain < INDEX_MIN_GAIN) break;
      for (let k = 0; k < all.length; k++) if (assigned[k] === -1 && keys[k]![best] !== undefined) assigned[k] = best;
      dims.push(best);
    }
    const always: number[] = [];
    for (let k = 0; k < all.length; k++) if (assigned[k] === -1) always.push(all[k]!);
    this.chainAlways[c] = addList(always);
    this.chainNDims[c] = dims.length;
    dims.forEach((d, slot) => {
      const at = c * MAX_DIMS + slot;
      this.chainDimType[at] = d;
      const lists = new Map<number, number[]>();
      const dimAll: number[] = [];
      for (let k = 0; k < all.length; k++) {
        if (assigned[k] !== d) continue;
        dimAll.push(all[k]!);
        for (const key of keys[k]![d]!) {
          let l = lists.get(key);
          if (!l) lists.set(key, (l = []));
          if (l[l.length - 1] !== all[k]) l.push(all[k]!);
        }
      }
      if (d === DIM_IN || d === DIM_OUT) {
        const tab = new Int32Array(nIf + 1).fill(-1);
        for (const [key, l] of lists) tab[key + 1] = addList(l);
        this.chainDimMap[at] = tab;
      } else {
        const map = new IntMap(lists.size);
        for (const [key, l] of lists) map.set(key, addList(l));
        this.chainDimMap[at] = map;
        if (d === DIM_PORT) this.chainDimAll[at] = addList(dimAll);
      }
    });
  }

  /** Deepest run of jumps from a built-in chain (gotos do not push): the stack size. */
  private maxJumpDepth(chains: Chain[]): number {
    const memo = new Int32Array(chains.length).fill(-1);
    const onPath = new Uint8Array(chains.length);
    const visit = (c: number): number => {
      if (memo[c]! >= 0) return memo[c]!;
      if (onPath[c]) throw new RulesetError(this.model.file, 0, `chain loop through ${TABLE_NAMES[this.chainTable[c]!]}/${chains[c]!.name}`);
      onPath[c] = 1;
      let d = 0;
      const first = this.chainFirst[c]!;
      for (let ri = first; ri < first + this.chainCount[c]!; ri++) {
        // compileTarget resolved the chain of every jump and goto (tArg).
        const k = this.tKind[ri];
        if (k !== T_JUMP && k !== T_GOTO) continue;
        const x = visit(this.tArg[ri]!) + (k === T_GOTO ? 0 : 1);
        if (x > d) d = x;
      }
      onPath[c] = 0;
      memo[c] = d;
      return d;
    };
    let max = 0;
    for (let c = 0; c < chains.length; c++) if (chains[c]!.builtin) max = Math.max(max, visit(c));
    return max;
  }

  // -------------------------------------------------------------------------------------------
  // public API

  hasTable(table: number): boolean {
    return this.tablePresent[table] === 1;
  }

  /**
   * Traverse the built-in chain of `table` for `hook` (TABLE_*, HOOK_*). Returns
   * VERDICT_ACCEPT, VERDICT_DROP or VERDICT_REJECT (skb.rejectWith set). A table or chain not in
   * the input accepts. NAT targets fill skb.natRange, set skb.natRangeSet and accept.
   */
  run(table: number, hook: number, skb: Skb): number {
    const c = this.hookChain[table * 5 + hook]!;
    if (c === undefined || c < 0) return VERDICT_ACCEPT;
    this.hook = hook;
    if (skb.trace !== null) return this.runTraced(c, skb);
    return this.runFast(c, skb);
  }

  /** Print back in iptables-save format (same rules; counters [0:0]). */
  toIptablesSave(): string {
    return formatIptablesSave(this.model);
  }

  /** A `recent` list by --name (for tests and traces). */
  recentTable(name: string): RecentTable | undefined {
    return this.recentTables.get(name);
  }

  /** Forget all per-rule state: statistic counters and recent lists. */
  resetState(): void {
    this.nth.set(this.nthInit);
    for (const t of this.recentTables.values()) t.flush();
  }

  /** How chains were indexed (for benchmarks and debugging): "table/chain: dims". */
  describeIndex(): string[] {
    const out: string[] = [];
    for (let c = 0; c < this.chainName.length; c++) {
      const nd = this.chainNDims[c]!;
      if (nd === 0) continue;
      const dims: string[] = [];
      for (let k = 0; k < nd; k++) dims.push(DIM_NAMES[this.chainDimType[c * MAX_DIMS + k]!]!);
      const alw = this.pool[this.chainAlways[c]!]!;
      out.push(`${TABLE_NAMES[this.chainTable[c]!]}/${this.chainName[c]}: ${this.chainCount[c]} rules, index ${dims.join(', ')}, ${alw} unindexed`);
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // evaluation

  /** Offset of the candidate list of dimension slot `at` for this packet, or -1. */
  private lookupDim(at: number, skb: Skb): number {
    const v = skb.v;
    switch (this.chainDimType[at]) {
      case DIM_DST:
        return (this.chainDimMap[at] as IntMap).get(v.dstIp | 0);
      case DIM_SRC:
        return (this.chainDimMap[at] as IntMap).get(v.srcIp | 0);
      case DIM_PORT:
        if (v.l4Off < 0) return this.chainDimAll[at]!;
        return (this.chainDimMap[at] as IntMap).get((v.ipProto << 16) | v.dstPort);
      case DIM_IN: {
        const x = skb.inIf + 1;
        const tab = this.chainDimMap[at] as Int32Array;
        return x >= 0 && x < tab.length ? tab[x]! : -1;
      }
      default: {
        const x = skb.outIf + 1;
        const tab = this.chainDimMap[at] as Int32Array;
        return x >= 0 && x < tab.length ? tab[x]! : -1;
      }
    }
  }

  private runFast(builtin: number, skb: Skb): number {
    const pool = this.pool;
    const stack = this.stack;
    const tKind = this.tKind;
    const preKind = this.preKind;
    const preInv = this.preInv;
    const preMask = this.preMask;
    const preVal = this.preVal;
    const ruleRest = this.ruleRest;
    const chainAlways = this.chainAlways;
    const chainNDims = this.chainNDims;
    // The first-test operands: [-, src, dst, proto]. The packet does not change during a
    // traversal (targets only set the mark and NAT ranges), so they are read once.
    const keys = this.keys;
    const v = skb.v;
    keys[1] = v.srcIp | 0;
    keys[2] = v.dstIp | 0;
    keys[3] = v.ipProto;
    let sp = 0;
    let c = builtin;
    this.curHow = 0;
    // A chain without index walks rule ids p0..e0 directly (direct = 1); an indexed chain merges
    // up to four candidate lists of the pool (the unindexed rules and one per dimension).
    let direct = 0;
    let p0 = 0;
    let e0 = 0;
    let p1 = 0;
    let e1 = 0;
    let p2 = 0;
    let e2 = 0;
    let p3 = 0;
    let e3 = 0;
    let enter = true;
    for (;;) {
      if (enter) {
        enter = false;
        const nd = chainNDims[c]!;
        if (nd === 0) {
          direct = 1;
          p0 = this.chainFirst[c]!;
          e0 = p0 + this.chainCount[c]!;
        } else {
          direct = 0;
          let off = chainAlways[c]!;
          p0 = off + 1;
          e0 = p0 + pool[off]!;
          p1 = e1 = p2 = e2 = p3 = e3 = 0;
          const at = c * MAX_DIMS;
          off = this.lookupDim(at, skb);
          if (off >= 0) {
            p1 = off + 1;
            e1 = p1 + pool[off]!;
          }
          if (nd > 1) {
            off = this.lookupDim(at + 1, skb);
            if (off >= 0) {
              p2 = off + 1;
              e2 = p2 + pool[off]!;
            }
            if (nd > 2) {
              off = this.lookupDim(at + 2, skb);
              if (off >= 0) {
                p3 = off + 1;
                e3 = p3 + pool[off]!;
              }
            }
          }
        }
      }
      let r = -1;
      if (direct === 1) {
        if (p0 < e0) r = p0++;
      } else {
        // Next candidate: the smallest rule id at the heads of the lists.
        r = 0x7fffffff;
        let which = -1;
        if (p0 < e0) {
          r = pool[p0]!;
          which = 0;
        }
        if (p1 < e1 && pool[p1]! < r) {
          r = pool[p1]!;
          which = 1;
        }
        if (p2 < e2 && pool[p2]! < r) {
          r = pool[p2]!;
          which = 2;
        }
        if (p3 < e3 && pool[p3]! < r) {
          r = pool[p3]!;
          which = 3;
        }
        if (which === 0) p0++;
        else if (which === 1) p1++;
        else if (which === 2) p2++;
        else if (which === 3) p3++;
        else r = -1;
      }
      if (r < 0) {
        // End of chain: the policy at the bottom of the stack, else return to the caller.
        if (sp === 0) return this.policy(builtin, skb);
        sp--;
        const f = sp * FRAME;
        c = stack[f]!;
        this.curHow = stack[f + 1]!;
        direct = stack[f + 2]!;
        p0 = stack[f + 3]!;
        e0 = stack[f + 4]!;
        p1 = stack[f + 5]!;
        e1 = stack[f + 6]!;
        p2 = stack[f + 7]!;
        e2 = stack[f + 8]!;
        p3 = stack[f + 9]!;
        e3 = stack[f + 10]!;
        continue;
      }

      // The rule's first test (an address or the protocol) inline, the rest in matchRule.
      const pk = preKind[r]!;
      if (pk !== 0 && ((keys[pk]! & preMask[r]!) === preVal[r]) === (preInv[r] === 1)) continue;
      const rest = ruleRest[r]!;
      if (rest >= 0) {
        const m = this.matchRule(rest, skb);
        if (m === 0) continue;
        if (m === 2) return this.hotdrop(r, skb);
      }
      // What a target may change: the mark, notrack (raw), the verdict and its reference, the
      // NAT range. The flow memo relies on it (LinuxNode.natHook): of what the nat chains change,
      // only the mark is read later in a walk. A target that writes more (a connmark, say) must
      // be taken into account there.
      switch (tKind[r]) {
        case T_NONE:
        case T_LOG:
          continue;
        case T_MARK:
          skb.mark = ((skb.mark & ~this.tArg[r]!) ^ this.tArg2[r]!) >>> 0;
          continue;
        case T_NOTRACK:
          skb.notrack = true;
          continue;
        case T_JUMP: {
          const f = sp * FRAME;
          stack[f] = c;
          stack[f + 1] = this.curHow;
          stack[f + 2] = direct;
          stack[f + 3] = p0;
          stack[f + 4] = e0;
          stack[f + 5] = p1;
          stack[f + 6] = e1;
          stack[f + 7] = p2;
          stack[f + 8] = e2;
          stack[f + 9] = p3;
          stack[f + 10] = e3;
          sp++;
          c = this.tArg[r]!;
          enter = true;
          continue;
        }
        case T_GOTO:
          c = this.tArg[r]!;
          enter = true;
          continue;
        case T_RETURN: {
          if (sp === 0) return this.policy(builtin, skb);
          sp--;
          const f = sp * FRAME;
          c = stack[f]!;
          this.curHow = stack[f + 1]!;
          direct = stack[f + 2]!;
          p0 = stack[f + 3]!;
          e0 = stack[f + 4]!;
          p1 = stack[f + 5]!;
          e1 = stack[f + 6]!;
          p2 = stack[f + 7]!;
          e2 = stack[f + 8]!;
          p3 = stack[f + 9]!;
          e3 = stack[f + 10]!;
          continue;
        }
        default:
          return this.terminal(r, skb, this.curHow);
      }
    }
  }

  /** Verdict of a built-in chain's policy. */
  private policy(builtin: number, skb: Skb): number {
    skb.verdictRef = this.policyRefs[builtin]!;
    return this.chainPolicy[builtin]!;
  }

  private hotdrop(r: number, skb: Skb): number {
    skb.verdictRef = this.altRef(r, 'hotdrop');
    return VERDICT_DROP;
  }

  /** Verdict references of the rare outcomes, built once per rule. */
  private altRef(r: number, kind: 'hotdrop' | 'noaddr'): string {
    const key = kind === 'hotdrop' ? 2 * r : 2 * r + 1;
    let s = this.altRefs.get(key);
    if (s === undefined) {
      const x = this.ruleOf[r]!;
      s =
        kind === 'hotdrop'
          ? `${x.table}/${x.chain} rule ${x.num} (line ${x.line}): hotdrop (TCP fragment at offset 8)`
          : `${this.verdictRef(r)} (no address on the input interface: DROP)`;
      this.altRefs.set(key, s);
    }
    return s;
  }

  /**
   * The rule's reference for verdicts and comments, made when a packet first needs it (a big
   * kube-proxy ruleset has tens of thousands of rules, most of which no packet of a run meets).
   */
  private verdictRef(r: number): string {
    const s = this.verdictRefs[r]!;
    return s !== '' ? s : (this.verdictRefs[r] = verdictRefText(this.ruleOf[r]!));
  }

  /** Terminal targets: ACCEPT, DROP, REJECT, NAT. */
  private terminal(r: number, skb: Skb, how: number): number {
    skb.verdictRef = this.verdictRef(r);
    switch (this.tKind[r]) {
      case T_ACCEPT:
        return VERDICT_ACCEPT;
      case T_DROP:
        return VERDICT_DROP;
      case T_REJECT:
        skb.rejectWith = this.tArg[r]!;
        return VERDICT_REJECT;
      case T_NAT:
        skb.natRange.set(this.natTpl[r]!);
        skb.natRange.how = HOW_TEXT[how]!;
        skb.natRangeSet = true;
        return VERDICT_ACCEPT;
      case T_NETMAP: {
        const nr = skb.natRange;
        nr.set(this.natTpl[r]!);
        // netmap_tg4: destination in PREROUTING/OUTPUT, source in POSTROUTING/INPUT.
        nr.manip = this.hook === HOOK_PREROUTING || this.hook === HOOK_OUTPUT ? NAT_MANIP_DST : NAT_MANIP_SRC;
        nr.how = HOW_TEXT[how]!;
        skb.natRangeSet = true;
        return VERDICT_ACCEPT;
      }
      case T_REDIRECT: {
        // nf_nat_redirect_ipv4: 127.0.0.1 for local output, else the input device's address.
        const ip = this.hook === HOOK_OUTPUT ? 0x7f000001 : this.env.masqueradeAddress(skb.inIf, 0);
        if (ip === 0) {
          skb.verdictRef = this.altRef(r, 'noaddr');
          return VERDICT_DROP;
        }
        const nr = skb.natRange;
        nr.set(this.natTpl[r]!);
        nr.minIp = ip;
        nr.maxIp = ip;
        nr.how = HOW_TEXT[how]!;
        skb.natRangeSet = true;
        return VERDICT_ACCEPT;
      }
    }
    return VERDICT_DROP;
  }

  /** Evaluate a rule's opcodes from pc: 0 no match, 1 match, 2 hotdrop. */
  private matchRule(pc: number, skb: Skb): number {
    const code = this.code;
    const v = skb.v;
    for (;;) {
      switch (code[pc]) {
        case OP_END:
          return 1;
        case OP_SRC:
          if (((v.srcIp & code[pc + 1]!) === code[pc + 2]) === (code[pc + 3] === 1)) return 0;
          pc += 4;
          break;
        case OP_DST:
          if (((v.dstIp & code[pc + 1]!) === code[pc + 2]) === (code[pc + 3] === 1)) return 0;
          pc += 4;
          break;
        case OP_IN: {
          const x = skb.inIf + 1;
          const ok = x >= 0 && x < this.ifCount1 && this.ifTab[code[pc + 1]! + x] === 1;
          if (ok === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        }
        case OP_OUT: {
          const x = skb.outIf + 1;
          const ok = x >= 0 && x < this.ifCount1 && this.ifTab[code[pc + 1]! + x] === 1;
          if (ok === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        }
        case OP_PROTO:
          if ((v.ipProto === code[pc + 1]) === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        case OP_FRAG:
          if ((v.fragOffset !== 0) === (code[pc + 1] === 1)) return 0;
          pc += 2;
          break;
        case OP_TCP_L4:
          if (v.fragOffset !== 0) return v.fragOffset === 8 ? 2 : 0;
          if (v.l4Off < 0) return 0;
          pc += 1;
          break;
        case OP_L4:
          if (v.fragOffset !== 0 || v.l4Off < 0) return 0;
          pc += 1;
          break;
        case OP_SPORT: {
          const p = v.srcPort;
          if ((p >= code[pc + 1]! && p <= code[pc + 2]!) === (code[pc + 3] === 1)) return 0;
          pc += 4;
          break;
        }
        case OP_DPORT: {
          const p = v.dstPort;
          if ((p >= code[pc + 1]! && p <= code[pc + 2]!) === (code[pc + 3] === 1)) return 0;
          pc += 4;
          break;
        }
        case OP_TCPFLAGS:
          skb.impure = true;
          if (((v.tcpFlags & code[pc + 1]!) === code[pc + 2]) === (code[pc + 3] === 1)) return 0;
          pc += 4;
          break;
        case OP_TCPOPT:
          skb.impure = true;
          if (this.tcpHasOption(skb, code[pc + 1]!) === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        case OP_ICMP: {
          if (v.fragOffset !== 0 || v.l4Off < 0) return 0;
          const type = code[pc + 1]!;
          const ok = type === 0xff || (v.icmpType === type && v.icmpCode >= code[pc + 2]! && v.icmpCode <= code[pc + 3]!);
          if (ok === (code[pc + 4] === 1)) return 0;
          pc += 5;
          break;
        }
        case OP_MPORT: {
          if (v.fragOffset !== 0 || v.l4Off < 0) return 0;
          const mode = code[pc + 1]!;
          const n = code[pc + 3]!;
          const sp = v.srcPort;
          const dp = v.dstPort;
          let ok = false;
          for (let i = 0, q = pc + 4; i < n; i++, q += 2) {
            const lo = code[q]!;
            const hi = code[q + 1]!;
            if (((mode & MPORT_SRC) !== 0 && sp >= lo && sp <= hi) || ((mode & MPORT_DST) !== 0 && dp >= lo && dp <= hi)) {
              ok = true;
              break;
            }
          }
          if (ok === (code[pc + 2] === 1)) return 0;
          pc += 4 + 2 * n;
          break;
        }
        case OP_CTSTATE: {
          const ct = skb.ct;
          let bit: number;
          if (ct >= 0) {
            bit = skb.ctState;
            if ((code[pc + 1]! & (CT_SNAT | CT_DNAT)) !== 0) skb.ctLive = true;
            const st = this.ctv.status[ct]!;
            if (st & IPS_SRC_NAT) bit |= CT_SNAT;
            if (st & IPS_DST_NAT) bit |= CT_DNAT;
          } else {
            bit = skb.notrack || skb.ctState === CT_UNTRACKED ? CT_UNTRACKED : CT_INVALID;
          }
          if (((code[pc + 1]! & bit) !== 0) === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        }
        case OP_CTNULL:
          if (skb.ct < 0) {
            if (code[pc + 1] === 0) return 0;
            pc += 3 + code[pc + 2]!;
          } else {
            pc += 3;
          }
          break;
        case OP_CTPROTO:
          if ((this.ctv.proto[skb.ct] === code[pc + 1]) === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        case OP_CTADDR: {
          const ctv = this.ctv;
          const w = code[pc + 1]!;
          if (w >= 2) skb.ctLive = true;
          const a = w === 0 ? ctv.origSrc[skb.ct]! : w === 1 ? ctv.origDst[skb.ct]! : w === 2 ? ctv.replSrc[skb.ct]! : ctv.replDst[skb.ct]!;
          if (((a & code[pc + 2]!) === code[pc + 3]) === (code[pc + 4] === 1)) return 0;
          pc += 5;
          break;
        }
        case OP_CTPORT: {
          const ctv = this.ctv;
          const w = code[pc + 1]!;
          if (w >= 2) skb.ctLive = true;
          const p = w === 0 ? ctv.origSport[skb.ct]! : w === 1 ? ctv.origDport[skb.ct]! : w === 2 ? ctv.replSport[skb.ct]! : ctv.replDport[skb.ct]!;
          if ((p >= code[pc + 2]! && p <= code[pc + 3]!) === (code[pc + 4] === 1)) return 0;
          pc += 5;
          break;
        }
        case OP_CTSTATUS:
          skb.ctLive = true;
          if (((this.ctv.status[skb.ct]! & code[pc + 1]!) !== 0) === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        case OP_CTDIR:
          if ((skb.ctDir === 0) !== (code[pc + 1] === 1)) return 0;
          pc += 2;
          break;
        case OP_MARK:
          if (((skb.mark & code[pc + 1]!) === code[pc + 2]) === (code[pc + 3] === 1)) return 0;
          pc += 4;
          break;
        case OP_NTH: {
          // statistic_mt, XT_STATISTIC_MODE_NTH.
          skb.impure = true;
          const slot = code[pc + 1]!;
          const every = code[pc + 2]! >>> 0;
          const o = this.nth[slot]!;
          const n = o === every ? 0 : o + 1;
          this.nth[slot] = n;
          this.curHow = HOW_NTH;
          if ((n === 0) === (code[pc + 3] === 1)) return 0;
          pc += 4;
          break;
        }
        case OP_RANDOM:
          // statistic_mt, XT_STATISTIC_MODE_RANDOM: (prandom_u32() & 0x7FFFFFFF) < probability.
          skb.impure = true;
          this.curHow = HOW_RANDOM;
          if (((this.prng.nextU32() & 0x7fffffff) <= code[pc + 1]!) === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        case OP_RECENT:
          skb.impure = true;
          if (!this.recentMatch(this.recentInfo[code[pc + 1]!]!, skb)) return 0;
          pc += 2;
          break;
        case OP_ADDRTYPE: {
          const flags = code[pc + 3]!;
          const dev = flags & AT_LIMIT_IN ? skb.inIf : flags & AT_LIMIT_OUT ? skb.outIf : -1;
          const sm = code[pc + 1]!;
          if (sm !== 0 && ((this.env.addrType(v.srcIp, dev) & sm) !== 0) === ((flags & AT_INV_SRC) !== 0)) return 0;
          const dm = code[pc + 2]!;
          if (dm !== 0 && ((this.env.addrType(v.dstIp, dev) & dm) !== 0) === ((flags & AT_INV_DST) !== 0)) return 0;
          pc += 4;
          break;
        }
        case OP_SET:
          if (this.sets[code[pc + 1]!]!.test(v, code[pc + 2]!, code[pc + 3]!) === (code[pc + 4] === 1)) return 0;
          pc += 5;
          break;
        case OP_RPFILTER:
          if (this.env.rpfilter!(v.srcIp, v.dstIp, skb.inIf, skb.mark, code[pc + 1]!) === (code[pc + 2] === 1)) return 0;
          pc += 3;
          break;
        default:
          throw new Error(`ruleset: bad opcode ${code[pc]} at ${pc}`);
      }
    }
  }

  /** tcp_find_option (xt_tcpudp.c) over the TCP options of the packet. */
  private tcpHasOption(skb: Skb, option: number): boolean {
    const v = skb.v;
    const buf = skb.buf;
    const start = v.l4Off + 20;
    const end = v.l4Off + v.tcpDataOff;
    for (let i = start; i < end; ) {
      const k = buf[i]!;
      if (k === option) return true;
      if (k < 2) i++;
      else {
        const len = i + 1 < end ? buf[i + 1]! : 0;
        i += len === 0 ? 1 : len;
      }
    }
    return false;
  }

  private recentMatch(info: RecentInfo, skb: Skb): boolean {
    const v = skb.v;
    if (info.op === RECENT_CHECK || info.op === RECENT_UPDATE) this.curHow = HOW_RECENT;
    let ttl = v.ttl;
    // recent_mt: "use TTL as seen before forwarding" (out device set, no local socket).
    if ((this.hook === 2 || this.hook === 4) && skb.inIf >= 0) ttl = (ttl + 1) & 0xff;
    return info.table.match(info.dst ? v.dstIp : v.srcIp, ttl, info.op, info.invert, info.seconds, info.hitcount, info.reap, info.rttl, skb.nowSec);
  }

  // -------------------------------------------------------------------------------------------
  // traced (linear) evaluation

  private text(r: number): string {
    if (this.ruleText === null) this.ruleText = [];
    let s = this.ruleText[r];
    if (s === undefined) {
      s = formatRuleBody(this.ruleOf[r]!).trim();
      this.ruleText[r] = s;
    }
    return s;
  }

  private runTraced(builtin: number, skb: Skb): number {
    const tr = skb.trace!;
    const stack = this.linearStack;
    const base = tr.depth;
    let sp = 0;
    let c = builtin;
    this.curHow = 0;
    let r = this.chainFirst[c]!;
    let end = r + this.chainCount[c]!;
    const tname = TABLE_NAMES[this.chainTable[c]!];
    tr.add('chain', `${tname}/${this.chainName[c]} (policy ${this.chainPolicy[c] === VERDICT_DROP ? 'DROP' : 'ACCEPT'})`);
    tr.depth = base + 1;
    const finish = (verdict: number): number => {
      tr.depth = base;
      tr.add('verdict', `${verdict === VERDICT_ACCEPT ? 'ACCEPT' : verdict === VERDICT_DROP ? 'DROP' : 'REJECT'}: ${skb.verdictRef}`);
      return verdict;
    };
    const ret = (why: string): boolean => {
      if (sp === 0) return false;
      tr.add('return', `${why}: back to ${this.chainName[stack[(sp - 1) * 3]!]}`);
      sp--;
      c = stack[sp * 3]!;
      r = stack[sp * 3 + 1]!;
      this.curHow = stack[sp * 3 + 2]!;
      end = this.chainFirst[c]! + this.chainCount[c]!;
      tr.depth--;
      return true;
    };
    for (;;) {
      if (r >= end) {
        if (ret(`end of ${this.chainName[c]}`)) continue;
        const verdict = this.policy(builtin, skb);
        tr.add('policy', this.policyRefs[builtin]!);
        return finish(verdict);
      }
      const x = this.ruleOf[r]!;
      const m = this.matchRule(this.ruleCode[r]!, skb);
      const cm = x.matches.filter((q) => q.kind === 'comment').map((q) => (q as { comment: string }).comment);
      const label = `${x.chain} rule ${x.num} (line ${x.line})${cm.length ? ` "${cm.join('; ')}"` : ''}: ${this.text(r)}`;
      if (m === 0) {
        tr.add('rule', `${label} -> no match`);
        r++;
        continue;
      }
      if (m === 2) {
        tr.add('rule', `${label} -> hotdrop`);
        return finish(this.hotdrop(r, skb));
      }
      tr.add('rule', `${label} -> match`);
      const cur = r;
      r++;
      switch (this.tKind[cur]) {
        case T_NONE:
          continue;
        case T_LOG:
          tr.add('log', targetText(x.target!, false));
          continue;
        case T_MARK: {
          const before = skb.mark;
          skb.mark = ((skb.mark & ~this.tArg[cur]!) ^ this.tArg2[cur]!) >>> 0;
          tr.add('mark', `mark 0x${before.toString(16)} -> 0x${skb.mark.toString(16)}`);
          continue;
        }
        case T_NOTRACK:
          skb.notrack = true;
          tr.add('notrack', 'packet will not be tracked');
          continue;
        case T_JUMP:
        case T_GOTO: {
          const to = this.tArg[cur]!;
          if (this.tKind[cur] === T_JUMP) {
            stack[sp * 3] = c;
            stack[sp * 3 + 1] = r;
            stack[sp * 3 + 2] = this.curHow;
            sp++;
            tr.add('jump', `-> ${this.chainName[to]}`);
            tr.depth++;
          } else {
            tr.add('goto', `-> ${this.chainName[to]} (no return point)`);
          }
          c = to;
          r = this.chainFirst[c]!;
          end = r + this.chainCount[c]!;
          continue;
        }
        case T_RETURN:
          if (ret(`RETURN`)) continue;
          tr.add('policy', `RETURN at the bottom of the stack: ${this.policyRefs[builtin]}`);
          return finish(this.policy(builtin, skb));
        default: {
          const verdict = this.terminal(cur, skb, this.curHow);
          if (skb.natRangeSet && (this.tKind[cur] === T_NAT || this.tKind[cur] === T_NETMAP || this.tKind[cur] === T_REDIRECT) && verdict === VERDICT_ACCEPT) {
            const nr = skb.natRange;
            tr.add('nat', `${nr.manip === NAT_MANIP_DST ? 'DNAT' : 'SNAT'} range ${describeRange(nr)}${nr.how ? ` (chosen by ${nr.how})` : ''}`);
          }
          return finish(verdict);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** Does interface `name` ('' = none) match the -i/-o pattern (trailing '+' = prefix)? */
function ifaceMatches(pattern: string, name: string): boolean {
  if (pattern.endsWith('+')) {
    const prefix = pattern.slice(0, -1);
    return name.startsWith(prefix);
  }
  return name === pattern;
}

function roundupPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** `KUBE-SEP-X rule 2 (line 17)`. */
function ruleWhere(r: Rule): string {
  return `${r.chain} rule ${r.num} (line ${r.line})`;
}

/** `nat/KUBE-SEP-X rule 2 (line 17): DNAT --to-destination 10.1.1.1:80 "comment"`. */
function verdictRefText(r: Rule): string {
  let comments: string | null = null;
  for (const m of r.matches) if (m.kind === 'comment') comments = comments === null ? m.comment : `${comments}; ${m.comment}`;
  const what = r.target === null ? '(no target)' : targetText(r.target, r.goto);
  return `${r.table}/${ruleWhere(r)}: ${what}${comments === null ? '' : ` "${comments}"`}`;
}

function targetText(t: Target, goto: boolean): string {
  if (t.kind === 'chain') return `${goto ? '-g' : '-j'} ${t.chain}`;
  if (t.kind === 'REJECT') return `REJECT --reject-with ${rejectName(t.with)}`;
  return `${t.name}${TARGET_EXTENSIONS.get(t.name)!.save(t)}`;
}

function describeRange(nr: NatRange): string {
  let s = '';
  if (nr.flags & NAT_RANGE_MASQUERADE) s += 'masquerade';
  else if (nr.flags & NF_NAT_RANGE_MAP_IPS) s += nr.minIp === nr.maxIp ? ipv4ToString(nr.minIp) : `${ipv4ToString(nr.minIp)}-${ipv4ToString(nr.maxIp)}`;
  if (nr.minPort || nr.maxPort) s += `:${nr.minPort}${nr.maxPort !== nr.minPort ? `-${nr.maxPort}` : ''}`;
  return s || '(ports only)';
}

/**
 * Index keys of a rule per dimension: DIM_DST/DIM_SRC exact /32 addresses, DIM_PORT
 * proto << 16 | dport for the first port predicate evaluated before any side-effecting match,
 * DIM_IN/DIM_OUT the interface indexes the pattern matches. undefined = not indexable.
 */
function ruleKeys(r: Rule, ifNames: readonly string[]): (number[] | undefined)[] {
  const keys: (number[] | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
  if (r.dst && !r.dst.invert && r.dst.mask === 0xffffffff) keys[DIM_DST] = [r.dst.net | 0];
  if (r.src && !r.src.invert && r.src.mask === 0xffffffff) keys[DIM_SRC] = [r.src.net | 0];
  if (r.inIface && !r.inIface.invert) {
    const l: number[] = [];
    ifNames.forEach((n, i) => ifaceMatches(r.inIface!.name, n) && l.push(i));
    keys[DIM_IN] = l;
  }
  if (r.outIface && !r.outIface.invert) {
    const l: number[] = [];
    ifNames.forEach((n, i) => ifaceMatches(r.outIface!.name, n) && l.push(i));
    keys[DIM_OUT] = l;
  }
  if (r.proto && !r.proto.invert && (r.proto.num === 6 || r.proto.num === 17)) {
    const proto = r.proto.num;
    for (const m of r.matches) {
      if (m.kind === 'statistic' || m.kind === 'recent') break; // side effects: nothing after is indexable
      let ranges: [number, number][] | null = null;
      if ((m.kind === 'tcp' || m.kind === 'udp') && m.dport && !m.dport.invert) ranges = [[m.dport.lo, m.dport.hi]];
      else if (m.kind === 'multiport' && m.mode === 'dst' && !m.invert) ranges = m.ranges;
      if (ranges === null) continue;
      let n = 0;
      for (const [lo, hi] of ranges) n += hi - lo + 1;
      if (n <= INDEX_MAX_PORTS) {
        const l: number[] = [];
        for (const [lo, hi] of ranges) for (let p = lo; p <= hi; p++) l.push((proto << 16) | p);
        keys[DIM_PORT] = l;
      }
      break;
    }
  }
  return keys;
}

/** Prefix text with blank lines so that line numbers count from `firstLine`. */
function offsetLines(text: string, firstLine: number | undefined): string {
  if (firstLine === undefined || firstLine <= 1) return text;
  return '\n'.repeat(firstLine - 1) + text;
}

