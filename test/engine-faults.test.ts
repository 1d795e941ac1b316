/**
 * Faults and stops: a worker that throws, dies or hangs (the stall watch) fails the run with a message naming the stage
 * and the frame, tears the pool down and leaves no output and no temporary file; SIGINT stops
 * reading, finishes the frames in flight and leaves a valid output of everything read (exit
 * 130, the summary says so); damaged input keeps the frames before the damage (exit 3); an
 * output the format cannot hold is an output error (exit 4); standard input and output work as
 * files do.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureReader } from '../src/pcap/reader.js';
import { RecordBatch } from '../src/pcap/types.js';
import { countRecords, dpemuRun, dpemuSpawn, genServiceCapture, ROOT, writeServiceNode } from './support/engine.js';
import { genCapture } from '../src/engine/gen.js';

let dir: string;
let input: string;
let node: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpemu-engine-faults-'));
  input = join(dir, 'in.pcap');
  genServiceCapture(input, 50_000);
  node = writeServiceNode(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const leftovers = (): string[] => readdirSync(dir).filter((f) => f.endsWith('.tmp') || f.startsWith('out'));

/** Read a capture to its end; throws on any damage. */
function readToEnd(path: string): number {
  const r = CaptureReader.open(path);
  const b = new RecordBatch(4096);
  let n = 0;
  try {
    for (let k = r.next(b); k > 0; k = r.next(b)) n += k;
  } finally {
    r.close();
  }
  return n;
}

describe('engine faults', () => {
  const cases: { what: string; fault: string; workers: number; args: string[]; stage: RegExp; died?: boolean; env?: Record<string, string> }[] = [
    { what: 'the sequencer throws (one thread)', fault: 'sequencer:throw:20001', workers: 1, args: ['--node'], stage: /sequencer \(node engine-worker\) failed at frame 20001 \(input byte offset \d+\): injected fault/ },
    { what: 'the sequencer throws (main thread, encoder threads)', fault: 'sequencer:throw:20001', workers: 2, args: ['--node'], stage: /sequencer \(node engine-worker\) failed at frame 20001 \(input byte offset \d+\): injected fault/ },
    { what: 'the sequencer thread throws', fault: 'sequencer:throw:20001', workers: 2, args: ['--node'], stage: /sequencer \(node engine-worker\) failed at frame 20001 \(input byte offset \d+\): injected fault/, env: { DPEMU_SEQUENCER: 'worker' } },
    { what: 'the sequencer thread dies', fault: 'sequencer:exit:20001', workers: 2, args: ['--node'], stage: /sequencer \(node engine-worker\) failed at frame 20001: the thread died/, died: true, env: { DPEMU_SEQUENCER: 'worker' } },
    { what: 'an encoder thread throws', fault: 'encoder:throw:30001', workers: 3, args: ['--node'], stage: /encoder [12] failed at frame 30001: injected fault/ },
    { what: 'an encoder thread dies', fault: 'encoder:exit:30001', workers: 3, args: ['--node'], stage: /encoder [12] failed at frame 30001: the thread died/, died: true },
    { what: 'an identity encoder throws', fault: 'encoder:throw:40001', workers: 2, args: [], stage: /encoder [12] failed at frame 40001 \(input byte offset \d+\): injected fault/ },
    { what: 'an identity encoder thread dies', fault: 'encoder:exit:40001', workers: 2, args: [], stage: /encoder [12] failed at frame 40001: the thread died/, died: true },
    // A thread that lives on without progress (an endless loop): the stall watch ends the run.
    { what: 'an encoder thread hangs', fault: 'encoder:hang:30001', workers: 3, args: ['--node'], stage: /encoder [12] failed at frame 30001: no progress for \d+\.\d s \(stuck\?\)/, env: { DPEMU_STALL_MS: '3000' } },
    { what: 'an encoder thread hangs (sequencer thread)', fault: 'encoder:hang:30001', workers: 3, args: ['--node'], stage: /encoder [12] failed at frame 30001: no progress for/, env: { DPEMU_STALL_MS: '3000', DPEMU_SEQUENCER: 'worker' } },
    { what: 'an identity encoder thread hangs', fault: 'encoder:hang:40001', workers: 2, args: [], stage: /encoder 1 failed at frame 40001: no progress for/, env: { DPEMU_STALL_MS: '3000' } },
  ];
  for (const c of cases) {
    it(`${c.what}: exit 1, the stage and the frame named, no output, no temporary file`, () => {
      const out = join(dir, 'out.pcapng');
      const args = ['replay', ...(c.args.length ? ['--node', node] : []), '--in', input, '--out', out, '--workers', String(c.workers)];
      const r = dpemuRun(args, { env: { DPEMU_FAULT: c.fault, ...c.env } });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(c.stage);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(out)).toBe(false);
      expect(leftovers()).toEqual([]);
    });
  }

  it('no false stall: a slow sequencer thread that writes nothing for longer than the limit, while it keeps taking slots', () => {
    // Every frame for a MAC no interface has (no ingress interface: counted as errors), and a
    // sequencer thread that sleeps 100 ms per slot: nothing is written for ~3.7 s, longer than
    // the 2 s limit, but the main thread fills a slot every 100 ms. Only a wait with nothing
    // moving may count towards the limit (a first version counted written slots only).
    const other = join(dir, 'other-mac.pcap');
    genCapture(other, { frames: 150_000, seed: 5, minLen: 60, maxLen: 100, dstMac: '02:00:00:00:99:99' });
    const out = join(dir, 'out-drops.pcap');
    const env = { DPEMU_STALL_MS: '2000', DPEMU_SEQUENCER: 'worker', DPEMU_FAULT: 'sequencer:slow:100' };
    const r = dpemuRun(['replay', '--node', node, '--in', other, '--out', out, '--workers', '2', '--json'], { env });
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.toString('utf8')) as { in: number; droppedTotal: number; errorsTotal: number; written: number };
    expect(j.in).toBe(150_000);
    expect(j.droppedTotal + j.errorsTotal).toBe(150_000);
    expect(j.written).toBe(0);
    rmSync(out, { force: true });
  });

  it('SIGINT stops reading, finishes the frames in flight, writes a valid output and says so (exit 130)', async () => {
    const big = join(dir, 'big.pcap');
    genServiceCapture(big, 3_000_000);
    for (const w of [1, 2]) {
      const out = join(dir, `out-int-${w}.pcap`);
      const stats = join(dir, `int-${w}.json`);
      const child = dpemuSpawn(['replay', '--node', node, '--in', big, '--out', out, '--workers', String(w), '--stats', stats]);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      await new Promise((res) => setTimeout(res, 1200));
      child.kill('SIGINT');
      const code = await exited;
      expect(code, stderr).toBe(130);
      expect(stderr).toMatch(/interrupted\s+yes: the output holds the [\d,]+ frames read before SIGINT/);
      const j = JSON.parse(readFileSync(stats, 'utf8')) as Record<string, number | boolean>;
      expect(j.interrupted).toBe(true);
      expect(j.balanced).toBe(true);
      expect(j.in).toBeGreaterThan(0);
      expect(j.in).toBeLessThan(3_000_000);
      // Every frame read was processed and written, and the file reads to its end.
      expect(readToEnd(out)).toBe(j.written);
      expect(j.written).toBe(j.in);
      rmSync(out);
    }
    rmSync(big);
    expect(leftovers()).toEqual([]);
  }, 120_000);

  it('damaged input: the frames before the damage, exit 3, with and without worker threads', () => {
    const cut = join(dir, 'cut.pcap');
    const bytes = readFileSync(input);
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6) + 5));
    const want = countRecords(cut);
    for (const w of [1, 2]) {
      const out = join(dir, `out-cut-${w}.pcap`);
      const r = dpemuRun(['replay', '--node', node, '--in', cut, '--out', out, '--workers', String(w), '--json']);
      expect(r.status, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/cut\.pcap: byte offset \d+/);
      expect(JSON.parse(r.stdout.toString('utf8')).in).toBe(want);
      expect(readToEnd(out)).toBe(want);
      rmSync(out);
    }
    expect(leftovers()).toEqual([]);
  });

  it('a record the output format cannot hold (pcap timestamp after 2106): exit 4, no output', () => {
    const corpusFile = resolve(ROOT, '../shared/corpus/tcpdump/time_2107.pcapng');
    if (!existsSync(corpusFile)) return;
    for (const w of [1, 2]) {
      const out = join(dir, 'out-2107.pcap');
      const r = dpemuRun(['replay', '--in', corpusFile, '--out', out, '--workers', String(w)]);
      expect(r.status, r.stderr).toBe(4);
      // One thread: the writer says it (record 0); with workers: the encoder stage (frame 1).
      expect(r.stderr).toMatch(w === 1 ? /out-2107\.pcap: record 0: .*pcap timestamp/ : /out-2107\.pcap: encoder.* failed at frame 1.*pcap timestamp/);
      expect(existsSync(out)).toBe(false);
    }
    expect(leftovers()).toEqual([]);
  });
});

describe('engine standard input and output', () => {
  it('--in - --out - gives the bytes of the file-to-file run (node and identity, 1 and 2 workers)', () => {
    const data = readFileSync(input);
    for (const args of [['--node', node], []]) {
      const ref = join(dir, 'ref.pcap');
      expect(dpemuRun(['replay', ...args, '--in', input, '--out', ref, '--workers', '1']).status).toBe(0);
      const want = readFileSync(ref);
      for (const w of [1, 2]) {
        const r = dpemuRun(['replay', ...args, '--in', '-', '--out', '-', '--format', 'pcap', '--workers', String(w)], { input: data });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/dpemu replay: - -> - \(pcap/);
        expect(Buffer.compare(r.stdout, want)).toBe(0);
      }
      rmSync(ref);
    }
  });

  it('refuses --json with --out - (both would go to standard output)', () => {
    const r = dpemuRun(['replay', '--in', input, '--out', '-', '--json']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--stats FILE/);
  });
});
