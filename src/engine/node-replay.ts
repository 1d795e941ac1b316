/**
 * `dpemu replay --node`: every input frame enters one `linux` element; what it sends is written
 * to a pcapng with one interface per (Ethernet) interface of the node, or to a pcap.
 */
import { CaptureReader } from '../pcap/reader.js';
import { CaptureWriter } from '../pcap/writer.js';
import { CaptureError } from '../pcap/errors.js';
import { LINKTYPE_ETHERNET, RecordBatch, type CaptureFormat } from '../pcap/types.js';
import { FATE_DELIVERED, FATE_DROPPED, FATE_ERROR, FATE_HELD, FATE_LEFT, LinuxNode, type FrameSink } from '../elements/linux/node.js';
import type { NodeConfig } from '../elements/linux/config.js';
import { Accounting } from './accounting.js';
import { IngressMap } from './ingress.js';

export interface NodeReplayOptions {
  inPath: string;
  outPath: string;
  format: CaptureFormat;
  nanosecond?: boolean;
  onDamage?: 'stop' | 'skip';
  node: NodeConfig;
  ingressFile?: string;
  seed?: number;
  /** pcapng: a comment on every written frame (verdict, NAT). Default true for pcapng. */
  comments?: boolean;
}

export interface NodeReplayResult {
  acct: Accounting;
  elapsedNs: number;
  damage?: CaptureError;
  skipped: CaptureError[];
}

class WriterSink implements FrameSink {
  tsSec = 0;
  tsNsec = 0;
  /** Node interface index → output interface id (-1: not an output interface). */
  constructor(
    readonly writer: CaptureWriter,
    readonly outId: Int32Array,
    readonly acct: Accounting,
  ) {}
  frame(buf: Uint8Array, off: number, len: number, outIf: number, comments: readonly string[] | null): void {
    const id = this.outId[outIf]!;
    this.writer.writeRecord(buf, off, len, len, this.tsSec, this.tsNsec, id, comments && comments.length ? (comments as string[]) : undefined, 2);
    this.acct.written++;
    this.acct.bytesOut += len;
  }
}

export function replayNode(opts: NodeReplayOptions): NodeReplayResult {
  const t0 = process.hrtime.bigint();
  const node = new LinuxNode(opts.node, { seed: opts.seed, comments: opts.comments ?? opts.format === 'pcapng' });
  const ingress = new IngressMap(opts.ingressFile, (n) => node.ifIndex(n));
  const reader = CaptureReader.open(opts.inPath, { onDamage: opts.onDamage });
  const acct = new Accounting();
  const batch = new RecordBatch(4096);
  const ethers = opts.node.interfaces.filter((i) => i.kind === 'ether');
  const outId = new Int32Array(opts.node.interfaces.length).fill(-1);
  ethers.forEach((i, k) => (outId[i.index] = opts.format === 'pcapng' ? k : 0));
  const writer = CaptureWriter.open(opts.outPath, {
    format: opts.format,
    nanosecond: opts.nanosecond,
    interfaces:
      opts.format === 'pcapng'
        ? ethers.map((i) => ({ name: i.name, description: `${opts.node.name} ${i.name}`, linktype: LINKTYPE_ETHERNET, snaplen: 0 }))
        : [{ name: opts.node.name, linktype: LINKTYPE_ETHERNET, snaplen: 262144 }],
    inputPaths: [opts.inPath],
    userAppl: 'dpemu',
  });
  const sink = new WriterSink(writer, outId, acct);
  // Per input interface: the node interface its name designates (-1 if none).
  const byName: number[] = [];
  let damage: CaptureError | undefined;
  let frameNo = 0;
  try {
    for (;;) {
      let n: number;
      try {
        n = reader.next(batch);
      } catch (e) {
        if (e instanceof CaptureError) {
          damage = e;
          break;
        }
        throw e;
      }
      if (n === 0) break;
      while (byName.length < reader.interfaces.length) {
        const nm = reader.interfaces[byName.length]!.name;
        byName.push(nm === undefined ? -1 : node.ifIndex(nm));
      }
      for (let i = 0; i < n; i++, frameNo++) {
        const ifc = reader.interfaces[batch.iface[i]!]!;
        const off = batch.offset[i]!;
        const caplen = batch.caplen[i]!;
        acct.in++;
        acct.bytesIn += caplen;
        let inIf = ingress.fromSidecar(frameNo);
        if (inIf < 0) inIf = byName[ifc.id]!;
        if (inIf < 0 && ifc.linktype === LINKTYPE_ETHERNET && caplen >= 6) inIf = node.ifByMac(batch.buf, off);
        if (inIf < 0) {
          acct.error('no ingress interface (no --ingress line, no matching interface name, no interface with the destination MAC)');
          continue;
        }
        sink.tsSec = batch.tsSec[i]!;
        sink.tsNsec = batch.tsNsec[i]!;
        const fate = node.receive(batch.buf, batch.dv, off, caplen, batch.origlen[i]!, ifc.linktype, ifc.fcsLen, inIf, batch.tsSec[i]! + batch.tsNsec[i]! * 1e-9, sink);
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
    }
    const held = node.heldFragments();
    if (held > 0) acct.drop('fragments of an incomplete datagram at the end of the capture', held);
    writer.commit();
  } catch (e) {
    writer.abort();
    throw e;
  } finally {
    reader.close();
  }
  return { acct, elapsedNs: Number(process.hrtime.bigint() - t0), damage, skipped: reader.errors };
}
