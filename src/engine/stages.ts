/**
 * The stages of a replay, as plain objects that run in whichever thread the engine puts them:
 *
 *  - InputFiller (the reader's thread): copies the records of reader batches into slots;
 *  - SequencerStage (sequencer.ts): walks every input frame, in capture order, through ONE
 *    LinuxNode (the only stateful stage) and hands what the node sends to an OutSink;
 *  - RecordSink / EncodeSink: the two OutSinks; RecordSink stores output records (bytes,
 *    interface, timestamp, comment block) for an encoder, EncodeSink encodes them at once;
 *  - Encoder: serialises a slot of records into file bytes (and, for the identity pipeline,
 *    classifies every frame for the accounting).
 *
 * With one thread the same objects run one after the other (pipeline.ts), so the bytes written
 * do not depend on the number of threads: encodeRecord() is the only code that produces record
 * bytes, putComments() the only code that turns comment strings into bytes, and one node sees
 * the frames in capture order whatever the threads.
 */
import { readFileSync } from 'node:fs';
import type { FrameSink } from '../elements/linux/node.js';
import { PacketView, PARSE_MALFORMED, PARSE_NON_IPV4, PARSE_TRUNCATED } from '../packet/index.js';
import type { CaptureInterface, RecordBatch } from '../pcap/types.js';
import type { Accounting } from './accounting.js';
import { commentCount, commentsBound, encodedSize, encodeRecord, putComments } from './encode.js';
import { AUX_CMT_ARENA, CommentArena } from './comment-arena.js';
import {
  FMT_PCAPNG,
  H_COMMENTS_DROPPED,
  H_COUNT,
  H_DATA,
  H_ENC,
  H_MALFORMED,
  H_SRC,
  H_NIF,
  H_NON_IPV4,
  H_TRUNCATED,
  HF_BYTES,
  HF_FIRST,
  type Slot,
} from './slots.js';

// ---------------------------------------------------------------------------------------------
// Failures

export type FailureKind = 'input' | 'output' | 'internal';

/** What went wrong in a stage, in a form that crosses threads (structured clone). */
export interface StageFailure {
  stage: string;
  /** Ordinal (0-based) of the input frame being processed, -1 when not about a frame. */
  frame: number;
  /** Byte offset of that frame's record in the input, -1 when unknown. */
  fileOffset: number;
  /** Class name of the error (ConfigError, IngressError, TypeError...). */
  name: string;
  message: string;
  stack?: string;
  kind: FailureKind;
}

const INPUT_ERRORS = new Set(['ConfigError', 'RulesetError', 'IngressError', 'CaptureError']);
const OUTPUT_ERRORS = new Set(['EncodeError', 'WriterError']);

export function failureOf(e: unknown, stage: string, frame: number, fileOffset: number): StageFailure {
  const err = e instanceof Error ? e : new Error(String(e));
  const name = err.name && err.name !== 'Error' ? err.name : err.constructor?.name && err.constructor.name !== 'Error' ? err.constructor.name : 'Error';
  const kind: FailureKind = INPUT_ERRORS.has(name) ? 'input' : OUTPUT_ERRORS.has(name) ? 'output' : 'internal';
  return { stage, frame, fileOffset, name, message: err.message, stack: err.stack, kind };
}

/** A stage failed: the message says which stage and which frame. */
export class StageError extends Error {
  override readonly name = 'StageError';
  constructor(readonly failure: StageFailure) {
    super(describeFailure(failure));
  }
}

export function describeFailure(f: StageFailure): string {
  // A configuration or ingress error says what and where on its own.
  if (f.kind === 'input' && f.name !== 'CaptureError') return f.message;
  const where = f.frame >= 0 ? ` at frame ${f.frame + 1}${f.fileOffset >= 0 ? ` (input byte offset ${f.fileOffset})` : ''}` : '';
  const what = f.name === 'Error' || f.kind !== 'internal' ? f.message : `${f.name}: ${f.message}`;
  return `${f.stage} failed${where}: ${what}`;
}

// ---------------------------------------------------------------------------------------------
// Fault injection (tests): DPEMU_FAULT=<stage>:<throw|exit>:<frame number, 1-based>, or
// encoder:hang:<frame> (an encoder thread that never comes back: the stall watch's case), or
// sequencer:slow:<ms> (the sequencer sleeps that long per slot: slow but never stuck)

export interface Fault {
  stage: 'sequencer' | 'encoder';
  action: 'throw' | 'exit' | 'hang' | 'slow';
  /** 1-based frame number (slow: milliseconds per slot). */
  frame: number;
}

export function faultFromEnv(env: NodeJS.ProcessEnv = process.env): Fault | null {
  const v = env.DPEMU_FAULT;
  if (!v) return null;
  const m = /^(sequencer|encoder):(throw|exit):(\d+)$/.exec(v) ?? /^(encoder):(hang):(\d+)$/.exec(v) ?? /^(sequencer|encoder):(slow):(\d+)$/.exec(v);
  if (!m) return null;
  return { stage: m[1] as Fault['stage'], action: m[2] as Fault['action'], frame: Number(m[3]) };
}

/** Make the fault happen: throw, or (in a worker thread) end the thread without a word, or never return. */
/** Block this thread for `ms` (the test faults 'slow' and 'hang'). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function injectFault(f: Fault, inWorker: boolean): never {
  if (f.action === 'exit' && inWorker) process.exit(70);
  if (f.action === 'hang' && inWorker) for (;;) sleepSync(1000);
  throw new Error(`injected fault (DPEMU_FAULT=${f.stage}:${f.action}:${f.frame})`);
}

// ---------------------------------------------------------------------------------------------
// Stall watch

/**
 * The main thread's guard against a stage that stops making progress without failing (a bug:
 * an endless loop in a worker thread): when the main thread has waited on the stages for
 * `limitMs` without anything moving (no slot came back, none could be filled), the run fails
 * naming the stage and its frame, instead of hanging. A dead thread is caught at once (its
 * exit sets the abort flag); this is for one that lives on. 60 s by default, far beyond any
 * slot's work or a thread's start-up; DPEMU_STALL_MS sets it (tests).
 */
export class StallWatch {
  private last = Date.now();
  readonly limitMs: number;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    const v = Number(env.DPEMU_STALL_MS);
    this.limitMs = Number.isFinite(v) && v > 0 ? v : 60_000;
  }

  /** Something moved: a slot came back, or the main thread filled or walked one. */
  progress(): void {
    this.last = Date.now();
  }

  /** After a wait: throws a StageError for `who` when work has waited for the limit. */
  check(pending: boolean, who: () => { stage: string; frame: number }): void {
    if (!pending) {
      this.last = Date.now();
      return;
    }
    const idle = Date.now() - this.last;
    if (idle < this.limitMs) return;
    const w = who();
    throw new StallError({ stage: w.stage, frame: w.frame, fileOffset: -1, name: 'Error', message: `no progress for ${(idle / 1000).toFixed(1)} s (stuck?)`, kind: 'internal' });
  }
}

/** The StageError of a stall: the pool must be torn down before its tasks can settle. */
export class StallError extends StageError {}

// ---------------------------------------------------------------------------------------------
// CPU time of the calling thread (Linux), for the per-stage figures

let ticksPerSec = 100;

/** CPU time (user + system) of the calling thread in ms, or -1 where /proc/thread-self is missing. */
export function threadCpuMs(): number {
  try {
    const s = readFileSync('/proc/thread-self/stat', 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5) (utime, stime) are at 11 and 12 after the state field.
    return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSec;
  } catch {
    return -1;
  }
}

export function setTicksPerSec(n: number): void {
  ticksPerSec = n;
}

// ---------------------------------------------------------------------------------------------
// Reader side: batches into slots

const EPB_MAX_OVERHEAD = 51; // 28 header + 3 padding + 12 epb_flags + 4 end of options + 4 trailer
const COMMENT_OPT_OVERHEAD = 7; // 4 option header + 3 padding (the block's 2-byte length is counted in the bound)

export class InputFiller {
  /** Per reader interface: link type | FCS bytes << 16. */
  readonly linkOf: number[] = [];
  /** Identity: output interface id per reader interface. */
  readonly outIf: number[] = [];
  /** Node: node interface the capture interface's name designates (-1 if none). */
  readonly byName: number[] = [];

  constructor(
    readonly identity: boolean,
    readonly fmt: number,
    private readonly nodeIfIndex: ((name: string) => number) | null,
  ) {}

  /** Take in the interfaces the reader has met since the last call; returns how many are new. */
  sync(ifaces: readonly CaptureInterface[]): number {
    const before = this.linkOf.length;
    for (let id = before; id < ifaces.length; id++) {
      const ifc = ifaces[id]!;
      this.linkOf.push((ifc.linktype & 0xffff) | ((ifc.fcsLen & 0xffff) << 16));
      this.outIf.push(this.fmt === FMT_PCAPNG ? id : 0);
      this.byName.push(ifc.name === undefined || this.nodeIfIndex === null ? -1 : this.nodeIfIndex(ifc.name));
    }
    return ifaces.length - before;
  }

  /**
   * Copy records [from, batch.count) after what `slot` holds, as long as they fit; returns the
   * first record that did not fit (batch.count when all did). Runs of records are copied with
   * one memcpy each (the bytes between them, record headers, come along).
   */
  fill(slot: Slot, batch: RecordBatch, from: number): number {
    const n = batch.count;
    const { records: R, data: D, enc: E } = slot.g;
    const h = slot.h;
    const identity = this.identity;
    const fmt = this.fmt;
    const ng = fmt === FMT_PCAPNG;
    const off = batch.offset;
    const cap = batch.caplen;
    const comments = identity ? batch.comments : undefined;
    const anyComments = comments !== undefined && comments.length !== 0;
    const { offset: sOff, caplen: sCap, origlen: sOrig, tsSec: sTsSec, tsNsec: sTsNsec, flags: sFlags, pos: sPos, cmtLen: sCmtLen, iface: sIf, link: sLink, aux: sAux } = slot;
    const { origlen: bOrig, tsSec: bTsSec, tsNsec: bTsNsec, flags: bFlags, fileOffset: bPos, iface: bIf } = batch;
    const linkOf = this.linkOf;
    const outIf = this.outIf;
    const byName = this.byName;
    let cnt = h[H_COUNT]!;
    let dpos = h[H_DATA]!;
    let epos = h[H_ENC]!;
    let bytes = slot.hf[HF_BYTES]!;
    let i = from;
    while (i < n && cnt < R) {
      const base = off[i]!;
      let end = base;
      let cmtBound = 0;
      let encBound = 0;
      let j = i;
      for (; j < n && cnt + (j - i) < R; j++) {
        const o = off[j]!;
        if (o < end) break; // not after the previous record: start a new run
        const e = o + cap[j]!;
        const c = anyComments ? comments[j] : undefined;
        const cb = c !== undefined && c.length !== 0 ? commentsBound(c) : 0;
        let eb = 0;
        if (identity) eb = ng ? EPB_MAX_OVERHEAD + cap[j]! + (cb !== 0 ? cb + COMMENT_OPT_OVERHEAD * c!.length : 0) : 16 + cap[j]!;
        if (dpos + (e - base) + cmtBound + cb > D || epos + encBound + eb > E) break;
        end = e;
        cmtBound += cb;
        encBound += eb;
      }
      if (j === i) break;
      slot.data.set(batch.buf.subarray(base, end), dpos);
      // Plain copies of per-record arrays (no per-record lookups of the views).
      const d = dpos - base;
      const c0 = cnt;
      const n1 = j - i;
      for (let k = i, t = c0; k < j; k++, t++) sOff[t] = off[k]! + d;
      sCap.set(cap.subarray(i, j), c0);
      sOrig.set(bOrig.subarray(i, j), c0);
      sTsSec.set(bTsSec.subarray(i, j), c0);
      sTsNsec.set(bTsNsec.subarray(i, j), c0);
      sFlags.set(bFlags.subarray(i, j), c0);
      sPos.set(bPos.subarray(i, j), c0);
      sCmtLen.fill(0, c0, c0 + n1);
      for (let k = i, t = c0; k < j; k++, t++) {
        const ifc = bIf[k]!;
        sIf[t] = identity ? outIf[ifc]! : ifc;
        sLink[t] = linkOf[ifc]!;
        sAux[t] = identity ? -1 : byName[ifc]!;
        bytes += cap[k]!;
      }
      cnt += n1;
      dpos += end - base;
      if (anyComments) {
        for (let k = i, s = cnt - (j - i); k < j; k++, s++) {
          const c = comments[k];
          if (c === undefined || c.length === 0) continue;
          const len = putComments(slot.dataBuf, dpos, D - dpos, c);
          slot.cmtOff[s] = dpos;
          slot.cmtLen[s] = len;
          dpos += len;
        }
      }
      if (identity) {
        for (let s = cnt - (j - i); s < cnt; s++) epos += encodedSize(fmt, slot.caplen[s]!, slot.flags[s]!, slot.data, slot.cmtOff[s]!, slot.cmtLen[s]!);
      }
      i = j;
    }
    h[H_COUNT] = cnt;
    h[H_DATA] = dpos;
    h[H_ENC] = epos;
    slot.hf[HF_BYTES] = bytes;
    return i;
  }

  /** Bytes a slot needs to take record i of the batch alone (for growing a slot). */
  need(batch: RecordBatch, i: number): { data: number; enc: number } {
    const c = this.identity ? batch.comments[i] : undefined;
    const cb = c !== undefined && c.length !== 0 ? commentsBound(c) : 0;
    const cap = batch.caplen[i]!;
    const enc = this.identity ? (this.fmt === FMT_PCAPNG ? EPB_MAX_OVERHEAD + cap + (cb !== 0 ? cb + COMMENT_OPT_OVERHEAD * c!.length : 0) : 16 + cap) : 0;
    return { data: cap + cb, enc };
  }
}

// ---------------------------------------------------------------------------------------------
// Output sinks

/** Where the sequencer's output goes: a FrameSink that knows the current input frame. */
export abstract class OutSink implements FrameSink {
  tsSec = 0;
  tsNsec = 0;
  /** Ordinal of the input frame being processed. */
  src = 0;
  slot: Slot;
  private srcBuf: Uint8Array | null = null;
  protected srcDv: DataView | null = null;

  constructor(
    slot: Slot,
    /** Node interface index → output interface id (-1: none). */
    protected readonly outId: Int32Array,
    protected readonly nIf: number,
    protected readonly fmt: number,
    protected readonly acct: Accounting,
    /** Hand over a full slot, get an empty one (whose H_NIF and HF_FIRST the sink sets). */
    private readonly next: (full: Slot) => Slot,
  ) {
    this.slot = slot;
    this.prepare(slot);
  }

  abstract frame(buf: Uint8Array, off: number, len: number, outIf: number, comments: readonly string[] | null): void;

  protected dvOf(buf: Uint8Array): DataView {
    if (buf !== this.srcBuf) {
      this.srcBuf = buf;
      this.srcDv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    return this.srcDv!;
  }

  protected outputId(outIf: number): number {
    return outputInterfaceId(this.outId, outIf);
  }

  protected swap(): Slot {
    if (this.slot.h[H_COUNT] === 0) throw new Error('an output frame is larger than an engine slot');
    const s = this.next(this.slot);
    this.prepare(s);
    this.slot = s;
    return s;
  }

  /** Records written so far (the ordinal of the next output record). */
  written = 0;

  /** Hand over the current slot if it holds records (and take the next one). */
  flush(): void {
    if (this.slot.h[H_COUNT] !== 0) this.swap();
  }

  private prepare(s: Slot): void {
    s.h[H_NIF] = this.nIf;
    s.hf[HF_FIRST] = this.written;
  }
}

/** Stores output records in slots for the encoders. */
/** The output interface id of node interface `outIf` (outId: node interface → output id, -1 none). */
export function outputInterfaceId(outId: Int32Array, outIf: number): number {
  const id = outIf >= 0 && outIf < outId.length ? outId[outIf]! : -1;
  if (id < 0) throw new Error(`the node sent a frame out of its interface ${outIf}, which is not an output interface`);
  return id;
}

export class RecordSink extends OutSink {
  /**
   * The data of the input slot being walked (null: none), and 1 + its index in the input ring.
   * A frame the node sends from there (rewritten in place) is not copied: the record says where
   * it is (aux 1, H_SRC), and the caller keeps the input slot until the output slot is encoded.
   * Comments go through the comment arena when there is one (useArena: the record holds the
   * block's place in the arena), else they are copied into the slot after the frame.
   */
  inData: Uint8Array | null = null;
  inSrc = 0;

  /** Record i's metadata: frame at `off` (in the input slot when aux is 1, else in this slot's data). */
  private putRecord(s: Slot, i: number, off: number, len: number, id: number, aux: number): void {
    s.offset[i] = off;
    s.caplen[i] = len;
    s.origlen[i] = len;
    s.tsSec[i] = this.tsSec;
    s.tsNsec[i] = this.tsNsec;
    s.iface[i] = id;
    s.flags[i] = 2;
    s.pos[i] = this.src;
    s.aux[i] = aux;
  }

  /**
   * Comments shared with the encoders (comment-arena.ts), and how to wait until no output slot
   * references the arena (before it is reset); null: comments are copied into the slots.
   */
  private arena: CommentArena | null = null;
  private drainArena: (() => void) | null = null;

  useArena(arena: CommentArena, drain: () => void): void {
    this.arena = arena;
    this.drainArena = drain;
  }

  frame(buf: Uint8Array, off: number, len: number, outIf: number, comments: readonly string[] | null): void {
    const id = this.outputId(outIf);
    const nc = comments === null ? 0 : comments.length;
    // First (it may hand over the current slot to drain the arena before a reset).
    const ent = nc !== 0 && this.arena !== null ? this.arena.entry(comments!, this.drainArena!) : null;
    const cmtAux = ent !== null ? AUX_CMT_ARENA : 0;
    let s = this.slot;
    const g = s.g;
    const ng = this.fmt === FMT_PCAPNG;
    // encodedSize() with flags 2 of a record whose comments are not copied inline: 44 + padded,
    // plus the arena's comment options (their 4-byte header and padded text; the end-of-options
    // is in the 44).
    const size = ng ? 44 + ((len + 3) & ~3) + (ent !== null ? ent.optBytes : 0) : 16 + len;
    if (buf === this.inData && (nc === 0 || ent !== null)) {
      let h = s.h;
      if (h[H_COUNT]! >= g.records || h[H_ENC]! + size > g.enc) {
        s = this.swap();
        h = s.h;
      }
      const i = h[H_COUNT]!;
      this.putRecord(s, i, off, len, id, 1 | cmtAux);
      if (ent !== null) {
        s.cmtOff[i] = ent.off;
        s.cmtLen[i] = ent.len;
      } else s.cmtLen[i] = 0;
      h[H_SRC] = this.inSrc;
      h[H_ENC] = h[H_ENC]! + size;
      h[H_COUNT] = i + 1;
      this.written++;
      this.acct.written++;
      this.acct.bytesOut += len;
      return;
    }
    const inline = nc !== 0 && ent === null;
    const cb = inline ? commentsBound(comments!) : 0;
    const eb = inline && ng ? EPB_MAX_OVERHEAD + len + cb + COMMENT_OPT_OVERHEAD * nc : size;
    let h = s.h;
    if (h[H_COUNT]! >= g.records || h[H_DATA]! + len + cb > g.data || h[H_ENC]! + eb > g.enc) {
      s = this.swap();
      h = s.h;
    }
    const i = h[H_COUNT]!;
    let dpos = h[H_DATA]!;
    this.putRecord(s, i, dpos, len, id, cmtAux);
    s.copyIn(dpos, buf, this.dvOf(buf), off, len);
    dpos += len;
    if (inline) {
      const cl = putComments(s.dataBuf, dpos, g.data - dpos, comments!);
      s.cmtOff[i] = dpos;
      s.cmtLen[i] = cl;
      h[H_ENC] = h[H_ENC]! + encodedSize(this.fmt, len, 2, s.data, dpos, cl);
      dpos += cl;
    } else {
      s.cmtOff[i] = ent !== null ? ent.off : 0;
      s.cmtLen[i] = ent !== null ? ent.len : 0;
      h[H_ENC] = h[H_ENC]! + size;
    }
    h[H_DATA] = dpos;
    h[H_COUNT] = i + 1;
    this.written++;
    this.acct.written++;
    this.acct.bytesOut += len;
  }
}

/** Encodes output records into the slot's file bytes at once (one thread, or no encoder threads). */
export class EncodeSink extends OutSink {
  private scratch = Buffer.alloc(4096);
  private scratchDv = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.scratch.byteLength);

  frame(buf: Uint8Array, off: number, len: number, outIf: number, comments: readonly string[] | null): void {
    const id = this.outputId(outIf);
    let cl = 0;
    if (comments !== null && comments.length !== 0) {
      const bound = commentsBound(comments);
      if (bound > this.scratch.length) {
        this.scratch = Buffer.alloc(Math.max(bound, this.scratch.length * 2));
        this.scratchDv = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.scratch.byteLength);
      }
      cl = putComments(this.scratch, 0, this.scratch.length, comments);
    }
    const size = encodedSize(this.fmt, len, 2, this.scratch, 0, cl);
    let s = this.slot;
    if (s.h[H_COUNT]! >= s.g.records || s.h[H_ENC]! + size > s.g.enc) s = this.swap();
    const h = s.h;
    // pcap: encodeRecord leaves the comments out; the writer's side counts them from here.
    if (cl !== 0 && this.fmt !== FMT_PCAPNG) h[H_COMMENTS_DROPPED] = h[H_COMMENTS_DROPPED]! + comments!.length;
    h[H_ENC] = encodeRecord(this.fmt, s.enc, s.encDv, h[H_ENC]!, buf, this.dvOf(buf), off, len, len, this.tsSec, this.tsNsec, id, 2, this.scratch, this.scratchDv, 0, cl, this.nIf);
    h[H_COUNT] = h[H_COUNT]! + 1;
    this.written++;
    this.acct.written++;
    this.acct.bytesOut += len;
  }
}

// ---------------------------------------------------------------------------------------------
// The encoder

export class Encoder {
  private readonly view: PacketView | null;
  /** Frame being encoded (ordinal), and its input byte offset when known, for error reports. */
  frame = -1;
  fileOffset = -1;

  constructor(
    private readonly fmt: number,
    /** Identity pipeline: the slot's records are input records (classify them; frame = HF_FIRST + i). */
    identity: boolean,
    private readonly fault: Fault | null,
    private readonly inWorker: boolean,
    /** Where to publish the frame being encoded (a shared cell read if the thread dies). */
    private readonly frameCell: Float64Array | null = null,
    private readonly frameCellIndex = 0,
  ) {
    this.view = identity ? new PacketView() : null;
  }

  /** The comment arena of the node's records (comment-arena.ts), null if none. */
  private arenaData: Uint8Array | null = null;
  private arenaDv: DataView | null = null;

  useArena(sab: SharedArrayBuffer): void {
    const v = CommentArena.views(sab);
    this.arenaData = v.data;
    this.arenaDv = v.dv;
  }

  /**
   * Encode every record of the slot into slot.enc (H_ENC = bytes). `src`: the input slot whose
   * frames the records with aux 1 are (RecordSink.inData), null when every record is in `slot`.
   */
  encode(slot: Slot, src: Slot | null = null): void {
    const h = slot.h;
    const n = h[H_COUNT]!;
    const fmt = this.fmt;
    const nIf = h[H_NIF]!;
    const data = slot.data;
    const dv = slot.dataDv;
    const enc = slot.enc;
    const edv = slot.encDv;
    const view = this.view;
    const first = slot.hf[HF_FIRST]!;
    const fault = this.fault !== null && this.fault.stage === 'encoder' ? this.fault : null;
    // slow: the encoder sleeps so long per slot (tests: the other stages run ahead of it).
    if (fault !== null && fault.action === 'slow') sleepSync(fault.frame);
    const faultFrame = fault !== null && fault.action !== 'slow' ? fault.frame - 1 : -1;
    let nonIpv4 = 0;
    let malformed = 0;
    let truncated = 0;
    let dropped = 0;
    let p = 0;
    for (let i = 0; i < n; i++) {
      const frame = view !== null ? first + i : slot.pos[i]!;
      this.frame = frame;
      if (this.frameCell !== null) this.frameCell[this.frameCellIndex] = frame;
      if (frame === faultFrame) {
        this.fileOffset = view !== null ? slot.pos[i]! : -1;
        injectFault(this.fault!, this.inWorker);
      }
      const off = slot.offset[i]!;
      const caplen = slot.caplen[i]!;
      // aux of a node's output record: bit 0 frame in the input slot, AUX_CMT_ARENA comments in the arena.
      const aux = src !== null || this.arenaData !== null ? slot.aux[i]! : 0;
      const inSrc = src !== null && (aux & 1) !== 0;
      const cmtArena = (aux & AUX_CMT_ARENA) !== 0;
      const cmt = cmtArena ? this.arenaData! : data;
      if (view !== null) {
        const link = slot.link[i]!;
        const st = view.parse(data, dv, off, caplen, link & 0xffff, link >>> 16, slot.origlen[i]!);
        if (st === PARSE_NON_IPV4) nonIpv4++;
        else if (st === PARSE_MALFORMED) malformed++;
        else if (st === PARSE_TRUNCATED) truncated++;
      }
      const cl = slot.cmtLen[i]!;
      if (cl !== 0 && fmt !== FMT_PCAPNG) dropped += commentCount(cmt, slot.cmtOff[i]!, cl);
      try {
        p = encodeRecord(
          fmt,
          enc,
          edv,
          p,
          inSrc ? src.data : data,
          inSrc ? src.dataDv : dv,
          off,
          caplen,
          slot.origlen[i]!,
          slot.tsSec[i]!,
          slot.tsNsec[i]!,
          slot.iface[i]!,
          slot.flags[i]!,
          cmt,
          cmtArena ? this.arenaDv! : dv,
          slot.cmtOff[i]!,
          cl,
          nIf,
        );
      } catch (e) {
        this.fileOffset = view !== null ? slot.pos[i]! : -1;
        throw e;
      }
    }
    h[H_ENC] = p;
    h[H_NON_IPV4] = nonIpv4;
    h[H_MALFORMED] = malformed;
    h[H_TRUNCATED] = truncated;
    h[H_COMMENTS_DROPPED] = dropped;
    this.frame = -1;
    this.fileOffset = -1;
  }
}
