/**
 * The shape of a benchmark run: what `--json` writes and what the table, the charts and
 * BENCHMARKS.md are drawn from. Bump SCHEMA when a field changes meaning.
 */
import type { Spread } from './stats.js';

export const SCHEMA = 'dpemu-bench/1';

export type Section = 'stage' | 'node' | 'rules' | 'conntrack' | 'e2e' | 'compare' | 'memory';

export const SECTION_TITLES: Record<Section, string> = {
  stage: 'Per stage (in memory, benchmark.js)',
  node: 'Linux node, per frame (node.receive from memory, no file I/O, benchmark.js)',
  rules: 'Rule match: a packet that traverses N rules (ruleset.run, benchmark.js)',
  conntrack: 'Conntrack versus live connections (benchmark.js)',
  e2e: 'End to end, whole capture files (process.hrtime around whole runs)',
  compare: 'Side by side: the same rewrite of the same capture (interleaved rounds)',
  memory: 'Peak RSS of a dpemu replay process, one thread (VmHWM of the child)',
};

/**
 * How a figure was measured: `benchmark.js` (median over rounds of a benchmark.js mean, each
 * op a loop over many frames), `hrtime` (process.hrtime around a whole run in this process or
 * inside the dpemu child), `process` (wall-clock of a whole child process, startup included).
 */
export type Method = 'benchmark.js' | 'hrtime' | 'process';

export type Status = 'ok' | 'pending' | 'unavailable' | 'failed';

export interface Result {
  id: string;
  section: Section;
  name: string;
  method: Method;
  status: Status;
  /** Frames per measured operation (benchmark.js) or per run. */
  frames: number;
  /** Bytes of frame data per operation/run (0 when not meaningful). */
  bytes: number;
  workers?: number;
  /** ns per frame over the rounds. */
  ns?: Spread;
  /** ns per frame of each round, in round order (the raw figures behind `ns`). */
  values?: number[];
  /** frames/s over the rounds (1e9 / ns). */
  fps?: Spread;
  /** MB/s of frame data (median). */
  mbps?: number;
  /** benchmark.js: samples over all rounds, and the median relative margin of error (%). */
  samples?: number;
  rme?: number;
  /** Peak RSS of the process, MB (memory and process runs). */
  rssMB?: Spread;
  /** CPU time (user + system, all threads) of the whole process, ns per frame (process runs). */
  cpuNs?: Spread;
  /** A ratio to a reference (compare section): this / reference. */
  ratio?: { to: string; value: number };
  note?: string;
  /** The figures are per run (ns: the time of a whole run; no rate), not per frame. */
  perRun?: boolean;
  /** x-value of this row in a scaling series (rules, connections, workers). */
  x?: number;
  series?: string;
}

export interface Target {
  name: string;
  /** Human statement of the target, e.g. "≥ 5× tcprewrite". */
  goal: string;
  value: string;
  met: boolean | null;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGB: number;
  os: string;
  node: string;
  v8: string;
  date: string;
  command: string;
  commit: string;
  loadAvgStart: number[];
  loadAvgEnd: number[];
}

export interface RunInfo {
  schema: string;
  machine: Machine;
  mode: 'quick' | 'full';
  frames: number;
  rounds: { micro: number; wall: number };
  durationSec: number;
  tcprewrite: { available: boolean; path: string; version: string };
  results: Result[];
  targets: Target[];
  /** Where the time goes: the full pipeline split into stages (ns/frame). */
  breakdown: { name: string; ns: number }[];
  notes: string[];
}
