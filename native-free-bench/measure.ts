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

export function runMicro(cases: MicroCase[], o: MicroOptions): Result[] {
  const per = cases.map(() => ({ ns: [] as number[], rme: [] as number[], samples: 0, error: '' }));
  for (const c of cases) {
    try {
      warm(c.fn, 30);
    } catch (e) {
      per[cases.indexOf(c)]!.error = (e as Error).message;
    }
  }
  for (let r = 0; r < o.rounds; r++) {
    const order = cases.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) {
      const c = cases[i]!;
      const p = per[i]!;
      if (p.error) continue;
      const b = new Benchmark(c.name, c.fn, { maxTime: o.maxTime, minSamples: o.minSamples, minTime: o.minTime, initCount: 1 });
      b.run({ async: false });
      const err = (b as unknown as { error?: Error }).error;
      if (err) {
        p.error = err.message;
        o.log(`  ${c.name}: failed: ${err.message}`);
        continue;
      }
      p.ns.push((b.stats.mean * 1e9) / c.framesPerOp);
      p.rme.push(b.stats.rme);
      p.samples += b.stats.sample.length;
    }
  }
  return cases.map((c, i) => {
    const p = per[i]!;
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
  });
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
      };
      const vals = p.samples.map((s) => s[row.key]!).filter((v) => v !== undefined && Number.isFinite(v));
      if (p.error || vals.length === 0) {
        out.push({ ...base, status: 'failed', note: p.error || 'no runs' });
        continue;
      }
      const perFrame = vals.map((v) => v / c.frames);
      const ns = spread(perFrame);
      const res: Result = { ...base, ns, values: perFrame, fps: invert(ns, 1e9), mbps: c.bytes > 0 ? (c.bytes / c.frames / ns.median) * 1e3 : undefined };
      if (row.rss) {
        const rss = p.samples.map((s) => s.rssMB).filter((v): v is number => v !== undefined);
        if (rss.length) res.rssMB = spread(rss);
      }
      if (row.cpu) {
        const cpu = p.samples.map((s) => s.cpuNs).filter((v): v is number => v !== undefined);
        if (cpu.length) res.cpuNs = spread(cpu.map((v) => v / c.frames));
      }
      out.push(res);
    }
  });
  return out;
}

export function pendingRow(id: string, section: Section, name: string, note: string, extra: Partial<Result> = {}): Result {
  return { id, section, name, method: 'process', status: 'pending', frames: 0, bytes: 0, note, ...extra };
}
