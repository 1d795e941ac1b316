/**
 * Long runs: memory does not grow with the size of the capture (invariant 5: the rings are
 * fixed, the reader and writer buffers reused), and a terminal shows a progress bar while
 * anything else gets nothing but the summary.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, dpemuRun, genServiceCapture, writeServiceNode } from './support/engine.js';

let dir: string;
let node: string;
let small: string;
let large: string;
let probe: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpemu-engine-long-'));
  node = writeServiceNode(dir);
  small = join(dir, 'small.pcap');
  large = join(dir, 'large.pcap');
  genServiceCapture(small, 1_000_000);
  genServiceCapture(large, 3_000_000);
  probe = join(dir, 'rss-probe.mjs');
  writeFileSync(probe, "import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(process.env.DPEMU_TEST_RSS, String(process.resourceUsage().maxRSS)));\n");
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Peak RSS (KiB) of a `dpemu replay` process: the main thread and all worker threads. */
function peakRss(args: string[]): number {
  const out = join(dir, 'rss.txt');
  const r = spawnSync(process.execPath, ['--import', probe, CLI, 'replay', ...args], { env: { ...process.env, DPEMU_TEST_RSS: out }, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  return Number(readFileSync(out, 'utf8'));
}

describe('engine long runs', () => {
  it('peak RSS of 1M and 3M frames is about the same (node pipeline, 1 and 2 workers)', () => {
    for (const w of ['1', '2']) {
      const a = peakRss(['--node', node, '--in', small, '--out', join(dir, 'o.pcap'), '--workers', w]);
      const b = peakRss(['--node', node, '--in', large, '--out', join(dir, 'o.pcap'), '--workers', w]);
      expect(b, `--workers ${w}: ${a} KiB for 1M frames, ${b} KiB for 3M`).toBeLessThan(a * 1.15 + 10 * 1024);
      expect(b).toBeLessThan(400 * 1024);
    }
  }, 120_000);

  it('no progress bar off a terminal: stderr is the summary only', () => {
    const r = dpemuRun(['replay', '--node', node, '--in', large, '--out', join(dir, 'o.pcap'), '--workers', '2']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/ETA|\u001b\[/);
    expect(r.stderr.split('\n')[0]).toMatch(/^dpemu replay: /);
  }, 60_000);

  it.skipIf(!existsSync('/usr/bin/script'))('a progress bar on a terminal (frames, MB, frames/s, ETA), erased before the summary', () => {
    const cmd = [process.execPath, CLI, 'replay', '--node', node, '--in', large, '--out', join(dir, 'o.pcap'), '--workers', '2'].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('/usr/bin/script', ['-qfec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/\d+% \| [\d,]+ frames \| [\d.]+ MB \| [\d,]+ frames\/s \| ETA /);
    expect(r.stdout).toMatch(/dpemu replay: .* \(pcap, node engine-worker\)/);
  }, 120_000);
});
