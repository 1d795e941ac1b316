/**
 * Which interface of a node each input frame enters on: the --ingress sidecar (one interface
 * name per line, line k for frame k), else the pcapng interface name of the record if it names
 * an interface of the node, else the interface whose MAC is the frame's destination MAC.
 */
import { readFileSync } from 'node:fs';

export class IngressError extends Error {}

export class IngressMap {
  /** Interface index per frame from the sidecar (-1 = no sidecar). */
  private readonly sidecar: Int32Array | null;
  readonly sidecarFile: string | undefined;

  /** The sidecar already read (e.g. by another thread: `table` may live in a SharedArrayBuffer). */
  static fromTable(sidecarFile: string | undefined, table: Int32Array | null): IngressMap {
    return new IngressMap(sidecarFile, null, table);
  }

  constructor(sidecarFile: string | undefined, ifIndex: ((name: string) => number) | null, table: Int32Array | null = null) {
    this.sidecarFile = sidecarFile;
    if (ifIndex === null) {
      this.sidecar = table;
      return;
    }
    if (sidecarFile === undefined) {
      this.sidecar = null;
      return;
    }
    let text: string;
    try {
      text = readFileSync(sidecarFile, 'utf8');
    } catch (e) {
      throw new IngressError(`${sidecarFile}: cannot read ingress file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    // Shared, so that the sequencer thread uses it without a copy.
    this.sidecar = new Int32Array(new SharedArrayBuffer(lines.length * 4));
    for (let k = 0; k < lines.length; k++) {
      const name = lines[k]!.trim();
      const idx = ifIndex(name);
      if (idx < 0) throw new IngressError(`${sidecarFile}:${k + 1}: "${name}" is not an interface of the node`);
      this.sidecar[k] = idx;
    }
  }

  /** Interface index per frame (null without a sidecar). */
  get table(): Int32Array | null {
    return this.sidecar;
  }

  /** Interface from the sidecar for frame `index`, -1 when there is no sidecar; throws past its end. */
  fromSidecar(index: number): number {
    const s = this.sidecar;
    if (s === null) return -1;
    if (index >= s.length) throw new IngressError(`${this.sidecarFile}: has ${s.length} lines but the capture has more frames (frame ${index + 1})`);
    return s[index]!;
  }
}
