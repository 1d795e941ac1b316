/**
 * Shared memory of the engine: fixed-size slots of records, and the control block whose cells
 * the stages use to hand slots to each other (ring states) and to wake each other (doorbells).
 *
 * A slot is one SharedArrayBuffer (a plain ArrayBuffer when everything runs in one thread):
 *
 *   [Int32 header][Float64 header][u32 per-record arrays][f64 per-record arrays][data][enc]
 *
 * `data` holds the frame bytes (and comment blocks) the records point into; `enc` holds the same
 * records serialised as pcap records or pcapng EPBs, i.e. file bytes. Input slots (reader →
 * sequencer) use the record arrays and `data`; output slots (sequencer → encoders → writer) use
 * all of it; the identity pipeline uses one ring whose slots go reader → encoder → writer.
 *
 * Nothing in a slot is allocated per record; the views are built once per slot and thread.
 */
import { copyBytes } from '../util/bytes.js';

/** Int32 header cells. */
export const H_COUNT = 0;
/** Bytes used in `data`. */
export const H_DATA = 1;
/** Bytes used in `enc` (set by the encoder; the sequencer's exact prediction before that). */
export const H_ENC = 2;
export const H_FLAGS = 3;
/** Output interfaces defined when this slot is written (the encoder checks record interfaces). */
export const H_NIF = 4;
/** Identity pipeline: packet-layer classes counted by the encoder. */
export const H_NON_IPV4 = 5;
export const H_MALFORMED = 6;
export const H_TRUNCATED = 7;
/** pcap output: comments that the format cannot carry. */
export const H_COMMENTS_DROPPED = 8;
/**
 * Output slots of the main-thread sequencer: 1 + the input slot some of whose frames the records
 * reference in place (record aux bit 0), 0 when every record's bytes are in this slot's `data`.
 * (aux bit 1, AUX_CMT_ARENA: the record's comment block is in the comment arena.)
 */
export const H_SRC = 9;
const H_INTS = 16;

/** Float64 header cells. */
/** Ordinal (0-based) of the first input frame of the slot (input slots), or of the first output record (output slots). */
export const HF_FIRST = 0;
/** Input bytes (caplen) of the slot's records, for the accounting. */
export const HF_BYTES = 1;
const H_F64 = 8;

/** Slot flag: the last slot of the stream (may hold records). */
export const F_END = 1;

/** How the encoded records are laid out (the file format of the output). */
export const FMT_PCAP_US = 0;
export const FMT_PCAP_NS = 1;
export const FMT_PCAPNG = 2;

export interface SlotGeometry {
  /** Records per slot. */
  records: number;
  /** Bytes of frame data (and comment blocks) per slot. */
  data: number;
  /** Bytes of encoded output per slot (0 for input-only slots). */
  enc: number;
}

const U32_ARRAYS = 10;
const F64_ARRAYS = 2;

export function slotBytes(g: SlotGeometry): number {
  return H_INTS * 4 + H_F64 * 8 + U32_ARRAYS * 4 * g.records + F64_ARRAYS * 8 * g.records + align8(g.data) + align8(g.enc);
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

export function allocSlot(g: SlotGeometry, shared: boolean): ArrayBuffer | SharedArrayBuffer {
  const n = slotBytes(g);
  return shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n);
}

/** Views over one slot buffer. */
export class Slot {
  readonly g: SlotGeometry;
  readonly sab: ArrayBuffer | SharedArrayBuffer;
  readonly h: Int32Array;
  readonly hf: Float64Array;
  /** Offset in `data` of the record's first byte. */
  readonly offset: Uint32Array;
  readonly caplen: Uint32Array;
  readonly origlen: Uint32Array;
  readonly tsNsec: Uint32Array;
  /** Input: index in the reader's interfaces. Output: output interface id. */
  readonly iface: Uint32Array;
  /** pcapng epb_flags. */
  readonly flags: Uint32Array;
  /** Comment block (u16 length + UTF-8 bytes, repeated) in `data`; cmtLen 0 = no comments. */
  readonly cmtOff: Uint32Array;
  readonly cmtLen: Uint32Array;
  /** Input: link type | FCS bytes << 16. */
  readonly link: Uint32Array;
  /** Input (node): node interface named by the record's capture interface, -1 if none (as u32). */
  readonly aux: Int32Array;
  readonly tsSec: Float64Array;
  /** Input: byte offset of the record in the capture file. Output: ordinal of the input frame it comes from. */
  readonly pos: Float64Array;
  readonly data: Uint8Array;
  readonly dataDv: DataView;
  /** Buffer over `data` for string encoding (utf8Write). */
  readonly dataBuf: Buffer;
  readonly enc: Uint8Array;
  readonly encDv: DataView;

  constructor(sab: ArrayBuffer | SharedArrayBuffer, g: SlotGeometry) {
    this.g = g;
    this.sab = sab;
    const R = g.records;
    let p = 0;
    this.h = new Int32Array(sab, p, H_INTS);
    p += H_INTS * 4;
    this.hf = new Float64Array(sab, p, H_F64);
    p += H_F64 * 8;
    const u32 = (): Uint32Array => {
      const a = new Uint32Array(sab, p, R);
      p += 4 * R;
      return a;
    };
    this.offset = u32();
    this.caplen = u32();
    this.origlen = u32();
    this.tsNsec = u32();
    this.iface = u32();
    this.flags = u32();
    this.cmtOff = u32();
    this.cmtLen = u32();
    this.link = u32();
    this.aux = new Int32Array(sab, p, R);
    p += 4 * R;
    this.tsSec = new Float64Array(sab, p, R);
    p += 8 * R;
    this.pos = new Float64Array(sab, p, R);
    p += 8 * R;
    this.data = new Uint8Array(sab, p, g.data);
    this.dataDv = new DataView(sab, p, g.data);
    this.dataBuf = Buffer.from(sab, p, g.data);
    p += align8(g.data);
    this.enc = new Uint8Array(sab, p, g.enc);
    this.encDv = new DataView(sab, p, g.enc);
  }

  get count(): number {
    return this.h[H_COUNT]!;
  }

  /** Copy len bytes of src (at off) into data at pos. */
  copyIn(pos: number, src: Uint8Array, srcDv: DataView, off: number, len: number): void {
    copyBytes(this.data, this.dataDv, pos, src, srcDv, off, len);
  }

  /** Empty the slot for a producer. */
  reset(): void {
    this.h.fill(0);
    this.hf.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------
// Control block

/** Ring slot states. */
export const S_FREE = 0;
/** Input ring: filled by the reader, for the sequencer. Output ring: records, for an encoder. */
export const S_READY = 1;
/** Output ring: encoded, for the writer. */
export const S_ENCODED = 2;

/** Control cells (Int32). */
export const C_ABORT = 0;
export const C_MAIN_BELL = 1;
export const C_SEQ_BELL = 2;
/** Number of output slots the producer published in all, once it has finished; -1 before. */
export const C_OUT_END = 3;
/** Number of input slots the reader published in all, once it has stopped; -1 before. */
export const C_IN_END = 4;
/** Set (1) while the main thread, or the sequencer, sleeps on its bell: ring() notifies only then. */
export const C_MAIN_SLEEP = 5;
export const C_SEQ_SLEEP = 6;
/** Cells before the per-encoder and per-slot ones. (Per slot: state, and the generation of its buffer, bumped when the reader replaces it by a larger one.) */
const C_FIXED = 8;

/** Float64 counters at the end of the control block. */
export const CF_SEQ_FRAME = 0;
export const CF_SEQ_FRAMES_DONE = 1;
const CF_FIXED = 4;

export interface ControlLayout {
  inSlots: number;
  outSlots: number;
  encoders: number;
}

export class Control {
  readonly sab: SharedArrayBuffer;
  readonly c: Int32Array;
  readonly f: Float64Array;
  readonly layout: ControlLayout;
  private readonly encBell0: number;
  private readonly encSleep0: number;
  private readonly inState0: number;
  private readonly outState0: number;
  private readonly inGen0: number;
  private readonly outGen0: number;
  private readonly encFrame0: number;

  constructor(layout: ControlLayout, sab?: SharedArrayBuffer) {
    this.layout = layout;
    const ints = C_FIXED + layout.encoders * 2 + layout.inSlots * 2 + layout.outSlots * 2;
    const intBytes = align8(ints * 4);
    const f64s = CF_FIXED + layout.encoders;
    this.sab = sab ?? new SharedArrayBuffer(intBytes + f64s * 8);
    this.c = new Int32Array(this.sab, 0, ints);
    this.f = new Float64Array(this.sab, intBytes, f64s);
    this.encBell0 = C_FIXED;
    this.encSleep0 = this.encBell0 + layout.encoders;
    this.inState0 = this.encSleep0 + layout.encoders;
    this.inGen0 = this.inState0 + layout.inSlots;
    this.outState0 = this.inGen0 + layout.inSlots;
    this.outGen0 = this.outState0 + layout.outSlots;
    this.encFrame0 = CF_FIXED;
    if (!sab) {
      Atomics.store(this.c, C_OUT_END, -1);
      Atomics.store(this.c, C_IN_END, -1);
    }
  }

  encBell(e: number): number {
    return this.encBell0 + e;
  }
  /** The cell a thread sets while it sleeps on `bell`. */
  sleepOf(bell: number): number {
    return bell === C_MAIN_BELL ? C_MAIN_SLEEP : bell === C_SEQ_BELL ? C_SEQ_SLEEP : this.encSleep0 + (bell - this.encBell0);
  }
  inState(k: number): number {
    return this.inState0 + k;
  }
  inGen(k: number): number {
    return this.inGen0 + k;
  }
  outState(k: number): number {
    return this.outState0 + k;
  }
  outGen(k: number): number {
    return this.outGen0 + k;
  }
  /** Float64 cell: input frame the encoder is at (for error reports). */
  encFrame(e: number): number {
    return this.encFrame0 + e;
  }

  get aborted(): boolean {
    return Atomics.load(this.c, C_ABORT) !== 0;
  }

  /**
   * Ring a doorbell: whoever waits on it re-checks its conditions. The bell is bumped always
   * (a waiter about to sleep sees the change and does not sleep), the sleeper woken only if it
   * said it sleeps (Atomics.notify costs a futex call and a lock, ~100 ns–µs, per slot and bell).
   * A waiter sets its sleep cell, re-checks its condition, then waits on the bell value it read
   * before the check: with sequentially consistent atomics either the ringer sees the sleep
   * cell set, or the waiter sees the new state or the new bell value.
   */
  ring(cell: number): void {
    const c = this.c;
    Atomics.add(c, cell, 1);
    if (Atomics.load(c, this.sleepOf(cell)) !== 0) Atomics.notify(c, cell);
  }

  /** Wake whoever waits on `cell`, sleeping or not. */
  ringAlways(cell: number): void {
    Atomics.add(this.c, cell, 1);
    Atomics.notify(this.c, cell);
  }

  /** Stop every stage: set the abort flag and ring every bell. */
  abort(): void {
    Atomics.store(this.c, C_ABORT, 1);
    this.ringAlways(C_MAIN_BELL);
    this.ringAlways(C_SEQ_BELL);
    for (let e = 0; e < this.layout.encoders; e++) this.ringAlways(this.encBell(e));
  }
}
