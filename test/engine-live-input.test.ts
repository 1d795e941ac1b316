/**
 * A live input on standard input (`tcpdump -U -w - | dpemu replay --in - --out - | wireshark -k -i -`):
 *  - each frame goes out as soon as it has been processed, not when the next one arrives (a
 *    reader of the output sees the end of a burst at once);
 *  - SIGINT while the producer is quiet stops the run at once (exit 130, a valid output of
 *    everything read), also before the capture's file header has arrived (no output then);
 *  - SIGTERM while the producer is quiet stops it at once.
 * A read that waits would hold the thread, and with it the signal handlers and the flush, until
 * the producer writes again. Standard input is a FIFO here (a pipe, as a shell's `|` makes).
 * A socket (what Node's child_process gives) cannot be reopened non-blocking: its reads wait in
 * the thread as before, which the last test shows still gives every frame.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsConstants, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFrame, pcapFileHeader } from './support/frames.js';
import { CLI, ROOT } from './support/cli.js';

const NODE = join(ROOT, 'pcaps', 'edge-node.yaml');
/** vmnet -> uplink through the edge node (MASQUERADE): forwarded at its own length. */
const FRAME = buildFrame({
  srcMac: '02:00:00:00:02:0a',
  dstMac: '02:00:00:00:02:01',
  ip: { src: '10.0.1.10', dst: '8.8.8.8' },
  l4: { kind: 'udp', sport: 40000, dport: 53, payload: 'live' },
});
const PCAP_HEADER = pcapFileHeader({ snaplen: 65535 });

function record(k: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(1_700_000_000 + k, 0);
  h.writeUInt32LE(FRAME.length, 8);
  h.writeUInt32LE(FRAME.length, 12);
  return Buffer.concat([h, FRAME]);
}

/** A little-endian pcapng block. */
function block(type: number, body: Buffer): Buffer {
  const pad = Buffer.alloc((4 - (body.length % 4)) % 4);
  const len = 12 + body.length + pad.length;
  const h = Buffer.alloc(8);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(len, 4);
  const t = Buffer.alloc(4);
  t.writeUInt32LE(len, 0);
  return Buffer.concat([h, body, pad, t]);
}
const SHB = block(0x0a0d0d0a, Buffer.from([0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
const IDB = block(1, Buffer.from([1, 0, 0, 0, 0xff, 0xff, 0, 0]));
const ISB = block(5, Buffer.alloc(12));
function epb(k: number): Buffer {
  const b = Buffer.alloc(20);
  const us = BigInt(1_700_000_000 + k) * 1_000_000n;
  b.writeUInt32LE(Number(us >> 32n), 4);
  b.writeUInt32LE(Number(us & 0xffffffffn), 8);
  b.writeUInt32LE(FRAME.length, 12);
  b.writeUInt32LE(FRAME.length, 16);
  return block(6, Buffer.concat([b, FRAME]));
}
/** Enhanced Packet Blocks among the whole blocks of a little-endian pcapng stream. */
function epbCount(b: Buffer): number {
  let n = 0;
  for (let o = 0; o + 12 <= b.length; ) {
    const len = b.readUInt32LE(o + 4);
    if (len < 12 || o + len > b.length) break;
    if (b.readUInt32LE(o) === 6) n++;
    o += len;
  }
  return n;
}

/** Bytes of a pcap output holding n frames of FRAME's length. */
const outBytes = (n: number): number => 24 + n * (16 + FRAME.length);

let dir: string;
let fifoOk = false;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpemu-live-'));
  fifoOk = spawnSync('mkfifo', [join(dir, 'probe')]).status === 0;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Kind = 'pipe' | 'socket';

interface Live {
  child: ChildProcess;
  write(b: Buffer): void;
  end(): void;
  stdout(): Buffer;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let fifoCount = 0;

/** A new FIFO in the test directory. */
function newFifo(): string {
  const fifo = join(dir, `fifo-${fifoCount++}`);
  if (spawnSync('mkfifo', [fifo]).status !== 0) throw new Error('mkfifo failed');
  return fifo;
}

/** dpemu ARGS with standard input `stdin`; its output and exit collected. */
function spawnDpemu(args: string[], stdin: 'pipe' | 'ignore' | number): Omit<Live, 'write' | 'end'> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: [stdin, 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  return { child, stdout: () => Buffer.concat(out), stderr: () => err, exited };
}

/** dpemu ARGS with standard input fed by the test, through a FIFO or a socket. */
function startLive(kind: Kind, args: string[]): Live {
  let fd = -1;
  let stdin: 'pipe' | number = 'pipe';
  if (kind === 'pipe') {
    const fifo = newFifo();
    // Opened read-write first, the FIFO has a writer, so the read-only open does not wait.
    fd = openSync(fifo, 'r+');
    stdin = openSync(fifo, 'r');
  }
  const l = spawnDpemu(args, stdin);
  if (typeof stdin === 'number') closeSync(stdin);
  return {
    ...l,
    write: (b) => (fd >= 0 ? writeSync(fd, b) : l.child.stdin!.write(b)),
    end: () => (fd >= 0 ? closeSync(fd) : l.child.stdin!.end()),
  };
}

/** Wait until `cond` holds, at most `ms` (a generous bound for a loaded CI machine). */
async function waitUntil(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The process exits within `ms`; else it is killed and the test fails. */
async function exitWithin(l: Live, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((res) => (timer = setTimeout(() => res(null), ms)));
  const r = await Promise.race([l.exited, late]);
  clearTimeout(timer);
  if (r === null) {
    l.child.kill('SIGKILL');
    throw new Error(`dpemu did not exit within ${ms} ms; stderr: ${l.stderr()}`);
  }
  return r;
}

describe.skipIf(!spawnSync('sh', ['-c', 'command -v mkfifo']).stdout.length)('live standard input (a pipe)', () => {
  const kinds = (): Kind[] => {
    expect(fifoOk, 'mkfifo works').toBe(true);
    return ['pipe'];
  };

  it('each frame goes out while the producer is quiet, before the next one arrives (node and identity, 1 and 2 workers)', async () => {
    for (const kind of kinds()) {
      for (const node of [true, false]) {
        for (const w of [1, 2]) {
          const label = `${kind}, ${node ? 'node' : 'identity'}, ${w} worker(s)`;
          const l = startLive(kind, ['replay', ...(node ? ['--node', NODE] : []), '--in', '-', '--out', '-', '--format', 'pcap', '--workers', String(w)]);
          l.write(Buffer.concat([PCAP_HEADER, record(0)]));
          await waitUntil(() => l.stdout().length >= outBytes(1), 15_000, () => `frame 1 (${label}): ${l.stdout().length} bytes out; ${l.stderr()}`);
          l.write(record(1));
          await waitUntil(() => l.stdout().length >= outBytes(2), 15_000, () => `frame 2 (${label}): ${l.stdout().length} bytes out; ${l.stderr()}`);
          l.end();
          const r = await exitWithin(l, 15_000);
          expect(r.code, `${label}: ${l.stderr()}`).toBe(0);
          expect(l.stdout().length, label).toBe(outBytes(2));
          expect(l.stderr(), label).toMatch(/in\s+2 frames/);
        }
      }
    }
  }, 180_000);

  it('a steady stream (a frame every 0.5 ms, never 2 ms quiet) still goes out within a fraction of a second', async () => {
    for (const kind of kinds()) {
      for (const w of [1, 2]) {
        const label = `${kind}, ${w} worker(s)`;
        const l = startLive(kind, ['replay', '--in', '-', '--out', '-', '--format', 'pcap', '--workers', String(w)]);
        l.write(PCAP_HEADER);
        const t0 = performance.now();
        let k = 0;
        let outAt1s = -1;
        let writtenAt1s = 0;
        while (performance.now() - t0 < 1500) {
          const due = Math.floor((performance.now() - t0) * 2);
          const recs: Buffer[] = [];
          for (; k < due; k++) recs.push(record(k));
          if (recs.length > 0) l.write(Buffer.concat(recs));
          if (outAt1s < 0 && performance.now() - t0 >= 1000) {
            outAt1s = (l.stdout().length - 24) / (16 + FRAME.length);
            writtenAt1s = k;
          }
          await new Promise((r) => setImmediate(r));
        }
        l.end();
        const r = await exitWithin(l, 15_000);
        expect(r.code, `${label}: ${l.stderr()}`).toBe(0);
        expect(l.stdout().length, label).toBe(outBytes(k));
        // The output is flushed at least every 50 ms (a writer buffer holds megabytes).
        expect(outAt1s, `${label}: ${outAt1s} of ${writtenAt1s} frames out after 1 s`).toBeGreaterThan(writtenAt1s / 2);
      }
    }
  }, 120_000);

  it('pcapng: each packet out before the next; a statistics block alone does not make the reader wait in a read (SIGINT works after it)', async () => {
    for (const kind of kinds()) {
      for (const w of [1, 2]) {
        const label = `${kind}, ${w} worker(s)`;
        const l = startLive(kind, ['replay', '--in', '-', '--out', '-', '--workers', String(w)]);
        l.write(Buffer.concat([SHB, IDB]));
        await new Promise((r) => setTimeout(r, 300));
        l.write(epb(0));
        await waitUntil(() => epbCount(l.stdout()) >= 1, 15_000, () => `packet 1 (${label}); ${l.stderr()}`);
        l.write(Buffer.concat([epb(1), ISB]));
        await waitUntil(() => epbCount(l.stdout()) >= 2, 15_000, () => `packet 2 (${label}); ${l.stderr()}`);
        // A block without a packet, alone: taking it must not leave the reader in a read that
        // waits for the next packet (which would hold SIGINT).
        l.write(ISB);
        await new Promise((r) => setTimeout(r, 300));
        l.child.kill('SIGINT');
        const r = await exitWithin(l, 15_000);
        l.end();
        expect(r.code, `${label}: ${l.stderr()}`).toBe(130);
        expect(epbCount(l.stdout()), label).toBe(2);
      }
    }
  }, 120_000);

  it('SIGINT while the producer is quiet: exit 130 at once, the output holds everything read', async () => {
    for (const kind of kinds()) {
      for (const w of [1, 2]) {
        const label = `${kind}, ${w} worker(s)`;
        const l = startLive(kind, ['replay', '--node', NODE, '--in', '-', '--out', '-', '--format', 'pcap', '--workers', String(w)]);
        l.write(Buffer.concat([PCAP_HEADER, record(0), record(1)]));
        await waitUntil(() => l.stdout().length >= outBytes(2), 15_000, () => `2 frames (${label}); ${l.stderr()}`);
        l.child.kill('SIGINT');
        const r = await exitWithin(l, 15_000);
        l.end();
        expect(r.code, `${label}: ${l.stderr()}`).toBe(130);
        expect(l.stderr(), label).toMatch(/interrupted\s+yes: the output holds the 2 frames read before SIGINT/);
        expect(l.stdout().length, label).toBe(outBytes(2));
      }
    }
  }, 120_000);

  it('SIGINT before the capture began: exit 130, nothing written; SIGTERM while quiet: stops at once, no output', async () => {
    for (const kind of kinds()) {
      const out = join(dir, `out-${kind}.pcap`);
      const a = startLive(kind, ['replay', '--in', '-', '--out', out]);
      await new Promise((r) => setTimeout(r, 500));
      a.child.kill('SIGINT');
      const ra = await exitWithin(a, 15_000);
      a.end();
      expect(ra.code, a.stderr()).toBe(130);
      expect(a.stderr()).toMatch(/interrupted before the capture on standard input began: nothing read, no output written/);
      expect(existsSync(out)).toBe(false);

      const b = startLive(kind, ['replay', '--node', NODE, '--in', '-', '--out', out, '--workers', '2']);
      b.write(Buffer.concat([PCAP_HEADER, record(0)]));
      await new Promise((r) => setTimeout(r, 1500));
      b.child.kill('SIGTERM');
      const rb = await exitWithin(b, 15_000);
      b.end();
      expect(rb.code, b.stderr()).toBe(143);
      expect(existsSync(out)).toBe(false);
    }
    expect(readdirSync(dir).filter((f) => !f.startsWith('fifo-') && f !== 'probe')).toEqual([]);
  }, 60_000);
});

describe.skipIf(!spawnSync('sh', ['-c', 'command -v mkfifo']).stdout.length)('a named pipe as --in (mkfifo f; tcpdump -U -w f & dpemu --in f)', () => {
  /** dpemu ARGS, reading the FIFO `fifo` itself (--in fifo). */
  function startOnFifo(args: string[]): Live {
    return { ...spawnDpemu(args, 'ignore'), write: () => undefined, end: () => undefined };
  }
  /** The writer's end, once dpemu has the FIFO open (a non-blocking open fails until then). */
  async function openWriter(fifo: string): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      try {
        return openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() - t0 > 15_000) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  it('SIGINT before any writer: exit 130 at once, no output; a writer that starts late: each frame out before the next, then the end', async () => {
    expect(fifoOk, 'mkfifo works').toBe(true);
    const fifo = newFifo();
    const out = join(dir, 'out-fifo.pcap');
    const a = startOnFifo(['replay', '--in', fifo, '--out', out]);
    await new Promise((r) => setTimeout(r, 800));
    a.child.kill('SIGINT');
    const ra = await exitWithin(a, 15_000);
    expect(ra.code, a.stderr()).toBe(130);
    expect(a.stderr()).toMatch(/interrupted before the capture in .* began: nothing read, no output written/);
    expect(existsSync(out)).toBe(false);

    for (const w of [1, 2]) {
      const b = startOnFifo(['replay', '--node', NODE, '--in', fifo, '--out', '-', '--format', 'pcap', '--workers', String(w)]);
      await new Promise((r) => setTimeout(r, 500)); // no writer yet: dpemu waits, it does not see an empty file
      const fd = await openWriter(fifo);
      writeSync(fd, Buffer.concat([PCAP_HEADER, record(0)]));
      await waitUntil(() => b.stdout().length >= outBytes(1), 15_000, () => `frame 1 (${w} worker(s)); ${b.stderr()}`);
      writeSync(fd, record(1));
      await waitUntil(() => b.stdout().length >= outBytes(2), 15_000, () => `frame 2 (${w} worker(s)); ${b.stderr()}`);
      closeSync(fd);
      const rb = await exitWithin(b, 15_000);
      expect(rb.code, b.stderr()).toBe(0);
      expect(b.stdout().length).toBe(outBytes(2));
    }
  }, 90_000);

  it('a writer that opens the FIFO and closes it without writing: an empty input (exit 3); SIGTERM before any writer: exit 143 at once', async () => {
    expect(fifoOk, 'mkfifo works').toBe(true);
    const fifo = newFifo();
    const out = join(dir, 'out-fifo-empty.pcap');
    const a = startOnFifo(['replay', '--in', fifo, '--out', out]);
    await new Promise((r) => setTimeout(r, 500));
    closeSync(await openWriter(fifo)); // like `: > fifo`
    const ra = await exitWithin(a, 15_000);
    expect(ra.code, a.stderr()).toBe(3);
    expect(a.stderr()).toMatch(/file header: empty file/);
    expect(existsSync(out)).toBe(false);

    // The FIFO as the output as well: refused at once (exit 4), not after its writer came.
    const same = spawnSync(process.execPath, [CLI, 'replay', '--in', fifo, '--out', fifo], { timeout: 15_000, encoding: 'utf8' });
    expect(same.status, same.stderr).toBe(4);
    expect(same.stderr).toMatch(/is the input file/);

    // The open that watches for the writer (in libuv's thread pool) must not keep the process.
    const b = startOnFifo(['replay', '--in', fifo, '--out', out]);
    await new Promise((r) => setTimeout(r, 800));
    b.child.kill('SIGTERM');
    const rb = await exitWithin(b, 15_000);
    expect(rb.code, b.stderr()).toBe(143);
    expect(existsSync(out)).toBe(false);
  }, 60_000);
});

describe('the corpus through a pipe', () => {
  // ../shared/corpus beside the repository (see corpus.test.ts): every 40th capture and every
  // one with a file-level note (damage, odd lengths). All 616 agreed when this was written.
  const corpus = join(ROOT, '..', 'shared', 'corpus');
  const rows = existsSync(join(corpus, 'INDEX.tsv'))
    ? readFileSync(join(corpus, 'INDEX.tsv'), 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split('\t'))
    : [];
  const sample = rows.filter((c, i) => i % 40 === 0 || c[12] !== '-').map((c) => c[0]!);

  it.skipIf(sample.length === 0)('cat FILE | dpemu --in - gives the exit code and the output bytes of --in FILE', () => {
    const a = join(dir, 'corpus-a.pcapng');
    const b = join(dir, 'corpus-b.pcapng');
    for (const f of sample) {
      const file = join(corpus, f);
      const ra = spawnSync(process.execPath, [CLI, 'replay', '--in', file, '--out', a, '--workers', '1']);
      const rb = spawnSync('sh', ['-c', `cat "$1" | "$2" "$3" replay --in - --out "$4" --workers 1`, 'sh', file, process.execPath, CLI, b], { timeout: 30_000 });
      expect(rb.status, `${f}: ${rb.stderr}`).toBe(ra.status);
      expect(existsSync(b), f).toBe(existsSync(a));
      if (existsSync(a)) expect(readFileSync(b).equals(readFileSync(a)), f).toBe(true);
      rmSync(a, { force: true });
      rmSync(b, { force: true });
    }
  }, 300_000);
});

describe('standard input that is a socket', () => {
  it('reads wait in the thread, but not before what was read has gone out: a burst is out while the producer is quiet', async () => {
    for (const w of [1, 2]) {
      const l = startLive('socket', ['replay', '--in', '-', '--out', '-', '--format', 'pcap', '--workers', String(w)]);
      l.write(Buffer.concat([PCAP_HEADER, record(0)]));
      await waitUntil(() => l.stdout().length >= outBytes(1), 15_000, () => `frame 1 (${w} worker(s)); ${l.stderr()}`);
      const burst: Buffer[] = [];
      for (let k = 1; k <= 5000; k++) burst.push(record(k));
      l.write(Buffer.concat(burst));
      await waitUntil(() => l.stdout().length >= outBytes(5001), 15_000, () => `the burst (${w} worker(s)): ${(l.stdout().length - 24) / (16 + FRAME.length)} of 5001 frames out`);
      l.end();
      const r = await exitWithin(l, 15_000);
      expect(r.code, l.stderr()).toBe(0);
    }
  }, 60_000);

  it('reads wait in the thread: every frame still comes out, at the latest when the input ends', async () => {
    for (const w of [1, 2]) {
      const l = startLive('socket', ['replay', '--node', NODE, '--in', '-', '--out', '-', '--format', 'pcap', '--workers', String(w)]);
      l.write(Buffer.concat([PCAP_HEADER, record(0)]));
      await new Promise((r) => setTimeout(r, 300));
      l.write(record(1));
      l.end();
      const r = await exitWithin(l, 15_000);
      expect(r.code, l.stderr()).toBe(0);
      expect(l.stdout().length).toBe(outBytes(2));
    }
  }, 60_000);
});
