/**
 * Minimal pcapng writer and reader for the kernel differential tests (SEMANTICS.md §7.2):
 * Ethernet interfaces with if_name, nanosecond timestamps, Enhanced Packet Blocks.
 *
 * Kept independent of src/pcap on purpose (the harness checks dpemu, it should not share its
 * I/O code); it can be swapped for src/pcap's CaptureWriter / reader behind the same two
 * functions.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export interface PcapngRecord {
  /** Interface name (if_name), or `if<N>` when the IDB has none. */
  iface: string;
  data: Uint8Array;
  /** Nanoseconds since 1970. */
  tsNs: bigint;
  comment?: string;
}

const pad4 = (n: number): number => (n + 3) & ~3;

function block(type: number, body: Uint8Array): Uint8Array {
  const len = 12 + pad4(body.length);
  const b = new Uint8Array(len);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, len, true);
  b.set(body, 8);
  v.setUint32(len - 4, len, true);
  return b;
}

function options(opts: [number, Uint8Array][]): Uint8Array {
  if (opts.length === 0) return new Uint8Array(0);
  let n = 4;
  for (const [, v] of opts) n += 4 + pad4(v.length);
  const b = new Uint8Array(n);
  const dv = new DataView(b.buffer);
  let p = 0;
  for (const [code, v] of opts) {
    dv.setUint16(p, code, true);
    dv.setUint16(p + 2, v.length, true);
    b.set(v, p + 4);
    p += 4 + pad4(v.length);
  }
  return b; // ends with opt_endofopt (zeros)
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** pcapng bytes: one Ethernet IDB per name in `ifaces` (in that order), then the records. */
export function encodePcapng(ifaces: string[], records: PcapngRecord[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const shb = new Uint8Array(16);
  const sv = new DataView(shb.buffer);
  sv.setUint32(0, 0x1a2b3c4d, true);
  sv.setUint16(4, 1, true);
  sv.setUint16(6, 0, true);
  sv.setInt32(8, -1, true);
  sv.setInt32(12, -1, true);
  parts.push(block(0x0a0d0d0a, concat([shb, options([[4, enc.encode('dpemu kernel differential test')]])])));
  const index = new Map<string, number>();
  for (const name of ifaces) {
    index.set(name, index.size);
    const h = new Uint8Array(8);
    const hv = new DataView(h.buffer);
    hv.setUint16(0, 1, true); // LINKTYPE_ETHERNET
    hv.setUint32(4, 0, true); // no snaplen limit
    parts.push(block(1, concat([h, options([[2, enc.encode(name)], [9, Uint8Array.of(9)]])])));
  }
  for (const r of records) {
    const id = index.get(r.iface);
    if (id === undefined) throw new Error(`record on unknown interface ${r.iface}`);
    const h = new Uint8Array(20);
    const hv = new DataView(h.buffer);
    hv.setUint32(0, id, true);
    hv.setUint32(4, Number(r.tsNs >> 32n), true);
    hv.setUint32(8, Number(r.tsNs & 0xffffffffn), true);
    hv.setUint32(12, r.data.length, true);
    hv.setUint32(16, r.data.length, true);
    const data = new Uint8Array(pad4(r.data.length));
    data.set(r.data);
    const opts = r.comment !== undefined ? options([[1, enc.encode(r.comment)]]) : new Uint8Array(0);
    parts.push(block(6, concat([h, data, opts])));
  }
  return concat(parts);
}

export function writePcapng(path: string, ifaces: string[], records: PcapngRecord[]): void {
  writeFileSync(path, encodePcapng(ifaces, records));
}

interface Idb {
  name: string;
  linktype: number;
  /** Units per second. */
  units: bigint;
}

/** Read a pcapng file: interface names (all IDBs, in order) and the packets (EPB, SPB). */
export function readPcapng(path: string): { ifaces: string[]; linktypes: number[]; records: PcapngRecord[] } {
  const buf = readFileSync(path);
  const b = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dec = new TextDecoder();
  const ifaces: string[] = [];
  const linktypes: number[] = [];
  const records: PcapngRecord[] = [];
  let section: Idb[] = [];
  let le = true;
  let p = 0;
  while (p + 12 <= b.length) {
    const typeLe = dv.getUint32(p, true);
    if (typeLe === 0x0a0d0d0a) {
      const magic = dv.getUint32(p + 8, true);
      if (magic === 0x1a2b3c4d) le = true;
      else if (magic === 0x4d3c2b1a) le = false;
      else throw new Error(`${path}: bad byte-order magic at ${p}`);
      section = [];
    }
    const type = dv.getUint32(p, le);
    const len = dv.getUint32(p + 4, le);
    if (len < 12 || len % 4 || p + len > b.length) throw new Error(`${path}: bad block length ${len} at offset ${p}`);
    const body = p + 8;
    const bodyEnd = p + len - 4;
    const readOpts = (start: number): Map<number, Uint8Array[]> => {
      const m = new Map<number, Uint8Array[]>();
      let q = start;
      while (q + 4 <= bodyEnd) {
        const code = dv.getUint16(q, le);
        const olen = dv.getUint16(q + 2, le);
        if (code === 0) break;
        const v = b.subarray(q + 4, q + 4 + olen);
        m.set(code, [...(m.get(code) ?? []), v]);
        q += 4 + pad4(olen);
      }
      return m;
    };
    if (type === 1) {
      const linktype = dv.getUint16(body, le);
      const o = readOpts(body + 8);
      const nameB = o.get(2)?.[0];
      const tsres = o.get(9)?.[0]?.[0];
      let units = 1_000_000n;
      if (tsres !== undefined) units = tsres & 0x80 ? 2n ** BigInt(tsres & 0x7f) : 10n ** BigInt(tsres);
      const name = nameB ? dec.decode(nameB) : `if${ifaces.length}`;
      section.push({ name, linktype, units });
      ifaces.push(name);
      linktypes.push(linktype);
    } else if (type === 6) {
      const id = dv.getUint32(body, le);
      const idb = section[id];
      if (!idb) throw new Error(`${path}: EPB on undefined interface ${id}`);
      const ts = (BigInt(dv.getUint32(body + 4, le)) << 32n) | BigInt(dv.getUint32(body + 8, le));
      const cap = dv.getUint32(body + 12, le);
      const data = b.slice(body + 20, body + 20 + cap);
      const o = readOpts(body + 20 + pad4(cap));
      const c = o.get(1)?.[0];
      records.push({ iface: idb.name, data, tsNs: (ts * 1_000_000_000n) / idb.units, comment: c ? dec.decode(c) : undefined });
    } else if (type === 3) {
      const idb = section[0];
      if (!idb) throw new Error(`${path}: SPB without an interface`);
      const orig = dv.getUint32(body, le);
      records.push({ iface: idb.name, data: b.slice(body + 4, body + 4 + Math.min(orig, len - 16)), tsNs: 0n });
    }
    p += len;
  }
  return { ifaces, linktypes, records };
}
