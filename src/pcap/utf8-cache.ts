/**
 * The UTF-8 bytes of strings that are written again and again: a node's output comments (the
 * flow memo hands the same comment strings for every packet of a connection). Encoding a
 * ~200-character comment costs ~500 ns, a Map hit ~20 ns plus a copy: with comments on (the
 * default pcapng output) encoding was a third of a one-thread node replay (1M frames: 524 ms of
 * 1.48 s, --cpu-prof).
 *
 * Keyed by content (Map compares strings by value; V8 keeps a string's hash in the string, so a
 * string seen before costs no rehash), so any string equal to a cached one gets the same bytes:
 * the output cannot depend on what is cached. Bounded: cleared when it holds `maxEntries`
 * strings. Strings longer than MAX_CHARS are not cached (the caller encodes them), so every
 * cached encoding is whole (≤ 3 × 4096 bytes, below the 65535 bytes of a pcapng option).
 */
const MAX_CHARS = 4096;

export class Utf8Cache {
  private readonly map = new Map<string, Uint8Array>();

  constructor(private readonly maxEntries = 16384) {}

  /** The UTF-8 bytes of `s` (Buffer.from's encoding: a lone surrogate becomes U+FFFD), or null when `s` is too long to cache. */
  get(s: string): Uint8Array | null {
    const hit = this.map.get(s);
    if (hit !== undefined) return hit;
    if (s.length > MAX_CHARS) return null;
    if (this.map.size >= this.maxEntries) this.map.clear();
    const b = Buffer.from(s, 'utf8');
    // Its own small ArrayBuffer rather than a view of Buffer's shared pool (a pooled view would
    // keep an 8 KiB slab alive per cached string).
    const own = new Uint8Array(b.length);
    own.set(b);
    this.map.set(s, own);
    return own;
  }
}
