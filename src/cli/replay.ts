import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { isatty } from 'node:tty';
import { replayIdentity, ReplayUsageError, type ReplayResult } from '../engine/replay.js';
import { replayNode } from '../engine/node-replay.js';
import { InputInterrupted } from '../engine/pipeline.js';
import { StageError } from '../engine/stages.js';
import { ProgressBar } from '../engine/progress.js';
import { loadNodeConfig } from '../elements/linux/config.js';
import { abortAllWriters, WriterError } from '../pcap/writer.js';
import type { CaptureFormat } from '../pcap/types.js';
import { EXIT_INPUT, EXIT_INTERRUPTED, UserError } from './errors.js';
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
  workers?: string;
  progress: boolean;
}

/** Output format: explicit, else from the extension (.pcap → pcap), else pcapng. */
export function outputFormat(out: string, explicit?: CaptureFormat): CaptureFormat {
  if (explicit) return explicit;
  const ext = extname(out).toLowerCase();
  return ext === '.pcap' || ext === '.cap' || ext === '.dmp' ? 'pcap' : 'pcapng';
}

/** --workers: a count, or undefined (not given: the engine picks, autoWorkers). */
export function parseWorkers(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new UserError(`--workers must be an integer 1..256, not "${v}"`);
  return n;
}

/**
 * SIGINT: the first stops reading (the frames read are finished and written, the output is
 * committed); a second one stops at once and removes the output. SIGTERM stops at once.
 */
function onSignals(ctrl: AbortController, progress: ProgressBar | null): () => void {
  let count = 0;
  const int = (): void => {
    count++;
    if (count === 1) {
      progress?.stop();
      process.stderr.write('\ndpemu: interrupted: finishing the frames in flight (Ctrl-C again to stop at once)\n');
      ctrl.abort();
      return;
    }
    abortAllWriters();
    process.stderr.write('dpemu: stopped; no output written\n');
    process.exit(EXIT_INTERRUPTED);
  };
  const term = (): void => {
    abortAllWriters();
    process.exit(143);
  };
  process.on('SIGINT', int);
  process.on('SIGTERM', term);
  return () => {
    process.off('SIGINT', int);
    process.off('SIGTERM', term);
  };
}

/** What each thread did, from the engine's per-thread figures: "main (reader, writer) + 1 encoder". */
function threadsText(stages: readonly { stage: string }[]): string {
  if (stages.length <= 1) return '1 (everything in the main thread)';
  const encoders = stages.filter((s) => s.stage.startsWith('encoder')).length;
  const others = stages.filter((s) => !s.stage.startsWith('encoder')).map((s) => s.stage);
  return `${stages.length}: ${others.join(' + ')}${encoders > 0 ? ` + ${encoders} encoder${encoders === 1 ? '' : 's'}` : ''}`;
}

export async function runReplay(opts: ReplayCliOptions): Promise<void> {
  const format = outputFormat(opts.out, opts.format);
  const seed = Number(opts.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UserError(`--seed must be an integer 0..4294967295, not "${opts.seed}"`);
  if (opts.ingress && !opts.node) throw new UserError('--ingress goes with --node');
  if (opts.out === '-' && opts.json) throw new UserError('--json prints on standard output, which --out - uses for the capture; use --stats FILE');
  // isatty, not process.stdout.isTTY: that would open stdout as a non-blocking stream.
  if (opts.out === '-' && isatty(1)) throw new UserError('--out -: standard output is a terminal; redirect it or pipe it (e.g. to wireshark -k -i -)');
  const workers = parseWorkers(opts.workers);
  const ctrl = new AbortController();
  const progress = opts.progress && process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
  const off = onSignals(ctrl, progress);
  let result: ReplayResult;
  let pipeline = 'identity pipeline';
  const common = {
    inPath: opts.in,
    outPath: opts.out,
    format,
    nanosecond: opts.ns,
    onDamage: opts.onDamage,
    workers,
    // Undocumented, for measurements: the number of encoder threads.
    encoders: process.env.DPEMU_ENCODERS !== undefined ? Number(process.env.DPEMU_ENCODERS) : undefined,
    // Undocumented, for tests: the size of the comment arena (small: it is reset often).
    commentArena: process.env.DPEMU_COMMENT_ARENA !== undefined ? Number(process.env.DPEMU_COMMENT_ARENA) : undefined,
    signal: ctrl.signal,
    onProgress: progress ? (p: Parameters<ProgressBar['update']>[0]) => progress.update(p) : undefined,
  };
  try {
    if (opts.node) {
      const node = loadNodeConfig(opts.node);
      pipeline = `node ${node.name}`;
      result = await replayNode({ ...common, node, ingressFile: opts.ingress, seed, comments: opts.comments && format === 'pcapng' });
    } else {
      result = await replayIdentity(common);
    }
  } catch (e) {
    if (e instanceof ReplayUsageError) throw new UserError(e.message);
    if (e instanceof InputInterrupted) throw new UserError(e.message, EXIT_INTERRUPTED);
    if (e instanceof StageError) {
      if (e.failure.kind === 'input') throw new UserError(e.message, EXIT_INPUT);
      if (e.failure.kind === 'output') throw new WriterError(`${opts.out}: ${e.message}`, opts.out);
    }
    throw e;
  } finally {
    progress?.stop();
    off();
  }
  const { acct, elapsedNs, damage, skipped, interrupted } = result;
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
    ...(opts.node
      ? []
      : ([
          ['non-IPv4 (carried through)', int(acct.nonIpv4)],
          ['malformed IPv4 (carried through)', int(acct.malformed)],
          ['snaplen-truncated IPv4', int(acct.truncated)],
        ] as [string, string][])),
    ['accounting', acct.balanced() ? 'in = left + delivered + dropped + errors' : `UNBALANCED: ${int(acct.in)} in, ${int(acct.left + acct.delivered + acct.droppedTotal() + acct.errorsTotal())} accounted for`],
    ['rate', `${rate(acct.in, elapsedNs)} frames/s, ${rate(acct.bytesIn, elapsedNs)}B/s, ${(elapsedNs / 1e9).toFixed(3)} s`],
    ['threads', threadsText(result.stages) + (result.autoWorkers !== undefined ? `; ${result.autoWorkers}` : '')],
    ...(result.commentsDropped > 0 ? ([['comments not written', `${int(result.commentsDropped)} (pcap has no comments; pcapng keeps them)`]] as [string, string][]) : []),
    ...(interrupted ? ([['interrupted', `yes: the output holds the ${int(acct.in)} frames read before SIGINT`]] as [string, string][]) : []),
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
    interrupted,
    workers: result.workers,
    autoWorkers: result.autoWorkers ?? null,
    commentsDropped: result.commentsDropped,
    encoders: result.encoders,
    stages: result.stages,
  };
  if (opts.stats) writeFileSync(opts.stats, JSON.stringify(json, null, 2) + '\n');
  if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  if (interrupted) {
    process.stderr.write(`dpemu: interrupted; ${opts.out} holds the ${int(acct.in)} frames read before\n`);
    process.exitCode = EXIT_INTERRUPTED;
  } else if (damage) {
    process.stderr.write(`dpemu: ${damage.message}\n`);
    process.stderr.write(`dpemu: the input is damaged; ${opts.out} holds the ${int(acct.in)} frames before the damage\n`);
    process.exitCode = EXIT_INPUT;
  }
}
