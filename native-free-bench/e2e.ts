/**
 * Whole-file runs: capture I/O in this process (process.hrtime around a whole file), and child
 * processes: the dpemu command (`dpemu replay`: the bundled dist/cli/main.js of `npm run build`)
 * and tcprewrite.
 *
 * A dpemu child yields three figures per run: the replay function's own time (the CLI's
 * `--stats` elapsedSec, measured by replayIdentity/replayNode with process.hrtime), the wall
 * clock of the whole process as the parent sees it (Node startup, module loading, config
 * parsing included), and its peak RSS (a preloaded probe reads getrusage at exit).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { CaptureReader } from '../src/pcap/reader.js';
import { CaptureWriter } from '../src/pcap/writer.js';
import { LINKTYPE_ETHERNET, RecordBatch } from '../src/pcap/types.js';
import { PacketView, PARSE_OK } from '../src/packet/view.js';
import { FrameSet, type Capture, type Workspace } from './inputs.js';
import type { WallCase, WallSample } from './measure.js';

/** Read a file once so that the first measured run does not pay for the disk. */
export function warmPageCache(path: string): void {
  const fd = openSync(path, 'r');
  const b = Buffer.allocUnsafe(1 << 22);
  try {
    while (readSync(fd, b, 0, b.length, null) > 0) {
      /* read through */
    }
  } finally {
    closeSync(fd);
  }
}

export function ioCases(ws: Workspace, cap: Capture, templates: readonly Uint8Array[]): WallCase[] {
  const frames = cap.frames;
  const fs = new FrameSet(templates);
  let tplBytes = 0;
  for (let i = 0; i < frames; i++) tplBytes += fs.len[i % fs.count]!;
  const batch = new RecordBatch(4096);
  const read = (path: string, expect: number): void => {
    const r = CaptureReader.open(path);
    let n = 0;
    let k: number;
    while ((k = r.next(batch)) > 0) n += k;
    r.close();
    if (expect >= 0 && n !== expect) throw new Error(`pcap read: ${n} frames, expected ${expect}`);
  };
  const write = (path: string, count: number, ng: boolean): void => {
    const w = CaptureWriter.open(path, { format: ng ? 'pcapng' : 'pcap', interfaces: [{ name: 'eth1', linktype: LINKTYPE_ETHERNET }] });
    const { buf, off, len } = fs;
    const m = fs.count;
    const comment = ['DNAT 172.21.0.10:80 -> 10.190.12.6:80 [KUBE-SEP-A, random]'];
    try {
      let j = 0;
      for (let i = 0; i < count; i++) {
        if (ng) w.writeRecord(buf, off[j]!, len[j]!, len[j]!, 1_700_000_000, (i % 1e6) * 1000, 0, comment, 2);
        else w.writeRecord(buf, off[j]!, len[j]!, len[j]!, 1_700_000_000, (i % 1e6) * 1000, 0);
        if (++j === m) j = 0;
      }
      w.commit();
    } catch (e) {
      w.abort();
      throw e;
    }
  };
  const time = (f: () => void): WallSample => {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    f();
    const t = Number(process.hrtime.bigint() - t0);
    const c = process.cpuUsage(c0);
    return { t, cpuNs: (c.user + c.system) * 1e3 } as WallSample;
  };
  const outPcap = ws.out('io.pcap');
  const outNg = ws.out('io.pcapng');
  const F = frames.toLocaleString('en-US');
  return [
    {
      name: 'pcap read',
      frames,
      bytes: cap.bytes,
      rows: [{ key: 't', id: 'e2e-pcap-read', section: 'e2e', name: `pcap read, ${F} frames (CaptureReader.next, 4,096-record batches)`, method: 'hrtime', cpu: true }],
      warm: () => {
        warmPageCache(cap.path);
        read(cap.path, frames);
      },
      run: () => time(() => read(cap.path, frames)),
    },
    {
      name: 'pcap write',
      frames,
      bytes: tplBytes,
      rows: [{ key: 't', id: 'e2e-pcap-write', section: 'e2e', name: `pcap write, ${F} frames (writeRecord from one buffer)`, method: 'hrtime', cpu: true }],
      warm: () => write(outPcap, Math.min(frames, 100_000), false),
      run: () => {
        removeOutput(outPcap);
        return time(() => write(outPcap, frames, false));
      },
    },
    {
      name: 'pcapng write with comments',
      frames,
      bytes: tplBytes,
      rows: [{ key: 't', id: 'e2e-pcapng-write-comments', section: 'e2e', name: `pcapng write with a comment + flags per frame, ${F} frames`, method: 'hrtime', cpu: true }],
      warm: () => write(outNg, Math.min(frames, 100_000), true),
      run: () => {
        removeOutput(outNg);
        return time(() => write(outNg, frames, true));
      },
    },
  ];
}

export interface ProcResult {
  wallNs: number;
  /** The replay function's own time (dpemu --stats). */
  fnNs?: number;
  rssMB?: number;
  /** CPU time (user + system) of the whole process. */
  cpuNs?: number;
  stats?: Record<string, unknown>;
}

export class Procs {
  readonly cli: string;
  private readonly probe: string;
  private seq = 0;
  private help: string | undefined;

  constructor(
    private readonly ws: Workspace,
    /** main.js of the dpemu command to run. */
    cli: string,
  ) {
    this.cli = cli;
    this.probe = new URL('./rss-probe.js', import.meta.url).href;
  }

  private replayHelp(): string {
    if (this.help === undefined) this.help = spawnSync(process.execPath, [this.cli, 'replay', '--help'], { encoding: 'utf8' }).stdout ?? '';
    return this.help;
  }

  /** Does `dpemu replay` take --workers (the engine issue)? */
  supportsWorkers(): boolean {
    return /--workers\b/.test(this.replayHelp());
  }

  /** `--workers N` when the command has it (its default is not one thread), else nothing. */
  workers(n: number): string[] {
    return this.supportsWorkers() ? ['--workers', String(n)] : [];
  }

  /**
   * `dpemu replay ARGS --stats F`; checks the accounting against `expect`. With `pipeFrom`, the
   * capture comes through a pipe (`cat FILE | dpemu replay --in - ...`), as from tcpdump -w -.
   */
  dpemu(args: string[], expect: { in: number; left?: number }, pipeFrom?: string): ProcResult {
    const timeout = childTimeoutMs(expect.in);
    const n = this.seq++;
    const statsPath = this.ws.out(`stats-${n}.json`);
    const rssPath = this.ws.out(`rss-${n}.json`);
    removeOutput(args[args.indexOf('--out') + 1]);
    const t0 = process.hrtime.bigint();
    const quiet = /--no-progress\b/.test(this.replayHelp()) ? ['--no-progress'] : [];
    const argv = ['--import', this.probe, this.cli, 'replay', ...args, ...quiet, '--stats', statsPath];
    const [cmd, cmdArgs] = pipeFrom === undefined ? [process.execPath, argv] : ['sh', ['-c', 'f=$1; shift; cat "$f" | exec "$@"', 'sh', pipeFrom, process.execPath, ...argv]];
    const r = spawnSync(cmd, cmdArgs, {
      encoding: 'utf8',
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, DPEMU_BENCH_RSS: rssPath },
      maxBuffer: 16 << 20,
      timeout,
    });
    const wallNs = Number(process.hrtime.bigint() - t0);
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') throw new Error(`dpemu replay ${args.join(' ')}: no end after ${timeout / 1000} s, killed (a hang?)`);
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`dpemu replay ${args.join(' ')}: exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    const stats = JSON.parse(readFileSync(statsPath, 'utf8')) as Record<string, unknown>;
    if (stats.in !== expect.in) throw new Error(`dpemu replay: ${String(stats.in)} frames in, expected ${expect.in}`);
    if (expect.left !== undefined && stats.left !== expect.left) {
      throw new Error(`dpemu replay: ${String(stats.left)} of ${expect.in} frames left the node (dropped: ${JSON.stringify(stats.dropped)}, errors: ${JSON.stringify(stats.errors)})`);
    }
    let rssMB: number | undefined;
    let cpuNs: number | undefined;
    try {
      const p = JSON.parse(readFileSync(rssPath, 'utf8')) as { hwmKB: number; maxRssKB: number; cpuUs: number };
      rssMB = (p.hwmKB > 0 ? p.hwmKB : p.maxRssKB) / 1024;
      cpuNs = p.cpuUs * 1e3;
    } catch {
      rssMB = undefined;
    }
    rmSync(statsPath, { force: true });
    rmSync(rssPath, { force: true });
    return { wallNs, fnNs: Number(stats.elapsedSec) * 1e9, rssMB, cpuNs, stats };
  }

  /**
   * tcprewrite ARGS, wall clock from here. With GNU time installed it runs under
   * `time -f '%U %S %M'`, which adds one fork+exec (about a millisecond) and gives its CPU time
   * and peak RSS (wait4's rusage of a child of `time`, so not inflated by this process).
   */
  tcprewrite(args: string[], frames: number): ProcResult {
    const timeOut = this.ws.out(`time-${this.seq++}.txt`);
    const useTime = existsSync(GNU_TIME);
    const [cmd, argv] = useTime ? [GNU_TIME, ['-f', '%U %S %M', '-o', timeOut, TCPREWRITE, ...args]] : [TCPREWRITE, args];
    removeOutput(args.find((a) => a.startsWith('--outfile='))?.slice('--outfile='.length));
    const t0 = process.hrtime.bigint();
    const timeout = childTimeoutMs(frames);
    const r = spawnSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 16 << 20, timeout });
    const wallNs = Number(process.hrtime.bigint() - t0);
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') throw new Error(`tcprewrite: no end after ${timeout / 1000} s, killed`);
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`tcprewrite ${args.join(' ')}: exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    if (!useTime) return { wallNs };
    try {
      const [u, s, m] = readFileSync(timeOut, 'utf8').trim().split('\n').pop()!.split(/\s+/).map(Number);
      rmSync(timeOut, { force: true });
      return { wallNs, cpuNs: (u! + s!) * 1e9, rssMB: m! / 1024 };
    } catch {
      return { wallNs };
    }
  }
}

/**
 * The previous round's output goes before a run starts, outside the timing: replacing a large
 * file costs its deletion (dpemu unlinks it before the rename, tcprewrite truncates it on open),
 * ~40 ms per 100 MB here, which is not the replay's work. Same for both tools.
 */
function removeOutput(path: string | undefined): void {
  if (path !== undefined && path !== '-' && !path.startsWith('-')) rmSync(path, { force: true });
}

/** A child that has not ended after this long is killed and its case reported as failed (once: later rounds skip it). */
function childTimeoutMs(frames: number): number {
  return Math.max(60_000, frames * 0.03);
}

/** tcprewrite: $TCPREWRITE, else /usr/bin/tcprewrite, else the first on PATH. */
export let TCPREWRITE = '/usr/bin/tcprewrite';
const GNU_TIME = '/usr/bin/time';

export function tcprewriteInfo(): { available: boolean; path: string; version: string } {
  const candidates = process.env.TCPREWRITE ? [process.env.TCPREWRITE] : ['/usr/bin/tcprewrite', 'tcprewrite'];
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.error) continue;
    const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    if (!/tcprewrite/i.test(text)) continue;
    TCPREWRITE = c;
    return { available: true, path: c, version: text.split('\n')[0]!.trim() };
  }
  return { available: false, path: '', version: '' };
}

export function nodeFile(ws: Workspace, name: string, yaml: string): string {
  const p = ws.out(name);
  writeFileSync(p, yaml);
  return p;
}

/**
 * Compare the first `limit` frames of two captures on what the rewrite changes (addresses,
 * ports). Returns a description of the first difference, or null.
 */
export function sameRewrite(a: string, b: string, limit: number): { checked: number; diff: string | null } {
  const ra = CaptureReader.open(a);
  const rb = CaptureReader.open(b);
  const ba = new RecordBatch(1024);
  const bb = new RecordBatch(1024);
  const va = new PacketView();
  const vb = new PacketView();
  let checked = 0;
  try {
    for (;;) {
      const na = ra.next(ba);
      const nb = rb.next(bb);
      if (na !== nb) return { checked, diff: `batch of ${na} vs ${nb} frames after ${checked}` };
      if (na === 0) break;
      for (let i = 0; i < na && checked < limit; i++, checked++) {
        const sa = va.parse(ba.buf, ba.dv, ba.offset[i]!, ba.caplen[i]!, LINKTYPE_ETHERNET);
        const sb = vb.parse(bb.buf, bb.dv, bb.offset[i]!, bb.caplen[i]!, LINKTYPE_ETHERNET);
        if (sa !== PARSE_OK || sb !== PARSE_OK) return { checked, diff: `frame ${checked + 1} does not parse` };
        if (va.srcIp !== vb.srcIp || va.dstIp !== vb.dstIp || va.srcPort !== vb.srcPort || va.dstPort !== vb.dstPort) {
          return { checked, diff: `frame ${checked + 1}: ${tupleText(va)} vs ${tupleText(vb)}` };
        }
      }
      if (checked >= limit) break;
    }
  } finally {
    ra.close();
    rb.close();
  }
  return { checked, diff: null };
}

function tupleText(v: PacketView): string {
  const ip = (x: number): string => [x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255].join('.');
  return `${ip(v.srcIp)}:${v.srcPort} > ${ip(v.dstIp)}:${v.dstPort}`;
}

export function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}
