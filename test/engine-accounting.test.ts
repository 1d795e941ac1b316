/**
 * Invariant 3 (DESIGN.md): every packet accounted. After every run
 *   in = left the model + delivered + dropped (by reason) + errors (by kind)
 * over all the test captures: the capture corpus through the identity pipeline (in-process, the
 * API the benchmarks call), the sample captures and the kernel-differential inputs through their
 * nodes, generated captures with drops and errors; with one thread and with worker threads
 * (the sequencer's accounting crosses a thread and must arrive whole).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayIdentity } from '../src/engine/replay.js';
import { replayNode } from '../src/engine/node-replay.js';
import { autoWorkers } from '../src/engine/pipeline.js';
import { CaptureWriter } from '../src/pcap/writer.js';
import { genCapture } from '../src/engine/gen.js';
import { loadNodeConfig, parseNodeConfig } from '../src/elements/linux/config.js';
import type { Accounting } from '../src/engine/accounting.js';
import { FIXTURES, runDpemu } from './support/scenario.js';
import { SCENARIOS } from './fixtures/kernel/index.js';
import { balanced, countRecords, dpemuRun, genServiceCapture, ROOT, sameBytes, serviceNodeYaml, writeServiceNode } from './support/engine.js';


const CORPUS = resolve(ROOT, '../shared/corpus');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpemu-engine-acct-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectBalanced(a: Accounting, what: string): void {
  const right = a.left + a.delivered + a.droppedTotal() + a.errorsTotal();
  expect(a.in, `${what}: in = left + delivered + dropped + errors (${a.left} + ${a.delivered} + ${a.droppedTotal()} + ${a.errorsTotal()})`).toBe(right);
  expect(a.balanced()).toBe(true);
}

const counts = (a: Accounting): unknown => {
  const j = a.toJSON() as unknown as Record<string, unknown>;
  return { ...j };
};

describe.skipIf(!existsSync(join(CORPUS, 'INDEX.tsv')))('engine accounting: the capture corpus through the identity pipeline', () => {
  const files = readFileSync(join(CORPUS, 'INDEX.tsv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t')[0]!);

  it('every readable corpus file: in = left (+ the records before any damage), one thread', async () => {
    let replayed = 0;
    for (const [k, f] of files.entries()) {
      const out = join(dir, `corpus-${k}.pcapng`);
      let r;
      try {
        r = await replayIdentity({ inPath: join(CORPUS, f), outPath: out, format: 'pcapng', workers: 1 });
      } catch (e) {
        // A file the reader refuses outright (bad header) is an input error, nothing to account.
        expect((e as Error).name, f).toBe('CaptureError');
        continue;
      }
      replayed++;
      expectBalanced(r.acct, f);
      expect(r.acct.in, f).toBe(countRecords(join(CORPUS, f)));
      expect(r.acct.left, f).toBe(r.acct.in);
      expect(countRecords(out), f).toBe(r.acct.in);
      rmSync(out);
    }
    expect(replayed).toBeGreaterThan(500);
  }, 300_000);

  it('a subset with worker threads: the same accounting and the same bytes as one thread', async () => {
    const subset = files.filter((f, k) => f.endsWith('.pcapng') ? k % 3 === 0 : k % 15 === 0);
    expect(subset.length).toBeGreaterThan(30);
    for (const f of subset) {
      const a = join(dir, 'sub-1.pcapng');
      const b = join(dir, 'sub-2.pcapng');
      let r1;
      try {
        r1 = await replayIdentity({ inPath: join(CORPUS, f), outPath: a, format: 'pcapng', workers: 1 });
      } catch {
        continue;
      }
      const r2 = await replayIdentity({ inPath: join(CORPUS, f), outPath: b, format: 'pcapng', workers: 2 });
      expectBalanced(r2.acct, f);
      expect(counts(r2.acct), f).toEqual(counts(r1.acct));
      expect(sameBytes(a, b), f).toBe(true);
    }
  }, 300_000);
});

describe('engine accounting: nodes', () => {
  it('the sample node on the sample capture, 1 and 2 workers (in-process API)', async () => {
    const node = loadNodeConfig(join(ROOT, 'pcaps', 'edge-node.yaml'));
    const input = join(ROOT, 'pcaps', 'edge-flows.pcapng');
    const r1 = await replayNode({ inPath: input, outPath: join(dir, 'edge-1.pcapng'), format: 'pcapng', node, workers: 1 });
    const r2 = await replayNode({ inPath: input, outPath: join(dir, 'edge-2.pcapng'), format: 'pcapng', node, workers: 2 });
    expectBalanced(r1.acct, 'edge, 1 worker');
    expectBalanced(r2.acct, 'edge, 2 workers');
    expect(counts(r2.acct)).toEqual(counts(r1.acct));
    expect(r1.acct.in).toBe(countRecords(input));
    expect(r2.workers).toBe(2);
    expect(r2.stages.map((s) => s.stage)).toEqual([`main (reader, sequencer (node ${node.name}), writer)`, 'encoder 1']);
    // The sequencer in a thread of its own: the same accounting.
    const r3 = await replayNode({ inPath: input, outPath: join(dir, 'edge-3.pcapng'), format: 'pcapng', node, workers: 2, sequencer: 'worker' });
    expect(counts(r3.acct)).toEqual(counts(r1.acct));
    expect(r3.stages.map((s) => s.stage)).toEqual(['main (reader, writer)', `sequencer (node ${node.name})`, 'encoder 1']);
    expect(readFileSync(join(dir, 'edge-3.pcapng')).equals(readFileSync(join(dir, 'edge-2.pcapng')))).toBe(true);
  });

  it('every kernel-differential input through its node', () => {
    for (const [name, mod] of Object.entries(SCENARIOS)) {
      const nodeFile = join(FIXTURES, `${name}.yaml`);
      const cfg = loadNodeConfig(nodeFile);
      for (const w of [1, 2]) {
        const stats = join(dir, `k-${name}-${w}.json`);
        const run = runDpemu(nodeFile, cfg, mod.steps(cfg), { tag: `acct-${name}`, extraArgs: ['--workers', String(w), '--stats', stats] });
        const j = JSON.parse(readFileSync(stats, 'utf8')) as Record<string, unknown>;
        expect(balanced(j), `${name}, ${w} workers: ${JSON.stringify(j)}`).toBe(true);
        expect(j.in, name).toBe(run.inputs.length);
        expect(j.written, name).toBe(run.outputs.length);
        rmSync(run.artifacts.dir, { recursive: true, force: true });
      }
    }
  }, 180_000);

  it('generated captures with drops (UDP, policy) and errors (no ingress interface), 1 and 4 workers', async () => {
    const node = parseNodeConfig(serviceNodeYaml(), 'engine-worker.yaml');
    const mixed = join(dir, 'mixed.pcap');
    genCapture(mixed, { frames: 60_000, seed: 9, udpShare: 0.3, ports: [80, 443, 53] });
    const stray = join(dir, 'stray.pcap');
    genCapture(stray, { frames: 20_000, seed: 10, dstMac: '02:00:00:00:99:99' });
    for (const input of [mixed, stray]) {
      const r1 = await replayNode({ inPath: input, outPath: join(dir, 'g1.pcap'), format: 'pcap', node, workers: 1 });
      const r4 = await replayNode({ inPath: input, outPath: join(dir, 'g4.pcap'), format: 'pcap', node, workers: 4 });
      expectBalanced(r1.acct, input);
      expectBalanced(r4.acct, input);
      expect(counts(r4.acct)).toEqual(counts(r1.acct));
      expect(r1.acct.droppedTotal() + r1.acct.errorsTotal()).toBeGreaterThan(0);
      expect(sameBytes(join(dir, 'g1.pcap'), join(dir, 'g4.pcap'))).toBe(true);
    }
  }, 120_000);

  it('without --workers: 2 threads for a node writing pcapng with comments from a large or unknown-size input, else one (and the summary says so)', async () => {
    const node = loadNodeConfig(join(ROOT, 'pcaps', 'edge-node.yaml'));
    const input = join(ROOT, 'pcaps', 'edge-flows.pcapng');
    const cores = Math.min(2, availableParallelism());
    const spec = { kind: 'node' as const, node, seed: 1, comments: true };
    expect(autoWorkers(spec, 'pcapng', 64 << 20).workers).toBe(cores);
    expect(autoWorkers(spec, 'pcapng', -1).workers).toBe(cores); // a pipe
    expect(autoWorkers(spec, 'pcapng', 1 << 20)).toMatchObject({ workers: 1, why: expect.stringMatching(/under 32 MB/) });
    expect(autoWorkers(spec, 'pcap', 64 << 20).workers).toBe(1);
    expect(autoWorkers({ ...spec, comments: false }, 'pcapng', 64 << 20).workers).toBe(1);
    expect(autoWorkers({ kind: 'identity' }, 'pcapng', 64 << 20).workers).toBe(1);
    // The sample is small: one thread, and the result says why.
    const ng = await replayNode({ inPath: input, outPath: join(dir, 'auto.pcapng'), format: 'pcapng', node, comments: true });
    expect(ng.workers).toBe(1);
    expect(ng.autoWorkers).toMatch(/under 32 MB/);
    const pcap = await replayNode({ inPath: input, outPath: join(dir, 'auto.pcap'), format: 'pcap', node });
    expect(pcap.workers).toBe(1);
    expect(pcap.stages.length).toBe(1);
    const plain = await replayNode({ inPath: input, outPath: join(dir, 'auto-nc.pcapng'), format: 'pcapng', node, comments: false });
    expect(plain.workers).toBe(1);
    const id = await replayIdentity({ inPath: input, outPath: join(dir, 'auto-id.pcapng'), format: 'pcapng' });
    expect(id.workers).toBe(1);
    expect(id.autoWorkers).toMatch(/--workers N/);
    // Given, it is followed.
    const two = await replayIdentity({ inPath: input, outPath: join(dir, 'two-id.pcapng'), format: 'pcapng', workers: 2 });
    expect(two.workers).toBe(2);
    expect(two.autoWorkers).toBeUndefined();
    const r = dpemuRun(['replay', '--in', input, '--out', join(dir, 'auto-cli.pcap')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/threads\s+1 \(everything in the main thread\); the default for this pipeline and output: more threads only add hand-overs \(--workers N to use them\)\n/);
  });

  it('pcapng comments written to a pcap are counted and said, with one thread and with two', async () => {
    const input = join(dir, 'commented.pcapng');
    const w = CaptureWriter.open(input, { format: 'pcapng', interfaces: [{ name: 'a', linktype: 1 }] });
    const frame = new Uint8Array(60).map((_, i) => i);
    let comments = 0;
    for (let i = 0; i < 5000; i++) {
      const c = i % 7 === 0 ? [`record ${i}`, 'é'] : i % 11 === 0 ? ['one'] : undefined;
      comments += c?.length ?? 0;
      w.writeRecord(frame, 0, frame.length, frame.length, 1_700_000_000 + i, 0, 0, c);
    }
    w.commit();
    for (const workers of ['1', '2']) {
      const r = dpemuRun(['replay', '--in', input, '--out', join(dir, `commented-${workers}.pcap`), '--workers', workers, '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout.toString('utf8')).commentsDropped, `--workers ${workers}`).toBe(comments);
      expect(r.stderr).toMatch(new RegExp(`comments not written\\s+${comments.toLocaleString('en-US')} \\(pcap has no comments; pcapng keeps them\\)`));
    }
    // A node's comments to a pcap (the API allows it): the same count in every layout, also
    // when the sequencer thread encodes its records itself (no encoder threads).
    const node = loadNodeConfig(join(ROOT, 'pcaps', 'edge-node.yaml'));
    const edge = join(ROOT, 'pcaps', 'edge-flows.pcapng');
    const layouts = [{ workers: 1 }, { workers: 2 }, { workers: 2, sequencer: 'worker' as const }, { workers: 2, sequencer: 'worker' as const, encoders: 0 }];
    const counts: number[] = [];
    for (const [i, l] of layouts.entries()) {
      const r = await replayNode({ inPath: edge, outPath: join(dir, `edge-cmt-${i}.pcap`), format: 'pcap', node, comments: true, ...l });
      counts.push(r.commentsDropped);
    }
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts, JSON.stringify(layouts)).toEqual(layouts.map(() => counts[0]));
    const ng = dpemuRun(['replay', '--in', input, '--out', join(dir, 'commented-out.pcapng'), '--json']);
    expect(ng.status, ng.stderr).toBe(0);
    expect(JSON.parse(ng.stdout.toString('utf8')).commentsDropped).toBe(0);
    expect(ng.stderr).not.toMatch(/comments not written/);
  });

  it('the CLI prints the equation and --stats writes the same JSON as --json', () => {
    const input = join(dir, 'svc.pcap');
    genServiceCapture(input, 30_000);
    const node = writeServiceNode(dir);
    const stats = join(dir, 'svc.json');
    const r = dpemuRun(['replay', '--node', node, '--in', input, '--out', join(dir, 'svc-out.pcap'), '--workers', '2', '--json', '--stats', stats]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/accounting\s+in = left \+ delivered \+ dropped \+ errors/);
    // With a node and 2 workers the node runs in the main thread and one thread encodes.
    expect(r.stderr).toMatch(/threads\s+2: main \(reader, sequencer \(node [\w-]+\), writer\) \+ 1 encoder\n/);
    const j = JSON.parse(r.stdout.toString('utf8')) as Record<string, unknown>;
    expect(balanced(j)).toBe(true);
    expect(j).toMatchObject({ in: 30_000, interrupted: false, workers: 2, encoders: 1 });
    const fromFile = JSON.parse(readFileSync(stats, 'utf8')) as Record<string, unknown>;
    expect(fromFile).toEqual(j);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
