/**
 * Generated captures, cached between runs in `<tmp>/dpemu-bench/` under a name made of the
 * generator parameters and a hash of the generator's code (so a changed generator regenerates),
 * plus a scratch directory for outputs that is removed when the run ends. Cache files unused
 * for a week are removed at start.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { genCapture, genTemplates, type GenOptions } from '../src/engine/gen.js';

const WEEK_MS = 7 * 24 * 3600 * 1000;

export interface Capture {
  path: string;
  frames: number;
  /** Bytes of frame data (not counting record headers). */
  bytes: number;
  /** File size. */
  fileBytes: number;
  generatedNow: boolean;
}

/** The traffic of the captures the suite uses. */
export const TRAFFIC = {
  /** Clients 172.30.x.y → 8 servers 10.0.0.1–8 on 80/443/3306/53, 25 % UDP (gen.ts defaults). */
  mixed: (frames: number): GenOptions => ({ frames, minLen: 60, maxLen: 100, seed: 7 }),
  /** Pods 172.30.x.y → the Service VIP 172.21.0.10:80, TCP ACKs with data (loose pickup), 4096 flows. */
  service: (frames: number): GenOptions => ({ frames, minLen: 60, maxLen: 100, seed: 11, serverNet: 0xac15000a - 1, servers: 1, ports: [80], udpShare: 0 }),
};

/**
 * A hash of the generator's code, for the cache names: the TypeScript sources of the
 * generator and the frame builder (from this module, whether it runs from dist-bench/ or from the
 * bundle in dist/bench/, the repository root is two levels up); where they are not (an installed
 * package), the code of this running module, which holds them.
 */
function genCodeHash(): string {
  const h = createHash('sha1');
  try {
    for (const rel of ['../../src/engine/gen.ts', '../../src/packet/build.ts']) h.update(readFileSync(fileURLToPath(new URL(rel, import.meta.url))));
  } catch {
    h.update(readFileSync(fileURLToPath(import.meta.url)));
  }
  return h.digest('hex').slice(0, 8);
}

export class Workspace {
  readonly cacheDir: string;
  readonly outDir: string;
  private readonly hash = genCodeHash();

  constructor(base: string) {
    this.cacheDir = base;
    mkdirSync(base, { recursive: true });
    this.outDir = join(base, `run-${process.pid}`);
    mkdirSync(this.outDir, { recursive: true });
    this.evict();
  }

  /** A cached capture of `o.frames` frames, generated if missing. */
  capture(kind: keyof typeof TRAFFIC, frames: number, log: (s: string) => void): Capture {
    const o = TRAFFIC[kind](frames);
    const name = `${kind}-${frames}-${o.minLen}-${o.maxLen}-s${o.seed}-${this.hash}.pcap`;
    const path = join(this.cacheDir, name);
    const meta = path + '.json';
    if (existsSync(path) && existsSync(meta)) {
      try {
        const m = JSON.parse(readFileSync(meta, 'utf8')) as { frames: number; bytes: number; fileBytes: number };
        if (m.frames === frames && statSync(path).size === m.fileBytes) {
          const now = new Date();
          utimesSync(path, now, now);
          utimesSync(meta, now, now);
          return { path, frames, bytes: m.bytes, fileBytes: m.fileBytes, generatedNow: false };
        }
      } catch {
        /* regenerate */
      }
    }
    log(`generating ${name} (${frames.toLocaleString('en-US')} frames, cached for later runs)`);
    const bytes = genCapture(path, o);
    const fileBytes = statSync(path).size;
    writeFileSync(meta, JSON.stringify({ frames, bytes, fileBytes, options: o }) + '\n');
    return { path, frames, bytes, fileBytes, generatedNow: true };
  }

  /** Frame templates of a traffic kind (what the capture cycles through). */
  templates(kind: keyof typeof TRAFFIC, o: Partial<GenOptions> = {}): Uint8Array[] {
    return genTemplates({ ...TRAFFIC[kind](1 << 20), ...o });
  }

  out(name: string): string {
    return join(this.outDir, name);
  }

  /** Remove the outputs of this run. */
  cleanup(): void {
    rmSync(this.outDir, { recursive: true, force: true });
  }

  /**
   * Remove scratch directories of dead runs, captures made by another version of the generator
   * or by earlier versions of this suite, and captures unused for a week.
   */
  private evict(): void {
    const now = Date.now();
    for (const f of readdirSync(this.cacheDir)) {
      const p = join(this.cacheDir, f);
      try {
        const st = statSync(p);
        const ours = /^(mixed|service)-\d+-\d+-\d+-s\d+-([0-9a-f]{8})\.pcap(\.json)?$/.exec(f);
        if (st.isDirectory()) {
          const pid = Number(f.match(/^run-(\d+)$/)?.[1]);
          if (pid && pid !== process.pid && !alive(pid)) rmSync(p, { recursive: true, force: true });
        } else if ((ours && ours[2] !== this.hash) || /^(gen|svc)-\d+(-\d+-\d+)?\.pcap(\.bytes)?$|^(out\.pcap(ng)?|svc-out\.pcap)$/.test(f)) {
          rmSync(p, { force: true });
        } else if (ours && now - st.mtimeMs > WEEK_MS) {
          rmSync(p, { force: true });
        }
      } catch {
        /* raced with another run */
      }
    }
  }

  clearCache(): void {
    for (const f of readdirSync(this.cacheDir)) if (f.endsWith('.pcap') || f.endsWith('.pcap.json')) rmSync(join(this.cacheDir, f), { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Frames laid out back to back in one buffer, as a batch holds them. */
export class FrameSet {
  readonly buf: Uint8Array;
  readonly dv: DataView;
  readonly off: Uint32Array;
  readonly len: Uint32Array;
  readonly count: number;
  readonly bytes: number;

  constructor(frames: readonly Uint8Array[], headroom = 0) {
    let total = 0;
    for (const f of frames) total += headroom + ((f.length + 7) & ~7);
    this.buf = new Uint8Array(total);
    this.dv = new DataView(this.buf.buffer);
    this.count = frames.length;
    this.off = new Uint32Array(frames.length);
    this.len = new Uint32Array(frames.length);
    let p = 0;
    let bytes = 0;
    frames.forEach((f, i) => {
      p += headroom;
      this.buf.set(f, p);
      this.off[i] = p;
      this.len[i] = f.length;
      bytes += f.length;
      p += (f.length + 7) & ~7;
    });
    this.bytes = bytes;
  }
}
