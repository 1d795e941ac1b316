/**
 * `npm run bench`: benchmark.js suites that load no native addon. Each case processes a whole
 * generated capture per operation; frames/s and MB/s are derived from benchmark.js's mean, and
 * the relative margin of error is printed with them.
 *
 * Options: --frames N (default 1,000,000), --quick (fewer samples), --json FILE.
 */
import Benchmark from 'benchmark';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaptureReader } from '../src/pcap/reader.js';
import { CaptureWriter } from '../src/pcap/writer.js';
import { RecordBatch, LINKTYPE_ETHERNET } from '../src/pcap/types.js';
import { genCapture, genTemplates } from '../src/engine/gen.js';
import { replayIdentity } from '../src/engine/replay.js';
import { nodeBenchCases } from './node-cases.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const FRAMES = Number(opt('--frames') ?? 1_000_000);
const quick = args.includes('--quick');
const dir = join(tmpdir(), 'dpemu-bench');
mkdirSync(dir, { recursive: true });

export interface BenchResult {
  name: string;
  framesPerSec: number;
  mbPerSec: number;
  nsPerFrame: number;
  rme: number;
  samples: number;
}

const results: BenchResult[] = [];

function input(frames: number, minLen = 60, maxLen = 100): { path: string; bytes: number } {
  const path = join(dir, `gen-${frames}-${minLen}-${maxLen}.pcap`);
  const bytesPath = path + '.bytes';
  if (!existsSync(path) || !existsSync(bytesPath)) {
    const bytes = genCapture(path, { frames, minLen, maxLen, seed: 7 });
    writeFileSync(bytesPath, String(bytes));
  }
  return { path, bytes: Number(readFileSync(bytesPath, 'utf8')) };
}



export function addCase(suite: Benchmark.Suite, name: string, frames: number, bytes: number, fn: () => void): void {
  suite.add(name, fn, {
    minSamples: quick ? 2 : 5,
    maxTime: quick ? 1 : 4,
    onComplete(this: Benchmark) {
      const mean = this.stats.mean; // seconds per operation
      results.push({
        name,
        framesPerSec: frames / mean,
        mbPerSec: bytes / mean / 1e6,
        nsPerFrame: (mean * 1e9) / frames,
        rme: this.stats.rme,
        samples: this.stats.sample.length,
      });
    },
  });
}

function run(suite: Benchmark.Suite): void {
  suite.on('error', (e: { target: { error: unknown } }) => {
    throw e.target.error;
  });
  suite.run({ async: false });
}

const { path: inPath, bytes } = input(FRAMES);
const outPcap = join(dir, 'out.pcap');
const batch = new RecordBatch(4096);

const io = new Benchmark.Suite('capture I/O');
addCase(io, 'pcap read', FRAMES, bytes, () => {
  const r = CaptureReader.open(inPath);
  let n = 0;
  let k: number;
  while ((k = r.next(batch)) > 0) n += k;
  r.close();
  if (n !== FRAMES) throw new Error(`read ${n} frames, expected ${FRAMES}`);
});
const templates = genTemplates({ frames: FRAMES, seed: 7 });
let tplBytes = 0;
for (let i = 0; i < FRAMES; i++) tplBytes += templates[i % templates.length]!.length;
addCase(io, 'pcap write', FRAMES, tplBytes, () => {
  const w = CaptureWriter.open(outPcap, { format: 'pcap', interfaces: [{ name: 'b', linktype: LINKTYPE_ETHERNET }] });
  for (let i = 0; i < FRAMES; i++) {
    const f = templates[i % templates.length]!;
    w.writeRecord(f, 0, f.length, f.length, 1_700_000_000, i, 0);
  }
  w.commit();
});
const outPcapng = join(dir, 'out.pcapng');
addCase(io, 'pcapng write with comments', FRAMES, tplBytes, () => {
  const w = CaptureWriter.open(outPcapng, { format: 'pcapng', interfaces: [{ name: 'eth0', linktype: LINKTYPE_ETHERNET }] });
  const comment = ['DNAT 172.21.0.10:3306 -> 10.190.12.6:3306 [KUBE-SEP-ABCDEFGHIJKLMNOP, nth]'];
  for (let i = 0; i < FRAMES; i++) {
    const f = templates[i % templates.length]!;
    w.writeRecord(f, 0, f.length, f.length, 1_700_000_000, i, 0, comment, 2);
  }
  w.commit();
});
addCase(io, 'identity replay pcap->pcap', FRAMES, bytes, () => {
  replayIdentity({ inPath, outPath: outPcap, format: 'pcap' });
});
run(io);

for (const c of nodeBenchCases(dir, FRAMES)) {
  const s = new Benchmark.Suite(c.name);
  addCase(s, c.name, c.frames, c.bytes, c.fn);
  run(s);
}

const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, date: new Date().toISOString() };
const w1 = Math.max(...results.map((r) => r.name.length));
let table = `dpemu benchmarks — ${FRAMES.toLocaleString('en-US')} frames of 60–100 B per operation\n${machine.cpu}, ${machine.cores} cores, Node ${machine.node}\n\n`;
table += `${'case'.padEnd(w1)}  ${'Mframes/s'.padStart(10)}  ${'MB/s'.padStart(8)}  ${'ns/frame'.padStart(9)}  ${'±%'.padStart(6)}  samples\n`;
for (const r of results) {
  table += `${r.name.padEnd(w1)}  ${(r.framesPerSec / 1e6).toFixed(2).padStart(10)}  ${r.mbPerSec.toFixed(0).padStart(8)}  ${r.nsPerFrame.toFixed(1).padStart(9)}  ${r.rme.toFixed(1).padStart(6)}  ${r.samples}\n`;
}
process.stdout.write(table);
const jsonPath = opt('--json');
if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ machine, frames: FRAMES, results }, null, 2) + '\n');
