/**
 * The benchmark suite as a product: `dpemu bench` (the suite bundled by `npm run build`, which
 * npm test runs first) runs end to end in a tiny mode, prints its table, writes JSON of the
 * documented shape and SVG charts that parse. Behaviour only: no figure is compared with
 * anything (this machine is shared and noisy).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT } from './support/cli.js';
import { xmlProblem } from '../native-free-bench/xml-check.js';
import { barChart, document, lineChart } from '../native-free-bench/svg.js';
import { charts, markdown, table } from '../native-free-bench/report.js';
import type { RunInfo } from '../native-free-bench/model.js';

let dir: string;
let run: { status: number | null; stdout: string; stderr: string };
let info: RunInfo;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpemu-bench-test-'));
  const args = [
    CLI,
    'bench',
    '--quick',
    '--frames', '2000',
    '--rounds', '1',
    '--max-time', '0.01',
    '--rules', '10,100',
    '--conns', '1000',
    '--mem-frames', '2000,4000',
    '--workers', '1,2',
    '--json', join(dir, 'out.json'),
    '--svg', join(dir, 'charts'),
    '--tmp', join(dir, 'cache'),
  ];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 170_000, maxBuffer: 64 << 20 });
  run = { status: r.status, stdout: r.stdout, stderr: r.stderr };
  if (existsSync(join(dir, 'out.json'))) info = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as RunInfo;
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('benchmark suite (tiny mode)', () => {
  it('runs to the end and prints one table with targets', () => {
    expect(run.stderr).toMatch(/done in \d+ s/);
    expect(run.status, run.stderr.split('\n').slice(-15).join('\n')).toBe(0);
    expect(run.stdout).toMatch(/^dpemu benchmarks — quick run, 2,000-frame captures/);
    expect(run.stdout).toMatch(/\ncase +ns\/frame +min–max +Mframes\/s/);
    expect(run.stdout).toMatch(/\nTargets\n/);
    expect(run.stdout).not.toMatch(/FAILED/);
  });

  it('--from-json renders a saved run again without measuring: same table, a note that says so', () => {
    const again = join(dir, 'again.json');
    const r = spawnSync(process.execPath, [CLI, 'bench', '--from-json', join(dir, 'out.json'), '--json', again, '--svg', join(dir, 'charts2')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/rendered again; nothing is measured/);
    const j = JSON.parse(readFileSync(again, 'utf8')) as RunInfo;
    expect(j.machine).toEqual(info.machine);
    expect(j.results.map((x) => [x.id, x.ns?.median])).toEqual(info.results.map((x) => [x.id, x.ns?.median]));
    expect(j.targets).toEqual(info.targets);
    expect(j.notes.at(-1)).toMatch(/^Rendered again: /);
    // The table is the original's but for that note.
    expect(r.stdout.replace(/\nRendered again: .*\n/, '\n')).toBe(run.stdout);
    expect(readdirSync(join(dir, 'charts2')).sort()).toEqual(readdirSync(join(dir, 'charts')).sort());
    const bad = spawnSync(process.execPath, [CLI, 'bench', '--from-json', join(dir, 'nothing.json')], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--from-json: cannot read/);
  });

  it('reports a measured row without a rate (a derived difference that came out negative)', () => {
    const neg = { ...info, results: [...info.results, { id: 'neg', section: 'stage' as const, name: 'derived, negative', method: 'benchmark.js' as const, status: 'ok' as const, frames: 1, bytes: 0, ns: { median: -5, min: -9, max: 2, q1: NaN, q3: NaN, n: 3 } }] };
    expect(table(neg)).toMatch(/derived, negative\s+-5/);
    expect(markdown(neg, [])).toMatch(/derived, negative/);
    expect(() => charts(neg)).not.toThrow();
  });

  it('writes JSON with the machine and every section', () => {
    expect(info.schema).toBe('dpemu-bench/1');
    expect(info.mode).toBe('quick');
    expect(info.frames).toBe(2000);
    const m = info.machine;
    expect(typeof m.cpu).toBe('string');
    expect(m.cores).toBeGreaterThan(0);
    expect(m.node).toBe(process.version);
    expect(Number.isNaN(Date.parse(m.date))).toBe(false);
    expect(m.command).toMatch(/^dpemu bench .*--frames 2000/);
    const sections = new Set(info.results.map((r) => r.section));
    for (const s of ['stage', 'node', 'rules', 'conntrack', 'e2e', 'compare', 'memory']) expect(sections.has(s as never), s).toBe(true);
    const ids = new Set(info.results.map((r) => r.id));
    for (const id of [
      'parse',
      'csum-full',
      'csum-incr',
      'dnat',
      'masquerade',
      'vxlan-encap',
      'ipip-encap',
      'vxlan-decap',
      'ipip-decap',
      'node-full',
      'node-full-nomemo',
      'rules-indexed-10',
      'rules-linear-100',
      'ct-hit-udp-1000',
      'ct-miss-1000',
      'ct-create-1000',
      'e2e-pcap-read',
      'e2e-pcap-write',
      'e2e-pcapng-write-comments',
      'e2e-identity-1w',
      'e2e-node-1w',
      'e2e-node-1w-process',
      'compare-dpemu-fn',
      'tcprewrite-ipmap',
      'mem-node-2000',
      'mem-node-4000',
    ]) {
      expect(ids.has(id), id).toBe(true);
    }
    for (const r of info.results) {
      expect(['ok', 'pending', 'unavailable', 'failed']).toContain(r.status);
      expect(r.status, `${r.id}: ${r.note}`).not.toBe('failed');
      // A derived row is the difference of two measured cases: in this tiny, noisy mode it may
      // come out negative (the report says so); every measured row is positive.
      if (r.status === 'ok' && r.perRun) {
        // Per-run rows (set-up cost): the time of a whole run, no rate.
        expect(r.ns!.median, r.id).toBeGreaterThan(0);
        expect(r.fps, r.id).toBeUndefined();
      } else if (r.status === 'ok' && r.ns && !(r.note ?? '').startsWith('per-round difference')) {
        expect(r.ns.median, r.id).toBeGreaterThan(0);
        expect(r.ns.min).toBeLessThanOrEqual(r.ns.median);
        expect(r.ns.max).toBeGreaterThanOrEqual(r.ns.median);
        expect(r.fps!.median).toBeCloseTo(1e9 / r.ns.median, 3);
      } else if (r.status === 'ok' && r.ns) {
        expect(r.ns.min).toBeLessThanOrEqual(r.ns.median);
        expect(r.ns.max).toBeGreaterThanOrEqual(r.ns.median);
        expect(r.fps === undefined, r.id).toBe(r.ns.median <= 0);
      }
    }
    // Workers: measured, or pending until `dpemu replay --workers` exists.
    expect(info.results.find((r) => r.id === 'e2e-node-2w')?.status).toMatch(/^(ok|pending)$/);
    expect(info.results.find((r) => r.id === 'e2e-node-4w')).toBeUndefined();
    // The set-up rows: the whole run of a dpemu process that loads a big kube-proxy node file
    // (tens of milliseconds at least: Node alone starts in ~50 ms), with its peak RSS.
    for (const id of ['e2e-setup-kube-1000', 'e2e-setup-kube-3333']) {
      const r = info.results.find((x) => x.id === id)!;
      expect(r.status, id).toBe('ok');
      expect(r.perRun, id).toBe(true);
      expect(r.ns!.median, id).toBeGreaterThan(20e6);
      expect(r.rssMB!.median, id).toBeGreaterThan(10);
    }
    // The memory rows carry a peak RSS.
    for (const id of ['mem-node-2000', 'mem-node-4000']) expect(info.results.find((r) => r.id === id)!.rssMB!.median).toBeGreaterThan(10);
    // tcprewrite: measured side by side with a ratio, or said to be absent.
    const t = info.results.find((r) => r.id === 'tcprewrite-ipmap')!;
    if (info.tcprewrite.available) {
      expect(t.status).toBe('ok');
      expect(info.results.find((r) => r.id === 'compare-dpemu-fn')!.ratio!.to).toBe('tcprewrite');
    } else {
      expect(t.status).toBe('unavailable');
    }
    expect(info.targets.length).toBeGreaterThanOrEqual(4);
    for (const g of info.targets) expect(typeof g.name).toBe('string');
  });

  it('draws charts that are well-formed SVG', () => {
    const files = readdirSync(join(dir, 'charts')).sort();
    expect(files).toEqual(expect.arrayContaining(['e2e.svg', 'memory.svg', 'scaling-conntrack.svg', 'scaling-rules.svg', 'scaling-workers.svg', 'stages.svg']));
    for (const f of files) {
      const text = readFileSync(join(dir, 'charts', f), 'utf8');
      expect(xmlProblem(text), f).toBeNull();
      expect(text).toMatch(/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      expect(text).toMatch(/<\/svg>\s*$/);
    }
  });

  it('dpemu bench passes its arguments to the suite: its help, its usage errors and exit code', () => {
    const help = spawnSync(process.execPath, [CLI, 'bench', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: dpemu bench \[options\]/);
    expect(help.stdout).toMatch(/--write-md/);
    const bad = spawnSync(process.execPath, [CLI, 'bench', '--no-such-option'], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown option '--no-such-option'/);
  });

  it('dpemu bench passes a SIGINT sent to it alone on to the suite, and exits 130', async () => {
    const cache = join(dir, 'cache-pass');
    const parent = spawn(process.execPath, [CLI, 'bench', '--only', 'rules', '--rounds', '3', '--max-time', '0.2', '--tmp', cache], { cwd: ROOT, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 2500));
    // The suite's runner: the child whose command line names this test's scratch directory.
    const runner = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .find((d) => {
        try {
          const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
          return cmd.includes('bench/run.js') && cmd.includes(cache);
        } catch {
          return false;
        }
      });
    expect(runner).toBeDefined();
    parent.kill('SIGINT'); // the parent only, not its process group
    const code = await new Promise<number | null>((r) => parent.on('exit', (c) => r(c)));
    expect(code).toBe(130);
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(`/proc/${runner}`)).toBe(false);
  }, 60_000);

  it('keeps the capture cache and removes its scratch files', () => {
    const left = readdirSync(join(dir, 'cache'));
    expect(left.some((f) => f.endsWith('.pcap'))).toBe(true);
    expect(left.filter((f) => f.startsWith('run-'))).toEqual([]);
  });

  it('Ctrl-C ends a run at once, in the middle of a synchronous section; the next run removes its scratch directory', async () => {
    const cache = join(dir, 'cache-sigint');
    const bench = join(ROOT, 'dist', 'bench', 'run.js');
    // The rule-match section runs benchmark.js loops for seconds without returning to the event loop.
    const child = spawn(process.execPath, [bench, '--only', 'rules', '--rounds', '3', '--max-time', '0.2', '--tmp', cache], { cwd: ROOT, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 2500));
    expect(child.exitCode).toBe(null); // still measuring
    const t0 = Date.now();
    child.kill('SIGINT');
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, sg) => r([c, sg])));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(code === null ? signal : code).toBe('SIGINT');
    expect(readdirSync(cache).filter((f) => f.startsWith('run-'))).toEqual([`run-${child.pid}`]);
    const again = spawnSync(process.execPath, [bench, '--only', 'stage', '--rounds', '1', '--max-time', '0.01', '--tmp', cache], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(again.status, again.stderr).toBe(0);
    expect(readdirSync(cache).filter((f) => f.startsWith('run-'))).toEqual([]);
  }, 90_000);
});

describe('SVG helpers', () => {
  it('the XML check rejects what is not well formed', () => {
    expect(xmlProblem('<svg><g></svg>')).toMatch(/closes/);
    expect(xmlProblem('<svg a="1" a="2"/>')).toMatch(/twice/);
    expect(xmlProblem('<svg><text>a & b</text></svg>')).toMatch(/entity/);
    expect(xmlProblem('<svg x=1/>')).toMatch(/quoted/);
    expect(xmlProblem('<svg/><svg/>')).toMatch(/second root/);
    expect(xmlProblem('<?xml version="1.0"?>\n<svg><!-- ok --><text>a &amp; b &lt; c</text></svg>\n')).toBeNull();
  });

  it('escapes labels and stacks charts into one document', () => {
    const a = barChart({ title: 'A & <B>', unit: 'x', bars: [{ label: 'r "1" <&>', value: 3, min: 2, max: 4 }, { label: 'pending', value: NaN, note: 'pending' }], log: true });
    const b = lineChart({ title: 'C', xLabel: 'n', yLabel: 'ns', logX: true, series: [{ name: 's<1>', points: [{ x: 10, y: 5 }, { x: 100, y: 7, min: 6, max: 9 }, { x: 1000, pending: 'pending' }] }] });
    const svg = document([a, b], 'footer & co');
    expect(xmlProblem(svg)).toBeNull();
    expect(svg).toContain('A &amp; &lt;B&gt;');
    expect(svg).toContain('translate(0 ');
  });
});
