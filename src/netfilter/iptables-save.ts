/**
 * `iptables-save` text ⇄ RulesetModel.
 *
 * Reads what iptables-save 1.8 prints (legacy and nf_tables backends): `# comments`, `*table`,
 * `:CHAIN POLICY [pkts:bytes]`, `[pkts:bytes] -A CHAIN ...` rules, `COMMIT`; also the few
 * iptables-restore commands that appear in hand-written or kube-proxy-style restore input
 * (`-I CHAIN [n]`, `-N CHAIN`, `-P CHAIN POLICY`). Lines are split with iptables-restore's own
 * quoting rules (add_param_to_argv in iptables/xshared.c: double quotes group, a backslash
 * escapes the next character inside quotes only, a closing quote ends the token).
 *
 * Everything is checked the way iptables-restore and the kernel would check it (unknown
 * matches, options and targets; bad values; jumps to chains that do not exist; targets used in
 * the wrong table or from a hook they do not support; chain loops; the nf_tables jump depth):
 * nothing is ignored. Errors are RulesetError with `file:line: what` messages.
 *
 * formatIptablesSave prints a model back the way iptables-save would (canonical option order
 * of each extension, addresses with /len, MARK as --set-xmark, counters [0:0]).
 */
import { RulesetError } from './errors.js';
import {
  findOpt,
  MATCH_EXTENSIONS,
  parseAddrOrFail,
  parseProtocol,
  parseUint,
  protoSaveText,
  saveAddrMask,
  TARGET_EXTENSIONS,
  UNSUPPORTED_MATCHES,
  UNSUPPORTED_TARGETS,
  type ExtCtx,
  type MatchExtension,
  type TargetExtension,
} from './extensions.js';
import {
  TABLE_BUILTIN_CHAINS,
  type Chain,
  type Match,
  type Rule,
  type RulesetModel,
  type Table,
  type Target,
} from './model.js';

export { RulesetError } from './errors.js';

export interface IptablesParseOptions {
  /** File name for error messages. */
  file?: string;
  /**
   * Maximum nesting of jumps/gotos from a built-in chain. nf_tables (iptables-nft) rejects a
   * chain reached at level NFT_JUMP_STACK_SIZE = 16 (nft_chain_validate: -EMLINK); legacy
   * ip_tables only rejects loops. Default 16.
   */
  maxChainDepth?: number;
}

/** Netfilter hook numbers by built-in chain name (include/uapi/linux/netfilter.h). */
export const HOOK_OF_CHAIN: Readonly<Record<string, number>> = {
  PREROUTING: 0,
  INPUT: 1,
  FORWARD: 2,
  OUTPUT: 3,
  POSTROUTING: 4,
};

const HOOK_NAME = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

/**
 * Split one line into arguments as iptables-restore does (add_param_to_argv). Throws a plain
 * Error on an unterminated quote (iptables would silently take the rest of the line).
 */
export function tokenizeLine(line: string): string[] {
  const out: string[] = [];
  if (line.indexOf('"') < 0) {
    // No quotes, so no escapes either (a backslash is only special inside quotes): the
    // arguments are the blank-separated runs, sliced out whole.
    let start = -1;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) {
        if (start >= 0) {
          out.push(line.slice(start, i));
          start = -1;
        }
      } else if (start < 0) {
        start = i;
      }
    }
    if (start >= 0) out.push(line.slice(start));
    return out;
  }
  let cur = '';
  let has = false;
  let quote = false;
  let escaped = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (escaped) {
        cur += c;
        escaped = false;
      } else if (c === '\\') {
        escaped = true;
      } else if (c === '"') {
        // A closing quote ends the argument, even an empty one.
        quote = false;
        out.push(cur);
        cur = '';
        has = false;
      } else {
        cur += c;
      }
      continue;
    }
    if (c === '"') {
      quote = true;
      has = true;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (has) {
        out.push(cur);
        cur = '';
        has = false;
      }
      continue;
    }
    cur += c;
    has = true;
  }
  if (quote) throw new Error('unterminated double quote');
  if (has) out.push(cur);
  return out;
}

interface MatchInstance {
  ext: MatchExtension;
  match: Match;
  seen: Set<string>;
  implicit: boolean;
}

interface TargetInstance {
  ext: TargetExtension;
  target: Target;
  seen: Set<string>;
}

const VALID_TABLES = new Set(['raw', 'mangle', 'nat', 'filter']);

/** Parse iptables-save text. Throws RulesetError. */
export function parseIptablesSave(text: string, opts: IptablesParseOptions = {}): RulesetModel {
  const file = opts.file ?? '<iptables-save>';
  const model: RulesetModel = { file, tables: [] };
  const lines = text.split('\n');
  let table: Table | null = null;
  const seenTables = new Set<string>();
  const lineCtx = new LineCtx(file);

  for (let ln = 1; ln <= lines.length; ln++) {
    let raw = lines[ln - 1]!;
    if (raw.charCodeAt(raw.length - 1) === 13) raw = raw.slice(0, -1); // CRLF
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const fail: (reason: string, token?: string) => never = (reason, token = '') => {
      throw new RulesetError(file, ln, reason, token);
    };

    if (trimmed.startsWith('*')) {
      if (table) fail(`"${trimmed}" before COMMIT of table ${table.name} (opened at line ${table.line})`, trimmed);
      const name = trimmed.slice(1).trim();
      if (!VALID_TABLES.has(name)) {
        fail(name === 'security' ? `table "security" is not supported by dpemu` : `unknown table "${name}" (raw, mangle, nat or filter)`, trimmed);
      }
      if (seenTables.has(name)) fail(`table ${name} appears twice`, trimmed);
      seenTables.add(name);
      table = { name, line: ln, chains: [], chainByName: new Map() };
      continue;
    }

    if (trimmed === 'COMMIT') {
      if (!table) fail(`COMMIT outside a table`, 'COMMIT');
      finishTable(table);
      model.tables.push(table);
      table = null;
      continue;
    }

    if (!table) fail(`"${trimmed.split(/\s+/)[0]}" outside a table (missing "*table" line)`, trimmed.split(/\s+/)[0]);

    if (trimmed.startsWith(':')) {
      parseChainLine(table, trimmed, ln, fail);
      continue;
    }

    let tokens: string[];
    try {
      tokens = tokenizeLine(trimmed);
    } catch (e) {
      return fail((e as Error).message);
    }
    // Optional "[pkts:bytes]" counters before the command (iptables-save -c).
    if (tokens.length && tokens[0]!.startsWith('[')) {
      if (!/^\[[0-9]+:[0-9]+\]$/.test(tokens[0]!)) fail(`bad counters "${tokens[0]}" (need [packets:bytes])`, tokens[0]);
      tokens = tokens.slice(1);
    }
    if (tokens.length === 0) fail(`empty rule`);
    parseCommand(table, tokens, ln, lineCtx);
  }
  if (table) throw new RulesetError(file, table.line, `table ${table.name} is never committed (missing COMMIT)`, `*${table.name}`);
  validateModel(model, opts.maxChainDepth ?? 16);
  return model;
}

function parseChainLine(table: Table, line: string, ln: number, fail: (reason: string, token?: string) => never): void {
  const parts = line.slice(1).trim().split(/\s+/);
  const name = parts[0] ?? '';
  const policy = parts[1];
  if (name === '') fail(`chain declaration without a name`, line);
  if (policy === undefined) fail(`chain "${name}" has no policy (ACCEPT, DROP or "-")`, line);
  if (parts.length > 3 || (parts[2] !== undefined && !/^\[[0-9]+:[0-9]+\]$/.test(parts[2]))) fail(`bad chain declaration "${line}"`, line);
  const builtin = TABLE_BUILTIN_CHAINS[table.name]!.includes(name);
  const existing = table.chainByName.get(name);
  if (existing && (existing.line !== 0 || !builtin)) fail(`chain ${name} declared twice (first at line ${existing.line})`, name);
  if (builtin) {
    if (policy !== 'ACCEPT' && policy !== 'DROP' && policy !== '-') fail(`bad policy "${policy}" for built-in chain ${name} (ACCEPT or DROP)`, policy);
    const pol = policy === '-' ? 'ACCEPT' : policy;
    if (existing) {
      existing.policy = pol;
      existing.line = ln;
    } else addChain(table, { name, builtin: true, policy: pol, line: ln, rules: [] });
    return;
  }
  if (policy !== '-') {
    fail(
      HOOK_OF_CHAIN[name] !== undefined
        ? `table ${table.name} has no built-in chain ${name} (a user chain's policy must be "-")`
        : `policy "${policy}" for user chain ${name}: only built-in chains have a policy (use "-")`,
      policy,
    );
  }
  checkChainName(name, (r) => fail(r, name));
  addChain(table, { name, builtin: false, policy: null, line: ln, rules: [] });
}

function checkChainName(name: string, fail: (reason: string) => never): void {
  // assert_valid_chain_name (iptables/xshared.c): < XT_EXTENSION_MAXNAMELEN (29), no leading -/!, no target name.
  if (name.length >= 29) fail(`chain name "${name}" too long (must be under 29 chars)`);
  if (name.startsWith('-') || name.startsWith('!')) fail(`chain name "${name}" not allowed to start with "${name[0]}"`);
  if (TARGET_EXTENSIONS.has(name) || UNSUPPORTED_TARGETS.has(name)) fail(`chain name "${name}" may not clash with target name`);
  if (/\s/.test(name)) fail(`invalid chain name "${name}"`);
}

function addChain(table: Table, chain: Chain): void {
  table.chains.push(chain);
  table.chainByName.set(chain.name, chain);
}

/** The chain a rule command names; built-in chains exist without a declaration. */
function lookupChain(table: Table, name: string, ctx: ExtCtx, tokenIndex: number): Chain {
  let c = table.chainByName.get(name);
  if (c) return c;
  if (TABLE_BUILTIN_CHAINS[table.name]!.includes(name)) {
    c = { name, builtin: true, policy: 'ACCEPT', line: 0, rules: [] };
    addChain(table, c);
    return c;
  }
  return ctx.fail(tokenIndex, `chain ${name} does not exist in table ${table.name}`);
}

/** The line being parsed, for errors that name one of its tokens (one per parse, reused). */
class LineCtx implements ExtCtx {
  ln = 0;
  tokens: readonly string[] = [];
  constructor(readonly file: string) {}
  fail(i: number, reason: string): never {
    throw new RulesetError(this.file, this.ln, reason, this.tokens[i] ?? '');
  }
}

function parseCommand(table: Table, tokens: string[], ln: number, ctx: LineCtx): void {
  ctx.ln = ln;
  ctx.tokens = tokens;
  const cmd = tokens[0]!;
  switch (cmd) {
    case '-A':
    case '--append':
    case '-I':
    case '--insert': {
      const chainName = tokens[1];
      if (chainName === undefined) ctx.fail(0, `"${cmd}" needs a chain name`);
      const chain = lookupChain(table, chainName, ctx, 1);
      let first = 2;
      let pos = chain.rules.length;
      if (cmd === '-I' || cmd === '--insert') {
        pos = 0;
        const n = tokens[2] !== undefined ? parseUint(tokens[2], 1, 0x7fffffff) : null;
        if (n !== null) {
          if (n > chain.rules.length + 1) ctx.fail(2, `index of insertion too big (chain ${chain.name} has ${chain.rules.length} rules)`);
          pos = n - 1;
          first = 3;
        }
      }
      const rule = parseRule(table, chain, tokens, first, ln, ctx);
      if (pos === chain.rules.length) chain.rules.push(rule);
      else chain.rules.splice(pos, 0, rule);
      return;
    }
    case '-N':
    case '--new-chain': {
      const name = tokens[1];
      if (name === undefined || tokens.length > 2) ctx.fail(0, `"${cmd}" needs exactly one chain name`);
      if (table.chainByName.has(name)) ctx.fail(1, `chain ${name} already exists`);
      checkChainName(name, (r) => ctx.fail(1, r));
      addChain(table, { name, builtin: false, policy: null, line: ln, rules: [] });
      return;
    }
    case '-P':
    case '--policy': {
      const name = tokens[1];
      const pol = tokens[2];
      if (name === undefined || pol === undefined || tokens.length > 3) ctx.fail(0, `"${cmd}" needs a chain and a policy`);
      const chain = lookupChain(table, name, ctx, 1);
      if (!chain.builtin) ctx.fail(1, `can't set a policy on user chain ${name}`);
      if (pol !== 'ACCEPT' && pol !== 'DROP') ctx.fail(2, `bad policy "${pol}" for built-in chain ${name} (ACCEPT or DROP)`);
      chain.policy = pol;
      return;
    }
    default:
      ctx.fail(0, `unsupported command "${cmd}" (iptables-save files hold -A rules; -I, -N and -P are also read)`);
  }
}

function parseRule(table: Table, chain: Chain, tokens: string[], first: number, ln: number, ctx: ExtCtx): Rule {
  const rule: Rule = {
    table: table.name,
    chain: chain.name,
    num: 0,
    line: ln,
    src: null,
    dst: null,
    inIface: null,
    outIface: null,
    proto: null,
    fragment: null,
    matches: [],
    target: null,
    goto: false,
  };
  const instances: MatchInstance[] = [];
  let target: TargetInstance | null = null;
  let implicitLoaded = false;
  let invertAt = -1;
  /** -s, -d, -i, -o, -p, -f given (bits of ONCE_*): each at most once. */
  let seenIp = 0;
  const n = tokens.length;

  let i = first;
  while (i < n) {
    const tok = tokens[i]!;
    if (tok === '!') {
      if (invertAt >= 0) ctx.fail(i, `multiple "!" flags not allowed`);
      invertAt = i;
      i++;
      continue;
    }
    const invert = invertAt >= 0;
    const invTok = invertAt;
    invertAt = -1;
    switch (tok) {
      case '-s':
      case '--source':
      case '--src':
      case '-d':
      case '--destination':
      case '--dst': {
        needArgs(tokens, i, 1, tok, ctx);
        const isSrc = tok === '-s' || tok === '--source' || tok === '--src';
        seenIp = once(ctx, i, seenIp, isSrc ? ONCE_S : ONCE_D, isSrc ? '-s' : '-d');
        const a = parseAddrOrFail(ctx, i + 1, tokens[i + 1]!, invert);
        // iptables-save omits 0.0.0.0/0 (save_ipv4_addr); it matches everything.
        const spec = a.mask === 0 && a.net === 0 && !invert ? null : a;
        if (isSrc) rule.src = spec;
        else rule.dst = spec;
        i += 2;
        continue;
      }
      case '-i':
      case '--in-interface':
      case '-o':
      case '--out-interface': {
        needArgs(tokens, i, 1, tok, ctx);
        const isIn = tok === '-i' || tok === '--in-interface';
        seenIp = once(ctx, i, seenIp, isIn ? ONCE_I : ONCE_O, isIn ? '-i' : '-o');
        const name = tokens[i + 1]!;
        if (name.length === 0 || name.length > 15) ctx.fail(i + 1, `interface name "${name}" must be 1-15 characters (IFNAMSIZ 16)`);
        // iptables.c: -o is meaningless for incoming packets, -i for outgoing ones.
        if (isIn && (chain.name === 'OUTPUT' || chain.name === 'POSTROUTING')) ctx.fail(i, `can't use -i with ${chain.name}`);
        if (!isIn && (chain.name === 'PREROUTING' || chain.name === 'INPUT')) ctx.fail(i, `can't use -o with ${chain.name}`);
        const spec = name === '+' && !invert ? null : { name, invert };
        if (isIn) rule.inIface = spec;
        else rule.outIface = spec;
        i += 2;
        continue;
      }
      case '-p':
      case '--protocol': {
        needArgs(tokens, i, 1, tok, ctx);
        seenIp = once(ctx, i, seenIp, ONCE_P, '-p');
        const text = tokens[i + 1]!;
        const num = parseProtocol(text);
        if (num === null) ctx.fail(i + 1, `unknown protocol "${text}" specified`);
        if (num === 0 && invert) ctx.fail(invTok, `rule would never match protocol`);
        rule.proto = num === 0 ? null : { num, text: protoSaveText(num, text), invert };
        i += 2;
        continue;
      }
      case '-f':
      case '--fragment':
      case '--fragments':
        seenIp = once(ctx, i, seenIp, ONCE_F, '-f');
        rule.fragment = { invert };
        i += 1;
        continue;
      case '-m':
      case '--match': {
        if (invert) ctx.fail(invTok, `unexpected "!" before ${tok}`);
        needArgs(tokens, i, 1, tok, ctx);
        const name = tokens[i + 1]!;
        const ext = MATCH_EXTENSIONS.get(name);
        if (!ext) {
          if (UNSUPPORTED_MATCHES.has(name)) ctx.fail(i + 1, `match "-m ${name}" is not supported by dpemu`);
          ctx.fail(i + 1, `unknown match "-m ${name}"`);
        }
        instances.push({ ext, match: ext.create(name, i), seen: new Set(), implicit: false });
        i += 2;
        continue;
      }
      case '-j':
      case '--jump':
      case '-g':
      case '--goto': {
        if (invert) ctx.fail(invTok, `unexpected "!" before ${tok}`);
        needArgs(tokens, i, 1, tok, ctx);
        if (target || rule.target) ctx.fail(i, `multiple -j/-g flags not allowed`);
        const isGoto = tok === '-g' || tok === '--goto';
        const name = tokens[i + 1]!;
        const ext = TARGET_EXTENSIONS.get(name);
        const userChain = table.chainByName.get(name);
        if (isGoto || !ext) {
          if (userChain === undefined) {
            if (TABLE_BUILTIN_CHAINS[table.name]!.includes(name)) ctx.fail(i + 1, `cannot jump to built-in chain ${name}`);
            if (ext) ctx.fail(i + 1, `"-g ${name}": goto needs a user chain, not a target`);
            if (UNSUPPORTED_TARGETS.has(name)) ctx.fail(i + 1, `target "-j ${name}" is not supported by dpemu`);
            ctx.fail(i + 1, `unknown target or chain "${tok} ${name}" (no chain ${name} in table ${table.name})`);
          }
          if (userChain.builtin) ctx.fail(i + 1, `cannot jump to built-in chain ${name}`);
          rule.target = { kind: 'chain', name, tokenIndex: i, chain: name };
          rule.goto = isGoto;
        } else {
          target = { ext, target: ext.create(name, i), seen: new Set() };
        }
        i += 2;
        continue;
      }
      case '-c':
      case '--set-counters':
        if (invert) ctx.fail(invTok, `unexpected "!" before ${tok}`);
        needArgs(tokens, i, 2, tok, ctx);
        if (!/^[0-9]+$/.test(tokens[i + 1]!) || !/^[0-9]+$/.test(tokens[i + 2]!)) ctx.fail(i, `bad counters "${tokens[i + 1]} ${tokens[i + 2]}"`);
        i += 3;
        continue;
      default:
        break;
    }
    if (!tok.startsWith('--') || tok.length < 3) {
      ctx.fail(i, tok.startsWith('-') ? `unknown option "${tok}"` : `unexpected argument "${tok}"`);
    }
    const optName = tok.slice(2);
    // Route the option: the target's, else the latest instance of a match that has it, else
    // load the -p protocol's match implicitly (iptables' load_proto).
    let routed = false;
    if (target) {
      const spec = findOpt(target.ext.opts, optName);
      if (spec) {
        const args = takeArgs(tokens, i, spec.args, spec.name, ctx);
        if (invert && !spec.invert) ctx.fail(invTok, `${target.ext.name}: option "--${spec.name}" cannot be inverted`);
        if (target.seen.has(spec.name)) ctx.fail(i, `${target.ext.name}: option "--${spec.name}" can only be used once`);
        target.seen.add(spec.name);
        target.ext.option(target.target, spec.name, args, invert, i, ctx);
        i += 1 + spec.args;
        routed = true;
      }
    }
    if (!routed) {
      let inst: MatchInstance | undefined;
      for (let k = instances.length - 1; k >= 0; k--) {
        const cand = instances[k]!;
        if (supersededAt(instances, k)) continue; // a later instance of the same match takes the options
        if (findOpt(cand.ext.opts, optName)) {
          inst = cand;
          break;
        }
      }
      if (!inst && !implicitLoaded && rule.proto !== null) {
        const protoExt = MATCH_EXTENSIONS.get(rule.proto.num === 6 ? 'tcp' : rule.proto.num === 17 ? 'udp' : rule.proto.num === 1 ? 'icmp' : '');
        if (protoExt && findOpt(protoExt.opts, optName) && !instances.some((x) => x.ext === protoExt)) {
          inst = { ext: protoExt, match: protoExt.create(protoExt.name, i), seen: new Set(), implicit: true };
          instances.push(inst);
          implicitLoaded = true;
        }
      }
      if (!inst) {
        const hint = ['dport', 'sport', 'destination-port', 'source-port', 'tcp-flags', 'syn'].includes(optName)
          ? ' (needs -p tcp/udp or -m tcp/udp before it)'
          : optName === 'icmp-type'
            ? ' (needs -p icmp)'
            : '';
        ctx.fail(i, `unknown option "${tok}"${hint}`);
      }
      const spec = findOpt(inst.ext.opts, optName)!;
      const args = takeArgs(tokens, i, spec.args, spec.name, ctx);
      if (invert && !spec.invert) ctx.fail(invTok, `${inst.ext.name}: option "--${spec.name}" cannot be inverted`);
      if (inst.seen.has(spec.name)) ctx.fail(i, `${inst.ext.name}: option "--${spec.name}" can only be used once`);
      inst.seen.add(spec.name);
      inst.ext.option(inst.match, spec.name, args, invert, i, ctx);
      i += 1 + spec.args;
    }
  }
  if (invertAt >= 0) ctx.fail(invertAt, `"!" at the end of the rule`);

  for (const inst of instances) {
    inst.ext.finish(inst.match, rule, inst.seen, ctx);
    rule.matches.push(inst.match);
  }
  // Exact length: the array grown by push keeps room for 17 (a big ruleset keeps ~100k of these).
  if (rule.matches.length !== 0) rule.matches = rule.matches.slice();
  if (target) {
    target.ext.finish(target.target, rule, target.seen, ctx);
    rule.target = target.target;
  }
  return rule;
}

/** The k arguments of the option at tokens[i] must be there, and none of them a "!". */
function needArgs(tokens: readonly string[], i: number, k: number, what: string, ctx: ExtCtx): void {
  if (i + k >= tokens.length) ctx.fail(i, `option "${what}" requires ${k === 1 ? 'an argument' : `${k} arguments`}`);
  for (let j = 1; j <= k; j++) {
    if (tokens[i + j] === '!') ctx.fail(i + j, `using intrapositioned negation ("${what} ! this") is not allowed, write "! ${what} this"`);
  }
}

/** The k arguments of the extension option --name at tokens[i]. */
function takeArgs(tokens: string[], i: number, k: number, name: string, ctx: ExtCtx): string[] {
  needArgs(tokens, i, k, `--${name}`, ctx);
  return tokens.slice(i + 1, i + 1 + k);
}

/** `seen` with `bit` added; an error when it was there already (-s, -d, -i, -o, -p, -f: once each). */
function once(ctx: ExtCtx, i: number, seen: number, bit: number, what: string): number {
  if (seen & bit) ctx.fail(i, `multiple ${what} flags not allowed`);
  return seen | bit;
}

const ONCE_S = 1;
const ONCE_D = 2;
const ONCE_I = 4;
const ONCE_O = 8;
const ONCE_P = 16;
const ONCE_F = 32;

/** Is there an instance of the same match after instances[k]? */
function supersededAt(instances: readonly MatchInstance[], k: number): boolean {
  const ext = instances[k]!.ext;
  for (let j = k + 1; j < instances.length; j++) if (instances[j]!.ext.name === ext.name) return true;
  return false;
}

function finishTable(table: Table): void {
  // Built-in chains first in hook order (as iptables-save prints them), then user chains in
  // the order they were declared.
  const builtins = TABLE_BUILTIN_CHAINS[table.name]!;
  table.chains.sort((a, b) => {
    const ia = a.builtin ? builtins.indexOf(a.name) : builtins.length;
    const ib = b.builtin ? builtins.indexOf(b.name) : builtins.length;
    return ia - ib;
  });
  for (const c of table.chains) c.rules.forEach((r, k) => (r.num = k + 1));
}

// ---------------------------------------------------------------------------------------------
// Whole-model checks (kernel: mark_source_chains, xt_check_match/xt_check_target hooks and
// tables; nf_tables: nft_chain_validate depth)

interface TargetRule {
  table: string;
  hooks: number;
  what: string;
}

const TARGET_RULES: Readonly<Record<string, TargetRule>> = {
  DNAT: { table: 'nat', hooks: (1 << 0) | (1 << 3), what: 'PREROUTING, OUTPUT' },
  REDIRECT: { table: 'nat', hooks: (1 << 0) | (1 << 3), what: 'PREROUTING, OUTPUT' },
  SNAT: { table: 'nat', hooks: (1 << 4) | (1 << 1), what: 'POSTROUTING, INPUT' },
  MASQUERADE: { table: 'nat', hooks: 1 << 4, what: 'POSTROUTING' },
  NETMAP: { table: 'nat', hooks: 0x1b, what: 'PREROUTING, INPUT, OUTPUT, POSTROUTING' },
  REJECT: { table: 'filter', hooks: (1 << 1) | (1 << 2) | (1 << 3), what: 'INPUT, FORWARD, OUTPUT' },
  CT: { table: 'raw', hooks: (1 << 0) | (1 << 3), what: 'PREROUTING, OUTPUT' },
  TRACE: { table: 'raw', hooks: (1 << 0) | (1 << 3), what: 'PREROUTING, OUTPUT' },
};

function hookNames(mask: number): string {
  return HOOK_NAME.filter((_, h) => mask & (1 << h)).join(', ');
}

/**
 * A table's jump graph by index: chains in table.chains order, rules flattened in that order;
 * `jump[k]` is the chain index that rule k jumps or goes to, -1 when it does neither.
 */
interface JumpGraph {
  rules: Rule[];
  /** First flat rule index of each chain; firstRule[chains.length] = rules.length. */
  firstRule: Int32Array;
  jump: Int32Array;
}

function jumpGraph(table: Table): JumpGraph {
  const index = new Map<string, number>();
  table.chains.forEach((c, i) => index.set(c.name, i));
  const rules: Rule[] = [];
  const firstRule = new Int32Array(table.chains.length + 1);
  table.chains.forEach((c, i) => {
    firstRule[i] = rules.length;
    for (const r of c.rules) rules.push(r);
  });
  firstRule[table.chains.length] = rules.length;
  const jump = new Int32Array(rules.length).fill(-1);
  rules.forEach((r, k) => {
    if (r.target?.kind === 'chain') jump[k] = index.get(r.target.chain)!;
  });
  return { rules, firstRule, jump };
}

/** Hooks from which each chain of a table is reachable (bit HOOK_*), by chain index. */
function chainHookMasks(table: Table, g: JumpGraph): Int32Array {
  const masks = new Int32Array(table.chains.length);
  const stack: number[] = [];
  table.chains.forEach((c, ci) => {
    if (!c.builtin) return;
    const bit = 1 << HOOK_OF_CHAIN[c.name]!;
    stack.push(ci);
    while (stack.length) {
      const x = stack.pop()!;
      if (masks[x]! & bit) continue;
      masks[x]! |= bit;
      for (let k = g.firstRule[x]!; k < g.firstRule[x + 1]!; k++) if (g.jump[k]! >= 0) stack.push(g.jump[k]!);
    }
  });
  return masks;
}

function validateModel(model: RulesetModel, maxDepth: number): void {
  const file = model.file;
  for (const table of model.tables) {
    const chains = table.chains;
    const g = jumpGraph(table);
    // Loops and depth: longest path (in jumps+gotos) from each chain, DFS with colours.
    const state = new Uint8Array(chains.length); // 1 visiting, 2 done
    const height = new Int32Array(chains.length);
    const deepest = new Int32Array(chains.length).fill(-1); // flat index of the rule on the longest path
    const visit = (c: number): number => {
      if (state[c] === 2) return height[c]!;
      state[c] = 1;
      let h = 0;
      let via = -1;
      for (let k = g.firstRule[c]!; k < g.firstRule[c + 1]!; k++) {
        const t = g.jump[k]!;
        if (t < 0) continue;
        if (state[t] === 1) {
          const r = g.rules[k]!;
          throw new RulesetError(file, r.line, `chain loop: ${chains[c]!.name} ${r.goto ? 'goes to' : 'jumps to'} ${chains[t]!.name}, which leads back to ${chains[c]!.name}`, chains[t]!.name);
        }
        const th = visit(t) + 1;
        if (th > h) {
          h = th;
          via = k;
        }
      }
      state[c] = 2;
      height[c] = h;
      deepest[c] = via;
      return h;
    };
    const masks = chainHookMasks(table, g);
    for (let ci = 0; ci < chains.length; ci++) {
      const c = chains[ci]!;
      if (!c.builtin) continue;
      const h = visit(ci);
      if (h >= maxDepth) {
        // Walk down the deepest path to name the rule that goes one level too deep.
        let level = 0;
        let k = deepest[ci]!;
        while (k >= 0 && level + 1 < maxDepth) {
          level++;
          k = deepest[g.jump[k]!]!;
        }
        const rr = g.rules[k]!;
        const to = (rr.target as { chain: string }).chain;
        throw new RulesetError(file, rr.line, `chain ${to} would be reached at depth ${maxDepth} from ${table.name}/${c.name} (nf_tables allows at most ${maxDepth - 1} nested jumps)`, to);
      }
    }
    // Targets and matches used from hooks they do not support.
    for (let ci = 0; ci < chains.length; ci++) {
      const c = chains[ci]!;
      const mask = masks[ci]!;
      for (const r of c.rules) {
        const t = r.target;
        if (t && t.kind !== 'chain') {
          const tr = TARGET_RULES[t.kind];
          if (tr) {
            if (tr.table !== table.name) {
              throw new RulesetError(file, r.line, `target "-j ${t.name}" is only valid in the ${tr.table} table, not ${table.name}`, t.name);
            }
            if (mask & ~tr.hooks) {
              throw new RulesetError(
                file,
                r.line,
                `target "-j ${t.name}" is only usable from ${tr.what}, but chain ${c.name} is reached from ${hookNames(mask)}`,
                t.name,
              );
            }
          }
        }
        for (const m of r.matches) {
          if (m.kind === 'addrtype') {
            if (m.limitIn && mask & ((1 << 4) | (1 << 3))) {
              throw new RulesetError(file, r.line, `addrtype --limit-iface-in is not valid in POSTROUTING and OUTPUT (chain ${c.name} is reached from ${hookNames(mask)})`, 'addrtype');
            }
            if (m.limitOut && mask & ((1 << 0) | (1 << 1))) {
              throw new RulesetError(file, r.line, `addrtype --limit-iface-out is not valid in PREROUTING and INPUT (chain ${c.name} is reached from ${hookNames(mask)})`, 'addrtype');
            }
          } else if (m.kind === 'rpfilter') {
            if (table.name !== 'raw' && table.name !== 'mangle') throw new RulesetError(file, r.line, `rpfilter is only valid in the raw or mangle table, not ${table.name}`, 'rpfilter');
            if (mask & ~1) throw new RulesetError(file, r.line, `rpfilter is only usable from PREROUTING, but chain ${c.name} is reached from ${hookNames(mask)}`, 'rpfilter');
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Printing

function matchExtension(m: Match): MatchExtension {
  if (m.kind === 'conntrack') return MATCH_EXTENSIONS.get(m.stateAlias ? 'state' : 'conntrack')!;
  return MATCH_EXTENSIONS.get(m.kind)!;
}

/** The rule's options after `-A CHAIN`, as iptables-save prints them (with a leading space). */
export function formatRuleBody(r: Rule): string {
  let s = '';
  if (r.src) s += `${r.src.invert ? ' !' : ''} -s ${saveAddrMask(r.src)}`;
  if (r.dst) s += `${r.dst.invert ? ' !' : ''} -d ${saveAddrMask(r.dst)}`;
  if (r.inIface) s += `${r.inIface.invert ? ' !' : ''} -i ${r.inIface.name}`;
  if (r.outIface) s += `${r.outIface.invert ? ' !' : ''} -o ${r.outIface.name}`;
  if (r.proto) s += `${r.proto.invert ? ' !' : ''} -p ${r.proto.text}`;
  if (r.fragment) s += `${r.fragment.invert ? ' !' : ''} -f`;
  for (const m of r.matches) {
    const ext = matchExtension(m);
    s += ` -m ${ext.name}${ext.save(m)}`;
  }
  const t = r.target;
  if (t) {
    if (t.kind === 'chain') s += ` -${r.goto ? 'g' : 'j'} ${t.chain}`;
    else s += ` -j ${t.name}${TARGET_EXTENSIONS.get(t.name)!.save(t)}`;
  }
  return s;
}

/** One rule as an iptables-save line ("-A CHAIN ..."). */
export function formatRule(r: Rule): string {
  return `-A ${r.chain}${formatRuleBody(r)}`;
}

/** The whole model in iptables-save format, counters [0:0]. */
export function formatIptablesSave(model: RulesetModel): string {
  const out: string[] = ['# Generated by dpemu'];
  for (const t of model.tables) {
    out.push(`*${t.name}`);
    for (const c of t.chains) out.push(`:${c.name} ${c.builtin ? c.policy : '-'} [0:0]`);
    for (const c of t.chains) for (const r of c.rules) out.push(formatRule(r));
    out.push('COMMIT');
  }
  out.push('# Completed by dpemu');
  return out.join('\n') + '\n';
}
