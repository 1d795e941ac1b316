import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { replayIdentity, ReplayUsageError, type ReplayResult } from '../engine/replay.js';
import { replayNode, type NodeReplayResult } from '../engine/node-replay.js';
import { loadNodeConfig } from '../elements/linux/config.js';
import type { CaptureFormat } from '../pcap/types.js';
import { EXIT_INPUT, UserError } from './errors.js';
import { bytes, int, rate, table } from './format.js';

interface ReplayCliOptions {
  node?: string;
  ingress?: string;
  seed: string;
  comments: boolean;
  in: string;
  out: string;
  format?: CaptureFormat;
  ns: boolean;
  onDamage: 'stop' | 'skip';
  json: boolean;
  stats?: string;
}

/** Output format: explicit, else from the extension (.pcap → pcap), else pcapng. */
export function outputFormat(out: string, explicit?: CaptureFormat): CaptureFormat {
  if (explicit) return explicit;
  const ext = extname(out).toLowerCase();
  return ext === '.pcap' || ext === '.cap' || ext === '.dmp' ? 'pcap' : 'pcapng';
}

export function runReplay(opts: ReplayCliOptions): void {
  const format = outputFormat(opts.out, opts.format);
  const seed = Number(opts.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UserError(`--seed must be an integer 0..4294967295, not "${opts.seed}"`);
  if (opts.ingress && !opts.node) throw new UserError('--ingress goes with --node');
  let result: ReplayResult | NodeReplayResult;
  let pipeline = 'identity pipeline';
  try {
    if (opts.node) {
      const node = loadNodeConfig(opts.node);
      pipeline = `node ${node.name}`;
      result = replayNode({ inPath: opts.in, outPath: opts.out, format, nanosecond: opts.ns, onDamage: opts.onDamage, node, ingressFile: opts.ingress, seed, comments: opts.comments && format === 'pcapng' });
    } else {
      result = replayIdentity({ inPath: opts.in, outPath: opts.out, format, nanosecond: opts.ns, onDamage: opts.onDamage });
    }
  } catch (e) {
    if (e instanceof ReplayUsageError) throw new UserError(e.message);
    throw e;
  }
  const { acct, elapsedNs, damage, skipped } = result;
  const rows: [string, string][] = [
    ['in', `${int(acct.in)} frames, ${bytes(acct.bytesIn)}`],
    ['out', `${int(acct.written)} frames, ${bytes(acct.bytesOut)}`],
    ['  of them generated (ICMP errors, resets)', int(acct.generated)],
    ['left the model', int(acct.left)],
    ['delivered', int(acct.delivered)],
    ['dropped', int(acct.droppedTotal())],
    ...[...acct.dropped].sort((a, b) => b[1] - a[1]).map(([k, v]): [string, string] => [`  ${k}`, int(v)]),
    ['errors', int(acct.errorsTotal())],
    ...[...acct.errors].map(([k, v]): [string, string] => [`  ${k}`, int(v)]),
    ...(opts.node ? [] : ([
      ['non-IPv4 (carried through)', int(acct.nonIpv4)],
      ['malformed IPv4 (carried through)', int(acct.malformed)],
      ['snaplen-truncated IPv4', int(acct.truncated)],
    ] as [string, string][])),
    ['rate', `${rate(acct.in, elapsedNs)} frames/s, ${rate(acct.bytesIn, elapsedNs)}B/s, ${(elapsedNs / 1e9).toFixed(3)} s`],
  ];
  process.stderr.write(`dpemu replay: ${opts.in} -> ${opts.out} (${format}, ${pipeline})\n${table(rows)}\n`);
  for (const s of skipped) process.stderr.write(`dpemu: warning: skipped damaged data: ${s}\n`);
  const json = {
    input: opts.in,
    output: opts.out,
    format,
    pipeline,
    elapsedSec: elapsedNs / 1e9,
    framesPerSec: elapsedNs > 0 ? (acct.in * 1e9) / elapsedNs : 0,
    ...acct.toJSON(),
    skippedDamage: skipped.map((e) => e.message),
    damage: damage?.message,
  };
  if (opts.stats) writeFileSync(opts.stats, JSON.stringify(json, null, 2) + '\n');
  if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  if (damage) {
    process.stderr.write(`dpemu: ${damage.message}\n`);
    process.stderr.write(`dpemu: the input is damaged; ${opts.out} holds the ${int(acct.in)} frames before the damage\n`);
    process.exitCode = EXIT_INPUT;
  }
}
