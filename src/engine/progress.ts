/**
 * The progress bar of long runs on a terminal (cli-progress): frames, MB, frames/s, and the ETA
 * from the input's size (bytes read / file size). It appears only after `delayMs` so that short
 * runs print nothing but their summary, and it is erased before the summary.
 */
import { createRequire } from 'node:module';
import type cliProgressTypes from 'cli-progress';
import type { Progress } from './pipeline.js';

/** cli-progress (CommonJS), loaded when a bar first appears: most runs never show one, and the load costs ~15 ms of every start. */
const load = (): typeof cliProgressTypes => createRequire(import.meta.url)('cli-progress') as typeof cliProgressTypes;

export class ProgressBar {
  private bar: cliProgressTypes.SingleBar | null = null;
  private started = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly delayMs = 1000,
  ) {}

  update(p: Progress): void {
    if (!this.started) {
      if (p.elapsedNs < this.delayMs * 1e6) return;
      this.started = true;
      const known = p.fileSize > 0;
      const cliProgress = load();
      this.bar = new cliProgress.SingleBar(
        {
          format: known
            ? '{bar} {percentage}% | {frames} frames | {mb} MB | {fps} frames/s | ETA {eta_formatted}'
            : '{frames} frames | {mb} MB | {fps} frames/s | {elapsed} s',
          stream: this.stream,
          hideCursor: true,
          clearOnComplete: true,
          barsize: 30,
          fps: 5,
          etaBuffer: 40,
          etaAsynchronousUpdate: false,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(known ? p.fileSize : 1, known ? Math.min(p.bytesRead, p.fileSize) : 0, this.payload(p));
    }
    this.bar!.update(p.fileSize > 0 ? Math.min(p.bytesRead, p.fileSize) : 0, this.payload(p));
  }

  private payload(p: Progress): Record<string, string> {
    const sec = p.elapsedNs / 1e9;
    return {
      frames: p.frames.toLocaleString('en-US'),
      mb: (p.bytesRead / 1e6).toFixed(1),
      fps: sec > 0 ? Math.round(p.frames / sec).toLocaleString('en-US') : '-',
      elapsed: sec.toFixed(0),
    };
  }

  /** Erase the bar (before the summary). */
  stop(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = null;
    }
  }
}
