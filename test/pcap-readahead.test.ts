/**
 * The capture reader's read-ahead (enableReadAhead / ready): the next chunk of a regular file
 * is read in libuv's thread pool into a second buffer while the records of the current one are
 * processed. Whatever the interleaving (ready() awaited before every batch, reads landing at
 * arbitrary event-loop turns, next() called while a read is still in flight), the records,
 * their file offsets, the damage (offsets, skipped damage) and the ending must be those of
 * synchronous reading: over the whole corpus, and over hand-built files whose records straddle
 * chunk boundaries of tiny buffers, take the chunk by swapping buffers and by copying, and need
 * the buffer to grow. The buffer of the batch last returned is never written until the next
 * call, even when the caller rewrites its frames in place (as the one-thread node path does).
 * And the engine's one-thread paths write the same bytes with tiny reader buffers as with one
 * buffer holding the whole input.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureError } from '../src/pcap/errors.js';
import { CaptureReader, type ReaderOptions } from '../src/pcap/reader.js';
import { RecordBatch } from '../src/pcap/types.js';
import { CaptureWriter } from '../src/pcap/writer.js';
import { runEngine, type EngineOptions, type PipelineSpec } from '../src/engine/pipeline.js';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { genServiceCapture, writeServiceNode } from './support/engine.js';
import { pcapFileHeader } from './support/frames.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const corpus = path.resolve(repo, '../shared/corpus');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpemu-readahead-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/**
 * How the caller behaves between batches: 'sync' no read-ahead; 'ready' awaits ready() before
 * every batch (the engine's way); 'mixed' (seeded) sometimes awaits ready(), sometimes only lets
 * the event loop turn (the read lands on its own), sometimes goes straight on (next() finds the
 * read in flight and reads synchronously).
 */
type Mode = 'sync' | 'ready' | 'mixed';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Every record (lengths, timestamps, interface, flags, comments, file offset, index, bytes), the
 * ending (clean or the CaptureError's offset, place and text), the damage skipped, in one string.
 * With `scribble`, every frame is overwritten after it was digested (as a node rewriting frames
 * in place), and the batch's bytes are checked unchanged across an event-loop turn.
 */
async function digest(file: string, opts: ReaderOptions, capacity: number, mode: Mode, scribble = false, seed = 1): Promise<{ text: string; readAhead: boolean; buffers: Set<Uint8Array> }> {
  const parts: string[] = [];
  let h = 0x811c9dc5;
  const mix = (v: number): void => {
    h = Math.imul(h ^ (v >>> 0), 16777619);
    h = Math.imul(h ^ Math.floor(v / 4294967296), 16777619);
  };
  let rnd = seed >>> 0 || 1;
  const next3 = (): number => {
    rnd ^= rnd << 13;
    rnd ^= rnd >>> 17;
    rnd ^= rnd << 5;
    return (rnd >>> 0) % 3;
  };
  const batch = new RecordBatch(capacity);
  const buffers = new Set<Uint8Array>();
  let n = 0;
  let end = 'eof';
  let readAhead = false;
  let r: CaptureReader | undefined;
  try {
    r = CaptureReader.open(file, opts);
    if (mode !== 'sync') readAhead = r.enableReadAhead();
    for (;;) {
      if (mode === 'ready') await r.ready();
      else if (mode === 'mixed') {
        const k = next3();
        if (k === 0) await r.ready();
        else if (k === 1) await tick();
      }
      const k = r.next(batch);
      if (!k) break;
      buffers.add(batch.buf);
      for (let i = 0; i < k; i++) {
        mix(batch.caplen[i]!);
        mix(batch.origlen[i]!);
        mix(batch.tsSec[i]!);
        mix(batch.tsNsec[i]!);
        mix(batch.iface[i]!);
        mix(batch.flags[i]!);
        mix(batch.fileOffset[i]!);
        mix(batch.index[i]!);
        const c = batch.comments[i];
        if (c) for (const s of c) for (let j = 0; j < s.length; j++) mix(s.charCodeAt(j));
        const o = batch.offset[i]!;
        for (let j = 0; j < batch.caplen[i]!; j++) mix(batch.buf[o + j]!);
      }
      if (scribble && mode !== 'sync') {
        // The batch's bytes stay put while reads land, and rewriting them harms nothing after.
        const lo = batch.offset[0]!;
        const hi = batch.offset[k - 1]! + batch.caplen[k - 1]!;
        const before = batch.buf.slice(lo, hi);
        await r.ready();
        await tick();
        expect(Buffer.compare(before, batch.buf.subarray(lo, hi)), `batch bytes changed under the caller (${file})`).toBe(0);
        for (let i = 0; i < k; i++) batch.buf.fill(0xee, batch.offset[i]!, batch.offset[i]! + batch.caplen[i]!);
      }
      n += k;
    }
  } catch (e) {
    end = e instanceof CaptureError ? `${e.offset} ${e.where}: ${e.what} (${e.message})` : `non-CaptureError ${String(e)}`;
  } finally {
    r?.close();
  }
  parts.push(`${n} records ${(h >>> 0).toString(16)}`, end);
  if (r) {
    parts.push(`custom ${r.customBlocks}, consumed ${r.bytesConsumed}, ${r.errorCount} skipped`);
    for (const e of r.errors) parts.push(`skipped ${e.offset} ${e.where}: ${e.what}`);
    parts.push(`${r.sections.length} sections, ${r.interfaces.length} interfaces`);
  }
  return { text: parts.join('\n'), readAhead, buffers };
}

function corpusFiles(): string[] {
  const lines = fs.readFileSync(path.join(corpus, 'INDEX.tsv'), 'utf8').trim().split('\n');
  const col = lines[0]!.split('\t').findIndex((h) => h.startsWith('file'));
  return lines.slice(1).map((l) => path.join(corpus, l.split('\t')[col]!));
}

// ---------------------------------------------------------------------------------------------
// Building files

function pcapRecords(count: number, len: (i: number) => number, nsec = false): Uint8Array {
  const recs: Uint8Array[] = [];
  recs.push(pcapFileHeader({ ns: nsec }));
  for (let i = 0; i < count; i++) {
    const l = len(i);
    const r = Buffer.alloc(16 + l);
    r.writeUInt32LE(1000 + i, 0);
    r.writeUInt32LE(i * 13, 4);
    r.writeUInt32LE(l, 8);
    r.writeUInt32LE(l + (i % 3), 12);
    for (let j = 0; j < l; j++) r[16 + j] = (i * 7 + j) & 255;
    recs.push(r);
  }
  return Buffer.concat(recs);
}

/** A pcapng file of `count` EPBs (some with comments and flags), IDBs appearing mid-file and a second section. */
function pcapngRecords(count: number, len: (i: number) => number): Uint8Array {
  const blocks: Buffer[] = [];
  const block = (type: number, body: Buffer): Buffer => {
    const total = 12 + body.length;
    const b = Buffer.alloc(total);
    b.writeUInt32LE(type, 0);
    b.writeUInt32LE(total, 4);
    body.copy(b, 8);
    b.writeUInt32LE(total, total - 4);
    return b;
  };
  const shb = (): Buffer => {
    const body = Buffer.alloc(16);
    body.writeUInt32LE(0x1a2b3c4d, 0);
    body.writeUInt16LE(1, 4);
    body.writeUInt16LE(0, 6);
    body.writeBigInt64LE(-1n, 8);
    return block(0x0a0d0d0a, body);
  };
  const idb = (): Buffer => {
    const body = Buffer.alloc(8);
    body.writeUInt16LE(1, 0);
    body.writeUInt32LE(0, 4);
    return block(1, body);
  };
  const opt = (code: number, data: Buffer): Buffer => {
    const o = Buffer.alloc(4 + ((data.length + 3) & ~3));
    o.writeUInt16LE(code, 0);
    o.writeUInt16LE(data.length, 2);
    data.copy(o, 4);
    return o;
  };
  const epb = (ifid: number, i: number, l: number): Buffer => {
    const data = Buffer.alloc((l + 3) & ~3);
    for (let j = 0; j < l; j++) data[j] = (i * 11 + j) & 255;
    const opts: Buffer[] = [];
    if (i % 5 === 0) opts.push(opt(1, Buffer.from(`frame ${i}`)));
    if (i % 7 === 0) {
      const f = Buffer.alloc(4);
      f.writeUInt32LE(i, 0);
      opts.push(opt(2, f));
    }
    if (opts.length) opts.push(Buffer.alloc(4));
    const head = Buffer.alloc(20);
    head.writeUInt32LE(ifid, 0);
    head.writeUInt32LE(0, 4);
    head.writeUInt32LE(1_700_000_000 + i, 8);
    head.writeUInt32LE(l, 12);
    head.writeUInt32LE(l, 16);
    return block(6, Buffer.concat([head, data, ...opts]));
  };
  blocks.push(shb(), idb());
  let ifs = 1;
  for (let i = 0; i < count; i++) {
    if (i === Math.floor(count / 3)) {
      blocks.push(idb());
      ifs++;
    }
    if (i === Math.floor((2 * count) / 3)) {
      blocks.push(shb(), idb());
      ifs = 1;
    }
    blocks.push(epb(i % ifs, i, len(i)));
  }
  return Buffer.concat(blocks);
}

let fileSeq = 0;
function write(name: string, bytes: Uint8Array): string {
  const f = path.join(tmp, `${++fileSeq}-${name}`);
  fs.writeFileSync(f, bytes);
  return f;
}

// ---------------------------------------------------------------------------------------------

describe('read-ahead', () => {
  it('is on only for a regular file of open(), and the batches then alternate between two buffers', async () => {
    const f = write('two.pcap', pcapRecords(3000, (i) => 40 + (i % 60)));
    const allocated: number[] = [];
    const opts: ReaderOptions = { bufferSize: 4096, allocate: (n) => (allocated.push(n), new Uint8Array(n)) };
    const d = await digest(f, opts, 64, 'ready');
    expect(d.readAhead).toBe(true);
    expect(d.buffers.size).toBe(2);
    expect(allocated).toEqual([4096, 4096]);
    expect(d.text).toBe((await digest(f, { bufferSize: 4096 }, 64, 'sync')).text);

    // A file that fits in the buffer needs no second one.
    allocated.length = 0;
    const small = await digest(f, { allocate: opts.allocate }, 64, 'ready');
    expect(small.buffers.size).toBe(1);
    expect(allocated).toHaveLength(1);

    // Not for a descriptor the caller owns (stdin, pipes).
    const fd = fs.openSync(f, 'r');
    const r = CaptureReader.fromFd(fd, '<stdin>', { bufferSize: 4096 });
    expect(r.enableReadAhead()).toBe(false);
    await r.ready();
    r.close();
    fs.closeSync(fd);
  });

  it('gives the records, damage and ending of synchronous reading over the whole corpus', async () => {
    const problems: string[] = [];
    let files = 0;
    for (const file of corpusFiles()) {
      files++;
      for (const opts of [{ bufferSize: 4096 }, { bufferSize: 1024, onDamage: 'skip' as const }]) {
        const ref = (await digest(file, opts, 64, 'sync')).text;
        for (const mode of ['ready', 'mixed'] as const) {
          const got = (await digest(file, opts, mode === 'ready' ? 64 : 7, mode, mode === 'ready', files)).text;
          if (got !== ref) problems.push(`${path.relative(corpus, file)} ${JSON.stringify(opts)} ${mode}:\n${got}\n!=\n${ref}`);
        }
      }
    }
    expect(files).toBe(616);
    expect(problems).toEqual([]);
  }, 240_000);

  it('reads records straddling chunk boundaries of tiny buffers like synchronous reading (swapped and copied chunks, growth)', async () => {
    const files = [
      // Small records: the tail always fits in the headroom (chunks swapped).
      write('small.pcap', pcapRecords(2000, (i) => (i * 37) % 120)),
      write('small-ns.pcap', pcapRecords(500, (i) => 1 + (i % 9), true)),
      // Records larger than a tiny buffer's headroom (chunks copied) and than the buffer (growth).
      write('mixed.pcap', pcapRecords(600, (i) => (i % 50 === 7 ? 3000 + i : 30 + ((i * 53) % 400)))),
      write('mixed.pcapng', pcapngRecords(900, (i) => (i % 97 === 3 ? 5000 : 20 + ((i * 29) % 300)))),
    ];
    for (const f of files) {
      for (const bufferSize of [64, 100, 256, 1000, 4096]) {
        for (const capacity of [1, 5, 64]) {
          const ref = (await digest(f, { bufferSize }, capacity, 'sync')).text;
          expect(ref).toMatch(/\neof\n/);
          for (const mode of ['ready', 'mixed'] as const) {
            const got = await digest(f, { bufferSize }, capacity, mode, true, bufferSize + capacity);
            expect(got.readAhead).toBe(true);
            expect(got.text, `${path.basename(f)} buffer ${bufferSize} batch ${capacity} ${mode}`).toBe(ref);
          }
        }
      }
    }
  }, 120_000);

  it('reports damage at the same offsets (pcap stops, pcapng skip resyncs) with read-ahead', async () => {
    const good = Buffer.from(pcapngRecords(400, (i) => 40 + ((i * 17) % 200)));
    const bad = Buffer.from(good);
    // Scribble over a few blocks in the middle (bad lengths, bad types).
    for (const at of [3000, 3001, 9000, 15000, 15004, 22222]) bad[at] = 0xff;
    const ng = write('damaged.pcapng', bad);
    const p = Buffer.from(pcapRecords(300, (i) => 50 + (i % 40)));
    p.writeUInt32LE(0x7fffffff, 24 + 16 * 100 + 5000); // some record header's length field, or its data
    const pc = write('damaged.pcap', p);
    const cut = write('cut.pcap', Buffer.from(pcapRecords(300, (i) => 50 + (i % 40))).subarray(0, 12345));
    for (const f of [ng, pc, cut]) {
      for (const onDamage of ['stop', 'skip'] as const) {
        for (const bufferSize of [64, 512, 4096]) {
          const ref = (await digest(f, { bufferSize, onDamage }, 16, 'sync')).text;
          for (const mode of ['ready', 'mixed'] as const) {
            expect((await digest(f, { bufferSize, onDamage }, 16, mode, false, bufferSize)).text, `${path.basename(f)} ${onDamage} ${bufferSize} ${mode}`).toBe(ref);
          }
        }
      }
    }
    // The damage is really there.
    expect((await digest(ng, { bufferSize: 512, onDamage: 'skip' }, 16, 'ready')).text).toMatch(/skipped \d+/);
    expect((await digest(cut, { bufferSize: 512 }, 16, 'ready')).text).toMatch(/file ends inside record/);
  }, 60_000);

  it('closes the file only after a read in flight has landed', async () => {
    const f = write('close.pcap', pcapRecords(5000, (i) => 60 + (i % 40)));
    const fds = (): number => fs.readdirSync('/proc/self/fd').length;
    const base = fds();
    const r = CaptureReader.open(f, { bufferSize: 8192 });
    expect(r.enableReadAhead()).toBe(true);
    const batch = new RecordBatch(16);
    expect(r.next(batch)).toBe(16);
    r.close(); // a read is in flight: the fd must outlive it
    expect(r.next(batch)).toBe(0);
    for (let i = 0; i < 50 && fds() > base; i++) await new Promise((res) => setTimeout(res, 5));
    expect(fds()).toBe(base);
  });
});

describe('engine, one thread, with read-ahead', () => {
  it('writes the same bytes with tiny reader buffers as with one buffer holding the whole input (identity and node)', async () => {
    const input = path.join(tmp, 'service.pcap');
    genServiceCapture(input, 20000);
    const node = loadNodeConfig(writeServiceNode(tmp));
    const specs: [string, PipelineSpec][] = [
      ['identity', { kind: 'identity' }],
      ['node', { kind: 'node', node, seed: 3, comments: true }],
    ];
    const ng = path.join(tmp, 'service.pcapng');
    {
      // The same frames as pcapng input.
      const w = CaptureWriter.open(ng, { format: 'pcapng', interfaces: [{ name: 'eth0', linktype: 1 }] });
      const r = CaptureReader.open(input);
      const b = new RecordBatch(1024);
      while (r.next(b) > 0) w.writeBatch(b, new Uint32Array([0]));
      r.close();
      w.commit();
    }
    for (const inPath of [input, ng]) {
      for (const [name, spec] of specs) {
        for (const format of ['pcap', 'pcapng'] as const) {
          const run = async (bufferSize: number | undefined, tag: string): Promise<Buffer> => {
            const outPath = path.join(tmp, `${name}-${format}-${tag}.out`);
            const o: EngineOptions = { inPath, outPath, format, workers: 1, batchSize: 500 };
            if (bufferSize !== undefined) o.bufferSize = bufferSize;
            const res = await runEngine(spec, o);
            expect(res.damage).toBeUndefined();
            expect(res.acct.in).toBe(20000);
            return fs.readFileSync(outPath);
          };
          const ref = await run(undefined, 'whole');
          for (const bufferSize of [4096, 65536]) {
            const got = await run(bufferSize, String(bufferSize));
            expect(Buffer.compare(got, ref), `${path.basename(inPath)} ${name} ${format} buffer ${bufferSize}`).toBe(0);
          }
        }
      }
    }
  }, 120_000);
});
