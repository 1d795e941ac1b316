/**
 * Per-run accounting. Every input frame ends in exactly one outcome, so after every run
 *   in = left + delivered + dropped + errors
 * where `left` counts input frames that left the model (written to the output), `delivered`
 * frames consumed locally by an element, `dropped` frames discarded for a named reason and
 * `errors` frames that could not be processed (by kind). Frames the model creates (ICMP
 * errors, extra fragments) are counted in `generated`, not in the equation's right side.
 * The class counts of the packet layer (non-IPv4, malformed, truncated) are informational:
 * each such frame also has an outcome.
 */
/** The accounting as JSON (toJSON()), e.g. sent back by the sequencer thread. */
export interface AccountingJson {
  in: number;
  left: number;
  delivered: number;
  dropped: Record<string, number>;
  droppedTotal: number;
  errors: Record<string, number>;
  errorsTotal: number;
  generated: number;
  written: number;
  nonIpv4: number;
  malformed: number;
  truncated: number;
  bytesIn: number;
  bytesOut: number;
  balanced: boolean;
}

export class Accounting {
  in = 0;
  left = 0;
  delivered = 0;
  generated = 0;
  /** Frames written to the output in total (left + generated, fragments counted one by one). */
  written = 0;
  bytesIn = 0;
  bytesOut = 0;
  nonIpv4 = 0;
  malformed = 0;
  truncated = 0;
  readonly dropped = new Map<string, number>();
  readonly errors = new Map<string, number>();

  drop(reason: string, n = 1): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + n);
  }

  error(kind: string, n = 1): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + n);
  }

  droppedTotal(): number {
    let n = 0;
    for (const v of this.dropped.values()) n += v;
    return n;
  }

  errorsTotal(): number {
    let n = 0;
    for (const v of this.errors.values()) n += v;
    return n;
  }

  /** True when every input frame has exactly one outcome. */
  balanced(): boolean {
    return this.in === this.left + this.delivered + this.droppedTotal() + this.errorsTotal();
  }

  /** An Accounting with the counts of `j` (the inverse of toJSON). */
  static fromJSON(j: AccountingJson): Accounting {
    const a = new Accounting();
    a.in = j.in;
    a.left = j.left;
    a.delivered = j.delivered;
    a.generated = j.generated;
    a.written = j.written;
    a.bytesIn = j.bytesIn;
    a.bytesOut = j.bytesOut;
    a.nonIpv4 = j.nonIpv4;
    a.malformed = j.malformed;
    a.truncated = j.truncated;
    for (const [k, v] of Object.entries(j.dropped)) a.dropped.set(k, v);
    for (const [k, v] of Object.entries(j.errors)) a.errors.set(k, v);
    return a;
  }

  toJSON(): AccountingJson {
    return {
      in: this.in,
      left: this.left,
      delivered: this.delivered,
      dropped: Object.fromEntries([...this.dropped].sort((a, b) => b[1] - a[1])),
      droppedTotal: this.droppedTotal(),
      errors: Object.fromEntries(this.errors),
      errorsTotal: this.errorsTotal(),
      generated: this.generated,
      written: this.written,
      nonIpv4: this.nonIpv4,
      malformed: this.malformed,
      truncated: this.truncated,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      balanced: this.balanced(),
    };
  }
}
