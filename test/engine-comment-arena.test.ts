/**
 * The comment arena (src/engine/comment-arena.ts): each sequence of comments gets putComments'
 * block once; the same sequence (the same array, or equal strings in another array) finds it
 * again; a full arena is drained (every slot that may reference it written) before it is reset,
 * and no entry of an older generation is handed out after a reset.
 */
import { describe, expect, it } from 'vitest';
import { CommentArena } from '../src/engine/comment-arena.js';
import { encodedSize, putComments } from '../src/engine/encode.js';
import { FMT_PCAPNG } from '../src/engine/slots.js';

function blockOf(comments: readonly string[]): Buffer {
  const b = Buffer.alloc(1 << 16);
  return b.subarray(0, putComments(b, 0, b.length, comments));
}

function bytesAt(a: CommentArena, off: number, len: number): Buffer {
  return Buffer.from(a.data.subarray(off, off + len));
}

describe('CommentArena', () => {
  it('stores putComments blocks once per sequence, with the EPB option bytes they make', () => {
    const a = new CommentArena();
    const drain = (): void => {
      throw new Error('no drain expected');
    };
    const seqs = [['FORWARD eth0->eth1: ACCEPT', 'DNAT 1.2.3.4:80 -> 10.0.0.1:80'], ['FORWARD eth0->eth1: ACCEPT'], ['é—コメント', ''], ['\ud800', 'x'.repeat(3)]];
    const first = seqs.map((s) => a.entry(s, drain)!);
    for (let i = 0; i < seqs.length; i++) {
      const e = first[i]!;
      expect(bytesAt(a, e.off, e.len)).toEqual(blockOf(seqs[i]!));
      // 44 + padded frame + the options = encodedSize with flags.
      expect(44 + 100 + e.optBytes).toBe(encodedSize(FMT_PCAPNG, 100, 2, blockOf(seqs[i]!), 0, e.len));
      // The same array, and a copy with equal strings, find the same entry.
      expect(a.entry(seqs[i]!, drain)).toBe(e);
      expect(a.entry(seqs[i]!.map((t) => (' ' + t).slice(1)), drain)).toBe(e);
    }
    expect(new Set(first.map((e) => e.off)).size).toBe(seqs.length);
  });

  it('drains before it resets, and hands out no entry of an older generation', () => {
    const a = new CommentArena(256);
    let drains = 0;
    const live = new Map<readonly string[], { off: number; len: number }>();
    const drain = (): void => {
      drains++;
      live.clear(); // everything written before the reset is out of the slots now
    };
    const arrays = Array.from({ length: 40 }, (_, i) => [`comment number ${i}`, `é ${i % 7}`]);
    for (let round = 0; round < 3; round++) {
      for (const arr of arrays) {
        const e = a.entry(arr, drain)!;
        // Whatever was written since the last drain is still intact.
        for (const [k, v] of live) expect(bytesAt(a, v.off, v.len)).toEqual(blockOf(k));
        expect(bytesAt(a, e.off, e.len)).toEqual(blockOf(arr));
        live.set(arr, { off: e.off, len: e.len });
      }
    }
    expect(drains).toBeGreaterThan(5);
    expect(a.resets).toBe(drains);
  });

  it('declines a block larger than half the arena', () => {
    const a = new CommentArena(256);
    expect(a.entry(['y'.repeat(200)], () => undefined)).toBeNull();
    expect(a.entry(['y'.repeat(20)], () => undefined)).not.toBeNull();
  });
});
