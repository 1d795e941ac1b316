/**
 * Output comments shared with the encoder threads, so that the thread that runs the node does
 * not encode them (with comments on, the default pcapng output, that was a third of its time).
 *
 * The flow memo hands the same frozen comments array for every packet it forwards for a
 * connection direction (FrameSink in node.ts). The arena holds, per such array seen twice within
 * a generation, its comment block (encode.ts: u16 length + UTF-8 bytes per comment) in one
 * SharedArrayBuffer that the encoders read. A record then carries the block's offset and length
 * (aux bit AUX_CMT_ARENA) instead of a copy of the bytes, and its frame can stay where the node
 * rewrote it (in the input slot). Anything else (a walk's notes, one array per packet; an array
 * seen once since the last reset) gets null: the caller copies the comments into the slot as
 * before. So a capture whose connections come back less often than the arena turns over costs
 * what it cost without the arena: a first version stored every frozen array at once and, with
 * 60,000 interleaved connections, rewrote them after every reset (0.85× the old rate), and a
 * content-keyed cache of strings missed on every lookup there (0.5×).
 *
 * The one-thread sink (WriterSink) uses an arena in an ordinary ArrayBuffer the same way: the
 * writer copies the block at once, so nothing has to drain.
 *
 * Writer: one thread (the one running the node). Readers: the encoders, which read an entry
 * only through a record published after the entry was written (the slot's state is stored with
 * Atomics after the bytes, and loaded with Atomics before them). Entries are never changed; the
 * arena is reset only when it is full and mostly missed (see entry), after every output slot
 * that may reference it has been encoded (the caller's `drain`); an entry of an older generation
 * is stored again at its second sight after the reset.
 *
 * Determinism: the bytes of a block are putComments' bytes for the same strings, whichever
 * thread encodes them and whether they came from the arena or a slot (engine-determinism).
 */
import { commentsBound, putComments } from './encode.js';
import { pad4 } from '../pcap/records.js';

/** aux bit of an output record: its comment block is in the arena (cmtOff/cmtLen are arena offsets). */
export const AUX_CMT_ARENA = 2;

/** A comments array's block in the arena (off, len) and the EPB option bytes it makes. */
export interface CommentEntry {
  off: number;
  len: number;
  /** Σ (4 + pad4(l)) over its comments: the bytes of the comment options in an EPB. */
  optBytes: number;
  /** The arena generation (resets) it was written in. */
  gen: number;
}

const DEFAULT_SIZE = 4 << 20;
const MIN_SIZE = 256;
const MAX_SIZE = 256 << 20;
/**
 * Lookups of a full arena after which it is reset if fewer than a quarter of them were hits: one
 * per 64 bytes of arena (65,536 for 4 MiB), so that a reset (a drain of the encoders and the
 * blocks written again) is rare next to the lookups it serves.
 */
const WINDOW_BYTES = 64;

export class CommentArena {
  readonly sab: SharedArrayBuffer | ArrayBuffer;
  readonly data: Uint8Array;
  readonly dv: DataView;
  private readonly buf: Buffer;
  private readonly byArray = new WeakMap<readonly string[], CommentEntry>();
  private used = 0;
  private gen = 0;
  /** Full: nothing more is stored until a reset. Lookups and hits of memo arrays since it filled. */
  private full = false;
  private readonly window: number;
  private lookups = 0;
  private hits = 0;
  /** Resets so far (each waited for the encoders). */
  resets = 0;

  /** `size` bytes (clamped to 256 B..256 MiB; default 4 MiB); `shared`: in a SharedArrayBuffer (for encoder threads). */
  constructor(size = DEFAULT_SIZE, shared = true) {
    const n = Number.isFinite(size) ? Math.min(MAX_SIZE, Math.max(MIN_SIZE, Math.floor(size))) : DEFAULT_SIZE;
    this.sab = shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n);
    this.data = new Uint8Array(this.sab);
    this.dv = new DataView(this.sab);
    this.buf = Buffer.from(this.sab);
    this.window = Math.max(64, Math.floor(n / WINDOW_BYTES));
  }

  /** Views of an arena made in another thread (the encoders). */
  static views(sab: SharedArrayBuffer): { data: Uint8Array; dv: DataView } {
    return { data: new Uint8Array(sab), dv: new DataView(sab) };
  }

  /**
   * The entry of `comments` (non-empty), written at its second sight in this generation; null
   * when the array is not the flow memo's (not frozen), is seen for the first time in this
   * generation, does not fit (the arena is full, or the block is larger than half of it): the
   * caller copies the comments itself.
   *
   * A full arena stays as it is (its entries keep being served) until a window of lookups
   * finds fewer than a quarter of them there; then it is reset (`drain` is called first: it
   * returns once no output slot that may reference the arena is left unencoded). So a capture
   * whose connections do not all fit keeps a fixed part of them cached rather than replacing
   * them on every turn (round-robin over 20,000 connections of 1.2 KB of comments: reset on each
   * fill, every entry was gone before it came back), and connections that ended make room.
   */
  entry(comments: readonly string[], drain: () => void): CommentEntry | null {
    const e = this.byArray.get(comments);
    if (e === undefined) {
      // First sight of a memo array: remember it (off -1), store it if it comes back.
      if (Object.isFrozen(comments)) {
        this.byArray.set(comments, { off: -1, len: 0, optBytes: 0, gen: this.gen });
        this.lookups++;
      }
      return null;
    }
    if (e.gen === this.gen && e.off >= 0) {
      this.hits++;
      this.lookups++;
      return e;
    }
    if (this.full && this.lookups >= this.window && this.hits * 4 < this.lookups) {
      drain();
      this.used = 0;
      this.gen++;
      this.resets++;
      this.full = false;
      this.lookups = 0;
      this.hits = 0;
    }
    this.lookups++;
    if (e.gen !== this.gen) {
      // Written before the last reset: seen once in this generation.
      e.gen = this.gen;
      e.off = -1;
      return null;
    }
    const bound = commentsBound(comments);
    if (bound > this.data.length >> 1) return null;
    if (this.used + bound > this.data.length) {
      if (!this.full) {
        this.full = true;
        this.lookups = 0;
        this.hits = 0;
      }
      return null;
    }
    const off = this.used;
    const len = putComments(this.buf, off, this.data.length - off, comments);
    let opt = 0;
    for (let p = off; p < off + len; ) {
      const l = this.data[p]! | (this.data[p + 1]! << 8);
      opt += 4 + pad4(l);
      p += 2 + l;
    }
    this.used = off + len;
    e.off = off;
    e.len = len;
    e.optBytes = opt;
    return e;
  }
}
