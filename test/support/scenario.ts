/**
 * A kernel differential scenario: a node file, a script of frames (each entering the node on
 * one of its interfaces), run once through the real kernel (test/support/kernel.ts) and once
 * through dpemu's CLI (`dpemu replay --node`), compared with test/support/compare.ts.
 *
 * A step's frame is either fixed or built from what the node sent before it (a reply to the
 * port a MASQUERADE chose on a clash): each side builds it from its own output. For dpemu that
 * means running the CLI on the frames so far first (dpemu is deterministic, so the longer run
 * repeats the shorter one's output).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeConfig } from '../../src/elements/linux/config.js';
import { expect } from 'vitest';
import { decodeFrame, tsharkProblems, type Decoded, type DecodeOptions, type InFrame, type OutFrame, type RunResult } from './compare.js';
import { KernelNode } from './kernel.js';
import { readPcapng, writePcapng, type PcapngRecord } from './pcapng.js';

export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const FIXTURES = join(REPO, 'test/fixtures/kernel');

export interface SentFrame {
  iface: string;
  d: Decoded;
  data: Uint8Array;
}

export interface StepContext {
  side: 'kernel' | 'dpemu';
  /** Everything the node sent so far, in order (per interface order is exact). */
  outputs: SentFrame[];
  /** The first frame the node sent (on `iface`, if given) that satisfies pred; throws naming `what` if none. */
  find(what: string, pred: (d: Decoded) => boolean, iface?: string): Decoded;
}

export interface Step {
  name: string;
  /** Interface of the node the frame enters on. */
  iface: string;
  frame?: Uint8Array;
  build?: (ctx: StepContext) => Uint8Array;
}

function context(side: 'kernel' | 'dpemu', outputs: SentFrame[]): StepContext {
  return {
    side,
    outputs,
    find(what, pred, iface) {
      const hit = outputs.find((o) => (iface === undefined || o.iface === iface) && pred(o.d));
      if (!hit) {
        const seen = outputs.map((o) => `    ${o.iface}: ${o.d.summary}`).join('\n');
        throw new Error(`${side}: no output frame is ${what}${iface ? ` on ${iface}` : ''}; it sent:\n${seen || '    (nothing)'}`);
      }
      return hit.d;
    },
  };
}

function stepFrame(step: Step, ctx: StepContext): Uint8Array {
  if (step.frame) return step.frame;
  if (step.build) return step.build(ctx);
  throw new Error(`step ${step.name}: neither frame nor build`);
}

export interface KernelRunResult extends RunResult {
  /** `iptables-save -c` after the run. */
  counters: string;
  /** /proc/net/nf_conntrack after the run. */
  conntrack: string;
  /** Frames the router sent before the first input (ARP, IGMP, ...: should be 0). */
  noiseBeforeStart: number;
}

export interface KernelRunOptions extends DecodeOptions {
  tag: string;
  /** Pause after each frame (default 2 ms). */
  pauseMs?: number;
  /** Wait after the last frame (default 150 ms). */
  settleMs?: number;
}

/** Where runs leave their captures and logs: $TMPDIR/dpemu-kernel/<tag>-XXXXXX (kept a day). */
export const ARTIFACTS = join(tmpdir(), 'dpemu-kernel');
let swept = false;

function artifactDir(tag: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  if (!swept) {
    swept = true;
    const dayAgo = Date.now() - 86_400_000;
    for (const e of readdirSync(ARTIFACTS)) {
      const p = join(ARTIFACTS, e);
      try {
        if (statSync(p).mtimeMs < dayAgo) rmSync(p, { recursive: true, force: true });
      } catch {
        /* another worker removed it */
      }
    }
  }
  return mkdtempSync(join(ARTIFACTS, `${tag}-`));
}

/** The interfaces a capture file of this node has (ether ones: the ones the kernel side can see). */
export function etherInterfaces(config: NodeConfig): string[] {
  return config.interfaces.filter((i) => i.kind === 'ether').map((i) => i.name);
}

const T0 = 1_700_000_000_000_000_000n;

function inputRecords(inputs: InFrame[]): PcapngRecord[] {
  return inputs.map((f, k) => ({ iface: f.iface, data: f.data, tsNs: T0 + BigInt(k) * 1_000_000n, comment: f.name }));
}

/**
 * Build the node in the kernel, run the steps, capture, tear the namespaces down. Writes
 * kernel-in.pcapng and kernel-out.pcapng in a temporary directory (named in the result).
 */
export async function runKernel(config: NodeConfig, steps: Step[], opts: KernelRunOptions): Promise<KernelRunResult> {
  const node = KernelNode.create(config, { tag: opts.tag });
  const dir = artifactDir(opts.tag);
  const inputs: InFrame[] = [];
  const outputs: OutFrame[] = [];
  const sent: SentFrame[] = [];
  let counters = '';
  let conntrack = '';
  let noise = 0;
  try {
    const session = await node.session(opts.pauseMs ?? 2);
    try {
      const take = (caps: { iface: string; data: Uint8Array; tsNs: bigint; after: number }[]): void => {
        for (const c of caps) {
          outputs.push({ iface: c.iface, data: c.data, tsNs: c.tsNs, after: c.after });
          sent.push({ iface: c.iface, data: c.data, d: decodeFrame(c.data, opts) });
        }
      };
      for (const step of steps) {
        const frame = stepFrame(step, context('kernel', sent));
        inputs.push({ iface: step.iface, data: frame, name: step.name, dynamic: !step.frame });
        take(await session.send(step.iface, frame));
      }
      take(await session.settle(opts.settleMs ?? 150));
      noise = session.noiseBeforeStart;
    } finally {
      await session.close();
    }
    counters = node.iptablesCounters();
    conntrack = node.conntrackTable();
  } finally {
    writeFileSync(join(dir, 'setup.log'), node.log.join('\n') + '\n');
    node.destroy();
  }
  const ifaces = etherInterfaces(config);
  writePcapng(join(dir, 'kernel-in.pcapng'), ifaces, inputRecords(inputs));
  writePcapng(
    join(dir, 'kernel-out.pcapng'),
    ifaces,
    outputs.map((o) => ({ iface: o.iface, data: o.data, tsNs: o.tsNs ?? 0n, comment: `after input ${o.after}` })),
  );
  writeFileSync(join(dir, 'iptables-counters.txt'), counters);
  writeFileSync(join(dir, 'conntrack.txt'), conntrack);
  return {
    side: 'kernel',
    inputs,
    outputs,
    counters,
    conntrack,
    noiseBeforeStart: noise,
    artifacts: { dir, in: join(dir, 'kernel-in.pcapng'), out: join(dir, 'kernel-out.pcapng') },
  };
}

export const DPEMU_MAIN = join(REPO, 'dist/cli/main.js');

export interface DpemuRunOptions extends DecodeOptions {
  tag: string;
  /** Extra CLI arguments (e.g. a seed). */
  extraArgs?: string[];
}

function dpemuOnce(nodeFile: string, config: NodeConfig, inputs: InFrame[], dir: string, name: string, extra: string[]): OutFrame[] {
  if (!existsSync(DPEMU_MAIN)) throw new Error(`${DPEMU_MAIN} does not exist: run npm run build first`);
  const inFile = join(dir, `${name}-in.pcapng`);
  const outFile = join(dir, `${name}-out.pcapng`);
  const sidecar = join(dir, `${name}-ingress.txt`);
  writePcapng(inFile, etherInterfaces(config), inputRecords(inputs));
  writeFileSync(sidecar, inputs.map((f) => f.iface).join('\n') + '\n');
  const args = [DPEMU_MAIN, 'replay', '--node', nodeFile, '--in', inFile, '--out', outFile, '--ingress', sidecar, ...extra];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`dpemu ${args.slice(1).join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`dpemu replay --node exited ${r.status}: ${(r.stderr || r.stdout).trim()}\n  command: node ${args.join(' ')}`);
  }
  return readPcapng(outFile).records.map((rec) => ({ iface: rec.iface, data: rec.data }));
}

/** Run the steps through `dpemu replay --node` (several runs when a step depends on earlier output). */
export function runDpemu(nodeFile: string, config: NodeConfig, steps: Step[], opts: DpemuRunOptions): RunResult {
  const dir = artifactDir(`${opts.tag}-dpemu`);
  const extra = opts.extraArgs ?? [];
  const inputs: InFrame[] = [];
  let outputs: OutFrame[] = [];
  let runs = 0;
  for (const step of steps) {
    if (!step.frame && inputs.length > 0) {
      outputs = dpemuOnce(nodeFile, config, inputs, dir, `prefix${runs++}`, extra);
    }
    const sent = outputs.map((o) => ({ iface: o.iface, data: o.data, d: decodeFrame(o.data, opts) }));
    const frame = stepFrame(step, context('dpemu', sent));
    inputs.push({ iface: step.iface, data: frame, name: step.name, dynamic: !step.frame });
  }
  outputs = dpemuOnce(nodeFile, config, inputs, dir, 'dpemu', extra);
  return { side: 'dpemu', inputs, outputs, artifacts: { dir, in: join(dir, 'dpemu-in.pcapng'), out: join(dir, 'dpemu-out.pcapng') } };
}

// ---------------------------------------------------------------------------------------------
// Helpers for assertions

/** The frames a run sent on one interface, decoded. */
export function sentOn(run: RunResult, iface: string, opts: DecodeOptions = {}): Decoded[] {
  return run.outputs.filter((o) => o.iface === iface).map((o) => decodeFrame(o.data, opts));
}

/** The frames sent because of input `name` (kernel runs only: attribution by capture time). */
export function sentAfter(run: RunResult, name: string, opts: DecodeOptions = {}): { iface: string; d: Decoded }[] {
  const k = run.inputs.findIndex((f) => f.name === name);
  if (k < 0) throw new Error(`no input step named ${name}`);
  return run.outputs.filter((o) => o.after === k).map((o) => ({ iface: o.iface, d: decodeFrame(o.data, opts) }));
}

/** The MAC of a node interface, as text. */
export function macOf(config: NodeConfig, iface: string): string {
  const i = config.interfaces.find((x) => x.name === iface);
  if (!i?.mac) throw new Error(`node has no interface ${iface} with a MAC`);
  return Array.from(i.mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The one frame the kernel sent because of input `name`, which must be on `iface`. */
export function expectOnlyFrame(run: RunResult, name: string, iface: string): Decoded {
  const out = sentAfter(run, name);
  expect(out.map((o) => `${o.iface}: ${o.d.summary}`), `what the kernel sent after "${name}"`).toHaveLength(1);
  expect(out[0]!.iface, `interface of what the kernel sent after "${name}"`).toBe(iface);
  return out[0]!.d;
}

/** The kernel sent nothing because of input `name`. */
export function expectNothingSent(run: RunResult, name: string): void {
  expect(sentAfter(run, name).map((o) => `${o.iface}: ${o.d.summary}`), `what the kernel sent after "${name}"`).toEqual([]);
}

/** Every frame of the run's output decodes without a problem, and tshark (checksums on) agrees. */
export function expectValidCapture(run: RunResult): void {
  expect(tsharkProblems(run.artifacts.out!)).toEqual([]);
  for (const [i, o] of run.outputs.entries()) expect(decodeFrame(o.data).problems, `frame ${i} on ${o.iface}`).toEqual([]);
}

/** The packet count of the first rule of `iptables-save -c` output that contains `text`. */
export function ruleCounter(run: KernelRunResult, text: string): number {
  const line = run.counters.split('\n').find((l) => l.includes(text));
  if (!line) throw new Error(`no rule with ${text} in\n${run.counters}`);
  return Number(/^\[(\d+):/.exec(line)![1]);
}
