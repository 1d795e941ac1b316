/**
 * The sequencer stage: every input frame, in capture order, through ONE LinuxNode. The node is
 * the only stateful stage of a replay (conntrack, NAT ports, nth/random, recent, reassembly):
 * whichever thread runs this, it is the only one that does, so every stateful decision is
 * made in capture order. (A module of its own so that encoder threads do not load the node.)
 */
import { FATE_DELIVERED, FATE_DROPPED, FATE_ERROR, FATE_HELD, FATE_LEFT, LinuxNode, type FrameSink } from '../elements/linux/node.js';
import type { NodeConfig } from '../elements/linux/config.js';
import { LINKTYPE_ETHERNET, type RecordBatch } from '../pcap/types.js';
import { Accounting } from './accounting.js';
import { IngressMap } from './ingress.js';
import { H_COUNT, HF_BYTES, HF_FIRST, type Slot } from './slots.js';
import { injectFault, sleepSync, type Fault } from './stages.js';

/** Where the node's frames go, told the timestamp and ordinal of the input frame first. */
export interface FrameSinkAt extends FrameSink {
  tsSec: number;
  tsNsec: number;
  src: number;
}

export interface NodeStageOptions {
  node: NodeConfig;
  seed: number;
  comments: boolean;
  /** The --ingress file (for messages) and its table (read by the main thread). */
  ingressFile?: string;
  ingressTable: Int32Array | null;
}

export class SequencerStage {
  readonly node: LinuxNode;
  readonly acct = new Accounting();
  readonly name: string;
  private readonly ingress: IngressMap;
  /** Frame being processed (ordinal) and its input byte offset, for error reports. */
  frame = -1;
  fileOffset = -1;

  constructor(
    o: NodeStageOptions,
    private readonly fault: Fault | null,
    private readonly inWorker: boolean,
    /** Where to publish the frame being processed (a shared cell read if the thread dies). */
    private readonly frameCell: Float64Array | null = null,
    private readonly frameCellIndex = 0,
  ) {
    // inPlace: the input slot or batch is read once, so the node may rewrite frames where they are.
    this.node = new LinuxNode(o.node, { seed: o.seed, comments: o.comments, inPlace: true });
    this.name = `sequencer (node ${o.node.name})`;
    this.ingress = IngressMap.fromTable(o.ingressFile, o.ingressTable);
  }

  /** Walk every record of the input slot through the node, in order. */
  process(slot: Slot, sink: FrameSinkAt): void {
    const n = slot.h[H_COUNT]!;
    const first = slot.hf[HF_FIRST]!;
    const data = slot.data;
    const dv = slot.dataDv;
    const cell = this.frameCell;
    const ci = this.frameCellIndex;
    this.acct.in += n;
    this.acct.bytesIn += slot.hf[HF_BYTES]!;
    if (this.fault !== null && this.fault.action === 'slow') sleepSync(this.fault.frame);
    for (let i = 0; i < n; i++) {
      const frameNo = first + i;
      if (cell !== null) cell[ci] = frameNo;
      this.step(frameNo, slot.pos[i]!, data, dv, slot.offset[i]!, slot.caplen[i]!, slot.origlen[i]!, slot.link[i]!, slot.aux[i]!, slot.tsSec[i]!, slot.tsNsec[i]!, sink);
    }
    this.frame = -1;
    this.fileOffset = -1;
  }

  /**
   * The same walk straight over a reader's batch (one thread, no slots): `linkOf` and `byName`
   * per reader interface as the InputFiller keeps them (link type | FCS << 16; node interface
   * named like it, or -1).
   */
  processBatch(batch: RecordBatch, linkOf: readonly number[], byName: readonly number[], sink: FrameSinkAt): void {
    const n = batch.count;
    const data = batch.buf;
    const dv = batch.dv;
    this.acct.in += n;
    for (let i = 0; i < n; i++) {
      const ifc = batch.iface[i]!;
      const caplen = batch.caplen[i]!;
      this.acct.bytesIn += caplen;
      this.step(batch.index[i]!, batch.fileOffset[i]!, data, dv, batch.offset[i]!, caplen, batch.origlen[i]!, linkOf[ifc]!, byName[ifc]!, batch.tsSec[i]!, batch.tsNsec[i]!, sink);
    }
    this.frame = -1;
    this.fileOffset = -1;
  }

  /** One input frame through the node, with its accounting. */
  private step(
    frameNo: number,
    pos: number,
    data: Uint8Array,
    dv: DataView,
    off: number,
    caplen: number,
    origlen: number,
    link: number,
    aux: number,
    tsSec: number,
    tsNsec: number,
    sink: FrameSinkAt,
  ): void {
    const node = this.node;
    const acct = this.acct;
    this.frame = frameNo;
    this.fileOffset = pos;
    if (this.fault !== null && this.fault.stage === 'sequencer' && this.fault.action !== 'slow' && frameNo === this.fault.frame - 1) injectFault(this.fault, this.inWorker);
    const linktype = link & 0xffff;
    let inIf = this.ingress.fromSidecar(frameNo);
    if (inIf < 0) inIf = aux;
    if (inIf < 0 && linktype === LINKTYPE_ETHERNET && caplen >= 6) inIf = node.ifByMac(data, off);
    if (inIf < 0) {
      acct.error('no ingress interface (no --ingress line, no matching interface name, no interface with the destination MAC)');
      return;
    }
    sink.tsSec = tsSec;
    sink.tsNsec = tsNsec;
    sink.src = frameNo;
    const fate = node.receive(data, dv, off, caplen, origlen, linktype, link >>> 16, inIf, tsSec, tsNsec, sink, null);
    // A completed datagram also decides the fate of the fragments held before it.
    const frames = 1 + node.absorbed;
    if (fate === FATE_LEFT) acct.left += frames;
    else if (fate === FATE_DELIVERED) acct.delivered += frames;
    else if (fate === FATE_DROPPED) acct.drop(node.reason, frames);
    else if (fate === FATE_ERROR) acct.error(node.reason, frames);
    else if (fate !== FATE_HELD) acct.error('no outcome (internal)', frames);
    if (node.expiredFragments > 0) {
      acct.drop('fragments of an incomplete datagram (reassembly timeout or discarded queue)', node.expiredFragments);
      node.expiredFragments = 0;
    }
    acct.generated += node.framesGenerated;
  }

  /** End of the input: fragments still waiting for the rest of their datagram are dropped. */
  finish(): void {
    const held = this.node.heldFragments();
    if (held > 0) this.acct.drop('fragments of an incomplete datagram at the end of the capture', held);
  }
}

