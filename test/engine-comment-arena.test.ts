/**
 * The comment arena (src/engine/comment-arena.ts): a frozen comments array (the flow memo's)
 * gets putComments' block at its second sight and finds it again; other arrays are not kept; a
 * full arena is drained (every slot that may reference it written) before it is reset, and an
 * entry of an older generation is not handed out (it is stored again at its second sight after
 * the reset).
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

const noDrain = (): void => {
  throw new Error('no drain expected');
};

describe('CommentArena', () => {
  it("stores a frozen array's putComments block once, with the EPB option bytes it makes", () => {
    const a = new CommentArena();
    const seqs = [['FORWARD eth0->eth1: ACCEPT', 'DNAT 1.2.3.4:80 -> 10.0.0.1:80'], ['FORWARD eth0->eth1: ACCEPT'], ['é—コメント', ''], ['\ud800', 'x'.repeat(3)]].map((s) => Object.freeze(s));
    for (const s of seqs) expect(a.entry(s, noDrain), 'first sight').toBeNull();
    const first = seqs.map((s) => a.entry(s, noDrain)!);
    for (let i = 0; i < seqs.length; i++) {
      const e = first[i]!;
      expect(bytesAt(a, e.off, e.len)).toEqual(blockOf(seqs[i]!));
      // 44 + padded frame + the options = encodedSize with flags.
      expect(44 + 100 + e.optBytes).toBe(encodedSize(FMT_PCAPNG, 100, 2, blockOf(seqs[i]!), 0, e.len));
      expect(a.entry(seqs[i]!, noDrain)).toBe(e);
    }
    expect(new Set(first.map((e) => e.off)).size).toBe(seqs.length);
  });

  it('keeps no array that is not frozen (a walk\'s notes, one per packet)', () => {
    const a = new CommentArena();
    const notes = ['FORWARD eth0->eth1: ACCEPT'];
    for (let k = 0; k < 3; k++) expect(a.entry(notes, noDrain)).toBeNull();
  });

  it('once full, serves what it holds and stores nothing more while a quarter of its lookups hit', () => {
    const a = new CommentArena(4096); // window: 64 lookups
    const hot = Array.from({ length: 8 }, (_, i) => Object.freeze([`hot ${i} `.padEnd(200, 'h')]));
    const cold = Array.from({ length: 400 }, (_, i) => Object.freeze([`cold ${i} `.padEnd(200, 'c')]));
    for (const h of hot) [0, 1].forEach(() => a.entry(h, noDrain));
    // Fill it with cold arrays (each seen twice), then keep the hot ones busy: no reset.
    let k = 0;
    while (k < 30) {
      a.entry(cold[k]!, noDrain);
      a.entry(cold[k]!, noDrain);
      k++;
    }
    for (let r = 0; r < 50; r++) {
      for (const h of hot) expect(a.entry(h, noDrain)).not.toBeNull();
      a.entry(cold[k % cold.length]!, noDrain);
      k++;
    }
    expect(a.resets).toBe(0);
  });

  it('drains before it resets, and stores entries of an older generation again at their second sight', () => {
    const a = new CommentArena(256);
    let drains = 0;
    const live = new Map<readonly string[], { off: number; len: number }>();
    const drain = (): void => {
      drains++;
      live.clear(); // everything written before the reset is out of the slots now
    };
    const arrays = Array.from({ length: 40 }, (_, i) => Object.freeze([`comment number ${i}`, `é ${i % 7}`]));
    let stored = 0;
    for (let round = 0; round < 10; round++) {
      for (const arr of arrays) {
        // Twice in a row: the second sight stores it (unless a reset came in between).
        for (let k = 0; k < 2; k++) {
          const e = a.entry(arr, drain);
          if (e === null) continue;
          stored++;
          // Whatever was handed out since the last drain is still intact.
          for (const [kk, v] of live) expect(bytesAt(a, v.off, v.len)).toEqual(blockOf(kk));
          expect(bytesAt(a, e.off, e.len)).toEqual(blockOf(arr));
          live.set(arr, { off: e.off, len: e.len });
        }
      }
    }
    expect(stored).toBeGreaterThan(100);
    expect(drains).toBeGreaterThan(3);
    expect(a.resets).toBe(drains);
  });

  it('declines a block larger than half the arena; clamps its size', () => {
    const a = new CommentArena(256);
    const big = Object.freeze(['y'.repeat(200)]);
    const small = Object.freeze(['y'.repeat(20)]);
    for (let k = 0; k < 3; k++) expect(a.entry(big, () => undefined)).toBeNull();
    a.entry(small, () => undefined);
    expect(a.entry(small, () => undefined)).not.toBeNull();
    expect(new CommentArena(1e11).data.length).toBe(256 << 20);
    expect(new CommentArena(3).data.length).toBe(256);
  });
});
