/**
 * `dpemu replay --node`: every input frame enters one `linux` element; what it sends is written
 * to a pcapng with one interface per (Ethernet) interface of the node, or to a pcap. The engine
 * (pipeline.ts) runs the node in a sequencer (one thread sees every frame in capture order) and
 * the serialisation in encoder threads, or everything in the calling thread with workers = 1.
 */
import type { NodeConfig } from '../elements/linux/config.js';
import { runEngine, type EngineOptions, type EngineResult } from './pipeline.js';

export interface NodeReplayOptions extends EngineOptions {
  node: NodeConfig;
  ingressFile?: string;
  seed?: number;
  /** pcapng: a comment on every written frame (verdict, NAT). Default true for pcapng. */
  comments?: boolean;
}

export type NodeReplayResult = EngineResult;

export function replayNode(opts: NodeReplayOptions): Promise<NodeReplayResult> {
  return runEngine({ kind: 'node', node: opts.node, ingressFile: opts.ingressFile, seed: opts.seed ?? 1, comments: opts.comments ?? opts.format === 'pcapng' }, opts);
}
