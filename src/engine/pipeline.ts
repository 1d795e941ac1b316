/**
 * The engine: a replay as a pipeline of stages over shared slots (DESIGN.md "Data flow and
 * threads").
 *
 *   main thread            sequencer thread             encoder threads (K)       main thread
 *   reader ──input ring──▶ one LinuxNode, in capture ──output ring──▶ records → file bytes ──▶ writer
 *   (CaptureReader,        order; output records          (slot j → encoder j mod K)   (slots in order,
 *    copies batches)       and the accounting                                           writeEncoded)
 *
 * The identity pipeline has no stateful stage: the reader's slots go straight to the encoders
 * (which also classify every frame for the accounting) and back to the writer.
 *
 * Threads: `workers` (default: autoWorkers(), 2 or 1) is the number of worker threads. With 1
 * everything runs in the calling thread, without a pool, through the same stage objects and the
 * same encodeRecord(). With N ≥ 2: node pipeline = the sequencer in the main thread (with the
 * reader and the writer) + (N−1) encoder threads that read the frames the node rewrote in place
 * from the input slots (runNodeMain; `encoders` overrides), or, with `sequencer: 'worker'`
 * (DPEMU_SEQUENCER=worker), the layout drawn above: 1 sequencer thread + (N−1) encoders (0 =
 * the sequencer encodes); identity = max(1, N−1) encoders (the main thread, reader and writer,
 * is the other stage). Threads are owned by a piscina pool; each gets one long-running task
 * (worker.ts) and drains its ring.
 *
 * Rings are fixed arrays of slots (bounded memory): a stage that finds no free slot waits, so a
 * slow writer slows the sequencer, which slows the reader. The main thread waits with
 * Atomics.waitAsync, so signals (SIGINT), timers (progress) and the pool's events get through.
 *
 * Determinism: one node instance sees every frame in capture order (the sequencer), so every
 * stateful decision is made in the same order as with one thread; everything else is a pure
 * function of the records (encodeRecord, putComments), and the writer appends the encoded slots
 * in order. Slot boundaries do not change the bytes: a file is the concatenation of its records.
 */
import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { CaptureReader } from '../pcap/reader.js';
import { CaptureWriter, sameFile, WriterError, type WriterOptions } from '../pcap/writer.js';
import { CaptureError } from '../pcap/errors.js';
import { LINKTYPE_ETHERNET, RecordBatch, type CaptureFormat, type OutputInterface } from '../pcap/types.js';
import type { NodeConfig } from '../elements/linux/config.js';
import { Accounting } from './accounting.js';
import { PacketView, PARSE_MALFORMED, PARSE_NON_IPV4, PARSE_TRUNCATED } from '../packet/view.js';
import { IngressMap } from './ingress.js';
import {
  allocSlot,
  C_IN_END,
  C_MAIN_BELL,
  C_MAIN_SLEEP,
  C_OUT_END,
  C_SEQ_BELL,
  CF_SEQ_FRAME,
  Control,
  FMT_PCAP_NS,
  FMT_PCAP_US,
  FMT_PCAPNG,
  H_COMMENTS_DROPPED,
  H_COUNT,
  H_ENC,
  H_MALFORMED,
  H_NIF,
  H_NON_IPV4,
  H_SRC,
  H_TRUNCATED,
  HF_BYTES,
  HF_FIRST,
  S_ENCODED,
  S_FREE,
  S_READY,
  Slot,
  slotBytes,
  type SlotGeometry,
} from './slots.js';
import { describeFailure, Encoder, failureOf, faultFromEnv, InputFiller, outputInterfaceId, RecordSink, StageError, StallError, StallWatch, threadCpuMs, type Fault } from './stages.js';
import { SequencerStage, type FrameSinkAt, type NodeStageOptions } from './sequencer.js';
import { CommentArena } from './comment-arena.js';
import type { EngineTask, SlotGrowth, SlotRef, StageStats, TaskResult } from './worker.js';

/** Are `a` and `b` the same named pipe? */
function sameFifo(a: string, b: string): boolean {
  if (b === '-') return false;
  try {
    const sa = statSync(a);
    if (!sa.isFIFO()) return false;
    return sameFile(sa, statSync(b));
  } catch {
    return false;
  }
}

/** A problem with the options (reported as a usage error). */
export class ReplayUsageError extends Error {}
/** SIGINT (the engine's abort signal) came before the input's file header: there is no output. */
export class InputInterrupted extends Error {}

export type PipelineSpec =
  | { kind: 'identity' }
  | {
      kind: 'node';
      node: NodeConfig;
      ingressFile?: string;
      seed: number;
      /** pcapng: a comment per written frame (verdict, NAT). */
      comments: boolean;
    };

export interface EngineOptions {
  /** Input capture; '-' = standard input. */
  inPath: string;
  /** Output capture (written atomically through a temporary file); '-' = standard output. */
  outPath: string;
  format: CaptureFormat;
  /** pcap output only: nanosecond timestamps. */
  nanosecond?: boolean;
  onDamage?: 'stop' | 'skip';
  /** Reader buffer (default 4 MiB). */
  bufferSize?: number;
  /** Records per batch and per slot (default 4096). */
  batchSize?: number;
  /**
   * Worker threads; 1 = everything in the calling thread. Default (undefined): autoWorkers(),
   * 2 where a second thread pays off (a node writing pcapng with comments, 2+ cores), else 1.
   */
  workers?: number;
  /** Encoder threads (default workers − 1; node pipeline: 0 = the sequencer encodes; identity: at least 1). */
  encoders?: number;
  /** Bytes of frame data per slot (default 1 MiB); larger records get a slot of their own size. */
  slotData?: number;
  /** Bytes of the comment arena shared with the encoders (node pipeline, sequencer in the main thread; default 4 MiB). */
  commentArena?: number;
  /**
   * Node pipeline with workers ≥ 2: where the sequencer (the node) runs. 'main' (default): in
   * the calling thread, with the reader and the writer, the workers encode; 'worker': a thread
   * of its own (env DPEMU_SEQUENCER=worker). See runNodeMain.
   */
  sequencer?: 'main' | 'worker';
  /** Stop reading when aborted (SIGINT): the frames read so far are finished and written. */
  signal?: AbortSignal;
  /** Called now and then (every progressIntervalMs, default 200) with how far the run is. */
  onProgress?: (p: Progress) => void;
  progressIntervalMs?: number;
}

export interface Progress {
  /** Frames read so far. */
  frames: number;
  /** Input bytes consumed. */
  bytesRead: number;
  /** Input size, -1 when unknown (a pipe). */
  fileSize: number;
  elapsedNs: number;
}

export interface EngineResult {
  acct: Accounting;
  elapsedNs: number;
  /** Damage that ended the input early (the output holds every frame before it). */
  damage?: CaptureError;
  /** Damage skipped over (pcapng with onDamage 'skip'). */
  skipped: CaptureError[];
  /** Stopped early by opts.signal: the output holds every frame read before. */
  interrupted: boolean;
  /** Worker threads used (1: none, all in the calling thread). */
  workers: number;
  /** Comments the output format could not carry (pcap): input pcapng comments, or a node's with comments on. */
  commentsDropped: number;
  /** Chosen by autoWorkers() (no `workers` option), and why. */
  autoWorkers?: string;
  /** Encoder threads among them. */
  encoders: number;
  /** Per stage: CPU time and waits. */
  stages: StageStats[];
}

const DEFAULT_BATCH = 4096;
/**
 * A live input with nothing to read for this long is idle: the output is flushed (see
 * MainSide.inputReady). Short enough to go unnoticed in Wireshark; long enough that a producer
 * writing steadily (cat file | dpemu) is read without a flush per pipe buffer.
 */
const IDLE_MS = 2;
/** A live input's output is flushed at least this often (ms), however steady the stream. */
const FLUSH_MS = 50;
const DEFAULT_SLOT_DATA = 1 << 20;
const IN_SLOTS = 4;
const EPB_OVERHEAD = 64;

export function defaultWorkers(): number {
  return availableParallelism();
}

/**
 * The thread count when none is given: 2 (when there are 2 cores) for a node writing pcapng with
 * comments, where an encoder thread takes the EPBs and comments off the node's thread (1M
 * frames here: 2 threads 1.25× one); 1 for everything else, where the work besides the node is
 * a copy or two per frame and slot hand-overs cost more than they save (1M frames, replay
 * function, median of 3 interleaved rounds: node to pcap 1.86 Mframes/s with 1 thread vs 1.47
 * with 2; identity pcap 7.9 vs 4.3, pcapng 5.2 vs 4.3). Also 1 for a file under
 * AUTO_THREADS_MIN_BYTES: starting the pool costs ~60–100 ms (the README's sample: 0.016 s in
 * one thread, 0.08–0.1 s with two), and two threads save ~0.3 µs a frame, so they pay from a
 * few hundred thousand frames. An explicit `workers` is always followed.
 */
export function autoWorkers(spec: PipelineSpec, format: CaptureFormat, inputBytes: number): { workers: number; why: string } {
  const cores = defaultWorkers();
  if (spec.kind === 'node' && spec.comments && format === 'pcapng') {
    if (inputBytes >= 0 && inputBytes < AUTO_THREADS_MIN_BYTES) return { workers: 1, why: `the default for an input under ${AUTO_THREADS_MIN_BYTES >> 20} MB: starting threads would cost more than they save (--workers N to use them)` };
    // Two at most: the node's thread is the bottleneck and one encoder keeps up with it; more
    // only cost memory (~15 MB each) and start-up (1M frames here: 0.86 Mframes/s with 2 threads,
    // 0.79 with 8, 0.40 with 32).
    const n = Math.min(cores, 2);
    if (n > 1) return { workers: n, why: 'the default for a node writing pcapng with comments: the node\'s thread and an encoder' };
    return { workers: 1, why: 'the default on one core' };
  }
  return { workers: 1, why: 'the default for this pipeline and output: more threads only add hand-overs (--workers N to use them)' };
}

/** autoWorkers: inputs smaller than this (bytes; a pipe's size is unknown) run in one thread. */
const AUTO_THREADS_MIN_BYTES = 32 << 20;

/**
 * The compiled worker module (tests run the TypeScript sources in-process: use the build). From
 * dist/engine/pipeline.js and from the CLI bundle, dist/cli/main.js (scripts/bundle.mjs), alike.
 */
function workerFile(): string {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return new URL('../../dist/engine/worker.js', here).href;
  return new URL('../engine/worker.js', here).href;
}

function fmtOf(format: CaptureFormat, ns: boolean | undefined): number {
  return format === 'pcapng' ? FMT_PCAPNG : ns ? FMT_PCAP_NS : FMT_PCAP_US;
}

const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, t?: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

// ---------------------------------------------------------------------------------------------
// The main thread's side: reader, writer, accounting of the identity pipeline

class MainSide {
  readonly reader: CaptureReader;
  writer: CaptureWriter | undefined;
  readonly filler: InputFiller;
  readonly fmt: number;
  readonly identity: boolean;
  /** Identity pipeline: the accounting (the sequencer keeps the node's). */
  readonly acct = new Accounting();
  damage: CaptureError | undefined;
  framesRead = 0;
  readNs = 0;
  writeNs = 0;
  /**
   * A live input has had nothing to read for IDLE_MS: what was read goes out (the pooled layouts
   * drain their slots, the writer flushes) before the reader waits for the producer.
   */
  idle = false;
  /** performance.now() of the last flush of a live input's output (inputReady). */
  private lastFlush = 0;
  waitNs = 0;
  /** Identity, pcapng: interfaces to add to the output before the slot with this sequence number. */
  readonly pendingIfaces: { seq: number; iface: OutputInterface }[] = [];
  private mapped = 0;

  constructor(
    readonly spec: PipelineSpec,
    readonly opts: EngineOptions,
    reader: CaptureReader,
  ) {
    this.identity = spec.kind === 'identity';
    this.fmt = fmtOf(opts.format, opts.nanosecond);
    this.reader = reader;
    let ifIndex: ((name: string) => number) | null = null;
    if (spec.kind === 'node') {
      const names = spec.node.interfaces.map((i) => i.name);
      ifIndex = (n) => names.indexOf(n);
    }
    this.filler = new InputFiller(this.identity, this.fmt, ifIndex);
  }

  /** Output interface ids of the node's interfaces (pcapng: one per Ethernet interface; pcap: 0). */
  nodeOutputs(node: NodeConfig): { outId: Int32Array; ifaces: OutputInterface[] } {
    const ethers = node.interfaces.filter((i) => i.kind === 'ether');
    const outId = new Int32Array(node.interfaces.length).fill(-1);
    ethers.forEach((i, k) => (outId[i.index] = this.opts.format === 'pcapng' ? k : 0));
    const ifaces =
      this.opts.format === 'pcapng'
        ? ethers.map((i) => ({ name: i.name, description: `${node.name} ${i.name}`, linktype: LINKTYPE_ETHERNET, snaplen: 0 }))
        : [{ name: node.name, linktype: LINKTYPE_ETHERNET, snaplen: 262144 }];
    return { outId, ifaces };
  }

  openWriter(interfaces: OutputInterface[]): CaptureWriter {
    const wo: WriterOptions = {
      format: this.opts.format,
      nanosecond: this.opts.nanosecond,
      interfaces,
      inputPaths: this.opts.inPath === '-' ? [] : [this.opts.inPath],
      userAppl: 'dpemu',
    };
    this.writer = this.opts.outPath === '-' ? CaptureWriter.toFd(1, wo) : CaptureWriter.open(this.opts.outPath, wo);
    return this.writer;
  }

  /** Identity: the writer, opened from what the reader knows (pcap: its first interface). */
  openIdentityWriter(): CaptureWriter {
    const interfaces: OutputInterface[] = [];
    if (this.opts.format === 'pcap') {
      const first = this.reader.interfaces[0];
      // An empty pcapng (no IDB) written as pcap: Ethernet by convention.
      if (first === undefined) interfaces.push({ name: 'dpemu', linktype: 1 });
      else interfaces.push({ name: first.name ?? 'dpemu', linktype: first.linktype, snaplen: first.snaplen || 262144, fcsLen: first.fcsLen });
    }
    return this.openWriter(interfaces);
  }

  /**
   * The next batch (0 at the end or at damage that stops the input). New interfaces are taken
   * in; the identity pipeline queues them for the output before slot `seq`.
   */
  readBatch(batch: RecordBatch, seq: number): number {
    const t0 = process.hrtime.bigint();
    let n: number;
    try {
      n = this.reader.next(batch);
    } catch (e) {
      if (!(e instanceof CaptureError)) throw e;
      this.damage = e;
      n = 0;
    }
    if (n > 0) {
      if (this.identity && this.writer === undefined) this.openIdentityWriter();
      const ifaces = this.reader.interfaces;
      if (this.filler.sync(ifaces) > 0 && this.identity) {
        for (; this.mapped < ifaces.length; this.mapped++) {
          const id = this.mapped;
          const ifc = ifaces[id]!;
          if (this.opts.format === 'pcapng') {
            this.pendingIfaces.push({ seq, iface: { name: ifc.name ?? `if${id}`, description: ifc.description, linktype: ifc.linktype, snaplen: ifc.snaplen, fcsLen: ifc.fcsLen } });
          } else if (id > 0) {
            const a = ifaces[0]!;
            if (a.linktype !== ifc.linktype || a.fcsLen !== ifc.fcsLen) {
              throw new ReplayUsageError(
                `${this.opts.inPath}: interface ${id} has link type ${ifc.linktype}, interface 0 has ${a.linktype}; ` + `pcap output holds one link type, use --format pcapng`,
              );
            }
          }
        }
      }
      this.framesRead += n;
    }
    this.readNs += Number(process.hrtime.bigint() - t0);
    return n;
  }

  /**
   * Whether the next batch can be read now. Only a live input (a pipe or a terminal: `tcpdump
   * -U -w - | dpemu replay --in - ...`) may say no: its reader waits for the producer with the
   * thread free (CaptureReader.waitRecord), so signals (Ctrl-C, SIGTERM) are handled while the
   * producer is quiet, which a read that waits would not allow. When nothing comes for IDLE_MS
   * the input is idle: false until `drained` (everything read has been written; the pooled
   * layouts keep writing their slots meanwhile), then the output is flushed, so that a reader
   * of the output (wireshark -k -i -) sees the end of a burst at once and not when the next
   * packet comes, and the wait goes on as long as the producer likes. False as well when
   * interrupted. A steady stream is never idle: its output is flushed every FLUSH_MS. A socket
   * (it cannot be read without waiting: its reads wait in the thread) is drained and flushed
   * before each read that has to wait.
   */
  async inputReady(drained: boolean): Promise<boolean> {
    const r = this.reader;
    if (!r.live) return true;
    if (performance.now() - this.lastFlush >= FLUSH_MS) this.flushOut();
    if (!r.pollable) {
      if (r.hasRecord()) return true;
      if (!drained) return false;
      this.flushOut();
      return true;
    }
    const signal = this.opts.signal;
    const t0 = process.hrtime.bigint();
    try {
      if (!this.idle) {
        if (await r.waitRecord(IDLE_MS, signal)) return true;
        if (signal?.aborted) return false;
        this.idle = true;
      }
      if (!drained) return false;
      this.flushOut();
      const ok = await r.waitRecord(Infinity, signal);
      if (ok) this.idle = false;
      return ok;
    } finally {
      this.waitNs += Number(process.hrtime.bigint() - t0);
    }
  }

  /** A live input's output so far goes to the file (or pipe) now. */
  private flushOut(): void {
    this.writer?.flush();
    this.lastFlush = performance.now();
  }

  /**
   * The next batch, once the input is ready for it (inputReady; a regular file's read-ahead
   * landed if the batch needs it): its record count, 0 at the end, or -1 for not now (a live
   * input that went quiet and is not drained yet, or SIGINT).
   */
  async nextBatch(batch: RecordBatch, seq: number, drained: boolean): Promise<number> {
    if (this.opts.signal?.aborted || !(await this.inputReady(drained))) return -1;
    const tr = process.hrtime.bigint();
    await this.reader.ready(); // waits only if this batch needs the chunk still being read
    this.waitNs += Number(process.hrtime.bigint() - tr);
    return this.readBatch(batch, seq);
  }

  /** Output interfaces defined once the pending ones up to slot `seq` are added. */
  nIf(): number {
    return this.opts.format === 'pcapng' ? this.filler.outIf.length : 1;
  }

  /** Comments of records encoded by the stages that a pcap output cannot carry (writeEncoded does not see them). */
  commentsDropped = 0;

  /** Write an encoded slot (sequence number seq) to the output. */
  write(slot: Slot, seq: number): void {
    const t0 = process.hrtime.bigint();
    const w = this.writer!;
    const p = this.pendingIfaces;
    while (p.length > 0 && p[0]!.seq <= seq) {
      const { iface } = p.shift()!;
      w.addInterface(iface);
    }
    const h = slot.h;
    w.writeEncoded(slot.enc, 0, h[H_ENC]!, h[H_COUNT]!);
    this.commentsDropped += h[H_COMMENTS_DROPPED]!;
    // A live capture that went quiet: what is processed goes out now, not when the buffer is full.
    if (this.idle) w.flush();
    if (this.identity) {
      const a = this.acct;
      const n = h[H_COUNT]!;
      const bytes = slot.hf[HF_BYTES]!;
      a.in += n;
      a.left += n;
      a.written += n;
      a.bytesIn += bytes;
      a.bytesOut += bytes;
      a.nonIpv4 += h[H_NON_IPV4]!;
      a.malformed += h[H_MALFORMED]!;
      a.truncated += h[H_TRUNCATED]!;
    }
    this.writeNs += Number(process.hrtime.bigint() - t0);
  }

  progress(t0: bigint): Progress {
    return { frames: this.framesRead, bytesRead: this.reader.bytesConsumed, fileSize: this.reader.fileSize, elapsedNs: Number(process.hrtime.bigint() - t0) };
  }
}

/** A geometry that fits record `need` (a record larger than the usual slots). */
function grownGeometry(g: SlotGeometry, need: { data: number; enc: number }): SlotGeometry {
  let data = g.data;
  while (data < need.data) data *= 2;
  const enc = g.enc === 0 ? 0 : Math.max(g.enc, need.enc + (data - g.data));
  return { records: g.records, data, enc };
}

/** The slot rings of the pooled layouts: `inCount` input slots and `outCount` output slots of R records. */
function makeRings(R: number, D: number, inCount: number, outCount: number): { inRefs: SlotRef[]; outRefs: SlotRef[]; inSlots: Slot[]; outSlots: Slot[] } {
  const inGeom: SlotGeometry = { records: R, data: D, enc: 0 };
  const outGeom: SlotGeometry = { records: R, data: D, enc: D + R * EPB_OVERHEAD };
  const inRefs = Array.from({ length: inCount }, () => newSlotRef(inGeom));
  const outRefs = Array.from({ length: outCount }, () => newSlotRef(outGeom));
  return { inRefs, outRefs, inSlots: inRefs.map((r) => new Slot(r.sab, r.g)), outSlots: outRefs.map((r) => new Slot(r.sab, r.g)) };
}

function newSlotRef(g: SlotGeometry): SlotRef {
  return { sab: new SharedArrayBuffer(slotBytes(g)), g };
}

/**
 * Fill slot k of `ring` with the batch's records from bi on (as many as fit; H_NIF set to `nIf`
 * when ≥ 0); returns the index of the first record left. A record larger than the slot first
 * gets the slot a larger buffer: ring[k] is replaced, and its consumers (`ports`) learn of it
 * through the generation cell `genCell`.
 */
function fillSlot(m: MainSide, ring: Slot[], k: number, batch: RecordBatch, bi: number, nIf: number, c: Int32Array, genCell: number, ports: readonly MessagePort[]): number {
  const t1 = process.hrtime.bigint();
  let slot = ring[k]!;
  slot.reset();
  slot.hf[HF_FIRST] = batch.index[bi]!;
  if (nIf >= 0) slot.h[H_NIF] = nIf;
  let j = m.filler.fill(slot, batch, bi);
  if (j === bi) {
    const g = grownGeometry(slot.g, m.filler.need(batch, bi));
    const ref = newSlotRef(g);
    slot = new Slot(ref.sab, g);
    ring[k] = slot;
    const gen = Atomics.load(c, genCell) + 1;
    const msg: SlotGrowth = { k, gen, slot: ref };
    for (const p of ports) p.postMessage(msg);
    Atomics.store(c, genCell, gen);
    slot.hf[HF_FIRST] = batch.index[bi]!;
    if (nIf >= 0) slot.h[H_NIF] = nIf;
    j = m.filler.fill(slot, batch, bi);
    if (j === bi) throw new Error(`internal: a record of ${batch.caplen[bi]} bytes does not fit a grown slot`);
  }
  m.readNs += Number(process.hrtime.bigint() - t1);
  return j;
}

// ---------------------------------------------------------------------------------------------
// Entry point

export async function runEngine(spec: PipelineSpec, opts: EngineOptions): Promise<EngineResult> {
  const t0 = process.hrtime.bigint();
  const given = opts.workers;
  if (given !== undefined && (!Number.isFinite(given) || given > 256)) throw new ReplayUsageError(`workers must be 1..256, not ${given}`);
  const ropts = { bufferSize: opts.bufferSize, onDamage: opts.onDamage };
  let reader: CaptureReader | null;
  if (opts.inPath === '-') {
    // Standard input may be live (tcpdump -w -): its file header is waited for without
    // holding the thread, so that Ctrl-C works before the first packet.
    reader = await CaptureReader.fromFdLive(0, '<stdin>', ropts, opts.signal);
    if (reader === null) throw new InputInterrupted('interrupted before the capture on standard input began: nothing read, no output written');
  } else {
    // A named pipe is live too (its writer may not even have started). Given as the output as
    // well, it is refused now rather than once its writer has come (the writer's own check).
    if (sameFifo(opts.inPath, opts.outPath)) throw new WriterError(`output ${opts.outPath} is the input file ${opts.inPath}`, opts.outPath);
    reader = await CaptureReader.openLive(opts.inPath, ropts, opts.signal);
    if (reader === null) throw new InputInterrupted(`interrupted before the capture in ${opts.inPath} began: nothing read, no output written`);
  }
  const auto = given === undefined ? autoWorkers(spec, opts.format, reader.fileSize) : null;
  const workers = Math.max(1, Math.floor(auto !== null ? auto.workers : given!));
  const m = new MainSide(spec, opts, reader);
  let ingressTable: Int32Array | null = null;
  try {
    let outId: Int32Array = new Int32Array(0);
    let nIf = 1;
    if (spec.kind === 'node') {
      // Read and check the --ingress file here: its errors are input errors, before any thread.
      const names = spec.node.interfaces.map((i) => i.name);
      ingressTable = new IngressMap(spec.ingressFile, (n) => names.indexOf(n)).table;
      const o = m.nodeOutputs(spec.node);
      outId = o.outId;
      nIf = o.ifaces.length;
      m.openWriter(o.ifaces);
    }
    const stageOpts: NodeStageOptions | null =
      spec.kind === 'node' ? { node: spec.node, seed: spec.seed, comments: spec.comments, ingressFile: spec.ingressFile, ingressTable } : null;
    const fault = faultFromEnv();
    const seqThread = opts.sequencer ?? (process.env.DPEMU_SEQUENCER === 'worker' ? 'worker' : 'main');
    const r =
      workers === 1
        ? await runInline(m, stageOpts, outId, fault, t0)
        : stageOpts !== null && seqThread === 'main'
          ? await runNodeMain(m, stageOpts, outId, nIf, workers, fault, t0)
          : await runPooled(m, stageOpts, outId, nIf, workers, t0);
    if (m.writer === undefined) m.openIdentityWriter();
    await m.writer!.settle();
    m.writer!.commit();
    return {
      acct: r.acct,
      elapsedNs: Number(process.hrtime.bigint() - t0),
      damage: m.damage,
      skipped: m.reader.errors,
      interrupted: r.interrupted,
      commentsDropped: m.commentsDropped + m.writer!.commentsDropped,
      workers,
      autoWorkers: auto?.why,
      encoders: r.encoders,
      stages: r.stages,
    };
  } catch (e) {
    m.writer?.abort();
    throw e;
  } finally {
    m.reader.close();
  }
}

interface RunOutcome {
  acct: Accounting;
  interrupted: boolean;
  encoders: number;
  stages: StageStats[];
}

function mainStats(m: MainSide, cpu0: number, t0: bigint): StageStats & { readMs: number; writeMs: number } {
  const cpu1 = threadCpuMs();
  return {
    stage: 'main (reader, writer)',
    cpuMs: cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1,
    waitMs: m.waitNs / 1e6,
    wallMs: Number(process.hrtime.bigint() - t0) / 1e6,
    readMs: m.readNs / 1e6,
    writeMs: m.writeNs / 1e6,
  };
}

/** Lets signals, timers and the pool's events in every so often during long synchronous work. */
class Yielder {
  private last = Date.now();
  private lastProgress = 0;
  constructor(
    private readonly m: MainSide,
    private readonly t0: bigint,
  ) {}

  async maybe(): Promise<void> {
    const now = Date.now();
    const o = this.m.opts;
    if (o.onProgress && now - this.lastProgress >= (o.progressIntervalMs ?? 200)) {
      this.lastProgress = now;
      o.onProgress(this.m.progress(this.t0));
    }
    if (now - this.last >= 20) {
      this.last = now;
      await new Promise<void>((r) => setImmediate(r));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One thread

/**
 * The node's frames written straight to the output (one thread).
 *
 * The node rewrites Ethernet input frames where they are, in the reader's batch buffer
 * (LinuxNode inPlace), and sends most of them from there. Such a frame is not copied when it is
 * sent: its place is recorded in `pending`, a RecordBatch over that buffer, and flush() hands
 * the lot to CaptureWriter.writeBatch, which copies each run of frames lying back to back as
 * they will in the output (pcap → pcap: each after its 16-byte record header, i.e. forwarded at
 * its own length) with one memcpy, and every other frame one by one. The bytes are those of
 * writeRecord; sink and writer went from ~110 to ~50 ns per frame of a 60–100-byte forwarding
 * run. The caller flushes before the batch buffer is reused.
 * This relies on the node's in-place rule: it rewrites an input frame only while walking it,
 * never one it has sent (engine-determinism compares this with the pooled path, which copies
 * every frame when it is sent).
 *
 * Verbatim runs (pcap output, `verbatimPcap`): when the 16 bytes in front of a frame sent in
 * place already are the record header the writer would write for it (timestamp, and captured
 * and original length equal to the frame's: pcap input of the same byte order and timestamp
 * unit, the frame forwarded at its own length), the record is those bytes as they are; a run
 * of such records lying back to back is one range of the input buffer, which flush() appends
 * with one copy and no header rewrite. The check compares the header bytes with the writer's,
 * so whatever the input (other variants, pcapng), the bytes written are writeRecord's.
 *
 * Frames from elsewhere (the node's level buffers: tunnels, reassembly, ICMP errors) and frames
 * with comments are written at once, after the pending ones, so the output keeps the node's
 * order; a connection's comments that come back are encoded once (a comment arena, see frame).
 * Exported for tests.
 */
export class WriterSink implements FrameSinkAt {
  tsSec = 0;
  tsNsec = 0;
  src = 0;
  /** The input batch's buffer, whose frames may wait in `pending` or the run (null: write everything at once). */
  private inBuf: Uint8Array | null = null;
  private inDv: DataView | null = null;
  private readonly pending: RecordBatch;
  /** The verbatim run: input buffer range [runStart, runEnd) holding runCount records. */
  private runStart = 0;
  private runEnd = -1;
  private runCount = 0;

  constructor(
    private readonly w: CaptureWriter,
    private readonly outId: Int32Array,
    private readonly acct: Accounting,
    capacity = DEFAULT_BATCH,
    /** pcap output: null (pcapng), else whether its timestamps are in nanoseconds. */
    private readonly verbatimPcap: { ns: boolean } | null = null,
  ) {
    this.pending = new RecordBatch(capacity);
  }

  /** The input batch the node walks next: frames sent from its buffer may wait until flush(). */
  begin(batch: RecordBatch): void {
    this.flush();
    this.inBuf = batch.buf;
    this.inDv = batch.dv;
    this.pending.setBuffer(batch.buf);
  }

  frame(buf: Uint8Array, off: number, len: number, outIf: number, comments: readonly string[] | null): void {
    const id = outputInterfaceId(this.outId, outIf);
    this.acct.written++;
    this.acct.bytesOut += len;
    const p = this.pending;
    if (buf === this.inBuf && (comments === null || comments.length === 0)) {
      const vp = this.verbatimPcap;
      const h = off - 16;
      if (vp !== null && h >= 0) {
        const dv = this.inDv!;
        // The header writeRecord would write: ts seconds, µs or ns, caplen, origlen (LE).
        if (dv.getUint32(h + 8, true) === len && dv.getUint32(h + 12, true) === len && dv.getUint32(h, true) === this.tsSec && dv.getUint32(h + 4, true) === (vp.ns ? this.tsNsec : this.tsNsec / 1000)) {
          if (h === this.runEnd) {
            this.runEnd = off + len;
            this.runCount++;
            return;
          }
          this.flush();
          this.runStart = h;
          this.runEnd = off + len;
          this.runCount = 1;
          return;
        }
      }
      if (this.runCount !== 0) this.flushRun();
      let k = p.count;
      if (k === p.capacity) {
        this.flush();
        k = 0;
      }
      p.offset[k] = off;
      p.caplen[k] = len;
      p.origlen[k] = len;
      p.tsSec[k] = this.tsSec;
      p.tsNsec[k] = this.tsNsec;
      p.iface[k] = id;
      p.flags[k] = 2; // epb_flags 2: outbound (as the encoders write it)
      p.count = k + 1;
      return;
    }
    this.flush();
    if (comments === null || comments.length === 0) {
      this.w.writeRecord(buf, off, len, len, this.tsSec, this.tsNsec, id, undefined, 2);
      return;
    }
    // A connection's comments that come back (the flow memo's array) are encoded once, into the
    // comment arena (comment-arena.ts; nothing references it after the call: no drain).
    const a = this.comments ?? (this.comments = new CommentArena(undefined, false));
    const e = a.entry(comments, noDrain);
    if (e === null) this.w.writeRecord(buf, off, len, len, this.tsSec, this.tsNsec, id, comments as string[], 2);
    else this.w.writeRecordBlock(buf, off, len, len, this.tsSec, this.tsNsec, id, a.data, a.dv, e.off, e.len, 2);
  }

  /** Encoded comments (see frame; made at the first frame with comments). */
  private comments: CommentArena | null = null;

  /** Write the frames that wait (before the input buffer is reused, and at the end). */
  flush(): void {
    // At most one of the run and the pending batch holds records (frame() flushes the other).
    if (this.runCount !== 0) this.flushRun();
    const p = this.pending;
    if (p.count === 0) return;
    this.w.writeBatch(p);
    p.count = 0;
  }

  private flushRun(): void {
    this.w.appendEncoded(this.inBuf!, this.runStart, this.runEnd - this.runStart, this.runCount);
    this.runCount = 0;
    this.runEnd = -1;
  }
}

const noDrain = (): void => undefined;

/**
 * The node in one thread: reader batch → the sequencer's walk → writer, without slots or
 * encoders. Same stateful order and the same record bytes as the pooled path (writeRecord and
 * encodeRecord agree: engine-encode test), so `--workers 1` and `--workers N` still agree.
 */
async function runNodeDirect(m: MainSide, stageOpts: NodeStageOptions, outId: Int32Array, fault: Fault | null, t0: bigint): Promise<RunOutcome> {
  const cpu0 = threadCpuMs();
  let stage: SequencerStage;
  try {
    stage = new SequencerStage(stageOpts, fault, false);
  } catch (e) {
    throw new StageError(failureOf(e, 'sequencer', -1, -1));
  }
  const batch = new RecordBatch(m.opts.batchSize ?? DEFAULT_BATCH);
  const sink = new WriterSink(m.writer!, outId, stage.acct, batch.capacity, m.opts.format === 'pcap' ? { ns: !!m.opts.nanosecond } : null);
  const yielder = new Yielder(m, t0);
  // A regular file: the next chunk is read in the thread pool while the batches of one run.
  m.reader.enableReadAhead();
  let interrupted = false;
  let seq = 0;
  for (;;) {
    // (A live input: waits for the producer, flushing the output when it goes quiet.)
    const n = await m.nextBatch(batch, seq++, true);
    if (n < 0) {
      interrupted = true;
      break;
    }
    if (n === 0) break;
    sink.begin(batch);
    try {
      stage.processBatch(batch, m.filler.linkOf, m.filler.byName, sink);
    } catch (e) {
      throw new StageError(failureOf(e, stage.name, stage.frame, stage.fileOffset));
    }
    // Before the reader reuses the batch buffer, which holds the frames the sink has not copied.
    sink.flush();
    // A full half-buffer goes to the file from the thread pool while the next batches run.
    await m.writer!.flushAsync();
    await yielder.maybe();
  }
  stage.finish();
  return { acct: stage.acct, interrupted, encoders: 0, stages: [{ ...mainStats(m, cpu0, t0), stage: `main (reader, ${stage.name}, writer)` }] };
}

/**
 * Identity in one thread: the reader's batch goes straight to the writer (CaptureWriter.writeBatch
 * copies runs of records laid out like the output in one go and rewrites their headers), with
 * every frame parsed for the accounting; no slot copy, no encoder. The bytes are those of the
 * encoder path (writeBatch = writeRecord per record = encodeRecord; tested in engine-encode and
 * pcap-writer), so `--workers 1` and `--workers N` still agree.
 */
async function runIdentityDirect(m: MainSide, t0: bigint): Promise<RunOutcome> {
  const cpu0 = threadCpuMs();
  const batch = new RecordBatch(m.opts.batchSize ?? DEFAULT_BATCH);
  const view = new PacketView();
  const yielder = new Yielder(m, t0);
  m.reader.enableReadAhead(); // a regular file: the next chunk is read in the thread pool
  const a = m.acct;
  let ifaceMap = new Uint32Array(0);
  let interrupted = false;
  let seq = 0;
  for (;;) {
    // (A live input: waits for the producer, flushing the output when it goes quiet.)
    const n = await m.nextBatch(batch, seq, true);
    if (n < 0) {
      interrupted = true;
      break;
    }
    if (n === 0) break;
    const w = m.writer!;
    const p = m.pendingIfaces;
    while (p.length > 0) w.addInterface(p.shift()!.iface);
    const outIf = m.filler.outIf;
    if (ifaceMap.length !== outIf.length) ifaceMap = Uint32Array.from(outIf);
    const linkOf = m.filler.linkOf;
    const buf = batch.buf;
    const dv = batch.dv;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const link = linkOf[batch.iface[i]!]!;
      const caplen = batch.caplen[i]!;
      bytes += caplen;
      const st = view.parse(buf, dv, batch.offset[i]!, caplen, link & 0xffff, link >>> 16, batch.origlen[i]!);
      if (st === PARSE_NON_IPV4) a.nonIpv4++;
      else if (st === PARSE_MALFORMED) a.malformed++;
      else if (st === PARSE_TRUNCATED) a.truncated++;
    }
    const tw = process.hrtime.bigint();
    w.writeBatch(batch, ifaceMap);
    m.writeNs += Number(process.hrtime.bigint() - tw);
    await w.flushAsync(); // from the thread pool, while the next batches run
    a.in += n;
    a.left += n;
    a.written += n;
    a.bytesIn += bytes;
    a.bytesOut += bytes;
    seq++;
    await yielder.maybe();
  }
  return { acct: a, interrupted, encoders: 0, stages: [mainStats(m, cpu0, t0)] };
}

async function runInline(m: MainSide, stageOpts: NodeStageOptions | null, outId: Int32Array, fault: Fault | null, t0: bigint): Promise<RunOutcome> {
  if (stageOpts !== null) return runNodeDirect(m, stageOpts, outId, fault, t0);
  if (fault === null) return runIdentityDirect(m, t0);
  return runIdentitySlots(m, fault, t0);
}

/**
 * Identity in one thread through a slot and the encoder, as the pooled path encodes: only with
 * a DPEMU_FAULT set (the fault tests make the encoder throw or hang in the main thread).
 */
async function runIdentitySlots(m: MainSide, fault: Fault, t0: bigint): Promise<RunOutcome> {
  const cpu0 = threadCpuMs();
  const R = m.opts.batchSize ?? DEFAULT_BATCH;
  const D = m.opts.slotData ?? DEFAULT_SLOT_DATA;
  const batch = new RecordBatch(R);
  let geom: SlotGeometry = { records: R, data: D, enc: D + R * EPB_OVERHEAD };
  let slot = new Slot(allocSlot(geom, false), geom);
  const yielder = new Yielder(m, t0);
  const encoder = new Encoder(m.fmt, true, fault, false);
  let interrupted = false;
  let seq = 0;
  for (;;) {
    const n = await m.nextBatch(batch, seq, true);
    if (n < 0) {
      interrupted = true;
      break;
    }
    if (n === 0) break;
    let i = 0;
    while (i < n) {
      slot.reset();
      slot.hf[HF_FIRST] = batch.index[i]!;
      slot.h[H_NIF] = m.nIf();
      const t1 = process.hrtime.bigint();
      const j = m.filler.fill(slot, batch, i);
      m.readNs += Number(process.hrtime.bigint() - t1);
      if (j === i) {
        geom = grownGeometry(geom, m.filler.need(batch, i));
        slot = new Slot(allocSlot(geom, false), geom);
        continue;
      }
      i = j;
      try {
        encoder.encode(slot);
      } catch (e) {
        throw new StageError(failureOf(e, 'encoder', encoder.frame, encoder.fileOffset));
      }
      m.write(slot, seq++);
    }
    await yielder.maybe();
  }
  return { acct: m.acct, interrupted, encoders: 0, stages: [{ ...mainStats(m, cpu0, t0), stage: 'main (reader, encoder, writer)' }] };
}

// ---------------------------------------------------------------------------------------------
// A pool of worker threads

async function runPooled(m: MainSide, stageOpts: NodeStageOptions | null, outId: Int32Array, nIf: number, workers: number, t0: bigint): Promise<RunOutcome> {
  const cpu0 = threadCpuMs();
  const identity = stageOpts === null;
  const R = m.opts.batchSize ?? DEFAULT_BATCH;
  const D = m.opts.slotData ?? DEFAULT_SLOT_DATA;
  // Node: 1 sequencer + (N−1) encoders. Identity: no sequencer, the main thread (reader and
  // writer) is the other stage: N−1 encoders (measured faster on 2 cores than N; see the report).
  const K = identity ? Math.max(1, Math.min(m.opts.encoders ?? workers - 1, 255)) : Math.max(0, Math.min(m.opts.encoders ?? workers - 1, 255));
  const threads = identity ? K : 1 + K;
  const S = identity ? 0 : IN_SLOTS;
  // A multiple of K: output slot k then always belongs to encoder k mod K (slot j mod O of
  // sequence number j is encoded by encoder j mod K).
  const O = Math.max(1, K) * Math.ceil(Math.max(4, 2 * Math.max(K, 1) + 2) / Math.max(1, K));
  const ctl = new Control({ inSlots: S, outSlots: O, encoders: K });
  const c = ctl.c;
  const { inRefs, outRefs, inSlots, outSlots } = makeRings(R, D, S, O);
  // The ring the main thread fills, and the ports of its consumers (for replaced slot buffers).
  const fillRing = identity ? outSlots : inSlots;
  const fillState = identity ? (k: number) => ctl.outState(k) : (k: number) => ctl.inState(k);
  const fillGen = identity ? (k: number) => ctl.outGen(k) : (k: number) => ctl.inGen(k);
  const P = fillRing.length;

  const { Piscina } = await import('piscina');
  const pool = new Piscina({ filename: workerFile(), minThreads: threads, maxThreads: threads, idleTimeout: 60_000, atomics: 'disabled' });
  const consumerPorts: MessagePort[] = [];
  const tasks: { name: string; frameCell: number; promise: Promise<TaskResult> }[] = [];
  const base = { control: ctl.sab, layout: { inSlots: S, outSlots: O, encoders: K }, fmt: m.fmt, startEpochMs: Date.now() };
  const start = (task: EngineTask, name: string, frameCell: number): void => {
    tasks.push({ name, frameCell, promise: pool.run(task, { transferList: [task.port] }) as Promise<TaskResult> });
  };
  if (!identity) {
    const ch = new MessageChannel();
    consumerPorts.push(ch.port1);
    start({ ...base, role: 'sequencer', port: ch.port2, inSlots: inRefs, outSlots: outRefs, stage: stageOpts, outId, nIf }, `sequencer (node ${stageOpts.node.name})`, CF_SEQ_FRAME);
  }
  for (let e = 0; e < K; e++) {
    const ch = new MessageChannel();
    if (identity) consumerPorts.push(ch.port1);
    start({ ...base, role: 'encoder', index: e, port: ch.port2, slots: outRefs, identity, growable: identity }, `encoder ${e + 1}`, ctl.encFrame(e));
  }
  const { settled, all } = watchTasks(tasks, ctl);
  const signal = m.opts.signal;
  const onSignal = (): void => ctl.ring(C_MAIN_BELL);
  signal?.addEventListener('abort', onSignal);

  const drained = (): boolean => {
    for (let k = 0; k < P; k++) if (Atomics.load(c, fillState(k)) !== S_FREE) return false;
    if (!identity) for (let k = 0; k < O; k++) if (Atomics.load(c, ctl.outState(k)) !== S_FREE) return false;
    return true;
  };
  const batch = new RecordBatch(R);
  const yielder = new Yielder(m, t0);
  let interrupted = false;
  let inputDone = false;
  let endSent = false;
  let rseq = 0;
  let wseq = 0;
  let bi = 0;
  let bn = 0;
  let mainError: unknown = null;
  const stall = new StallWatch();
  // The stage the oldest unwritten output slot waits for: its encoder once the slot is ready
  // (slot j goes to encoder j mod K), else the sequencer thread.
  const waitedFor = (): { stage: string; frame: number } => {
    const e = wseq % Math.max(1, K);
    if (identity || (K > 0 && Atomics.load(c, ctl.outState(wseq % O)) === S_READY)) return { stage: `encoder ${e + 1}`, frame: ctl.f[ctl.encFrame(e)]! };
    return { stage: 'sequencer', frame: ctl.f[CF_SEQ_FRAME]! };
  };
  try {
    for (;;) {
      if (ctl.aborted) break;
      const bell = Atomics.load(c, C_MAIN_BELL);
      let progressed = false;
      // 1. Write what is encoded, in order.
      for (;;) {
        const k = wseq % O;
        if (Atomics.load(c, ctl.outState(k)) !== S_ENCODED) break;
        m.write(identity ? fillRing[k]! : outSlots[k]!, wseq);
        Atomics.store(c, ctl.outState(k), S_FREE);
        if (!identity) ctl.ring(C_SEQ_BELL);
        wseq++;
        progressed = true;
        stall.progress();
      }
      const outEnd = Atomics.load(c, C_OUT_END);
      if (outEnd >= 0 && wseq >= outEnd) break;
      // 2. Read into the next free slot.
      if (!endSent) {
        const k = rseq % P;
        if (Atomics.load(c, fillState(k)) === S_FREE) {
          if (!inputDone && signal?.aborted) {
            interrupted = true;
            inputDone = true;
          }
          // A live input waits for the producer; when it goes quiet, what was read goes out first.
          if (!inputDone && bi >= bn) {
            const n = await m.nextBatch(batch, rseq, drained());
            if (n >= 0) [bn, bi, inputDone] = [n, 0, n === 0];
            else if (signal?.aborted) [interrupted, inputDone] = [true, true];
          }
          if (!inputDone && bi < bn) {
            bi = fillSlot(m, fillRing, k, batch, bi, m.nIf(), c, fillGen(k), consumerPorts);
            Atomics.store(c, fillState(k), S_READY);
            if (identity) ctl.ring(ctl.encBell(rseq % K));
            else ctl.ring(C_SEQ_BELL);
            rseq++;
            progressed = true;
          }
        }
        if (inputDone && !endSent) {
          endSent = true;
          Atomics.store(c, identity ? C_OUT_END : C_IN_END, rseq);
          if (identity) for (let e = 0; e < K; e++) ctl.ring(ctl.encBell(e));
          else ctl.ring(C_SEQ_BELL);
          progressed = true;
        }
      }
      if (progressed) {
        stall.progress();
        await yielder.maybe();
        continue;
      }
      // The bell's value before this round's checks: a ring since then returns at once.
      await sleepOnMainBell(m, c, bell);
      // Main sleeps only when every slot it could fill or write waits for a stage.
      stall.check(true, waitedFor);
      await yielder.maybe();
    }
  } catch (e) {
    mainError = e;
    ctl.abort();
  } finally {
    signal?.removeEventListener('abort', onSignal);
  }
  // Every task ends now: normally, or through the abort flag; a stuck one only when its thread
  // is terminated.
  await endTasks(pool, all, mainError instanceof StallError);
  for (const p of consumerPorts) p.close();
  if (mainError !== null) throw mainError;
  const results = taskResults(tasks, settled, ctl);
  let acct = m.acct;
  if (!identity) acct = Accounting.fromJSON(results[0]!.acct!);
  return { acct, interrupted, encoders: K, stages: [mainStats(m, cpu0, t0), ...results.map((r) => r.stats)] };
}

// ---------------------------------------------------------------------------------------------
// The node in the main thread, encoders in worker threads

/** The run was stopped (another stage failed) while the main thread waited inside the node's walk. */
class MainAborted extends Error {}

/** Input slots of runNodeMain (each stays until the output slots that reference its frames are written). */
const MAIN_IN_SLOTS = 4;

/**
 * The node pipeline over worker threads, the sequencer in the main thread:
 *
 *   main thread: reader → input slot k (one memcpy per run of records) → the node, in place →
 *                RecordSink: a record per frame sent, referencing the frame in input slot k
 *                (no copy; tunnels, ICMP errors and comments are copied) → output slot
 *   encoder e:   output slots e, e+K... → file bytes (frames read from input slot k)
 *   main thread: encoded slots, in order → writer; input slot k is refilled once every output
 *                slot referencing it is written.
 *
 * Why the node is in the main thread: it is ~85% of the work of a one-thread run (LinuxNode
 * receive ~300–450 ns of ~550–650 ns per frame), so its thread is the critical path whatever
 * else moves; in the main thread it starts at once (a sequencer thread first loads the node's
 * modules and compiles the rules: 130–320 ms measured, during which nothing is processed),
 * and it shares one core with the reader and the writer, which cost less than the slot
 * hand-overs and copies a separate sequencer needs. The other core encodes.
 *
 * Determinism: the same SequencerStage walks every frame in capture order (as with one thread);
 * records are encoded by encodeRecord and written in order; whether a record's bytes are read
 * from the input slot or from a copy does not change them (the node does not touch a frame
 * once sent; engine-determinism compares 1, 2 and 4 workers).
 *
 * The input slots are owned by the main thread alone (it fills them, walks them, and writes the
 * output slots that reference them), so they need no ring states: a count per slot of the
 * output slots not yet written that reference it.
 */
async function runNodeMain(
  m: MainSide,
  stageOpts: NodeStageOptions,
  outId: Int32Array,
  nIf: number,
  workers: number,
  fault: Fault | null,
  t0: bigint,
): Promise<RunOutcome> {
  const cpu0 = threadCpuMs();
  const R = m.opts.batchSize ?? DEFAULT_BATCH;
  const D = m.opts.slotData ?? DEFAULT_SLOT_DATA;
  const K = Math.max(1, Math.min(m.opts.encoders ?? workers - 1, 255));
  const P = MAIN_IN_SLOTS;
  // A multiple of K (output slot j mod O is encoded by encoder j mod K), more than P: every
  // input slot's output can wait for the writer while the next slot is walked.
  const O = K * Math.ceil((P + 2) / K);
  const ctl = new Control({ inSlots: P, outSlots: O, encoders: K });
  const c = ctl.c;
  const { inRefs, outRefs, inSlots, outSlots } = makeRings(R, D, P, O);
  const refs = new Int32Array(P);
  // The node's comments go to the encoders through the arena, not copied into each record.
  // (Only when the output carries them: pcap drops comments, and --no-comments has none.)
  const arena = stageOpts.comments && m.fmt === FMT_PCAPNG ? new CommentArena(m.opts.commentArena) : null;

  const { Piscina } = await import('piscina');
  const pool = new Piscina({ filename: workerFile(), minThreads: K, maxThreads: K, idleTimeout: 60_000, atomics: 'disabled' });
  const ports: MessagePort[] = [];
  const tasks: { name: string; frameCell: number; promise: Promise<TaskResult> }[] = [];
  const base = { control: ctl.sab, layout: { inSlots: P, outSlots: O, encoders: K }, fmt: m.fmt, startEpochMs: Date.now() };
  for (let e = 0; e < K; e++) {
    const ch = new MessageChannel();
    ports.push(ch.port1);
    const task: EngineTask = { ...base, role: 'encoder', index: e, port: ch.port2, slots: outRefs, identity: false, growable: false, inSlots: inRefs, comments: arena !== null ? (arena.sab as SharedArrayBuffer) : undefined };
    tasks.push({ name: `encoder ${e + 1}`, frameCell: ctl.encFrame(e), promise: pool.run(task, { transferList: [task.port] }) as Promise<TaskResult> });
  }
  const { settled, all } = watchTasks(tasks, ctl);
  const signal = m.opts.signal;
  const onSignal = (): void => ctl.ringAlways(C_MAIN_BELL);
  signal?.addEventListener('abort', onSignal);

  let wseq = 0; // next output slot to write
  let oseq = 0; // next output slot to publish
  const stall = new StallWatch();
  /** The encoder the oldest unwritten output slot waits for (slot j goes to encoder j mod K). */
  const waitedFor = (): { stage: string; frame: number } => {
    const e = wseq % K;
    return { stage: `encoder ${e + 1}`, frame: ctl.f[ctl.encFrame(e)]! };
  };
  /** Write the encoded output slots, in order; true if any. */
  const writeReady = (): boolean => {
    let any = false;
    for (;;) {
      const k = wseq % O;
      if (Atomics.load(c, ctl.outState(k)) !== S_ENCODED) return any;
      const s = outSlots[k]!;
      m.write(s, wseq);
      const src = s.h[H_SRC]! - 1;
      if (src >= 0) refs[src]--;
      Atomics.store(c, ctl.outState(k), S_FREE);
      wseq++;
      any = true;
      stall.progress();
    }
  };
  /** Write encoded slots until `done()` (synchronous: called from the node's walk). */
  const writeUntil = (done: () => boolean): void => {
    for (;;) {
      if (done()) return;
      const b = Atomics.load(c, C_MAIN_BELL);
      if (writeReady()) continue;
      if (ctl.aborted) throw new MainAborted();
      const t1 = process.hrtime.bigint();
      Atomics.store(c, C_MAIN_SLEEP, 1);
      Atomics.wait(c, C_MAIN_BELL, b, 1000);
      Atomics.store(c, C_MAIN_SLEEP, 0);
      m.waitNs += Number(process.hrtime.bigint() - t1);
      stall.check(wseq < oseq, waitedFor);
    }
  };
  /** The next output slot, once written. */
  const acquire = (): Slot => {
    const cell = ctl.outState(oseq % O);
    writeUntil(() => Atomics.load(c, cell) === S_FREE);
    const s = outSlots[oseq % O]!;
    s.reset();
    return s;
  };
  const publish = (s: Slot): void => {
    const src = s.h[H_SRC]! - 1;
    if (src >= 0) refs[src]++;
    Atomics.store(c, ctl.outState(oseq % O), S_READY);
    ctl.ring(ctl.encBell(oseq % K));
    oseq++;
  };

  const batch = new RecordBatch(R);
  const yielder = new Yielder(m, t0);
  // A regular file: the next chunk is read in libuv's thread pool while the node walks (the
  // synchronous read()s were ~15% of this thread's time; the batch is copied into the input
  // slots before the next readBatch, so the reader may reuse its buffers).
  m.reader.enableReadAhead();
  let stage: SequencerStage | null = null;
  let interrupted = false;
  let inputDone = false;
  let rseq = 0;
  let bi = 0;
  let bn = 0;
  let mainError: unknown = null;
  try {
    // After the pool's start: the rules compile while the encoder threads start.
    try {
      stage = new SequencerStage(stageOpts, fault, false);
    } catch (e) {
      throw new StageError(failureOf(e, 'sequencer', -1, -1));
    }
    const sink = new RecordSink(acquire(), outId, nIf, m.fmt, stage.acct, (full) => {
      publish(full);
      return acquire();
    });
    // Before the arena is reset: every slot that may reference it is handed over and written.
    if (arena !== null) {
      sink.useArena(arena, () => {
        sink.flush();
        writeUntil(() => wseq === oseq);
      });
    }
    for (;;) {
      if (ctl.aborted) break;
      const bell = Atomics.load(c, C_MAIN_BELL);
      let progressed = writeReady();
      if (inputDone && wseq >= oseq) break;
      const k = rseq % P;
      if (!inputDone && refs[k] === 0) {
        if (signal?.aborted) {
          interrupted = true;
          inputDone = true;
        }
        // A live input waits for the producer; when it goes quiet, what was read goes out first.
        if (!inputDone && bi >= bn) {
          const n = await m.nextBatch(batch, rseq, wseq >= oseq);
          if (n >= 0) [bn, bi, inputDone] = [n, 0, n === 0];
          else if (signal?.aborted) [interrupted, inputDone] = [true, true];
        }
        if (!inputDone && bi < bn) {
          bi = fillSlot(m, inSlots, k, batch, bi, -1, c, ctl.inGen(k), ports);
          const slot = inSlots[k]!;
          sink.inData = slot.data;
          sink.inSrc = k + 1;
          try {
            stage.process(slot, sink);
          } catch (e) {
            if (e instanceof MainAborted || e instanceof StallError) throw e;
            throw new StageError(failureOf(e, stage.name, stage.frame, stage.fileOffset));
          }
          sink.inData = null;
          // Its output to the encoders now (the input slot stays until that is written).
          sink.flush();
          rseq++;
          progressed = true;
        }
        if (inputDone) {
          stage.finish();
          if (sink.slot.h[H_COUNT] !== 0) publish(sink.slot);
          Atomics.store(c, C_OUT_END, oseq);
          for (let e = 0; e < K; e++) ctl.ringAlways(ctl.encBell(e));
          progressed = true;
        }
      }
      if (progressed) {
        stall.progress();
        await yielder.maybe();
        continue;
      }
      await sleepOnMainBell(m, c, bell);
      stall.check(wseq < oseq, waitedFor);
      await yielder.maybe();
    }
  } catch (e) {
    if (!(e instanceof MainAborted)) mainError = e;
    ctl.abort();
  } finally {
    signal?.removeEventListener('abort', onSignal);
  }
  if (mainError === null && !ctl.aborted && Atomics.load(c, C_OUT_END) < 0) mainError = new Error('internal: the node pipeline stopped before the end of its input');
  if (mainError !== null) ctl.abort();
  await endTasks(pool, all, mainError instanceof StallError);
  for (const p of ports) p.close();
  if (mainError !== null) throw mainError;
  const results = taskResults(tasks, settled, ctl);
  return {
    acct: stage!.acct,
    interrupted,
    encoders: K,
    stages: [{ ...mainStats(m, cpu0, t0), stage: `main (reader, ${stage!.name}, writer)` }, ...results.map((r) => r.stats)],
  };
}

/**
 * Wait for every task to end (they see the abort flag), then tear the pool down; a stuck task
 * (a stall) ends only when its thread is terminated, so then the pool goes first.
 */
async function endTasks(pool: { destroy(): Promise<void> }, all: Promise<unknown>, stalled: boolean): Promise<void> {
  if (stalled) {
    await pool.destroy();
    await all;
    return;
  }
  await all;
  await pool.destroy();
}

/**
 * The main thread sleeps (without blocking the event loop) until the main bell moves from
 * `bell` or a second passes; C_MAIN_SLEEP tells the other threads to ring it with a notify.
 */
async function sleepOnMainBell(m: MainSide, c: Int32Array, bell: number): Promise<void> {
  const t1 = process.hrtime.bigint();
  Atomics.store(c, C_MAIN_SLEEP, 1);
  const w = waitAsync(c, C_MAIN_BELL, bell, 1000);
  if (w.async) await w.value;
  Atomics.store(c, C_MAIN_SLEEP, 0);
  m.waitNs += Number(process.hrtime.bigint() - t1);
}

type Settled = TaskResult | { died: unknown };

/** Watch the tasks: one that ends early (failure) or a thread that dies stops every stage. */
function watchTasks(tasks: readonly { promise: Promise<TaskResult> }[], ctl: Control): { settled: Settled[]; all: Promise<unknown> } {
  const settled: Settled[] = [];
  const all = Promise.all(
    tasks.map((t, i) =>
      t.promise.then(
        (r) => {
          settled[i] = r;
          if (r.failure || r.aborted) ctl.abort();
          return r;
        },
        (err: unknown) => {
          settled[i] = { died: err };
          ctl.abort();
          return undefined;
        },
      ),
    ),
  );
  return { settled, all };
}

/** The tasks' results once all settled, or the error of the first that failed or whose thread died. */
function taskResults(tasks: readonly { name: string; frameCell: number }[], settled: readonly Settled[], ctl: Control): TaskResult[] {
  const results: TaskResult[] = [];
  for (let i = 0; i < tasks.length; i++) {
    const s = settled[i]!;
    if ('died' in s) {
      const t = tasks[i]!;
      const msg = s.died instanceof Error ? s.died.message : String(s.died);
      throw new StageError({ stage: t.name, frame: ctl.f[t.frameCell]!, fileOffset: -1, name: 'Error', message: `the thread died (${msg})`, kind: 'internal' });
    }
    if (s.failure) throw stageFailureError(s.failure);
    results.push(s);
  }
  if (results.some((r) => r.aborted)) throw new Error('internal: a stage stopped without a reason');
  return results;
}

function stageFailureError(f: StageError['failure']): Error {
  const e = new StageError(f);
  if (f.kind === 'input' && f.name !== 'CaptureError') e.message = describeFailure(f);
  return e;
}
