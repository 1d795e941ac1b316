/**
 * Invariant 2 (DESIGN.md): same inputs and options give byte-identical outputs, whatever the
 * number of worker threads. For the sample captures (identity and their node), the dpemu inputs
 * of every kernel-differential scenario, a generated capture of 250,000 frames (many batches,
 * every ring wrapping around many times), pcapng with interfaces appearing mid-file and
 * comments, and records larger than an engine slot: `--workers 1`, `2` and `4` write the same
 * bytes, and so do two runs with the same `--seed`; another seed changes the random choices.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureWriter } from '../src/pcap/writer.js';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { FIXTURES, runDpemu } from './support/scenario.js';
import { SCENARIOS } from './fixtures/kernel/index.js';
import { balanced, dpemuRun, firstDifference, genServiceCapture, readRecords, ROOT, sameBytes, writeServiceNode } from './support/engine.js';


let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpemu-engine-det-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WORKERS = [1, 2, 4];

/** Replay with each worker count; every output must equal the first. Returns the outputs. */
function acrossWorkers(name: string, args: string[], ext: string, extra: string[] = [], env?: NodeJS.ProcessEnv): string[] {
  const outs: string[] = [];
  for (const w of WORKERS) {
    const out = join(dir, `${name}-w${w}${ext}`);
    const r = dpemuRun(['replay', ...args, '--out', out, '--workers', String(w), '--json', ...extra], { env });
    expect(r.status, `${name} --workers ${w}: ${r.stderr}`).toBe(0);
    expect(balanced(JSON.parse(r.stdout.toString('utf8'))), `${name} --workers ${w}: accounting`).toBe(true);
    outs.push(out);
  }
  for (let i = 1; i < outs.length; i++) expect(sameBytes(outs[0]!, outs[i]!), `${basename(outs[i]!)} equals ${basename(outs[0]!)}`).toBe(true);
  return outs;
}

describe('engine determinism', () => {
  const pcaps = join(ROOT, 'pcaps');

  it('sample captures, identity pipeline: the same bytes with 1, 2 and 4 workers (pcap and pcapng)', () => {
    for (const f of readdirSync(pcaps).filter((f) => /\.pcap(ng)?$/.test(f))) {
      for (const ext of ['.pcapng', '.pcap']) acrossWorkers(`id-${f}`, ['--in', join(pcaps, f)], ext);
    }
  });

  it('sample node (edge-node.yaml on edge-flows.pcapng): the same bytes with 1, 2 and 4 workers and with the same seed', () => {
    const node = join(pcaps, 'edge-node.yaml');
    const input = join(pcaps, 'edge-flows.pcapng');
    for (const ext of ['.pcapng', '.pcap']) {
      const outs = acrossWorkers('edge', ['--node', node, '--in', input, '--seed', '5'], ext);
      const again = join(dir, `edge-again${ext}`);
      expect(dpemuRun(['replay', '--node', node, '--in', input, '--seed', '5', '--out', again, '--workers', '2']).status).toBe(0);
      expect(sameBytes(outs[0]!, again)).toBe(true);
    }
  });

  it('kernel-differential scenarios: the dpemu runs give the same bytes with 1, 2 and 4 workers', () => {
    const names = readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.slice(0, -5));
    expect(names.sort()).toEqual(Object.keys(SCENARIOS).sort());
    for (const name of names) {
      const nodeFile = join(FIXTURES, `${name}.yaml`);
      const cfg = loadNodeConfig(nodeFile);
      const mod = SCENARIOS[name]!;
      const outs: Buffer[] = [];
      for (const w of WORKERS) {
        const run = runDpemu(nodeFile, cfg, mod.steps(cfg), { tag: `det-${name}-w${w}`, extraArgs: ['--workers', String(w)] });
        outs.push(readFileSync(run.artifacts.out!));
        rmSync(run.artifacts.dir, { recursive: true, force: true });
      }
      for (let i = 1; i < outs.length; i++) expect(Buffer.compare(outs[0]!, outs[i]!), `${name}: --workers ${WORKERS[i]} vs 1`).toBe(0);
    }
  });

  it('250,000 generated frames through a Service node (random endpoints): 1, 2, 4 workers and the same seed agree; another seed differs', () => {
    const input = join(dir, 'svc-250k.pcap');
    genServiceCapture(input, 250_000);
    const node = writeServiceNode(dir);
    for (const ext of ['.pcap', '.pcapng']) {
      const outs = acrossWorkers(`svc${ext}`, ['--node', node, '--in', input, '--seed', '3'], ext);
      const other = join(dir, `svc-seed4${ext}`);
      expect(dpemuRun(['replay', '--node', node, '--in', input, '--seed', '4', '--out', other, '--workers', '2']).status).toBe(0);
      expect(sameBytes(outs[0]!, other), 'another seed picks other endpoints').toBe(false);
    }
    // The identity pipeline writes the input back, byte for byte (pcap in, pcap out).
    const ids = acrossWorkers('svc-identity', ['--in', input], '.pcap');
    expect(sameBytes(ids[0]!, input)).toBe(true);
  });

  it('node comments through a comment arena reset every few dozen connections: the same bytes with 1, 2 and 4 workers', () => {
    const input = join(dir, 'svc-30k.pcap');
    genServiceCapture(input, 30_000);
    const node = writeServiceNode(dir);
    // 4 KiB holds ~20 comment blocks of ~200 bytes: thousands of connections reset it hundreds of times.
    const outs = acrossWorkers('svc-arena', ['--node', node, '--in', input, '--seed', '3'], '.pcapng', [], { DPEMU_COMMENT_ARENA: '4096' });
    const recs = readRecords(outs[0]!);
    expect(recs.comments.filter((c) => c !== undefined && c.some((t) => t.startsWith('DNAT '))).length).toBeGreaterThan(20_000);
    // An encoder far behind the node (3 ms a slot): resets come while slots that reference the
    // arena wait to be encoded; the drain before each keeps their bytes.
    const slow = join(dir, 'svc-arena-slow.pcapng');
    const r = dpemuRun(['replay', '--node', node, '--in', input, '--seed', '3', '--out', slow, '--workers', '2'], { env: { DPEMU_COMMENT_ARENA: '4096', DPEMU_FAULT: 'encoder:slow:3' } });
    expect(r.status, r.stderr).toBe(0);
    expect(sameBytes(outs[0]!, slow)).toBe(true);
  });

  it('pcapng with interfaces defined mid-file, comments and flags: the same bytes with 1, 2 and 4 workers', () => {
    const input = join(dir, 'multi.pcapng');
    const w = CaptureWriter.open(input, { format: 'pcapng', interfaces: [{ name: 'a', linktype: 1 }] });
    const frame = new Uint8Array(90).map((_, i) => (i * 7) & 0xff);
    let ifaces = 1;
    for (let i = 0; i < 30_000; i++) {
      if (i % 7_000 === 6_999) ifaces = w.addInterface({ name: `if${ifaces}`, description: `added after ${i} records`, linktype: ifaces % 2 ? 101 : 1 }) + 1;
      const c = i % 13 === 0 ? [`record ${i}`, 'é—コメント'] : undefined;
      w.writeRecord(frame, 0, 40 + (i % 50), 90, 1_700_000_000 + i, i, i % ifaces, c, i % 3);
    }
    w.commit();
    const outs = acrossWorkers('multi', ['--in', input], '.pcapng');
    const a = readRecords(input);
    const b = readRecords(outs[0]!);
    expect(firstDifference(b.data, a.data)).toBe(-1);
    expect(b.iface).toEqual(a.iface);
    expect(b.comments).toEqual(a.comments);
  });

  it('records larger than an engine slot (a 3 MiB D-Bus record): the same bytes with 1, 2 and 4 workers', () => {
    const input = join(dir, 'big.pcap');
    const w = CaptureWriter.open(input, { format: 'pcap', interfaces: [{ name: 'dbus', linktype: 231, snaplen: 128 << 20 }] });
    for (let i = 0; i < 40; i++) {
      const len = i % 9 === 4 ? 3 << 20 : 200 + i;
      const f = new Uint8Array(len).map((_, k) => (k + i) & 0xff);
      w.writeRecord(f, 0, len, len, 1_700_000_000 + i, 0, 0);
    }
    w.commit();
    for (const ext of ['.pcap', '.pcapng']) {
      const outs = acrossWorkers(`big${ext}`, ['--in', input], ext);
      expect(firstDifference(readRecords(outs[0]!).data, readRecords(input).data)).toBe(-1);
    }
    // Through a node (the main thread fills the input slots itself): nothing is Ethernet, so
    // nothing leaves, but every record goes through the slots and is accounted.
    const node = writeServiceNode(dir);
    const r = dpemuRun(['replay', '--node', node, '--in', input, '--out', join(dir, 'big-node-w1.pcap'), '--workers', '1', '--json']);
    const stats1 = JSON.parse(r.stdout.toString('utf8')) as { in: number };
    expect(stats1.in).toBe(40);
    acrossWorkers('big-node', ['--node', node, '--in', input], '.pcap');
  });
});
