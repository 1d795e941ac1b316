/**
 * The engine's worker threads (piscina runs this file). Each thread gets ONE task for the whole
 * run, a role, and the shared slots and control block; it then drains its ring until the
 * producer says the stream has ended, waiting on its doorbell (Atomics.wait) when there is
 * nothing to do. No message is exchanged per batch.
 *
 *  - sequencer: input slots (from the reader) → the node → output slots (records, or file
 *    bytes when there are no encoder threads);
 *  - encoder e of K: output slots e, e+K, e+2K... → file bytes, for the writer (main thread).
 *
 * A failure is caught, reported in the task's result (stage, frame, message), and stops every
 * stage through the control block's abort flag.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { AccountingJson } from './accounting.js';
import {
  C_ABORT,
  C_IN_END,
  C_MAIN_BELL,
  C_OUT_END,
  C_SEQ_BELL,
  CF_SEQ_FRAME,
  CF_SEQ_FRAMES_DONE,
  Control,
  H_COUNT,
  H_DATA,
  H_SRC,
  S_ENCODED,
  S_FREE,
  S_READY,
  Slot,
  type ControlLayout,
  type SlotGeometry,
} from './slots.js';
import { Encoder, EncodeSink, failureOf, faultFromEnv, RecordSink, threadCpuMs, type OutSink, type StageFailure } from './stages.js';
import type { NodeStageOptions, SequencerStage } from './sequencer.js';

export interface SlotRef {
  sab: SharedArrayBuffer;
  g: SlotGeometry;
}

/** A slot's buffer was replaced by a larger one (sent before the slot is published). */
export interface SlotGrowth {
  k: number;
  gen: number;
  slot: SlotRef;
}

interface TaskBase {
  control: SharedArrayBuffer;
  layout: ControlLayout;
  fmt: number;
  /** Where slot replacements arrive. */
  port: MessagePort;
  /** Date.now() when the pool was created (for the start-up time). */
  startEpochMs: number;
}

export interface SequencerTask extends TaskBase {
  role: 'sequencer';
  inSlots: SlotRef[];
  outSlots: SlotRef[];
  stage: NodeStageOptions;
  outId: Int32Array;
  nIf: number;
}

export interface EncoderTask extends TaskBase {
  role: 'encoder';
  index: number;
  /** The ring it encodes (the output ring; for the identity pipeline, the only ring). */
  slots: SlotRef[];
  identity: boolean;
  /** Identity pipeline: slot buffers can be replaced (records larger than a slot). */
  growable: boolean;
  /**
   * The input ring of a sequencer in the main thread: records of an output slot with H_SRC
   * = k + 1 and aux 1 are frames of input slot k (rewritten in place by the node), not copies.
   * Its buffers can be replaced (records larger than a slot).
   */
  inSlots?: SlotRef[];
  /** The comment arena of a sequencer in the main thread (comment-arena.ts). */
  comments?: SharedArrayBuffer;
}

export type EngineTask = SequencerTask | EncoderTask;

export interface StageStats {
  stage: string;
  /** CPU time of the thread during the run (ms; -1 if unknown). */
  cpuMs: number;
  /** Time spent waiting for the neighbouring stages (ms). */
  waitMs: number;
  /** Wall time of the task (ms). */
  wallMs: number;
  /** Worker threads: ms from the pool's creation to the start of the task (thread and module start-up). */
  startMs?: number;
}

export interface TaskResult {
  role: 'sequencer' | 'encoder';
  stats: StageStats;
  failure?: StageFailure;
  /** Stopped because another stage failed (or the run was torn down). */
  aborted?: boolean;
  acct?: AccountingJson;
}

class Aborted extends Error {}

/** Waits of one thread on its doorbell (saying so in the bell's sleep cell, see Control.ring). */
class Waiter {
  waitNs = 0;
  private readonly sleep: number;
  constructor(
    private readonly c: Int32Array,
    private readonly bell: number,
    ctl: Control,
  ) {
    this.sleep = ctl.sleepOf(bell);
  }

  /** Until cond() holds; throws Aborted when the run is stopped. */
  until(cond: () => boolean): void {
    const c = this.c;
    for (;;) {
      if (cond()) return;
      const b = Atomics.load(c, this.bell);
      Atomics.store(c, this.sleep, 1);
      if (cond()) {
        Atomics.store(c, this.sleep, 0);
        return;
      }
      if (Atomics.load(c, C_ABORT) !== 0) {
        Atomics.store(c, this.sleep, 0);
        throw new Aborted();
      }
      const t0 = process.hrtime.bigint();
      Atomics.wait(c, this.bell, b, 1000);
      Atomics.store(c, this.sleep, 0);
      this.waitNs += Number(process.hrtime.bigint() - t0);
    }
  }
}

/** Local views of a ring whose buffers the producer may replace. */
class Ring {
  readonly slots: Slot[];
  private readonly gens: number[];
  constructor(
    refs: SlotRef[],
    private readonly port: MessagePort,
    private readonly c: Int32Array,
    private readonly genCell: (k: number) => number,
  ) {
    this.slots = refs.map((r) => new Slot(r.sab, r.g));
    this.gens = refs.map(() => 0);
  }

  /** Slot k, with its current buffer. */
  get(k: number): Slot {
    const g = Atomics.load(this.c, this.genCell(k));
    while (this.gens[k] !== g) {
      const m = receiveMessageOnPort(this.port);
      if (m === undefined) throw new Error(`slot ${k}: buffer generation ${g} announced but not received`);
      const u = m.message as SlotGrowth;
      this.slots[u.k] = new Slot(u.slot.sab, u.slot.g);
      this.gens[u.k] = u.gen;
    }
    return this.slots[k]!;
  }
}

export default async function run(task: EngineTask): Promise<TaskResult> {
  const t0 = process.hrtime.bigint();
  // Only the sequencer loads the node (and netfilter...): encoder threads start faster.
  const seqModule = task.role === 'sequencer' ? await import('./sequencer.js') : null;
  const cpu0 = threadCpuMs();
  const ctl = new Control(task.layout, task.control);
  // A thread that dies (process.exit in the worker, an error that escapes) must stop the run
  // through the shared abort flag: the main thread may be blocked in Atomics.wait for this
  // thread's slots (the node's walk in the main thread cannot await), so it would never see the
  // pool's 'error' event and would wait forever.
  const onExit = (): void => ctl.abort();
  process.once('exit', onExit);
  const stats: StageStats = { stage: task.role === 'sequencer' ? 'sequencer' : `encoder ${task.index + 1}`, cpuMs: -1, waitMs: 0, wallMs: 0 };
  const done = (r: Omit<TaskResult, 'role' | 'stats'>, waiter: Waiter | null): TaskResult => {
    process.removeListener('exit', onExit);
    const cpu1 = threadCpuMs();
    stats.cpuMs = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    stats.waitMs = waiter ? waiter.waitNs / 1e6 : 0;
    stats.wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    task.port.close();
    return { role: task.role, stats, ...r };
  };
  stats.startMs = Date.now() - task.startEpochMs;
  return task.role === 'sequencer' ? runSequencer(task, ctl, stats, done, seqModule!.SequencerStage) : runEncoder(task, ctl, stats, done);
}

type Done = (r: Omit<TaskResult, 'role' | 'stats'>, waiter: Waiter | null) => TaskResult;

function runSequencer(task: SequencerTask, ctl: Control, stats: StageStats, done: Done, Seq: typeof SequencerStage): TaskResult {
  const c = ctl.c;
  const waiter = new Waiter(c, C_SEQ_BELL, ctl);
  let stage: SequencerStage | null = null;
  try {
    stage = new Seq(task.stage, faultFromEnv(), true, ctl.f, CF_SEQ_FRAME);
    stats.stage = stage.name;
    const inRing = new Ring(task.inSlots, task.port, c, (k) => ctl.inGen(k));
    const outSlots = task.outSlots.map((r) => new Slot(r.sab, r.g));
    const S = inRing.slots.length;
    const O = outSlots.length;
    const K = task.layout.encoders;
    let outSeq = 0;
    const acquire = (): Slot => {
      const k = outSeq % O;
      waiter.until(() => Atomics.load(c, ctl.outState(k)) === S_FREE);
      const s = outSlots[k]!;
      s.reset();
      return s;
    };
    const publish = (): void => {
      const k = outSeq % O;
      if (K === 0) {
        Atomics.store(c, ctl.outState(k), S_ENCODED);
        ctl.ring(C_MAIN_BELL);
      } else {
        Atomics.store(c, ctl.outState(k), S_READY);
        ctl.ring(ctl.encBell(outSeq % K));
      }
      outSeq++;
    };
    const next = (): Slot => {
      publish();
      return acquire();
    };
    const first = acquire();
    const sink: OutSink =
      K === 0 ? new EncodeSink(first, task.outId, task.nIf, task.fmt, stage.acct, next) : new RecordSink(first, task.outId, task.nIf, task.fmt, stage.acct, next);
    for (let inSeq = 0; ; inSeq++) {
      const k = inSeq % S;
      const cell = ctl.inState(k);
      waiter.until(() => Atomics.load(c, cell) === S_READY || (Atomics.load(c, C_IN_END) >= 0 && inSeq >= Atomics.load(c, C_IN_END)));
      if (Atomics.load(c, cell) !== S_READY) break;
      const slot = inRing.get(k);
      stage.process(slot, sink);
      ctl.f[CF_SEQ_FRAMES_DONE] += slot.h[H_COUNT]!;
      // Hand the output over when the reader has nothing more for now (a live capture must
      // not wait for a full slot), or when it is half full. Before the input slot is freed:
      // the reader of a live capture waits for free input slots and written output.
      const s = sink.slot;
      if (s.h[H_COUNT] !== 0 && (Atomics.load(c, ctl.inState((inSeq + 1) % S)) !== S_READY || s.h[H_DATA]! * 2 > s.g.data || s.h[H_COUNT]! * 2 > s.g.records)) {
        sink.flush();
      }
      Atomics.store(c, cell, S_FREE);
      ctl.ring(C_MAIN_BELL);
    }
    stage.finish();
    if (sink.slot.h[H_COUNT] !== 0) publish();
    Atomics.store(c, C_OUT_END, outSeq);
    ctl.ring(C_MAIN_BELL);
    for (let e = 0; e < K; e++) ctl.ring(ctl.encBell(e));
    return done({ acct: stage.acct.toJSON() as AccountingJson }, waiter);
  } catch (e) {
    if (e instanceof Aborted) return done({ aborted: true }, waiter);
    const f = failureOf(e, stage?.name ?? 'sequencer', stage?.frame ?? -1, stage?.fileOffset ?? -1);
    ctl.abort();
    return done({ failure: f }, waiter);
  }
}

function runEncoder(task: EncoderTask, ctl: Control, stats: StageStats, done: Done): TaskResult {
  const c = ctl.c;
  const e = task.index;
  const waiter = new Waiter(c, ctl.encBell(e), ctl);
  const K = task.layout.encoders;
  const enc = new Encoder(task.fmt, task.identity, faultFromEnv(), true, ctl.f, ctl.encFrame(e));
  if (task.comments) enc.useArena(task.comments);
  try {
    const ring = new Ring(task.slots, task.port, c, (k) => ctl.outGen(k));
    const inRing = task.inSlots ? new Ring(task.inSlots, task.port, c, (k) => ctl.inGen(k)) : null;
    const O = ring.slots.length;
    for (let j = e; ; j += K) {
      const k = j % O;
      const cell = ctl.outState(k);
      waiter.until(() => Atomics.load(c, cell) === S_READY || (Atomics.load(c, C_OUT_END) >= 0 && j >= Atomics.load(c, C_OUT_END)));
      if (Atomics.load(c, cell) !== S_READY) break;
      const slot = task.growable ? ring.get(k) : ring.slots[k]!;
      const src = slot.h[H_SRC]! - 1;
      enc.encode(slot, src >= 0 && inRing !== null ? inRing.get(src) : null);
      Atomics.store(c, cell, S_ENCODED);
      ctl.ring(C_MAIN_BELL);
    }
    return done({}, waiter);
  } catch (err) {
    if (err instanceof Aborted) return done({ aborted: true }, waiter);
    const f = failureOf(err, stats.stage, enc.frame, enc.fileOffset);
    ctl.abort();
    return done({ failure: f }, waiter);
  }
}
