/**
 * Output comments shared with the encoder threads, so that the thread that runs the node does
 * not encode them (with comments on, the default pcapng output, that was a third of its time).
 *
 * The node repeats a connection's comment strings on every packet of it (the flow memo keeps
 * them; their texts are interned). The arena holds, for each distinct sequence of comments seen,
 * its comment block (encode.ts: u16 length + UTF-8 bytes per comment) in one SharedArrayBuffer
 * that the encoders read. A record then carries the block's offset and length (aux bit
 * AUX_CMT_ARENA) instead of a copy of the bytes, and its frame can stay where the node rewrote it
 * (in the input slot).
 *
 * Writer: one thread (the one running the node). Readers: the encoders, which read an entry
 * only through a record published after the entry was written (the slot's state is stored with
 * Atomics after the bytes, and loaded with Atomics before them). Entries are never changed; the
 * arena is reset only when it is full, after every output slot that may reference it has been
 * encoded (the caller's `drain`).
 *
 * Determinism: the bytes of a block are putComments' bytes for the same strings, whichever
 * thread encodes them and whether they came from the arena or a slot (engine-determinism).
 */
import { commentsBound, putComments } from './encode.js';
import { pad4 } from '../pcap/records.js';

/** aux bit of an output record: its comment block is in the arena (cmtOff/cmtLen are arena offsets). */
export const AUX_CMT_ARENA = 2;

/** A sequence of comments: its block in the arena (off, len) and the EPB option bytes it makes. */
class Entry {
  off = -1;
  len = 0;
  /** Σ (4 + pad4(l)) over its comments: the bytes of the comment options in an EPB. */
  optBytes = 0;
  /** The arena generation (resets) it was written in. */
  gen = 0;
  next: Map<string, Entry> | null = null;
}

const DEFAULT_SIZE = 4 << 20;

export class CommentArena {
  readonly sab: SharedArrayBuffer;
  readonly data: Uint8Array;
  readonly dv: DataView;
  private readonly buf: Buffer;
  /** Trie of comment strings: root.next.get(c0).next.get(c1)... is the entry of [c0, c1, ...]. */
  private root = new Entry();
  private used = 0;
  /** Entries by the comments array they were found for; valid while their gen is the arena's. */
  private readonly byArray = new WeakMap<readonly string[], Entry>();
  private gen = 0;
  /** Resets so far (each waited for the encoders). */
  resets = 0;

  constructor(size = DEFAULT_SIZE) {
    this.sab = new SharedArrayBuffer(Number.isFinite(size) && size >= 256 ? Math.floor(size) : DEFAULT_SIZE);
    this.data = new Uint8Array(this.sab);
    this.dv = new DataView(this.sab);
    this.buf = Buffer.from(this.sab);
  }

  /** Views of an arena made in another thread (the encoders). */
  static views(sab: SharedArrayBuffer): { data: Uint8Array; dv: DataView } {
    return { data: new Uint8Array(sab), dv: new DataView(sab) };
  }

  /**
   * The entry of `comments` (non-empty), added if new; null when its block cannot be stored
   * here (larger than half the arena: the caller copies it into the slot as before). `drain`
   * is called before a reset: it returns once no output slot that may reference the arena is
   * left unencoded.
   */
  entry(comments: readonly string[], drain: () => void): Entry | null {
    // The node hands the same array for every packet of a memoised flow (FrameSink: never
    // changed): one WeakMap lookup (~26 ns) instead of a Map lookup per comment.
    const known = this.byArray.get(comments);
    if (known !== undefined && known.gen === this.gen) return known;
    const e = this.find(comments, drain);
    if (e !== null) this.byArray.set(comments, e);
    return e;
  }

  private find(comments: readonly string[], drain: () => void): Entry | null {
    let e = this.root;
    for (let i = 0; i < comments.length; i++) {
      const c = comments[i]!;
      let m = e.next;
      if (m === null) {
        m = new Map();
        e.next = m;
      }
      let n = m.get(c);
      if (n === undefined) {
        n = new Entry();
        m.set(c, n);
      }
      e = n;
    }
    if (e.off >= 0) return e;
    const bound = commentsBound(comments);
    if (bound > this.data.length >> 1) return null;
    if (this.used + bound > this.data.length) {
      drain();
      this.root = new Entry();
      this.used = 0;
      this.resets++;
      this.gen++;
      return this.find(comments, drain);
    }
    const len = putComments(this.buf, this.used, this.data.length - this.used, comments);
    e.off = this.used;
    e.len = len;
    e.gen = this.gen;
    let opt = 0;
    for (let p = this.used; p < this.used + len; ) {
      const l = this.data[p]! | (this.data[p + 1]! << 8);
      opt += 4 + pad4(l);
      p += 2 + l;
    }
    e.optBytes = opt;
    this.used += len;
    return e;
  }
}

export type { Entry as CommentEntry };
