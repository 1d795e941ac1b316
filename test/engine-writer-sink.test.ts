/**
 * The one-thread node sink (WriterSink, src/engine/pipeline.ts): frames the node sends from the
 * input batch's buffer wait and are written by writeBatch at flush(); everything else is written
 * at once. The output must be exactly what writeRecord per sent frame, in the order sent, gives:
 * for pcap and pcapng, runs and non-runs, frames from other buffers, comments, a full pending
 * batch, and an input buffer that is reused for the next batch.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Accounting } from '../src/engine/accounting.js';
import { WriterSink } from '../src/engine/pipeline.js';
import { RecordBatch } from '../src/pcap/types.js';
import { CaptureWriter } from '../src/pcap/writer.js';
import { Prng } from '../src/util/prng.js';

const dir = mkdtempSync(join(tmpdir(), 'dpemu-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;

interface Sent {
  buf: Uint8Array;
  off: number;
  len: number;
  outIf: number;
  comments: string[] | null;
  tsSec: number;
  tsNsec: number;
}

/**
 * Replay `batches` input batches of `perBatch` frames through a fake node that sends frames in
 * place (whole, shortened), from its own buffer, with comments, twice, or not at all; returns
 * the file written through WriterSink and the one written by writeRecord at each send.
 */
function run(format: 'pcap' | 'pcapng', seed: number, capacity: number, verbatim: { ns: boolean } | null = null): { viaSink: Buffer; direct: Buffer; written: number } {
  const rng = new Prng(seed);
  const interfaces = format === 'pcap' ? [{ name: 'eth0', linktype: 1 }] : [{ name: 'eth0', linktype: 1 }, { name: 'eth1', linktype: 1 }];
  const outId = format === 'pcap' ? new Int32Array([0, 0]) : new Int32Array([1, 0]);
  const pSink = join(dir, `${++seq}-sink.${format}`);
  const pDirect = join(dir, `${seq}-direct.${format}`);
  const nanosecond = verbatim?.ns ?? false;
  const ws = CaptureWriter.open(pSink, { format, interfaces, bufferSize: 4096, nanosecond });
  const wd = CaptureWriter.open(pDirect, { format, interfaces, bufferSize: 4096, nanosecond });
  const acct = new Accounting();
  const sink = new WriterSink(ws, outId, acct, capacity, verbatim);
  // One input buffer for every batch (as the reader reuses its buffer), and a node level buffer.
  const input = new Uint8Array(64 * 1024);
  const level = new Uint8Array(2048);
  const batch = new RecordBatch(64, input);
  for (let b = 0; b < 6; b++) {
    // Lay out the batch like a pcap reader does: a 16-byte header, then the frame.
    batch.count = 0;
    let p = 0;
    const n = rng.nextInt(1, 60);
    const dv = new DataView(input.buffer);
    const tsNsecOf: number[] = [];
    for (let i = 0; i < n; i++) {
      const len = rng.nextInt(0, 8) === 0 ? rng.nextInt(0, 5) : rng.nextInt(14, 300);
      tsNsecOf.push(i * 1000 + (verbatim && !verbatim.ns ? 0 : rng.nextInt(0, 999)));
      for (let k = 0; k < 16; k++) input[p + k] = 0xee;
      // Verbatim runs: mostly the header the writer would write (a pcap input of the same
      // kind), sometimes one that differs in a single field, else junk (another format).
      const h = verbatim ? rng.nextInt(0, 9) : 9;
      if (h < 9) {
        dv.setUint32(p, 1_700_000_000 + b + (h === 6 ? 1 : 0), true);
        dv.setUint32(p + 4, verbatim!.ns ? tsNsecOf[i]! : tsNsecOf[i]! / 1000 + (h === 7 ? 1 : 0), true);
        dv.setUint32(p + 8, len, true);
        dv.setUint32(p + 12, len + (h === 8 ? 1 : 0), true);
      }
      for (let k = 0; k < len; k++) input[p + 16 + k] = rng.nextU32() & 0xff;
      batch.offset[i] = p + 16;
      batch.caplen[i] = len;
      p += 16 + len;
    }
    batch.count = n;
    sink.begin(batch);
    for (let i = 0; i < n; i++) {
      sink.tsSec = 1_700_000_000 + b;
      sink.tsNsec = tsNsecOf[i]!;
      const off = batch.offset[i]!;
      const len = batch.caplen[i]!;
      const sent: Sent[] = [];
      const send = (buf: Uint8Array, o: number, l: number, comments: string[] | null): void => {
        const outIf = rng.nextInt(0, 1);
        sent.push({ buf, off: o, len: l, outIf, comments, tsSec: sink.tsSec, tsNsec: sink.tsNsec });
        sink.frame(buf, o, l, outIf, comments);
        wd.writeRecord(buf, o, l, l, sink.tsSec, sink.tsNsec, outId[outIf]!, comments !== null && comments.length !== 0 ? comments : undefined, 2);
      };
      // The node rewrites the frame in place before sending it, never after.
      if (len > 0) input[off] = (input[off]! + 1) & 0xff;
      const what = rng.nextInt(0, 9);
      if (what <= 4) send(input, off, len, null); // forwarded whole: a run
      else if (what === 5 && len > 4) send(input, off, len - rng.nextInt(1, 4), rng.nextInt(0, 1) ? [] : null); // shorter (Ethernet padding)
      else if (what === 6) {
        // From the node's own buffer (tunnel, ICMP error), which it reuses right after.
        const l = rng.nextInt(20, 200);
        for (let k = 0; k < l; k++) level[100 + k] = rng.nextU32() & 0xff;
        send(level, 100, l, null);
        level.fill(0x55);
      } else if (what === 7) send(input, off, len, ['FORWARD eth0->eth1: ACCEPT', 'é']); // comments: at once
      else if (what === 8) {
        send(level, 0, 60, null);
        send(input, off, len, null);
      } // 9: dropped, nothing sent
    }
    sink.flush();
    // The reader refills the same buffer for the next batch.
    input.fill(0xaa, 0, p);
  }
  ws.commit();
  wd.commit();
  return { viaSink: readFileSync(pSink), direct: readFileSync(pDirect), written: acct.written };
}

describe('WriterSink', () => {
  for (const format of ['pcap', 'pcapng'] as const) {
    it(`${format}: the bytes of writeRecord per sent frame, in order (runs, other buffers, comments, full pending batch)`, () => {
      for (const [seed, capacity] of [
        [1, 4096],
        [2, 7],
        [3, 1],
        [4, 64],
      ] as const) {
        const r = run(format, seed, capacity);
        expect(r.written).toBeGreaterThan(50);
        expect(r.viaSink.equals(r.direct), `seed ${seed}, capacity ${capacity}`).toBe(true);
      }
    });
  }
  for (const ns of [false, true]) {
    it(`pcap ${ns ? 'ns' : 'µs'}, verbatim runs (input headers equal to the output's): the same bytes`, () => {
      for (const [seed, capacity] of [
        [5, 4096],
        [6, 7],
        [7, 1],
        [8, 64],
      ] as const) {
        const r = run('pcap', seed, capacity, { ns });
        expect(r.written).toBeGreaterThan(50);
        expect(r.viaSink.equals(r.direct), `seed ${seed}, capacity ${capacity}`).toBe(true);
      }
    });
  }
});
