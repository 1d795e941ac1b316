/**
 * The capture reader's read-ahead, seen from the system calls (node:fs mocked to count and to
 * fail reads): with ready() awaited between batches the main thread reads nothing after the
 * start (every chunk comes from the thread pool, whether it is taken by swapping buffers or by
 * copying), every read goes to an explicit position, and a failed read in the thread pool ends
 * reading with a CaptureError naming the file and the offset of the read, after the records
 * before it.
 */
import { describe, expect, it, vi, beforeAll, afterAll } from 'vitest';

const io = vi.hoisted(() => ({ sync: 0, async: 0, unpositioned: 0, failAt: -1 }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    readSync: (fd: number, buf: Uint8Array, off: number, len: number, pos: number | null): number => {
      io.sync++;
      if (pos === null) io.unpositioned++;
      return fs.readSync(fd, buf, off, len, pos);
    },
    read: (fd: number, buf: Uint8Array, off: number, len: number, pos: number, cb: (e: Error | null, n: number) => void): void => {
      io.async++;
      if (io.failAt >= 0 && pos >= io.failAt) {
        setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }), 0));
        return;
      }
      fs.read(fd, buf, off, len, pos, (e, n) => cb(e, n));
    },
  };
});

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CaptureError } from '../src/pcap/errors.js';
import { CaptureReader } from '../src/pcap/reader.js';
import { RecordBatch } from '../src/pcap/types.js';
import { pcapFileHeader } from './support/frames.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpemu-readahead-io-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function pcap(count: number, len: (i: number) => number): string {
  const parts: Buffer[] = [];
  parts.push(pcapFileHeader({ snaplen: 65535 }));
  for (let i = 0; i < count; i++) {
    const l = len(i);
    const r = Buffer.alloc(16 + l);
    r.writeUInt32LE(i, 0);
    r.writeUInt32LE(l, 8);
    r.writeUInt32LE(l, 12);
    for (let j = 0; j < l; j++) r[16 + j] = (i + j) & 255;
    parts.push(r);
  }
  const f = path.join(tmp, `${count}-${len(1)}-${len(2)}.pcap`);
  fs.writeFileSync(f, Buffer.concat(parts));
  return f;
}

/** Read with ready() before every batch; the records' offsets and first bytes, and the I/O after enableReadAhead. */
async function readAll(f: string, bufferSize: number, readAhead: boolean): Promise<{ recs: number[]; error?: unknown; sync: number; async: number }> {
  const r = CaptureReader.open(f, { bufferSize });
  const batch = new RecordBatch(32);
  const recs: number[] = [];
  io.sync = 0;
  io.async = 0;
  let error: unknown;
  if (readAhead) expect(r.enableReadAhead()).toBe(true);
  try {
    for (;;) {
      await r.ready();
      const n = r.next(batch);
      if (!n) break;
      for (let i = 0; i < n; i++) recs.push(batch.fileOffset[i]!, batch.caplen[i]!, batch.buf[batch.offset[i]!]!, batch.buf[batch.offset[i]! + batch.caplen[i]! - 1]!);
    }
  } catch (e) {
    error = e;
  }
  r.close();
  return { recs, error, sync: io.sync, async: io.async };
}

describe('read-ahead I/O', () => {
  it('reads every chunk in the thread pool when ready() is awaited (swapped and copied chunks), at explicit positions', async () => {
    io.unpositioned = 0;
    // Small records: tails fit the headroom. Records of ~1.5 KiB with a 4 KiB buffer: tails
    // longer than its 1 KiB headroom, chunks copied (taken in pieces) until the headroom has
    // grown, which may cost one synchronous read.
    for (const [f, size, syncReads] of [
      [pcap(5000, (i) => 40 + (i % 50)), 4096, 1],
      [pcap(2000, (i) => 1200 + ((i * 37) % 700)), 4096, 2],
      [pcap(3000, (i) => 60 + (i % 1400)), 65536, 1],
    ] as const) {
      const sync = await readAll(f, size, false);
      const ra = await readAll(f, size, true);
      expect(ra.error).toBeUndefined();
      expect(ra.recs).toEqual(sync.recs);
      expect(sync.sync).toBeGreaterThan(10);
      // The final read that finds the end of the file (and the one above).
      expect(ra.sync, `${f} ${size}`).toBeLessThanOrEqual(syncReads);
      expect(ra.async).toBeGreaterThanOrEqual(Math.floor(fs.statSync(f).size / size));
    }
    expect(io.unpositioned).toBe(0);
  });

  it('reports a failed read in the thread pool as a CaptureError at its offset, after the records before it', async () => {
    const f = pcap(3000, (i) => 40 + (i % 50));
    const all = (await readAll(f, 4096, false)).recs;
    io.failAt = 50_000;
    try {
      const ra = await readAll(f, 4096, true);
      const e = ra.error as CaptureError;
      expect(e).toBeInstanceOf(CaptureError);
      expect(e.file).toBe(f);
      expect(e.what).toMatch(/^read error: EIO/);
      expect(e.offset).toBeGreaterThanOrEqual(50_000);
      expect(e.offset).toBeLessThan(50_000 + 4096);
      expect(e.message).toContain(`byte offset ${e.offset}`);
      // Every record that ends before the failed read was delivered, and nothing after it.
      const got = ra.recs;
      expect(got).toEqual(all.slice(0, got.length));
      const lastEnd = got.length ? got[got.length - 4]! + 16 + got[got.length - 3]! : 24;
      expect(lastEnd).toBeLessThanOrEqual(e.offset);
      const nextRec = all.slice(got.length, got.length + 4);
      expect(nextRec[0]! + 16 + nextRec[1]!).toBeGreaterThan(e.offset);
    } finally {
      io.failAt = -1;
    }
  });
});
