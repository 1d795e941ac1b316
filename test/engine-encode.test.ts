/**
 * The engine's record encoder (src/engine/encode.ts) against CaptureWriter: the same records
 * give the same bytes, whatever the comments (ASCII, UTF-8, empty, longer than an option can
 * hold), flags, lengths and timestamps; and the writer's errors are the encoder's errors.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaptureWriter } from '../src/pcap/writer.js';
import { commentsBound, encodedSize, encodeRecord, EncodeError, putComments } from '../src/engine/encode.js';
import { FMT_PCAP_NS, FMT_PCAP_US, FMT_PCAPNG } from '../src/engine/slots.js';
import { Prng } from '../src/util/prng.js';

const dir = mkdtempSync(join(tmpdir(), 'dpemu-encode-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Rec {
  frame: Uint8Array;
  origlen: number;
  tsSec: number;
  tsNsec: number;
  iface: number;
  flags: number;
  comments?: string[];
}

function randomRecords(n: number, nIf: number, seed: number): Rec[] {
  const rng = new Prng(seed);
  const texts = ['', 'a', 'FORWARD eth0->eth1: ACCEPT', 'é ü ß — “quotes”', '日本語のコメント', '\u{1F600} emoji', 'x'.repeat(70000), 'é'.repeat(40000), '\ud800 lone surrogate'];
  const out: Rec[] = [];
  for (let i = 0; i < n; i++) {
    const len = rng.nextInt(0, 9) === 0 ? rng.nextInt(0, 3) : rng.nextInt(14, 1600);
    const frame = new Uint8Array(len);
    for (let k = 0; k < len; k++) frame[k] = rng.nextU32() & 0xff;
    const nc = rng.nextInt(0, 3) === 0 ? rng.nextInt(0, 3) : 0;
    const comments = nc > 0 || rng.nextInt(0, 20) === 0 ? Array.from({ length: nc }, () => texts[rng.nextInt(0, texts.length - 1)]!) : undefined;
    out.push({
      frame,
      origlen: rng.nextInt(0, 3) === 0 ? len + rng.nextInt(0, 100) : rng.nextInt(0, 4) === 0 ? Math.max(0, len - 5) : len,
      tsSec: 1_700_000_000 + rng.nextInt(0, 1_000_000),
      tsNsec: rng.nextInt(0, 999_999_999),
      iface: rng.nextInt(0, nIf - 1),
      flags: rng.nextInt(0, 2) === 0 ? rng.nextU32() : 0,
      comments,
    });
  }
  return out;
}

function viaWriter(path: string, fmt: number, nIf: number, recs: Rec[]): Uint8Array {
  const w = CaptureWriter.open(path, {
    format: fmt === FMT_PCAPNG ? 'pcapng' : 'pcap',
    nanosecond: fmt === FMT_PCAP_NS,
    interfaces: Array.from({ length: fmt === FMT_PCAPNG ? nIf : 1 }, (_, i) => ({ name: `if${i}`, linktype: 1 })),
  });
  for (const r of recs) w.writeRecord(r.frame, 0, r.frame.length, r.origlen, r.tsSec, r.tsNsec, fmt === FMT_PCAPNG ? r.iface : 0, r.comments, r.flags);
  w.commit();
  return readFileSync(path);
}

function viaEncoder(path: string, fmt: number, nIf: number, recs: Rec[]): Uint8Array {
  const w = CaptureWriter.open(path, {
    format: fmt === FMT_PCAPNG ? 'pcapng' : 'pcap',
    nanosecond: fmt === FMT_PCAP_NS,
    interfaces: Array.from({ length: fmt === FMT_PCAPNG ? nIf : 1 }, (_, i) => ({ name: `if${i}`, linktype: 1 })),
  });
  const enc = new Uint8Array(1 << 20);
  const edv = new DataView(enc.buffer);
  const cmt = Buffer.alloc(1 << 20);
  const cdv = new DataView(cmt.buffer, cmt.byteOffset, cmt.byteLength);
  for (const r of recs) {
    const cl = r.comments && r.comments.length ? putComments(cmt, 0, cmt.length, r.comments) : 0;
    expect(cl).toBeGreaterThanOrEqual(0);
    const size = encodedSize(fmt, r.frame.length, r.flags, cmt, 0, cl);
    const src = r.frame;
    const end = encodeRecord(fmt, enc, edv, 0, src, new DataView(src.buffer, src.byteOffset, src.byteLength), 0, src.length, r.origlen, r.tsSec, r.tsNsec, fmt === FMT_PCAPNG ? r.iface : 0, r.flags, cmt, cdv, 0, cl, nIf);
    expect(end).toBe(size);
    // Split the writes to exercise both paths of writeEncoded (buffered, direct).
    w.writeEncoded(enc, 0, end, 1);
  }
  w.commit();
  return readFileSync(path);
}

describe('engine encoder', () => {
  for (const [name, fmt] of [
    ['pcap (µs)', FMT_PCAP_US],
    ['pcap (ns)', FMT_PCAP_NS],
    ['pcapng', FMT_PCAPNG],
  ] as const) {
    it(`writes ${name} records exactly as CaptureWriter`, () => {
      const recs = randomRecords(3000, 3, 7 + fmt);
      const a = viaWriter(join(dir, `w-${fmt}`), fmt, 3, recs);
      const b = viaEncoder(join(dir, `e-${fmt}`), fmt, 3, recs);
      expect(b.length).toBe(a.length);
      expect(Buffer.compare(a, b)).toBe(0);
    });
  }

  it('cuts a comment to 65535 bytes on a character boundary, as the writer does', () => {
    const c = Buffer.alloc(200000);
    const s = 'é'.repeat(40000); // 80000 bytes of UTF-8
    const n = putComments(c, 0, c.length, [s]);
    const len = c[0]! | (c[1]! << 8);
    expect(n).toBe(2 + len);
    expect(len).toBe(65534);
    expect(commentsBound([s])).toBeGreaterThanOrEqual(n);
    expect(putComments(c, 0, 10, [s])).toBe(-1);
  });

  it('refuses what the writer refuses', () => {
    const enc = new Uint8Array(4096);
    const edv = new DataView(enc.buffer);
    const f = new Uint8Array(60);
    const fdv = new DataView(f.buffer);
    const none = new Uint8Array(0);
    const ndv = new DataView(none.buffer);
    expect(() => encodeRecord(FMT_PCAP_US, enc, edv, 0, f, fdv, 0, 60, 60, 2 ** 33, 0, 0, 0, none, ndv, 0, 0, 1)).toThrow(EncodeError);
    expect(() => encodeRecord(FMT_PCAP_US, enc, edv, 0, f, fdv, 0, 60, 60, 1, 0, 1, 0, none, ndv, 0, 0, 1)).toThrow(/interface 1/);
    expect(() => encodeRecord(FMT_PCAPNG, enc, edv, 0, f, fdv, 0, 60, 60, 1, 0, 2, 0, none, ndv, 0, 0, 2)).toThrow(/interface 2/);
    expect(() => encodeRecord(FMT_PCAPNG, enc, edv, 0, f, fdv, 0, 60, 60, -5, 0, 0, 0, none, ndv, 0, 0, 1)).toThrow(/1970\.\.2554/);
  });
});
