/**
 * Synthetic captures for benchmarks and tests: deterministic (seeded) Ethernet/IPv4 frames of a
 * chosen size range, TCP and UDP between many clients and a few servers.
 */
import { buildFrame } from '../packet/build.js';
import { CaptureWriter } from '../pcap/writer.js';
import { LINKTYPE_ETHERNET } from '../pcap/types.js';
import { Prng } from '../util/prng.js';

export interface GenOptions {
  frames: number;
  minLen?: number;
  maxLen?: number;
  seed?: number;
  /** Distinct frame templates cycled through (distinct flows); default 4096. */
  templates?: number;
  format?: 'pcap' | 'pcapng';
  srcMac?: string;
  dstMac?: string;
  /** Client addresses are drawn from this /16 (default 172.30.0.0) and servers from `serverNet`. */
  clientNet?: number;
  serverNet?: number;
  /** Server addresses: serverNet + 1..servers (default 8). */
  servers?: number;
  /** Destination ports drawn from this list (default 80, 443, 3306, 53). */
  ports?: number[];
  /** Share of UDP frames, 0..1 (default 0.25; the rest TCP ACKs with data). */
  udpShare?: number;
}

/** Build the frame templates (allocation is fine: done once). */
export function genTemplates(o: GenOptions): Uint8Array[] {
  const rng = new Prng(o.seed ?? 1);
  const minLen = o.minLen ?? 60;
  const maxLen = o.maxLen ?? 100;
  const n = Math.min(o.templates ?? 4096, Math.max(1, o.frames));
  const clientNet = o.clientNet ?? 0xac1e0000;
  const serverNet = o.serverNet ?? 0x0a000000;
  const servers = o.servers ?? 8;
  const ports = o.ports ?? [80, 443, 3306, 53];
  const udpShare = o.udpShare ?? 0.25;
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const udp = rng.nextFloat() < udpShare;
    const headers = 14 + 20 + (udp ? 8 : 20);
    const len = rng.nextInt(minLen, maxLen);
    const payload = new Uint8Array(Math.max(0, len - headers));
    for (let k = 0; k < payload.length; k++) payload[k] = rng.nextU32() & 0xff;
    const src = (clientNet + 1 + (rng.nextU32() % 65000)) >>> 0;
    const dst = (serverNet + 1 + (rng.nextU32() % servers)) >>> 0;
    const sport = rng.nextInt(1024, 65535);
    const dport = ports[rng.nextU32() % ports.length]!;
    out.push(
      buildFrame({
        srcMac: o.srcMac ?? '02:00:00:00:00:01',
        dstMac: o.dstMac ?? '02:00:00:00:00:02',
        ip: { src, dst, ttl: 64, id: i & 0xffff },
        l4: udp ? { kind: 'udp', sport, dport, payload } : { kind: 'tcp', sport, dport, seq: rng.nextU32(), ack: rng.nextU32(), flags: 'A', payload },
      }),
    );
  }
  return out;
}

/** Write `o.frames` frames cycling through the templates, 1 µs apart. Returns bytes of frame data. */
export function genCapture(path: string, o: GenOptions): number {
  const templates = genTemplates(o);
  const w = CaptureWriter.open(path, {
    format: o.format ?? 'pcap',
    interfaces: [{ name: 'gen0', linktype: LINKTYPE_ETHERNET, snaplen: 262144 }],
    userAppl: 'dpemu gen',
  });
  let bytes = 0;
  try {
    const t0 = 1_700_000_000;
    for (let i = 0; i < o.frames; i++) {
      const f = templates[i % templates.length]!;
      w.writeRecord(f, 0, f.length, f.length, t0 + Math.floor(i / 1e6), (i % 1e6) * 1000, 0);
      bytes += f.length;
    }
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
  return bytes;
}
