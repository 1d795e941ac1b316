/**
 * `dpemu replay` without a node or topology: the identity pipeline. Every frame is parsed
 * (link layer, IPv4, L4 views) and classified for the accounting, then written record by
 * record, unchanged. Later pipelines plug in behind the same loop.
 */
import { CaptureReader } from '../pcap/reader.js';
import { CaptureWriter } from '../pcap/writer.js';
import { CaptureError } from '../pcap/errors.js';
import { RecordBatch, type CaptureFormat, type OutputInterface } from '../pcap/types.js';
import { PacketView, PARSE_MALFORMED, PARSE_NON_IPV4, PARSE_TRUNCATED } from '../packet/index.js';
import { Accounting } from './accounting.js';

export interface ReplayOptions {
  inPath: string;
  outPath: string;
  format: CaptureFormat;
  /** pcap output only: nanosecond timestamps. */
  nanosecond?: boolean;
  onDamage?: 'stop' | 'skip';
  bufferSize?: number;
  batchSize?: number;
}

export interface ReplayResult {
  acct: Accounting;
  elapsedNs: number;
  /** Damage that ended the input early (the output holds every frame before it). */
  damage?: CaptureError;
  /** Damage skipped over (pcapng with onDamage 'skip'). */
  skipped: CaptureError[];
}

export function replayIdentity(opts: ReplayOptions): ReplayResult {
  const t0 = process.hrtime.bigint();
  const reader = CaptureReader.open(opts.inPath, { bufferSize: opts.bufferSize, onDamage: opts.onDamage });
  const acct = new Accounting();
  const batch = new RecordBatch(opts.batchSize ?? 4096);
  const view = new PacketView();
  let writer: CaptureWriter | undefined;
  // Input interface id -> output interface id, and per-interface link facts for the parser.
  let ifaceMap: Uint32Array = new Uint32Array(16);
  let linktypeOf: Uint32Array = new Uint32Array(16);
  let fcsOf: Uint32Array = new Uint32Array(16);
  let mapped = 0;
  let damage: CaptureError | undefined;
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
      if (writer === undefined) writer = openWriterFor(reader, opts);
      // Interfaces appear as the reader meets their IDBs; map new ones before their records.
      if (mapped < reader.interfaces.length) {
        const total = reader.interfaces.length;
        if (total > ifaceMap.length) {
          ifaceMap = grow(ifaceMap, total);
          linktypeOf = grow(linktypeOf, total);
          fcsOf = grow(fcsOf, total);
        }
        for (; mapped < total; mapped++) {
          const ifc = reader.interfaces[mapped]!;
          linktypeOf[mapped] = ifc.linktype;
          fcsOf[mapped] = ifc.fcsLen;
          ifaceMap[mapped] = opts.format === 'pcapng' || mapped === 0 ? outputInterfaceFor(writer, reader, mapped, opts) : checkPcapInterface(reader, mapped, opts);
        }
      }
      const buf = batch.buf;
      const dv = batch.dv;
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        const ifc = batch.iface[i]!;
        const caplen = batch.caplen[i]!;
        bytes += caplen;
        const st = view.parse(buf, dv, batch.offset[i]!, caplen, linktypeOf[ifc]!, fcsOf[ifc]!, batch.origlen[i]!);
        if (st === PARSE_NON_IPV4) acct.nonIpv4++;
        else if (st === PARSE_MALFORMED) acct.malformed++;
        else if (st === PARSE_TRUNCATED) acct.truncated++;
      }
      writer.writeBatch(batch, ifaceMap);
      acct.in += n;
      acct.left += n;
      acct.written += n;
      acct.bytesIn += bytes;
      acct.bytesOut += bytes;
    }
    if (writer === undefined) writer = openWriterFor(reader, opts);
    writer.commit();
  } catch (e) {
    writer?.abort();
    throw e;
  } finally {
    reader.close();
  }
  return { acct, elapsedNs: Number(process.hrtime.bigint() - t0), damage, skipped: reader.errors };
}

function grow(a: Uint32Array, n: number): Uint32Array {
  const b = new Uint32Array(Math.max(n, a.length * 2));
  b.set(a);
  return b;
}

export class ReplayUsageError extends Error {}

function openWriterFor(reader: CaptureReader, opts: ReplayOptions): CaptureWriter {
  const interfaces: OutputInterface[] = [];
  if (opts.format === 'pcap') {
    const first = reader.interfaces[0];
    if (first === undefined) {
      // An empty pcapng (no IDB) written as pcap: Ethernet by convention.
      interfaces.push({ name: 'dpemu', linktype: 1 });
    } else {
      interfaces.push({ name: first.name ?? 'dpemu', linktype: first.linktype, snaplen: first.snaplen || 262144, fcsLen: first.fcsLen });
    }
  }
  return CaptureWriter.open(opts.outPath, {
    format: opts.format,
    nanosecond: opts.nanosecond,
    interfaces,
    inputPaths: [opts.inPath],
    userAppl: 'dpemu',
  });
}

function outputInterfaceFor(writer: CaptureWriter, reader: CaptureReader, id: number, opts: ReplayOptions): number {
  if (opts.format === 'pcap') return 0;
  const ifc = reader.interfaces[id]!;
  return writer.addInterface({
    name: ifc.name ?? `if${id}`,
    description: ifc.description,
    linktype: ifc.linktype,
    snaplen: ifc.snaplen,
    fcsLen: ifc.fcsLen,
  });
}

/** pcap output holds one link type: a second interface must agree with the first. */
function checkPcapInterface(reader: CaptureReader, id: number, opts: ReplayOptions): number {
  const a = reader.interfaces[0]!;
  const b = reader.interfaces[id]!;
  if (a.linktype !== b.linktype || a.fcsLen !== b.fcsLen) {
    throw new ReplayUsageError(
      `${opts.inPath}: interface ${id} has link type ${b.linktype}, interface 0 has ${a.linktype}; ` +
        `pcap output holds one link type, use --format pcapng`,
    );
  }
  return 0;
}
