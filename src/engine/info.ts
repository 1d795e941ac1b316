/**
 * `dpemu info`: what capinfos tells about a capture, plus dpemu's own protocol census
 * (the same parser the replay path uses, so "malformed" here means what replay will count).
 */
import { CaptureReader } from '../pcap/reader.js';
import { CaptureError } from '../pcap/errors.js';
import { linktypeName } from '../pcap/linktype.js';
import { RecordBatch } from '../pcap/types.js';
import { PacketView, PARSE_MALFORMED, PARSE_NON_IPV4, PARSE_OK, PARSE_TRUNCATED } from '../packet/index.js';

export interface CaptureInfo {
  file: string;
  format: string;
  byteOrder: string;
  timestampResolution: string;
  fileSize: number;
  sections: number;
  interfaces: { id: number; section: number; name?: string; description?: string; linktype: string; snaplen: number; fcsLen: number; tsresol: string; packets: number }[];
  packets: number;
  dataBytes: number;
  firstTime?: number;
  lastTime?: number;
  durationSec: number;
  averagePacketSize: number;
  snaplenTruncated: number;
  comments: number;
  protocols: Record<string, number>;
  damage?: string;
  skipped: string[];
}

export function captureInfo(path: string, onDamage: 'stop' | 'skip' = 'stop'): CaptureInfo {
  // '-': standard input, read to its end (a pipe from tcpdump -w - ... as well as a file).
  const reader = path === '-' ? CaptureReader.fromFd(0, '<stdin>', { onDamage }) : CaptureReader.open(path, { onDamage });
  const batch = new RecordBatch(4096);
  const view = new PacketView();
  const perIface: number[] = [];
  const proto = {
    ipv4: 0, tcp: 0, udp: 0, icmp: 0, 'ipv4-other': 0, 'ipv4-fragment': 0, 'ipv4-options': 0,
    'vlan-tagged': 0, 'non-ipv4': 0, malformed: 0, 'snaplen-truncated-ipv4': 0,
  };
  let packets = 0;
  let dataBytes = 0;
  let first = Infinity;
  let last = -Infinity;
  let truncated = 0;
  let comments = 0;
  let damage: string | undefined;
  try {
    for (;;) {
      let n: number;
      try {
        n = reader.next(batch);
      } catch (e) {
        if (e instanceof CaptureError) {
          damage = e.message;
          break;
        }
        throw e;
      }
      if (n === 0) break;
      for (let i = 0; i < n; i++) {
        const ifc = reader.interfaces[batch.iface[i]!]!;
        perIface[ifc.id] = (perIface[ifc.id] ?? 0) + 1;
        const caplen = batch.caplen[i]!;
        packets++;
        dataBytes += caplen;
        if (caplen < batch.origlen[i]!) truncated++;
        const t = batch.tsSec[i]! + batch.tsNsec[i]! / 1e9;
        if (t < first) first = t;
        if (t > last) last = t;
        if (batch.comments[i]) comments += batch.comments[i]!.length;
        const st = view.parse(batch.buf, batch.dv, batch.offset[i]!, caplen, ifc.linktype, ifc.fcsLen, batch.origlen[i]!);
        if (st === PARSE_NON_IPV4) {
          proto['non-ipv4']++;
          continue;
        }
        if (st === PARSE_MALFORMED) {
          proto.malformed++;
          continue;
        }
        if (view.vlanCount > 0) proto['vlan-tagged']++;
        proto.ipv4++;
        if (st === PARSE_TRUNCATED) proto['snaplen-truncated-ipv4']++;
        if (view.ipOptionsLen > 0) proto['ipv4-options']++;
        if (view.mf || view.fragOffset > 0) proto['ipv4-fragment']++;
        if (st !== PARSE_OK && view.l4Off < 0) continue;
        if (view.ipProto === 6) proto.tcp++;
        else if (view.ipProto === 17) proto.udp++;
        else if (view.ipProto === 1) proto.icmp++;
        else proto['ipv4-other']++;
      }
    }
  } finally {
    reader.close();
  }
  const protocols: Record<string, number> = {};
  for (const [k, v] of Object.entries(proto)) if (v > 0) protocols[k] = v;
  const pcapRes = reader.nanosecond ? 'nanoseconds' : 'microseconds';
  return {
    file: path,
    format: reader.format === 'pcap' ? `pcap (libpcap), version ${reader.sections[0]?.major ?? 2}.${reader.sections[0]?.minor ?? 4}` : `pcapng, ${reader.sections.length} section(s)`,
    byteOrder: reader.littleEndian ? 'little-endian' : 'big-endian',
    timestampResolution: reader.format === 'pcap' ? pcapRes : 'per interface',
    // A pipe has no size: the bytes it gave.
    fileSize: reader.fileSize >= 0 ? reader.fileSize : reader.bytesConsumed,
    sections: reader.sections.length,
    interfaces: reader.interfaces.map((i) => ({
      id: i.id,
      section: i.section,
      name: i.name,
      description: i.description,
      linktype: `${i.linktype} (${linktypeName(i.linktype)})`,
      snaplen: i.snaplen,
      fcsLen: i.fcsLen,
      tsresol: tsresolText(i.tsUnitsPerSec),
      packets: perIface[i.id] ?? 0,
    })),
    packets,
    dataBytes,
    firstTime: packets ? first : undefined,
    lastTime: packets ? last : undefined,
    durationSec: packets ? last - first : 0,
    averagePacketSize: packets ? dataBytes / packets : 0,
    snaplenTruncated: truncated,
    comments,
    protocols,
    damage,
    skipped: reader.errors.map((e) => e.message),
  };
}

function tsresolText(units: number): string {
  if (units === 1e6) return 'microseconds';
  if (units === 1e9) return 'nanoseconds';
  if (units === 1e3) return 'milliseconds';
  if (units === 1) return 'seconds';
  const log2 = Math.log2(units);
  if (Number.isInteger(log2)) return `2^-${log2} s`;
  return `1/${units} s`;
}
