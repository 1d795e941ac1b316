import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI, dpemu, ROOT } from './support/cli.js';
import { genCapture } from '../src/engine/gen.js';
import { CaptureReader } from '../src/pcap/reader.js';
import { RecordBatch } from '../src/pcap/types.js';
import { int, table } from '../src/cli/format.js';

let dir: string;
let sample: string;

function readAll(path: string): { frames: Uint8Array[]; ts: number[] } {
  const r = CaptureReader.open(path);
  const b = new RecordBatch(256);
  const frames: Uint8Array[] = [];
  const ts: number[] = [];
  for (let n = r.next(b); n > 0; n = r.next(b)) {
    for (let i = 0; i < n; i++) {
      frames.push(b.buf.slice(b.offset[i]!, b.offset[i]! + b.caplen[i]!));
      ts.push(b.tsSec[i]! * 1e9 + b.tsNsec[i]!);
    }
  }
  r.close();
  return { frames, ts };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpemu-cli-'));
  sample = join(dir, 'sample.pcap');
  genCapture(sample, { frames: 5000, seed: 3 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('summary numbers', () => {
  it('int() groups thousands exactly like toLocaleString("en-US")', () => {
    for (const n of [0, 7, 999, 1000, 12345, 999999, 1000000, 1234567.6, 1e15, -1, -1000, -9876543]) expect(int(n)).toBe(Math.round(n).toLocaleString('en-US'));
  });
});

describe('dpemu command', () => {
  it('has --help on every subcommand', () => {
    for (const sub of [[], ['replay'], ['info'], ['trace']]) {
      const r = dpemu([...sub, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/Usage: dpemu/);
      expect(r.stdout).toMatch(/Exit codes:/);
    }
  });

  it('replays identically (pcap and pcapng) and prints the accounting', () => {
    for (const out of ['o.pcap', 'o.pcapng']) {
      const path = join(dir, out);
      const r = dpemu(['replay', '--in', sample, '--out', path, '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/in\s+5,000 frames/);
      expect(r.stderr).toMatch(/frames\/s/);
      const j = JSON.parse(r.stdout);
      expect(j).toMatchObject({ in: 5000, written: 5000, left: 5000, balanced: true, nonIpv4: 0, malformed: 0 });
      const a = readAll(sample);
      const b = readAll(path);
      expect(b.frames.length).toBe(5000);
      expect(b.frames).toEqual(a.frames);
      expect(b.ts).toEqual(a.ts);
    }
  });

  it('says what and where for bad input, with meaningful exit codes and no stack trace', () => {
    const missing = dpemu(['replay', '--in', join(dir, 'nope.pcap'), '--out', join(dir, 'x.pcap')]);
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/nope\.pcap/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);

    const garbage = join(dir, 'garbage.pcap');
    writeFileSync(garbage, Buffer.from('this is not a capture file at all'));
    const g = dpemu(['info', garbage]);
    expect(g.status).toBe(3);
    expect(g.stderr).toMatch(/garbage\.pcap: .*byte offset 0/);

    const usage = dpemu(['replay', '--in', sample]);
    expect(usage.status).toBe(2);
    const badFormat = dpemu(['replay', '--in', sample, '--out', join(dir, 'y'), '--format', 'erf']);
    expect(badFormat.status).toBe(2);

    const self = dpemu(['replay', '--in', sample, '--out', sample]);
    expect(self.status).toBe(4);
    expect(self.stderr).toMatch(/input/);
  });

  it('keeps the frames before damage, exits 3, and leaves no temporary file', () => {
    const damaged = join(dir, 'damaged.pcap');
    const bytes = readFileSync(sample);
    // Cut the file in the middle of a record.
    writeFileSync(damaged, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const out = join(dir, 'damaged-out.pcap');
    const r = dpemu(['replay', '--in', damaged, '--out', out]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/damaged\.pcap: byte offset \d+/);
    const got = readAll(out);
    expect(got.frames.length).toBeGreaterThan(2000);
    expect(got.frames).toEqual(readAll(sample).frames.slice(0, got.frames.length));
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('traces one packet, described or taken from a capture, step by step', () => {
    const node = join(ROOT, 'pcaps', 'edge-node.yaml');
    const d = dpemu(['trace', '--node', node, 'tcp', '203.0.113.7:40000', '>', '169.61.10.5:443', 'syn', 'in', 'uplink']);
    expect(d.status, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/nat\/PREROUTING rule 1 \(line 22\)/);
    expect(d.stdout).toMatch(/DNAT 169\.61\.10\.5:443 -> 10\.0\.1\.10:8443/);
    expect(d.stdout).toMatch(/filter\/FORWARD rule 3 \(line 31\): ACCEPT "allow web"/);
    expect(d.stdout).toMatch(/Result: sent\n  vmnet: /);
    const f = dpemu(['trace', '--node', node, '--in', join(ROOT, 'pcaps', 'edge-flows.pcapng'), '--frame', '8']);
    expect(f.status, f.stderr).toBe(0);
    expect(f.stdout).toMatch(/Result: dropped: TTL exceeded/);
    expect(f.stdout).toMatch(/related ICMP/);
    const bad = dpemu(['trace', '--node', node, 'tcp', '1.2.3.4:1', '>', '5.6.7.8:2', 'in', 'eth9']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/"eth9" is not an interface of the node/);
    const badNode = join(dir, 'bad-node.yaml');
    writeFileSync(badNode, 'name: x\ninterfaces:\n  - { name: eth0, mac: "02:00:00:00:00:01" }\niptables: |\n  *filter\n  :INPUT ACCEPT [0:0]\n  -A INPUT -m frobnicate -j ACCEPT\n  COMMIT\n');
    const bn = dpemu(['replay', '--node', badNode, '--in', sample, '--out', join(dir, 'z.pcapng')]);
    expect(bn.status).toBe(3);
    expect(bn.stderr).toMatch(/bad-node\.yaml:7: .*frobnicate/);
    expect(bn.stderr).not.toMatch(/\n\s+at /);
  });

  it('describes a capture like capinfos', () => {
    const r = dpemu(['info', sample, '--json']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.packets).toBe(5000);
    expect(j.interfaces[0].linktype).toMatch(/^1 /);
    expect(j.protocols.tcp + j.protocols.udp).toBe(5000);
    const text = dpemu(['info', sample]);
    expect(text.stdout).toMatch(/Number of packets:\s+5,000/);
    // '-': standard input (a pipe: no size but the bytes it gave).
    const piped = spawnSync('sh', ['-c', `cat "$1" | "$2" "$3" info - --json`, 'sh', sample, process.execPath, CLI], { encoding: 'utf8' });
    expect(piped.status, piped.stderr).toBe(0);
    expect({ ...JSON.parse(piped.stdout), file: sample }).toEqual(j);
  });

  it('the summary table: counts right-aligned among themselves, other values from the value column on', () => {
    const t = table([
      ['in', '9 frames, 603 B'],
      ['dropped', '1,234'],
      ['  a long drop reason that sets the label column', '5'],
      ['accounting', 'in = left + delivered + dropped + errors'],
    ]).split('\n');
    const col = 2 + '  a long drop reason that sets the label column'.length + 2;
    expect(t[0]!.indexOf('9 frames')).toBe(col);
    expect(t[3]!.indexOf('in = left')).toBe(col);
    // The counts end in the same column, that of the widest count.
    expect(t[1]!.length).toBe(col + 5);
    expect(t[2]!.length).toBe(col + 5);
  });

  it('a reader of standard output that goes away (| head) ends the command quietly', () => {
    for (const args of ['--help', 'info --help', `info ${sample} --json`]) {
      const r = spawnSync('bash', ['-c', `set -o pipefail; "$1" "$2" ${args} | head -c 1 >/dev/null`, 'bash', process.execPath, CLI], { encoding: 'utf8' });
      expect(r.stderr, args).not.toMatch(/EPIPE|\n\s+at /);
      expect(r.status, `${args}: ${r.stderr}`).toBe(0);
    }
  });

  it('runs the README commands on the sample edge node', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n');
    expect(readme[0]).toMatch(/scripts\/setup\.sh && node dist\/cli\/main\.js replay/);
    expect(readme[1]!.trim()).toBe('npm test');
    expect(existsSync(join(ROOT, 'pcaps', 'edge-flows.pcapng'))).toBe(true);
    const out = join(dir, 'edge.pcapng');
    copyFileSync(join(ROOT, 'pcaps', 'edge-flows.pcapng'), join(dir, 'edge-in.pcapng'));
    const r = dpemu(['replay', '--node', join(ROOT, 'pcaps', 'edge-node.yaml'), '--in', join(dir, 'edge-in.pcapng'), '--out', out, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.balanced).toBe(true);
    expect(j.left).toBeGreaterThan(0);
  });
});
