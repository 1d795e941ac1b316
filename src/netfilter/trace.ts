/**
 * What `dpemu trace` shows: every step a packet takes (hook, table, chain, rule, conntrack,
 * NAT, route, device), like `ovs-appctl ofproto/trace`. Only allocated when tracing.
 */
export interface TraceStep {
  /** Nesting depth for display (chain calls indent). */
  depth: number;
  /** e.g. "hook", "table", "rule", "policy", "conntrack", "nat", "route", "device", "out", "drop". */
  kind: string;
  text: string;
}

export class Trace {
  readonly steps: TraceStep[] = [];
  depth = 0;
  add(kind: string, text: string): void {
    this.steps.push({ depth: this.depth, kind, text });
  }
  toString(): string {
    return this.steps.map((s) => `${'  '.repeat(s.depth)}${s.kind.padEnd(9)} ${s.text}`).join('\n');
  }
}
