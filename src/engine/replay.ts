/**
 * `dpemu replay` without a node or topology: the identity pipeline. Every frame is parsed
 * (link layer, IPv4, L4 views) and classified for the accounting, then written record by
 * record, unchanged. The engine (pipeline.ts) runs it in one thread or over a pool of workers.
 */
import type { CaptureFormat } from '../pcap/types.js';
import { runEngine, type EngineOptions, type EngineResult } from './pipeline.js';

export { ReplayUsageError } from './pipeline.js';

export interface ReplayOptions extends Omit<EngineOptions, 'format'> {
  format: CaptureFormat;
}

export type ReplayResult = EngineResult;

/** Replay `inPath` to `outPath` unchanged; resolves with the accounting when the output is committed. */
export function replayIdentity(opts: ReplayOptions): Promise<ReplayResult> {
  return runEngine({ kind: 'identity' }, opts);
}
