/**
 * Interleaved measurement. This machine is shared and noisy, so every figure is the median of
 * several rounds, and the cases that are compared with each other run round-robin inside one
 * round (A B C, then C B A, ...) rather than one after the other: a burst of load from a
 * neighbour then hits every case, not one.
 *
 *  - Micro cases: each round is one benchmark.js run (its mean over ≥ minSamples samples);
 *    every operation is a loop over many frames, so the per-call overhead of benchmark.js is
 *    spread over them. The figure is the median over rounds of ns per frame.
 *  - Wall cases: each round is one whole run (a whole capture file), timed with
 *    process.hrtime, or a whole child process, timed from outside.
 */
import Benchmark from 'benchmark';
import type { Method, Result, Section } from './model.js';
import { invert, spread } from './stats.js';

export interface MicroCase {
  id: string;
  section: Section;
  name: string;
  framesPerOp: number;
  bytesPerOp: number;
  fn: () => void;
  x?: number;
  series?: string;
  note?: string;
}

export interface MicroOptions {
  rounds: number;
  /** benchmark.js maxTime per round, seconds. */
  maxTime: number;
  minSamples: number;
  /** benchmark.js minTime: the shortest sample, seconds (0 = benchmark.js's default, 50 ms here). */
  minTime: number;
  log: (s: string) => void;
}

/** Keep results observable so that the JIT cannot drop the work. */
export let blackhole = 0;
export function consume(x: number): void {
  blackhole = (blackhole + x) | 0;
}

function warm(fn: () => void, ms: number): void {
  const t0 = performance.now();
  let k = 0;
  while (k < 3 || (performance.now() - t0 < ms && k < 10_000)) {
    fn();
    k++;
  }
}

/** Per case: the ns/frame of each round, benchmark.js's relative margin of error, samples. */
interface Rounds {
  ns: number[];
  rme: number[];
  samples: number;
  error: string;
}

/** One benchmark.js run of `c` (a round). */
export function measureRound(c: MicroCase, o: Pick<MicroOptions, 'maxTime' | 'minSamples' | 'minTime'>): { ns: number; rme: number; samples: number } | { error: string } {
  const b = new Benchmark(c.name, c.fn, { maxTime: o.maxTime, minSamples: o.minSamples, minTime: o.minTime, initCount: 1 });
  b.run({ async: false });
  const err = (b as unknown as { error?: Error }).error;
  if (err) return { error: err.message };
  return { ns: (b.stats.mean * 1e9) / c.framesPerOp, rme: b.stats.rme, samples: b.stats.sample.length };
}

/** Warm a case up (JIT) before its rounds; its error, if it throws. */
export function warmCase(fn: () => void, ms = 30): string {
  try {
    warm(fn, ms);
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

/** Round order: forward on even rounds, reversed on odd ones. */
function roundOrder(n: number, r: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (r % 2 === 1) order.reverse();
  return order;
}

function microResult(c: Omit<MicroCase, 'fn'>, p: Rounds): Result {
  const base: Result = { id: c.id, section: c.section, name: c.name, method: 'benchmark.js', status: 'ok', frames: c.framesPerOp, bytes: c.bytesPerOp, x: c.x, series: c.series, note: c.note };
  if (p.error || p.ns.length === 0) return { ...base, status: 'failed', note: p.error || 'no samples' };
  const ns = spread(p.ns);
  return {
    ...base,
    ns,
    values: p.ns,
    fps: invert(ns, 1e9),
    mbps: c.bytesPerOp > 0 ? (c.bytesPerOp / c.framesPerOp / ns.median) * 1e3 : undefined,
    samples: p.samples,
    rme: spread(p.rme).median,
  };
}

export function runMicro(cases: MicroCase[], o: MicroOptions): Result[] {
  const per: Rounds[] = cases.map((c) => ({ ns: [], rme: [], samples: 0, error: warmCase(c.fn) }));
  for (let r = 0; r < o.rounds; r++) {
    for (const i of roundOrder(cases.length, r)) {
      const c = cases[i]!;
      const p = per[i]!;
      if (p.error) continue;
      const m = measureRound(c, o);
      if ('error' in m) {
        p.error = m.error;
        o.log(`  ${c.name}: failed: ${m.error}`);
        continue;
      }
      p.ns.push(m.ns);
      p.rme.push(m.rme);
      p.samples += m.samples;
    }
  }
  return cases.map((c, i) => microResult(c, per[i]!));
}

/**
 * A micro case built and measured in a worker thread of its own (isolated-worker.ts): its own
 * V8 isolate, so its code is compiled for it alone. In one isolate, cases that run the same
 * functions over different configurations (ten LinuxNode set-ups) share the functions' type
 * feedback, which then describes all of them, and each is measured slower than it runs alone
 * (the full node pipeline ~430 vs ~290 ns/frame); a user's process runs one configuration.
 * `module` exports `buildCase(spec)`, which returns the MicroCase (spec is structured-cloned).
 */
export interface IsolatedCase {
  id: string;
  module: string;
  spec: unknown;
}

type WorkerReply = { ok: true; meta: Omit<MicroCase, 'fn'> } | { ok: true; ns: number; rme: number; samples: number } | { ok: false; error: string };

/**
 * runMicro over isolated cases: every case gets its worker thread, and the rounds still run
 * interleaved (one case at a time, the others wait on their port), so the per-round differences
 * between cases keep their meaning.
 */
export async function runMicroIsolated(cases: IsolatedCase[], o: MicroOptions): Promise<Result[]> {
  const { Worker } = await import('node:worker_threads');
  const file = new URL('./isolated-worker.js', import.meta.url);
  const timing = { maxTime: o.maxTime, minSamples: o.minSamples, minTime: o.minTime };
  // A fresh isolate has compiled nothing: warm up longer than runMicro's cases, which share
  // their code's warm-up with the cases before them. Measured here: after 300 ms, rounds of
  // the same case still differ by up to 2x (220-430 ns/frame); after 1.5 s they agree within
  // the machine's noise.
  // (Shorter when the rounds themselves are made tiny, as the suite's own test does.)
  const warmMs = Math.min(1500, Math.max(200, o.maxTime * 50_000));
  // Each worker's replies in order (its first, the description, may come before anyone asks).
  const inbox = cases.map(() => ({ queue: [] as WorkerReply[], waiting: null as ((r: WorkerReply) => void) | null }));
  const workers: InstanceType<typeof Worker>[] = [];
  const start = (i: number): void => {
    const w = new Worker(file, { workerData: { module: cases[i]!.module, spec: cases[i]!.spec, timing, warmMs } });
    const box = inbox[i]!;
    const deliver = (r: WorkerReply): void => {
      const f = box.waiting;
      box.waiting = null;
      if (f) f(r);
      else box.queue.push(r);
    };
    w.on('message', deliver);
    w.on('error', (e: Error) => deliver({ ok: false, error: `worker: ${e.message}` }));
    workers[i] = w;
  };
  const ask = (i: number, msg: unknown): Promise<WorkerReply> => {
    if (msg !== null) workers[i]!.postMessage(msg);
    const box = inbox[i]!;
    const r = box.queue.shift();
    return r !== undefined ? Promise.resolve(r) : new Promise((resolve) => (box.waiting = resolve));
  };
  try {
    // Set-up and warm-up, one case at a time (a case's first reply is its description).
    const metas: Omit<MicroCase, 'fn'>[] = [];
    const per: Rounds[] = [];
    for (let i = 0; i < cases.length; i++) {
      // One at a time: a case warms up (and V8 compiles its code) without the others' load.
      start(i);
      const r = await ask(i, null);
      const fallback = { id: cases[i]!.id, section: 'node' as Section, name: cases[i]!.id, framesPerOp: 1, bytesPerOp: 0 };
      metas.push(r.ok && 'meta' in r ? r.meta : fallback);
      per.push({ ns: [], rme: [], samples: 0, error: r.ok ? '' : r.error });
      if (!r.ok) o.log(`  ${cases[i]!.id}: failed: ${r.error}`);
    }
    for (let r = 0; r < o.rounds; r++) {
      for (const i of roundOrder(cases.length, r)) {
        const p = per[i]!;
        if (p.error) continue;
        const m = await ask(i, 'round');
        if (!m.ok || !('ns' in m)) {
          p.error = m.ok ? 'no measurement' : m.error;
          o.log(`  ${metas[i]!.name}: failed: ${p.error}`);
          continue;
        }
        p.ns.push(m.ns);
        p.rme.push(m.rme);
        p.samples += m.samples;
      }
    }
    return metas.map((m, i) => microResult(m, per[i]!));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** One figure a wall case yields per run. */
export interface WallRow {
  key: string;
  id: string;
  section: Section;
  name: string;
  method: Method;
  /** Attach the run's peak RSS to this row. */
  rss?: boolean;
  /** Attach the run's CPU time (whole process) to this row. */
  cpu?: boolean;
  /** Report the time of the whole run, not per frame (a fixed cost such as set-up). */
  perRun?: boolean;
  x?: number;
  series?: string;
  workers?: number;
  note?: string;
}

/** One run: ns for each row key (the whole run), and the peak RSS (MB) and CPU ns if known. */
export type WallSample = Record<string, number> & { rssMB?: number; cpuNs?: number };

export interface WallCase {
  name: string;
  frames: number;
  bytes: number;
  rows: WallRow[];
  run: () => WallSample;
  /** A short run before the rounds (JIT, page cache), not counted. */
  warm?: () => void;
}

export function runWall(cases: WallCase[], rounds: number, log: (s: string) => void): Result[] {
  const per = cases.map(() => ({ samples: [] as WallSample[], error: '' }));
  cases.forEach((c, i) => {
    try {
      c.warm?.();
    } catch (e) {
      per[i]!.error = (e as Error).message;
      log(`  ${c.name}: failed: ${per[i]!.error}`);
    }
  });
  for (let r = 0; r < rounds; r++) {
    const order = cases.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) {
      const c = cases[i]!;
      const p = per[i]!;
      if (p.error) continue;
      try {
        const s = c.run();
        p.samples.push(s);
        const first = c.rows[0]!;
        log(`  round ${r + 1}/${rounds}  ${c.name}: ${((c.frames * 1e9) / s[first.key]! / 1e6).toFixed(3)} Mframes/s${s.rssMB ? `, ${s.rssMB.toFixed(0)} MB` : ''}`);
      } catch (e) {
        p.error = (e as Error).message;
        log(`  ${c.name}: failed: ${p.error}`);
      }
    }
  }
  const out: Result[] = [];
  cases.forEach((c, i) => {
    const p = per[i]!;
    for (const row of c.rows) {
      const base: Result = {
        id: row.id,
        section: row.section,
        name: row.name,
        method: row.method,
        status: 'ok',
        frames: c.frames,
        bytes: c.bytes,
        workers: row.workers,
        x: row.x,
        series: row.series,
        note: row.note,
        perRun: row.perRun,
      };
      const vals = p.samples.map((s) => s[row.key]!).filter((v) => v !== undefined && Number.isFinite(v));
      if (p.error || vals.length === 0) {
        out.push({ ...base, status: 'failed', note: p.error || 'no runs' });
        continue;
      }
      const per = row.perRun ? 1 : c.frames;
      const perFrame = vals.map((v) => v / per);
      const ns = spread(perFrame);
      const res: Result = row.perRun
        ? { ...base, ns, values: perFrame }
        : { ...base, ns, values: perFrame, fps: invert(ns, 1e9), mbps: c.bytes > 0 ? (c.bytes / c.frames / ns.median) * 1e3 : undefined };
      if (row.rss) {
        const rss = p.samples.map((s) => s.rssMB).filter((v): v is number => v !== undefined);
        if (rss.length) res.rssMB = spread(rss);
      }
      if (row.cpu) {
        const cpu = p.samples.map((s) => s.cpuNs).filter((v): v is number => v !== undefined);
        if (cpu.length) res.cpuNs = spread(cpu.map((v) => v / per));
      }
      out.push(res);
    }
  });
  return out;
}

export function pendingRow(id: string, section: Section, name: string, note: string, extra: Partial<Result> = {}): Result {
  return { id, section, name, method: 'process', status: 'pending', frames: 0, bytes: 0, note, ...extra };
}
