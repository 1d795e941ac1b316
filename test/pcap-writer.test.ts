/**
 * The capture writer: byte-exact pcap and pcapng, what tshark/capinfos/editcap make of the
 * files, 64-bit timestamps, buffer flushing and growth, atomic output and error handling.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureError } from '../src/pcap/errors.js';
import { CaptureReader } from '../src/pcap/reader.js';
import { CaptureWriter, WriterError, abortAllWriters, espSaSecrets, type WriterOptions } from '../src/pcap/writer.js';
import { EPB_DIR_INBOUND, EPB_DIR_OUTBOUND, LINKTYPE_ETHERNET, LINKTYPE_RAW, RecordBatch, SECRETS_TYPE_ESP_SA } from '../src/pcap/types.js';
import { runTool, tsharkFields, tsharkOk } from './support/tshark.js';

// ---------------------------------------------------------------------------------------------
// Helpers

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpemu-writer-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let seq = 0;
const file = (name: string): string => path.join(tmp, `${++seq}-${name}`);

/** Bytes from a hex string; spaces and newlines ignored. */
function hex(s: string): Uint8Array {
  const h = s.replace(/\s+/g, '');
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}
const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const ascii = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
const le32 = (n: number): string => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b.toString('hex');
};
const le16 = (n: number): string => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b.toString('hex');
};

function csum16(b: Uint8Array, start: number, end: number, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/**
 * A valid Ethernet / IPv4 / UDP frame with correct checksums: 42 header bytes + payload.
 * Ports 40000+ so tshark does not dissect the payload as some protocol.
 */
function udpFrame(n: number, payloadLen = 30): Uint8Array {
  const len = 42 + payloadLen;
  const f = new Uint8Array(len);
  const dv = new DataView(f.buffer);
  f.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01], 0);
  dv.setUint16(12, 0x0800);
  // IPv4
  f[14] = 0x45;
  dv.setUint16(16, 20 + 8 + payloadLen);
  dv.setUint16(18, n & 0xffff);
  f[22] = 64;
  f[23] = 17;
  f.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  dv.setUint16(24, ~csum16(f, 14, 34) & 0xffff);
  // UDP
  dv.setUint16(34, 40000 + (n % 1000));
  dv.setUint16(36, 41000);
  dv.setUint16(38, 8 + payloadLen);
  for (let i = 0; i < payloadLen; i++) f[42 + i] = (n + i) & 0xff;
  const pseudo = csum16(f, 26, 34) + 17 + 8 + payloadLen;
  let c = ~csum16(f, 34, len, pseudo) & 0xffff;
  if (c === 0) c = 0xffff;
  dv.setUint16(40, c);
  return f;
}

/** Same frame as IPv4 without the Ethernet header (LINKTYPE_RAW). */
const rawFrame = (n: number, payloadLen = 30): Uint8Array => udpFrame(n, payloadLen).subarray(14);

function writeFile(p: string, opts: WriterOptions, body: (w: CaptureWriter) => void): Uint8Array {
  const w = CaptureWriter.open(p, opts);
  try {
    body(w);
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
  return new Uint8Array(fs.readFileSync(p));
}

interface ParsedBlock {
  type: number;
  off: number;
  body: Uint8Array;
}

/** Walk pcapng blocks (little endian), checking the framing rules as we go. */
function pcapngBlocks(b: Uint8Array): ParsedBlock[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const blocks: ParsedBlock[] = [];
  let off = 0;
  while (off < b.length) {
    const type = dv.getUint32(off, true);
    const len = dv.getUint32(off + 4, true);
    expect(len % 4, `block at ${off} length ${len}`).toBe(0);
    expect(len).toBeGreaterThanOrEqual(12);
    expect(dv.getUint32(off + len - 4, true), `trailing length of block at ${off}`).toBe(len);
    blocks.push({ type, off, body: b.subarray(off + 8, off + len - 4) });
    off += len;
  }
  expect(off).toBe(b.length);
  return blocks;
}

/** Options of a block body starting at `start`: [code, value][] (endofopt included as [0, empty]). */
function parseOptions(body: Uint8Array, start: number): [number, Uint8Array][] {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const opts: [number, Uint8Array][] = [];
  let p = start;
  while (p < body.length) {
    const code = dv.getUint16(p, true);
    const len = dv.getUint16(p + 2, true);
    opts.push([code, body.subarray(p + 4, p + 4 + len)]);
    for (let k = p + 4 + len; k < p + 4 + ((len + 3) & ~3); k++) expect(body[k], 'option padding').toBe(0);
    p += 4 + ((len + 3) & ~3);
    if (code === 0) break;
  }
  expect(p).toBe(body.length);
  return opts;
}

interface Epb {
  iface: number;
  ts: bigint;
  caplen: number;
  origlen: number;
  data: Uint8Array;
  comments: string[];
  flags?: number;
}

function parseEpbs(b: Uint8Array): Epb[] {
  const out: Epb[] = [];
  for (const blk of pcapngBlocks(b)) {
    if (blk.type !== 6) continue;
    const dv = new DataView(blk.body.buffer, blk.body.byteOffset, blk.body.byteLength);
    const caplen = dv.getUint32(12, true);
    const padded = (caplen + 3) & ~3;
    for (let k = 20 + caplen; k < 20 + padded; k++) expect(blk.body[k], 'EPB data padding').toBe(0);
    const e: Epb = {
      iface: dv.getUint32(0, true),
      ts: (BigInt(dv.getUint32(4, true)) << 32n) | BigInt(dv.getUint32(8, true)),
      caplen,
      origlen: dv.getUint32(16, true),
      data: blk.body.slice(20, 20 + caplen),
      comments: [],
    };
    for (const [code, v] of parseOptions(blk.body, 20 + padded)) {
      if (code === 1) e.comments.push(new TextDecoder('utf-8', { fatal: true }).decode(v));
      if (code === 2) e.flags = new DataView(v.buffer, v.byteOffset, 4).getUint32(0, true);
    }
    out.push(e);
  }
  return out;
}

interface PcapRec {
  sec: number;
  frac: number;
  caplen: number;
  origlen: number;
  data: Uint8Array;
}

function parsePcap(b: Uint8Array): { magic: number; snaplen: number; link: number; recs: PcapRec[] } {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const recs: PcapRec[] = [];
  let p = 24;
  while (p < b.length) {
    const caplen = dv.getUint32(p + 8, true);
    recs.push({ sec: dv.getUint32(p, true), frac: dv.getUint32(p + 4, true), caplen, origlen: dv.getUint32(p + 12, true), data: b.slice(p + 16, p + 16 + caplen) });
    p += 16 + caplen;
  }
  expect(p).toBe(b.length);
  return { magic: dv.getUint32(0, true), snaplen: dv.getUint32(16, true), link: dv.getUint32(20, true), recs };
}

const ETH0 = { name: 'eth0', linktype: LINKTYPE_ETHERNET };
const SEP = '\x1f';

// ---------------------------------------------------------------------------------------------
// pcap

describe('pcap output', () => {
  it('writes the µs header and records byte for byte, µs = floor(ns / 1000)', () => {
    const f = hex('0102030405');
    const b = writeFile(file('us.pcap'), { format: 'pcap', interfaces: [ETH0] }, (w) => {
      w.writeRecord(f, 0, 5, 5, 1700000000, 123456789, 0);
      w.writeRecord(f, 1, 3, 60, 1, 999, 0); // from an offset, origlen > caplen, 999 ns -> 0 µs
    });
    expect(toHex(b)).toBe(
      'd4c3b2a1' + '0200' + '0400' + '00000000' + '00000000' + le32(262144) + le32(1) +
        le32(1700000000) + le32(123456) + le32(5) + le32(5) + '0102030405' +
        le32(1) + le32(0) + le32(3) + le32(60) + '020304',
    );
  });

  it('writes the ns magic and nanoseconds, and the given snaplen', () => {
    const f = hex('aabbccdd');
    const b = writeFile(file('ns.pcap'), { format: 'pcap', nanosecond: true, interfaces: [{ name: 'x', linktype: LINKTYPE_RAW, snaplen: 65535 }] }, (w) => {
      w.writeRecord(f, 0, 4, 4, 4294967295, 999999999, 0);
    });
    expect(toHex(b)).toBe(
      '4d3cb2a1' + '02000400' + '00000000' + '00000000' + le32(65535) + le32(101) +
        le32(4294967295) + le32(999999999) + le32(4) + le32(4) + 'aabbccdd',
    );
  });

  it('puts the FCS length into the link-type field', () => {
    const b = writeFile(file('fcs.pcap'), { format: 'pcap', interfaces: [{ name: 'x', linktype: 1, fcsLen: 4 }] }, () => {});
    expect(new DataView(b.buffer, b.byteOffset).getUint32(20, true)).toBe((0x2 << 28) | (1 << 26) | 1);
  });

  it('keeps a caplen above the snaplen (counted; tshark reads it) and raises origlen to caplen', () => {
    const f = udpFrame(1, 100);
    for (const format of ['pcap', 'pcapng'] as const) {
      const p = file(`snap.${format}`);
      let over = -1;
      const b = writeFile(p, { format, interfaces: [{ name: 'x', linktype: 1, snaplen: 64 }] }, (w) => {
        w.writeRecord(f, 0, f.length, f.length, 1, 0, 0);
        w.writeRecord(f, 0, 20, 10, 1, 0, 0);
        over = w.recordsOverSnaplen;
      });
      expect(over).toBe(1);
      const recs = format === 'pcap' ? parsePcap(b).recs : parseEpbs(b);
      expect(recs.map((r) => [r.caplen, r.origlen])).toEqual([[142, 142], [20, 20]]);
      expect(toHex(recs[0]!.data)).toBe(toHex(f));
      const rows = tsharkFields(p, ['frame.cap_len', 'frame.len', 'udp.length', 'frame.len_lt_caplen']);
      expect(rows).toEqual([['142', '142', '108', ''], ['20', '20', '', '']]);
    }
  });

  it('has one link type: addInterface of the same returns 0, another throws; comments are counted as dropped', () => {
    const p = file('one.pcap');
    const w = CaptureWriter.open(p, { format: 'pcap', interfaces: [ETH0] });
    try {
      expect(w.addInterface({ name: 'eth1', linktype: 1 })).toBe(0);
      expect(() => w.addInterface({ name: 'raw', linktype: LINKTYPE_RAW })).toThrow(WriterError);
      const f = udpFrame(1);
      w.writeRecord(f, 0, f.length, f.length, 1, 0, 0, ['a', 'b'], EPB_DIR_INBOUND);
      w.writeRecord(f, 0, f.length, f.length, 1, 0, 0, 'c');
      expect(w.commentsDropped).toBe(3);
      expect(() => w.writeRecord(f, 0, f.length, f.length, 1, 0, 1)).toThrow(/interface 1 is not defined/);
      expect(() => w.writeRecord(f, 0, f.length + 1, f.length, 1, 0, 0)).toThrow(/outside/);
      expect(() => w.writeRecord(f, 0, f.length, f.length, 2 ** 32, 0, 0)).toThrow(/32-bit/);
      w.commit();
    } finally {
      w.abort();
    }
    expect(parsePcap(new Uint8Array(fs.readFileSync(p))).recs).toHaveLength(2);
  });

  it('refuses options pcap cannot hold', () => {
    expect(() => CaptureWriter.open(file('x.pcap'), { format: 'pcap', interfaces: [] })).toThrow(WriterError);
    expect(() => CaptureWriter.open(file('x.pcap'), { format: 'pcap', interfaces: [ETH0, ETH0] })).toThrow(/exactly one/);
    expect(() =>
      CaptureWriter.open(file('x.pcap'), { format: 'pcap', interfaces: [ETH0], secrets: [{ type: 1, data: new Uint8Array(1) }] }),
    ).toThrow(/pcapng/);
    expect(fs.readdirSync(tmp).filter((n) => n.endsWith('x.pcap') || n.includes('.tmp'))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// pcapng

describe('pcapng output', () => {
  it('writes SHB, IDBs, DSB and EPBs byte for byte', () => {
    const dsbData = new TextEncoder().encode('abcdefg'); // 7 bytes: padded to 8
    const b = writeFile(
      file('exact.pcapng'),
      {
        format: 'pcapng',
        interfaces: [ETH0, { name: 'tunl0', description: 'IP-in-IP', linktype: LINKTYPE_RAW, snaplen: 65535 }],
        secrets: [{ type: SECRETS_TYPE_ESP_SA, data: dsbData }],
        sectionComment: 'test',
        userAppl: 'dpemu 0.1.0',
      },
      (w) => {
        const f = hex('0102030405');
        w.writeRecord(f, 0, 5, 5, 1, 2, 0); // no options: no endofopt
        w.writeRecord(f, 1, 4, 9, 0, 0, 1, undefined, EPB_DIR_OUTBOUND); // flags only
        w.writeRecord(f, 0, 1, 1, 0, 0, 0, ['ab', 'héllo'], EPB_DIR_INBOUND); // two comments + flags
        w.writeRecord(f, 0, 0, 0, 0, 0, 1, 'c'); // empty frame, one comment
      },
    );
    const shb =
      '0a0d0d0a' + le32(56) + '4d3c2b1a' + '0100' + '0000' + 'ffffffffffffffff' +
      le16(1) + le16(4) + ascii('test') +
      le16(4) + le16(11) + ascii('dpemu 0.1.0') + '00' +
      '00000000' + le32(56);
    const idb0 =
      le32(1) + le32(40) + le16(1) + '0000' + le32(0) +
      le16(2) + le16(4) + ascii('eth0') +
      le16(9) + le16(1) + '09000000' +
      '00000000' + le32(40);
    const idb1 =
      le32(1) + le32(56) + le16(101) + '0000' + le32(65535) +
      le16(2) + le16(5) + ascii('tunl0') + '000000' +
      le16(3) + le16(8) + ascii('IP-in-IP') +
      le16(9) + le16(1) + '09000000' +
      '00000000' + le32(56);
    const dsb = le32(10) + le32(28) + le32(0x45535053) + le32(7) + ascii('abcdefg') + '00' + le32(28);
    const epb1 = le32(6) + le32(40) + le32(0) + le32(0) + le32(1_000_000_002) + le32(5) + le32(5) + '0102030405000000' + le32(40);
    const epb2 = le32(6) + le32(48) + le32(1) + le32(0) + le32(0) + le32(4) + le32(9) + '02030405' + le16(2) + le16(4) + le32(2) + '00000000' + le32(48);
    const hello = Buffer.from('héllo', 'utf8'); // 6 bytes
    expect(hello.length).toBe(6);
    const epb3 =
      le32(6) + le32(68) + le32(0) + le32(0) + le32(0) + le32(1) + le32(1) + '01000000' +
      le16(1) + le16(2) + ascii('ab') + '0000' +
      le16(1) + le16(6) + hello.toString('hex') + '0000' +
      le16(2) + le16(4) + le32(1) +
      '00000000' + le32(68);
    const epb4 = le32(6) + le32(44) + le32(1) + le32(0) + le32(0) + le32(0) + le32(0) + le16(1) + le16(1) + ascii('c') + '000000' + '00000000' + le32(44);
    expect(toHex(b)).toBe(shb + idb0 + idb1 + dsb + epb1 + epb2 + epb3 + epb4);
  });

  it('writes an SHB without options and if_fcslen when asked', () => {
    const b = writeFile(file('bare.pcapng'), { format: 'pcapng', interfaces: [{ name: 'e', linktype: 1, fcsLen: 4 }] }, () => {});
    const blocks = pcapngBlocks(b);
    expect(blocks.map((x) => x.type)).toEqual([0x0a0d0d0a, 1]);
    expect(blocks[0]!.body.length).toBe(16);
    expect(parseOptions(blocks[1]!.body, 8).map(([c, v]) => [c, toHex(v)])).toEqual([
      [2, ascii('e')],
      [9, '09'],
      [13, '04'],
      [0, ''],
    ]);
  });

  it('computes the 64-bit ns timestamp exactly (no BigInt on the fast path)', () => {
    const cases: [number, number][] = [
      [0, 0],
      [0, 999_999_999],
      [1, 0],
      [4, 294_967_295], // crosses 2^32 ns
      [4, 294_967_296],
      [1_700_000_000, 123_456_789],
      [1_999_999_999, 999_999_999],
      [4_294_967_295, 999_999_999], // last second of the fast path
      [4_294_967_296, 0], // slow path
      [17_000_000_000, 5],
      [5, 1_500_000_000], // ns >= 1e9 is carried
    ];
    // and random ones
    let s = 12345;
    const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let i = 0; i < 2000; i++) cases.push([Math.floor(rnd() * 4294967296), Math.floor(rnd() * 1e9)]);
    const f = hex('00');
    const b = writeFile(file('ts.pcapng'), { format: 'pcapng', interfaces: [ETH0] }, (w) => {
      for (const [sec, ns] of cases) w.writeRecord(f, 0, 1, 1, sec, ns, 0);
    });
    const got = parseEpbs(b).map((e) => e.ts);
    expect(got).toEqual(cases.map(([sec, ns]) => BigInt(sec) * 1_000_000_000n + BigInt(ns)));
  });

  it('rejects timestamps pcapng cannot hold, and undefined interfaces', () => {
    const w = CaptureWriter.open(file('bad.pcapng'), { format: 'pcapng', interfaces: [ETH0] });
    const f = hex('00');
    try {
      expect(() => w.writeRecord(f, 0, 1, 1, -1, 0, 0)).toThrow(WriterError);
      expect(() => w.writeRecord(f, 0, 1, 1, 2e10, 0, 0)).toThrow(/2554/);
      expect(() => w.writeRecord(f, 0, 1, 1, NaN, 0, 0)).toThrow(WriterError);
      expect(() => w.writeRecord(f, 0, 1, 1, 0, 0, 1)).toThrow(/interface 1 is not defined \(1 interface\)/);
      expect(() => w.writeRecord(f, 0, 1, 1, 0, 0, -1)).toThrow(WriterError);
    } finally {
      w.abort();
    }
  });

  it('truncates a comment to 65535 bytes on a character boundary', () => {
    const long = 'é'.repeat(40000); // 80000 UTF-8 bytes
    const longAscii = 'x'.repeat(70000);
    const f = hex('00');
    const b = writeFile(file('long.pcapng'), { format: 'pcapng', interfaces: [ETH0] }, (w) => {
      w.writeRecord(f, 0, 1, 1, 0, 0, 0, [long, longAscii]);
    });
    const [e] = parseEpbs(b);
    expect(e!.comments[0]).toBe('é'.repeat(32767));
    expect(e!.comments[1]).toBe('x'.repeat(65535));
  });

  it('writes an IDB after packets (addInterface) that tshark attributes correctly', () => {
    const p = file('late-idb.pcapng');
    const f = udpFrame(1);
    writeFile(p, { format: 'pcapng', interfaces: [ETH0] }, (w) => {
      w.writeRecord(f, 0, f.length, f.length, 10, 0, 0);
      expect(w.addInterface({ name: 'cali1234', linktype: LINKTYPE_RAW })).toBe(1);
      const r = rawFrame(2);
      w.writeRecord(r, 0, r.length, r.length, 11, 0, 1);
      w.writeRecord(f, 0, f.length, f.length, 12, 0, 0);
    });
    const rows = tsharkFields(p, ['frame.number', 'frame.interface_name', 'ip.id']);
    expect(rows).toEqual([
      ['1', 'eth0', '0x0001'],
      ['2', 'cali1234', '0x0002'],
      ['3', 'eth0', '0x0001'],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Buffering

describe('writeRecordBlock (comments already encoded as a comment block)', () => {
  it('writes the bytes writeRecord writes, in pcapng and pcap, whatever the comments', () => {
    const texts = ['', 'a', 'FORWARD eth0->eth1: ACCEPT', 'é ü ß — “quotes”', '日本語', '\u{1F600}', '\ud800 lone', 'x'.repeat(70000), 'é'.repeat(40000), 'ab'.repeat(3), 'é', 'ab'];
    const frame = new Uint8Array(200).map((_, i) => (i * 13) & 0xff);
    // The block: per comment a u16 LE length and the UTF-8 bytes, cut to 65535 on a character boundary.
    const block = (comments: string[]): Buffer =>
      Buffer.concat(
        comments.map((c) => {
          const b = Buffer.alloc(2 + 65535);
          const n = b.write(c, 2, 65535, 'utf8'); // whole characters only
          b.writeUInt16LE(n, 0);
          return b.subarray(0, 2 + n);
        }),
      );
    for (const format of ['pcapng', 'pcap'] as const) {
      const files = ['a', 'b'].map((k) => path.join(tmp, `blk-${k}.${format}`));
      const writers = files.map((f) => CaptureWriter.open(f, { format, interfaces: [{ name: 'eth0', linktype: LINKTYPE_ETHERNET }] }));
      for (let i = 0; i < 400; i++) {
        const n = i % 5;
        const comments = Array.from({ length: n }, (_, k) => texts[(i * 7 + k * 3) % texts.length]!);
        const len = 14 + ((i * 37) % 180);
        const flags = i % 3 === 0 ? 0 : 2;
        writers[0]!.writeRecord(frame, i % 5, len, len + (i % 2), 1_700_000_000 + i, i * 1000, 0, n === 0 ? undefined : comments, flags);
        // The block somewhere inside a larger buffer.
        const b = Buffer.concat([Buffer.alloc(3 + (i % 4), 0xee), block(comments), Buffer.alloc(5, 0xee)]);
        writers[1]!.writeRecordBlock(frame, i % 5, len, len + (i % 2), 1_700_000_000 + i, i * 1000, 0, b, new DataView(b.buffer, b.byteOffset, b.length), 3 + (i % 4), b.length - 8 - (i % 4), flags);
      }
      expect(writers[1]!.commentsDropped).toBe(writers[0]!.commentsDropped);
      for (const w of writers) w.commit();
      expect(Buffer.compare(fs.readFileSync(files[0]!), fs.readFileSync(files[1]!)), format).toBe(0);
    }
  });
});

describe('buffering', () => {
  it('flushes a small buffer many times and grows it for a record larger than the buffer', () => {
    const frames = [udpFrame(1, 10), udpFrame(2, 100), udpFrame(3, 1400), udpFrame(4, 9000), udpFrame(5, 70)];
    const p1 = file('small-buf.pcapng');
    const p2 = file('small-buf.pcap');
    const body = (w: CaptureWriter) => {
      for (let i = 0; i < 300; i++) {
        const f = frames[i % frames.length]!;
        w.writeRecord(f, 0, f.length, f.length, 1000 + i, i * 1000, 0, i % 7 === 0 ? [`comment ${i}`] : undefined, i % 3);
      }
    };
    const ng = writeFile(p1, { format: 'pcapng', interfaces: [ETH0], bufferSize: 4096 }, body);
    const pc = writeFile(p2, { format: 'pcap', interfaces: [ETH0], bufferSize: 4096 }, body);
    const epbs = parseEpbs(ng);
    const recs = parsePcap(pc).recs;
    expect(epbs).toHaveLength(300);
    expect(recs).toHaveLength(300);
    for (let i = 0; i < 300; i++) {
      const f = frames[i % frames.length]!;
      expect(toHex(epbs[i]!.data)).toBe(toHex(f));
      expect(toHex(recs[i]!.data)).toBe(toHex(f));
      expect(epbs[i]!.comments).toEqual(i % 7 === 0 ? [`comment ${i}`] : []);
      expect(epbs[i]!.flags).toBe(i % 3 === 0 ? undefined : i % 3);
    }
    expect(tsharkFields(p1, ['frame.number'])).toHaveLength(300);
    expect(tsharkFields(p2, ['frame.number'])).toHaveLength(300);
  });

  it('copies frames of every length 0..300 from any source offset exactly', () => {
    const src = new Uint8Array(4096);
    for (let i = 0; i < src.length; i++) src[i] = (i * 7 + 3) & 0xff;
    const cases: [number, number][] = [];
    for (let len = 0; len <= 300; len++) cases.push([(len * 13) % 97, len]);
    cases.push([4096 - 5, 5], [4096 - 300, 300], [4096, 0]);
    const b1 = writeFile(file('copy.pcapng'), { format: 'pcapng', interfaces: [ETH0] }, (w) => {
      for (const [off, len] of cases) w.writeRecord(src, off, len, len, 0, 0, 0);
    });
    const b2 = writeFile(file('copy.pcap'), { format: 'pcap', interfaces: [ETH0] }, (w) => {
      for (const [off, len] of cases) w.writeRecord(Buffer.from(src.buffer), off, len, len, 0, 0, 0);
    });
    const e = parseEpbs(b1);
    const r = parsePcap(b2).recs;
    cases.forEach(([off, len], i) => {
      expect(toHex(e[i]!.data)).toBe(toHex(src.subarray(off, off + len)));
      expect(toHex(r[i]!.data)).toBe(toHex(src.subarray(off, off + len)));
    });
  });

  it('copies in whole chunks without leaking source bytes into padding or past a record (flags, comments, small buffers)', () => {
    // Every source byte is non-zero, so bytes read past a frame would show in the EPB padding
    // (parseEpbs checks it is zero) or in the next record.
    const src = new Uint8Array(1024);
    for (let i = 0; i < src.length; i++) src[i] = ((i * 11 + 5) & 0xff) | 1;
    const cases: [number, number][] = [];
    for (let len = 0; len <= 130; len++) cases.push([(len * 17) % 61, len]);
    for (let len = 0; len <= 20; len++) cases.push([1024 - len, len]); // ends at the buffer's end: exact copy
    const comment = (i: number): string[] | undefined => (i % 3 === 0 ? [`c${'x'.repeat(i % 9)}`] : i % 3 === 1 ? undefined : ['é'.repeat(i % 5), `ab${'ü'.repeat(i % 3)}cdefg`]);
    for (const bufferSize of [4096, 65536]) {
      const ng = writeFile(file('chunks.pcapng'), { format: 'pcapng', interfaces: [ETH0], bufferSize }, (w) => {
        for (let r = 0; r < 40; r++) cases.forEach(([off, len], i) => w.writeRecord(src, off, len, len, r, i, 0, comment(i), i & 3));
      });
      const pc = writeFile(file('chunks.pcap'), { format: 'pcap', interfaces: [ETH0], bufferSize }, (w) => {
        for (let r = 0; r < 40; r++) cases.forEach(([off, len], i) => w.writeRecord(src, off, len, len, r, i * 1000, 0));
      });
      const e = parseEpbs(ng);
      const p = parsePcap(pc).recs;
      expect(e).toHaveLength(40 * cases.length);
      expect(p).toHaveLength(40 * cases.length);
      for (let r = 0; r < 40; r++) {
        cases.forEach(([off, len], i) => {
          const k = r * cases.length + i;
          const want = toHex(src.subarray(off, off + len));
          expect(toHex(e[k]!.data)).toBe(want);
          expect(e[k]!.comments).toEqual(comment(i) ?? []);
          expect(e[k]!.flags).toBe((i & 3) === 0 ? undefined : i & 3);
          expect(toHex(p[k]!.data)).toBe(want);
          expect([p[k]!.sec, p[k]!.frac, p[k]!.caplen]).toEqual([r, i, len]);
        });
      }
    }
  });

  it('flushAsync: the same file as synchronous flushes, mixed with them, writeEncoded and growth', async () => {
    const frames = [udpFrame(1, 10), udpFrame(2, 100), udpFrame(3, 1400), udpFrame(4, 9000), udpFrame(5, 70)];
    for (const format of ['pcap', 'pcapng'] as const) {
      const opts: WriterOptions = { format, interfaces: [ETH0], bufferSize: 4096 };
      const pr = file(`ref.${format}`);
      const ref = CaptureWriter.open(pr, opts);
      const pa = file(`async.${format}`);
      const w = CaptureWriter.open(pa, opts);
      for (let i = 0; i < 2000; i++) {
        const f = frames[i % frames.length]!;
        for (const x of [ref, w]) x.writeRecord(f, 0, f.length, f.length, 1000 + i, i, 0, i % 7 === 0 ? [`c ${i}`] : undefined, i % 3);
        if (i % 5 === 0) await w.flushAsync(i % 2 === 0 ? 0 : undefined);
        if (i % 11 === 0) w.flush(); // may run while an async write is in flight
        if (i % 13 === 0) expect(w.bytesWritten).toBe(ref.bytesWritten);
      }
      expect(() => w.commit()).toThrow(/settle/); // not with a write in flight
      await w.settle();
      ref.commit();
      w.commit();
      expect(fs.readFileSync(pa).equals(fs.readFileSync(pr))).toBe(true);
    }
  });

  it('flushAsync: abort with a write in flight leaves no file; toFd and devices stay synchronous', async () => {
    const f = udpFrame(1, 1000);
    const p = file('abort-async.pcap');
    const w = CaptureWriter.open(p, { format: 'pcap', interfaces: [ETH0], bufferSize: 4096 });
    for (let i = 0; i < 100; i++) w.writeRecord(f, 0, f.length, f.length, i, 0, 0);
    await w.flushAsync(0);
    w.abort();
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(p)).toBe(false);
    expect(fs.readdirSync(path.dirname(p)).filter((n) => n.includes('abort-async'))).toEqual([]);
    const d = CaptureWriter.open('/dev/null', { format: 'pcap', interfaces: [ETH0], bufferSize: 4096 });
    for (let i = 0; i < 10; i++) d.writeRecord(f, 0, f.length, f.length, i, 0, 0);
    await d.flushAsync(0); // nothing in flight: commit needs no settle
    d.commit();
  });

  it('writeBatch writes every record with comments, flags, and interfaces remapped', () => {
    const frames = [udpFrame(1), udpFrame(2, 200), udpFrame(3, 5)];
    const buf = new Uint8Array(1024);
    const batch = new RecordBatch(8, buf);
    let off = 3; // unaligned on purpose
    frames.forEach((f, i) => {
      buf.set(f, off);
      batch.offset[i] = off;
      batch.caplen[i] = f.length;
      batch.origlen[i] = f.length + i;
      batch.tsSec[i] = 1_700_000_000 + i;
      batch.tsNsec[i] = 100 + i;
      batch.iface[i] = i % 2; // input interfaces 0, 1
      batch.flags[i] = i === 1 ? EPB_DIR_OUTBOUND : 0;
      off += f.length;
    });
    batch.count = 3;
    batch.comments[2] = ['DNAT 172.21.0.10:3306 -> 10.190.12.6:3306 [KUBE-SEP-X, nth]', 'second'];
    const map = Uint32Array.of(1, 0); // input 0 -> output 1, input 1 -> output 0
    const ng = writeFile(file('batch.pcapng'), { format: 'pcapng', interfaces: [{ name: 'a', linktype: 1 }, { name: 'b', linktype: 1 }] }, (w) => {
      w.writeBatch(batch, map);
      w.writeBatch(batch);
    });
    const e = parseEpbs(ng);
    expect(e.map((x) => x.iface)).toEqual([1, 0, 1, 0, 1, 0]);
    expect(e.map((x) => x.origlen)).toEqual([72, 243, 49, 72, 243, 49]);
    expect(e.map((x) => x.ts)).toEqual([0, 1, 2, 0, 1, 2].map((i) => BigInt(1_700_000_000 + i) * 1_000_000_000n + BigInt(100 + i)));
    expect(e[2]!.comments).toEqual(batch.comments[2]);
    expect(e[0]!.comments).toEqual([]);
    expect(e[1]!.flags).toBe(EPB_DIR_OUTBOUND);
    e.forEach((x, i) => expect(toHex(x.data)).toBe(toHex(frames[i % 3]!)));

    const w = CaptureWriter.open(file('batch.pcap'), { format: 'pcap', interfaces: [ETH0] });
    try {
      expect(() => w.writeBatch(batch)).toThrow(/interface 1 is not defined/);
      w.writeBatch(batch, Uint32Array.of(0, 0));
      expect(w.recordsWritten).toBe(4); // record 0 of the failed batch, then the three
      expect(w.commentsDropped).toBe(2);
      expect(w.bytesWritten).toBe(24 + 4 * 16 + 72 + 72 + 242 + 47);
    } finally {
      w.abort();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// writeBatch's run path (one memcpy for records laid out like the output) against writeRecord

type Layout = 'pcap' | 'pcapng' | 'scattered';

/**
 * A batch whose records lie in the buffer as a pcap reader (16-byte gaps) or a pcapng reader
 * (EPB stride) would leave them, or scattered. Gaps are filled with 0xEE so that any byte the
 * writer copies but forgets to rewrite shows up.
 */
function layoutBatch(layout: Layout, n: number, rnd: () => number, opts: { maxLen: number; comments: boolean; bigTs: boolean }): RecordBatch {
  const caps: number[] = [];
  const flg: number[] = [];
  for (let k = 0; k < n; k++) {
    caps.push(Math.floor(rnd() * (opts.maxLen + 1)));
    flg.push(rnd() < 0.3 ? 1 + Math.floor(rnd() * 3) : 0);
  }
  const size = 64 + caps.reduce((a, c) => a + c + 64, 0);
  const buf = new Uint8Array(size).fill(0xee);
  const batch = new RecordBatch(n, buf);
  let p = layout === 'pcap' ? 16 + 24 : 28 + 28;
  for (let k = 0; k < n; k++) {
    const c = caps[k]!;
    for (let z = 0; z < c; z++) buf[p + z] = Math.floor(rnd() * 256);
    batch.offset[k] = p;
    batch.caplen[k] = c;
    batch.origlen[k] = rnd() < 0.1 ? Math.floor(c / 2) : c + Math.floor(rnd() * 3);
    batch.tsSec[k] = opts.bigTs && rnd() < 0.05 ? 2 ** 32 + Math.floor(rnd() * 1000) : Math.floor(rnd() * 2 ** 32);
    batch.tsNsec[k] = Math.floor(rnd() * 1e9);
    batch.iface[k] = rnd() < 0.5 ? 0 : 1;
    batch.flags[k] = flg[k]!;
    if (opts.comments && rnd() < 0.05) batch.comments[k] = rnd() < 0.5 ? [] : [`c${k}`, 'ü'];
    if (layout === 'pcap') p += 16 + c;
    else if (layout === 'pcapng') p += (flg[k] ? 44 : 32) + ((c + 3) & ~3);
    else p += c + 1 + Math.floor(rnd() * 20);
  }
  batch.count = n;
  return batch;
}

function writeBoth(format: 'pcap' | 'pcapng', batches: RecordBatch[], map: Uint32Array | undefined, bufferSize: number, nIf: number): [Uint8Array, Uint8Array] {
  const ifs = [
    { name: 'a', linktype: 1, snaplen: 150 },
    { name: 'b', linktype: 1 },
  ].slice(0, nIf);
  const viaBatch = writeFile(file(`run-batch.${format}`), { format, interfaces: ifs, bufferSize }, (w) => {
    for (const b of batches) w.writeBatch(b, map);
  });
  const viaRecord = writeFile(file(`run-record.${format}`), { format, interfaces: ifs, bufferSize }, (w) => {
    for (const b of batches) {
      for (let k = 0; k < b.count; k++) {
        const ifc = map ? map[b.iface[k]!]! : b.iface[k]!;
        w.writeRecord(b.buf, b.offset[k]!, b.caplen[k]!, b.origlen[k]!, b.tsSec[k]!, b.tsNsec[k]!, ifc, b.comments[k], b.flags[k]!);
      }
    }
  });
  return [viaBatch, viaRecord];
}

describe('writeBatch run path', () => {
  it('pcapng: byte-identical to writeRecord for every layout, flags, comments, snaplen, slow timestamps, small buffers', () => {
    let s = 99;
    const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let iter = 0; iter < 60; iter++) {
      const layout: Layout = (['pcap', 'pcapng', 'scattered'] as const)[iter % 3]!;
      const batches = [0, 1, 2].map(() => layoutBatch(layout === 'pcap' ? 'pcapng' : layout, 50 + Math.floor(rnd() * 100), rnd, { maxLen: 200, comments: iter % 2 === 0, bigTs: iter % 4 === 0 }));
      const map = iter % 3 === 1 ? Uint32Array.of(1, 0) : undefined;
      const [a, b] = writeBoth('pcapng', batches, map, iter % 5 === 0 ? 4096 : 1 << 20, 2);
      expect(toHex(a), `iteration ${iter}`).toBe(toHex(b));
      expect(parseEpbs(a).length).toBe(batches.reduce((t, x) => t + x.count, 0));
    }
  });

  it('pcap: byte-identical to writeRecord for every layout, µs and ns, snaplen, small buffers', () => {
    let s = 7;
    const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let iter = 0; iter < 60; iter++) {
      const layout: Layout = (['pcap', 'pcap', 'scattered'] as const)[iter % 3]!;
      const batches = [0, 1].map(() => layoutBatch(layout, 50 + Math.floor(rnd() * 100), rnd, { maxLen: 200, comments: iter % 2 === 0, bigTs: false }));
      const map = Uint32Array.of(0, 0);
      for (const ns of [false, true]) {
        const opts = { format: 'pcap' as const, nanosecond: ns, interfaces: [{ name: 'a', linktype: 1, snaplen: 150 }], bufferSize: iter % 5 === 0 ? 4096 : 1 << 20 };
        const a = writeFile(file('prun-batch.pcap'), opts, (w) => batches.forEach((b) => w.writeBatch(b, map)));
        const b = writeFile(file('prun-record.pcap'), opts, (w) =>
          batches.forEach((bt) => {
            for (let k = 0; k < bt.count; k++) w.writeRecord(bt.buf, bt.offset[k]!, bt.caplen[k]!, bt.origlen[k]!, bt.tsSec[k]!, bt.tsNsec[k]!, 0);
          }),
        );
        expect(toHex(a), `iteration ${iter}`).toBe(toHex(b));
      }
    }
  });

  it('an invalid record in the middle of a run: the records before it are written, then WriterError', () => {
    let s = 3;
    const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (const format of ['pcap', 'pcapng'] as const) {
      const batch = layoutBatch(format, 20, rnd, { maxLen: 100, comments: false, bigTs: false });
      batch.iface.fill(0);
      batch.iface[7] = 5;
      const p = file(`mid.${format}`);
      const w = CaptureWriter.open(p, { format, interfaces: [ETH0] });
      expect(() => w.writeBatch(batch)).toThrow(/record 7: interface 5 is not defined/);
      expect(w.recordsWritten).toBe(7);
      w.commit();
      const b = new Uint8Array(fs.readFileSync(p));
      const datas = format === 'pcap' ? parsePcap(b).recs.map((r) => r.data) : parseEpbs(b).map((e) => e.data);
      expect(datas.map(toHex)).toEqual([0, 1, 2, 3, 4, 5, 6].map((k) => toHex(batch.buf.subarray(batch.offset[k]!, batch.offset[k]! + batch.caplen[k]!))));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// What Wireshark's tools make of the files

describe('tshark, capinfos and editcap read the files', () => {
  const comments = [
    'DNAT 172.21.0.10:3306 -> 10.190.12.6:3306 [KUBE-SEP-X, nth]',
    'cali-fw-cali1234: allow (policy default.web-to-db, tier default)',
    'ünïcødé → 日本語 ✓ 🙂',
  ];
  let ngPath: string;
  let usPath: string;
  let nsPath: string;
  const N = 50;
  beforeAll(() => {
    ngPath = file('tshark.pcapng');
    usPath = file('tshark-us.pcap');
    nsPath = file('tshark-ns.pcap');
    const body = (w: CaptureWriter) => {
      for (let i = 0; i < N; i++) {
        const iface = i % 3;
        const f = iface === 2 ? rawFrame(i, 20 + i) : udpFrame(i, 20 + i);
        const c = i % 5 === 0 ? comments : i % 5 === 1 ? comments[0] : undefined;
        w.writeRecord(f, 0, f.length, f.length, 1_700_000_000 + i, 123_456_789 + i, iface, c, i % 2 === 0 ? EPB_DIR_INBOUND : EPB_DIR_OUTBOUND);
      }
    };
    writeFile(
      ngPath,
      {
        format: 'pcapng',
        interfaces: [
          { name: 'eth0', linktype: LINKTYPE_ETHERNET, description: 'node 10.190.12.5 bond0' },
          { name: 'vxlan.calico', linktype: LINKTYPE_ETHERNET, snaplen: 65535 },
          { name: 'tunl0', linktype: LINKTYPE_RAW },
        ],
        userAppl: 'dpemu 0.1.0',
        sectionComment: 'replayed through the IKS reference topology',
        secrets: [
          espSaSecrets([
            { protocol: 'IPv4', src: '10.0.0.1', dst: '10.0.0.2', spi: 0xcfbe7479, encryption: 'NULL', encKey: '0x', authentication: 'NULL', authKey: '0x' },
          ]),
        ],
      },
      body,
    );
    const pcapBody = (w: CaptureWriter) => {
      for (let i = 0; i < N; i++) {
        const f = udpFrame(i, 20 + i);
        w.writeRecord(f, 0, f.length, f.length, 1_700_000_000 + i, 123_456_789 + i, 0, comments[0]);
      }
    };
    writeFile(usPath, { format: 'pcap', interfaces: [ETH0] }, pcapBody);
    writeFile(nsPath, { format: 'pcap', nanosecond: true, interfaces: [ETH0] }, pcapBody);
  });

  it('tshark: counts, several UTF-8 comments per packet, interface names, ns timestamps', () => {
    const rows = tsharkFields(ngPath, ['frame.number', 'frame.comment', 'frame.interface_name', 'frame.time_epoch', 'frame.len']);
    expect(rows).toHaveLength(N);
    rows.forEach((r, i) => {
      expect(r[0]).toBe(String(i + 1));
      const want = i % 5 === 0 ? comments : i % 5 === 1 ? [comments[0]] : [];
      expect(r[1] === '' ? [] : r[1]!.split(SEP)).toEqual(want);
      expect(r[2]).toBe(['eth0', 'vxlan.calico', 'tunl0'][i % 3]);
      expect(r[3]).toBe(`${1_700_000_000 + i}.${123_456_789 + i}`);
      expect(r[4]).toBe(String((i % 3 === 2 ? 28 : 42) + 20 + i));
    });
  });

  it('tshark: flags, valid checksums, no malformed or error-level expert info', () => {
    const rows = tsharkFields(ngPath, ['frame.number', 'frame.packet_flags_direction', 'ip.checksum.status', 'udp.checksum.status'], [
      '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE',
    ]);
    rows.forEach((r, i) => {
      expect(Number(r[1])).toBe(i % 2 === 0 ? EPB_DIR_INBOUND : EPB_DIR_OUTBOUND);
      expect(r[2]).toBe('1'); // PROTO_CHECKSUM_E_GOOD (0 bad, 2 unverified)
      expect(r[3]).toBe('1');
    });
    const bad = tsharkOk(['-r', ngPath, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-Y', '_ws.malformed || _ws.expert.severity >= error']);
    expect(bad).toBe('');
  });

  it('tshark: pcap µs and ns files, interface names and timestamps', () => {
    const us = tsharkFields(usPath, ['frame.number', 'frame.time_epoch', 'frame.comment']);
    const ns = tsharkFields(nsPath, ['frame.number', 'frame.time_epoch']);
    expect(us).toHaveLength(N);
    expect(ns).toHaveLength(N);
    us.forEach((r, i) => {
      expect(r[1]).toBe(`${1_700_000_000 + i}.${String(123_456 + Math.floor(i / 1000)).padStart(6, '0')}000`);
      expect(r[2]).toBe(''); // pcap has no comments
    });
    ns.forEach((r, i) => expect(r[1]).toBe(`${1_700_000_000 + i}.${123_456_789 + i}`));
  });

  it('capinfos: format, encapsulation, packet counts, time precision, comments', () => {
    const ng = runTool('capinfos', [ngPath]);
    expect(ng.status, ng.stderr).toBe(0);
    expect(ng.stdout).toMatch(/File type:\s+Wireshark\/\.\.\. - pcapng/);
    expect(ng.stdout).toMatch(/File encapsulation:\s+Per packet/);
    expect(ng.stdout).toMatch(/Number of packets:\s+50\b/);
    expect(ng.stdout).toMatch(/File timestamp precision:\s+nanoseconds \(9\)/);
    expect(ng.stdout).toMatch(/Capture comment:\s+replayed through the IKS reference topology/);
    expect(ng.stdout).toMatch(/Capture application:\s+dpemu 0\.1\.0/);
    expect(ng.stdout).toMatch(/Number of interfaces in file: 3/);
    expect(ng.stdout).toMatch(/Name = vxlan\.calico/);
    expect(ng.stdout).toMatch(/Description = node 10\.190\.12\.5 bond0/);
    expect(ng.stdout).toMatch(/Encapsulation = Raw IP/);
    expect(ng.stdout).toMatch(/Number of packets = 17\b/); // tunl0: i % 3 == 2 for i < 50

    const us = runTool('capinfos', [usPath]);
    expect(us.status, us.stderr).toBe(0);
    expect(us.stdout).toMatch(/File type:\s+Wireshark\/tcpdump\/\.\.\. - pcap/);
    expect(us.stdout).toMatch(/File encapsulation:\s+Ethernet/);
    expect(us.stdout).toMatch(/File timestamp precision:\s+microseconds \(6\)/);
    expect(us.stdout).toMatch(/Number of packets:\s+50\b/);
    const ns = runTool('capinfos', [nsPath]);
    expect(ns.stdout).toMatch(/File type:\s+Wireshark\/tcpdump\/\.\.\. - nanosecond pcap/);
    expect(ns.stdout).toMatch(/File timestamp precision:\s+nanoseconds \(9\)/);
  });

  it('editcap reads the DSB as a Decryption Secrets Block (kept on copy, dropped by --discard-all-secrets)', () => {
    const ours = pcapngBlocks(new Uint8Array(fs.readFileSync(ngPath))).find((b) => b.type === 10)!;
    expect(ours).toBeDefined();
    const kept = file('kept.pcapng');
    const gone = file('gone.pcapng');
    expect(runTool('editcap', [ngPath, kept]).status).toBe(0);
    expect(runTool('editcap', ['--discard-all-secrets', ngPath, gone]).status).toBe(0);
    const keptDsb = pcapngBlocks(new Uint8Array(fs.readFileSync(kept))).filter((b) => b.type === 10);
    expect(keptDsb.map((b) => toHex(b.body))).toEqual([toHex(ours.body)]);
    expect(pcapngBlocks(new Uint8Array(fs.readFileSync(gone))).filter((b) => b.type === 10)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// ESP SA secrets

describe('espSaSecrets', () => {
  it('builds the ESP SA CSV (every field quoted, one line per SA)', () => {
    const s = espSaSecrets([
      {
        protocol: 'IPv4',
        src: '10.0.0.1',
        dst: '10.0.0.2',
        spi: 0xcfbe7479,
        encryption: 'AES-GCM with 16 octet ICV [RFC4106]',
        encKey: '0x00112233445566778899aabbccddeeff01020304',
        authentication: 'NULL',
        authKey: '',
      },
      { protocol: 'Any', src: '*', dst: '*', spi: 0x100, encryption: 'NULL', encKey: '0x', authentication: 'HMAC-SHA-256-128 [RFC4868]', authKey: '0xab', sn: '64-bit', esnHigh: '0x00000001' },
    ]);
    expect(s.type).toBe(SECRETS_TYPE_ESP_SA);
    expect(new TextDecoder().decode(s.data)).toBe(
      '"IPv4","10.0.0.1","10.0.0.2","0xcfbe7479","AES-GCM with 16 octet ICV [RFC4106]","0x00112233445566778899aabbccddeeff01020304","NULL","","32-bit","0x00000000"\n' +
        '"Any","*","*","0x00000100","NULL","0x","HMAC-SHA-256-128 [RFC4868]","0xab","64-bit","0x00000001"\n',
    );
    expect(() => espSaSecrets([{ protocol: 'IPv4', src: '*', dst: '*', spi: 2 ** 32, encryption: 'NULL', encKey: '', authentication: 'NULL', authKey: '' }])).toThrow(
      WriterError,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Atomic output and errors

describe('atomic output', () => {
  it('writes to a temp file in the same directory and renames it on commit', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'atomic-'));
    const p = path.join(dir, 'out.pcapng');
    fs.writeFileSync(p, 'old content');
    const w = CaptureWriter.open(p, { format: 'pcapng', interfaces: [ETH0] });
    const f = udpFrame(1);
    for (let i = 0; i < 10; i++) w.writeRecord(f, 0, f.length, f.length, i, 0, 0);
    w.flush();
    expect(fs.readdirSync(dir).sort()).toEqual([`.out.pcapng.${process.pid}.tmp`, 'out.pcapng']);
    expect(fs.readFileSync(p, 'utf8')).toBe('old content');
    w.commit();
    expect(fs.readdirSync(dir)).toEqual(['out.pcapng']);
    expect(parseEpbs(new Uint8Array(fs.readFileSync(p)))).toHaveLength(10);
    expect(w.bytesWritten).toBe(fs.statSync(p).size);
    w.abort(); // no-op after commit
    expect(fs.existsSync(p)).toBe(true);
    expect(() => w.writeRecord(f, 0, f.length, f.length, 0, 0, 0)).toThrow(/committed/);
    expect(() => w.commit()).toThrow(WriterError);
  });

  it('abort leaves neither the output nor the temp file, is idempotent, and later writes throw', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'abort-'));
    const p = path.join(dir, 'out.pcap');
    const w = CaptureWriter.open(p, { format: 'pcap', interfaces: [ETH0], bufferSize: 4096 });
    const f = udpFrame(1);
    for (let i = 0; i < 1000; i++) w.writeRecord(f, 0, f.length, f.length, i, 0, 0); // flushed many times
    expect(fs.readdirSync(dir)).toHaveLength(1);
    w.abort();
    w.abort();
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(() => w.writeRecord(f, 0, f.length, f.length, 0, 0, 0)).toThrow(/aborted/);
    expect(() => w.commit()).toThrow(/aborted/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('abortAllWriters aborts live writers only', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'all-'));
    const a = CaptureWriter.open(path.join(dir, 'a.pcap'), { format: 'pcap', interfaces: [ETH0] });
    const b = CaptureWriter.open(path.join(dir, 'b.pcap'), { format: 'pcap', interfaces: [ETH0] });
    b.commit();
    abortAllWriters();
    expect(fs.readdirSync(dir)).toEqual(['b.pcap']);
    expect(() => a.commit()).toThrow(/aborted/);
  });

  it('a process that throws or exits mid-way leaves no output and no temp file', () => {
    // Run the writer in a separate node process: the compiled one (npm test builds first).
    const jsDir = fs.mkdtempSync(path.join(tmp, 'js-'));
    const writerJs = fileURLToPath(new URL('../dist/pcap/writer.js', import.meta.url));
    if (!fs.existsSync(writerJs)) throw new Error(`${writerJs} is missing: run npm run build (npm test does)`);
    fs.writeFileSync(path.join(jsDir, 'package.json'), '{"type":"module"}');
    const child = path.join(jsDir, 'child.js');
    fs.writeFileSync(
      child,
      `import * as fs from 'node:fs';
import * as path from 'node:path';
import { CaptureWriter } from ${JSON.stringify(writerJs)};
const [out, how] = process.argv.slice(2);
const w = CaptureWriter.open(out, { format: 'pcapng', interfaces: [{ name: 'eth0', linktype: 1 }], bufferSize: 4096 });
const f = new Uint8Array(60);
for (let i = 0; i < 1000; i++) w.writeRecord(f, 0, 60, 60, i, 0, 0);
console.log(JSON.stringify(fs.readdirSync(path.dirname(out))));
if (how === 'throw') throw new Error('boom mid-way');
if (how === 'exit') process.exit(3);
if (how === 'commit') w.commit();
`,
    );
    for (const how of ['throw', 'exit', 'commit']) {
      const dir = fs.mkdtempSync(path.join(tmp, `child-${how}-`));
      const out = path.join(dir, 'out.pcapng');
      const r = spawnSync(process.execPath, [child, out, how], { encoding: 'utf8' });
      const during = JSON.parse(r.stdout.trim()) as string[];
      expect(during, r.stderr).toHaveLength(1);
      expect(during[0]).toMatch(/^\.out\.pcapng\.\d+\.tmp$/);
      if (how === 'commit') {
        expect(r.status).toBe(0);
        expect(fs.readdirSync(dir)).toEqual(['out.pcapng']);
        expect(parseEpbs(new Uint8Array(fs.readFileSync(out)))).toHaveLength(1000);
      } else {
        expect(r.status).toBe(how === 'throw' ? 1 : 3);
        if (how === 'throw') expect(r.stderr).toContain('boom mid-way');
        expect(fs.readdirSync(dir)).toEqual([]);
      }
    }
  });

  it('refuses to write over the input: same path, relative path, symlink, hard link', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'input-'));
    const inp = path.join(dir, 'in.pcap');
    writeFile(inp, { format: 'pcap', interfaces: [ETH0] }, (w) => {
      const f = udpFrame(1);
      w.writeRecord(f, 0, f.length, f.length, 1, 0, 0);
    });
    const before = fs.readFileSync(inp);
    fs.symlinkSync(inp, path.join(dir, 'link.pcap'));
    fs.linkSync(inp, path.join(dir, 'hard.pcap'));
    const rel = path.relative(process.cwd(), inp);
    for (const out of [inp, rel, path.join(dir, 'link.pcap'), path.join(dir, 'hard.pcap'), path.join(dir, '.', 'x', '..', 'in.pcap')]) {
      expect(() => CaptureWriter.open(out, { format: 'pcap', interfaces: [ETH0], inputPaths: [inp] }), out).toThrow(/is the input file/);
      expect(() => CaptureWriter.open(inp, { format: 'pcapng', interfaces: [], inputPaths: ['-', path.join(dir, 'missing'), out] }), out).toThrow(
        WriterError,
      );
    }
    expect(fs.readdirSync(dir).sort()).toEqual(['hard.pcap', 'in.pcap', 'link.pcap']);
    expect(fs.readFileSync(inp)).toEqual(before);
  });

  it('writing through a symlink replaces its target and keeps the link', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'symlink-'));
    fs.mkdirSync(path.join(dir, 'real'));
    const target = path.join(dir, 'real', 'out.pcap');
    fs.writeFileSync(target, 'old');
    const link = path.join(dir, 'out.pcap');
    fs.symlinkSync(target, link);
    writeFile(link, { format: 'pcap', interfaces: [ETH0] }, () => {});
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.statSync(target).size).toBe(24);
    expect(fs.readdirSync(path.join(dir, 'real'))).toEqual(['out.pcap']);
  });

  it('writes straight into a device such as /dev/null (never renames over it)', () => {
    const w = CaptureWriter.open('/dev/null', { format: 'pcap', interfaces: [ETH0] });
    const f = udpFrame(1);
    for (let i = 0; i < 100; i++) w.writeRecord(f, 0, f.length, f.length, i, 0, 0);
    w.commit();
    expect(w.recordsWritten).toBe(100);
    expect(fs.statSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(fs.readdirSync('/dev').filter((n) => n.startsWith('.null.'))).toEqual([]);
  });
});

describe('errors become WriterError with the path and the reason', () => {
  it('output is a directory (EISDIR)', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'isdir-'));
    let err: unknown;
    try {
      CaptureWriter.open(dir, { format: 'pcap', interfaces: [ETH0] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WriterError);
    expect((err as WriterError).code).toBe('EISDIR');
    expect((err as WriterError).message).toContain(dir);
  });

  it('directory does not exist (ENOENT)', () => {
    const p = path.join(tmp, 'no-such-dir', 'out.pcap');
    expect(() => CaptureWriter.open(p, { format: 'pcap', interfaces: [ETH0] })).toThrow(
      expect.objectContaining({ name: 'WriterError', code: 'ENOENT', message: expect.stringContaining(p) }),
    );
  });

  it('disk full (ENOSPC, /dev/full through toFd)', () => {
    const fd = fs.openSync('/dev/full', 'w');
    try {
      const w = CaptureWriter.toFd(fd, { format: 'pcapng', interfaces: [ETH0], bufferSize: 4096 });
      const f = udpFrame(1);
      const write = () => {
        for (let i = 0; i < 1000; i++) w.writeRecord(f, 0, f.length, f.length, i, 0, 0);
      };
      expect(write).toThrow(expect.objectContaining({ name: 'WriterError', code: 'ENOSPC', message: expect.stringMatching(/fd \d+: write failed: ENOSPC/) }));
      expect(() => w.commit()).toThrow(/aborted/);
    } finally {
      fs.closeSync(fd); // toFd never closes the caller's fd
    }
  });

  it('a failed rename on commit removes the temp file', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'rename-'));
    const p = path.join(dir, 'out.pcap');
    const w = CaptureWriter.open(p, { format: 'pcap', interfaces: [ETH0] });
    fs.mkdirSync(p); // a non-empty directory appears at the final path
    fs.writeFileSync(path.join(p, 'x'), '');
    expect(() => w.commit()).toThrow(expect.objectContaining({ name: 'WriterError', message: expect.stringContaining('cannot rename') }));
    expect(fs.readdirSync(dir)).toEqual(['out.pcap']);
    expect(fs.statSync(p).isDirectory()).toBe(true);
  });

  it('toFd commit flushes and leaves the fd open', () => {
    const p = file('fd.pcap');
    const fd = fs.openSync(p, 'w');
    const w = CaptureWriter.toFd(fd, { format: 'pcap', interfaces: [ETH0] });
    const f = udpFrame(1);
    w.writeRecord(f, 0, f.length, f.length, 1, 0, 0);
    w.commit();
    fs.writeSync(fd, Buffer.from([1])); // still open
    fs.closeSync(fd);
    expect(fs.statSync(p).size).toBe(24 + 16 + f.length + 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Round trip through the reader (src/pcap/reader.ts)

interface Rec {
  data: string;
  caplen: number;
  origlen: number;
  sec: number;
  nsec: number;
  iface: number;
  comments: string[];
  flags: number;
}

/** Every record of a file, read with CaptureReader (small batches, to cross batch boundaries). */
function readAll(p: string, batchSize = 7): { reader: CaptureReader; recs: Rec[] } {
  const reader = CaptureReader.open(p);
  const batch = new RecordBatch(batchSize);
  const recs: Rec[] = [];
  try {
    for (let n = reader.next(batch); n > 0; n = reader.next(batch)) {
      for (let k = 0; k < n; k++) {
        const off = batch.offset[k]!;
        recs.push({
          data: toHex(batch.buf.subarray(off, off + batch.caplen[k]!)),
          caplen: batch.caplen[k]!,
          origlen: batch.origlen[k]!,
          sec: batch.tsSec[k]!,
          nsec: batch.tsNsec[k]!,
          iface: batch.iface[k]!,
          comments: batch.comments[k] ?? [],
          flags: batch.flags[k]!,
        });
      }
    }
  } finally {
    reader.close();
  }
  return { reader, recs };
}

/** Read `inp` and write it with the writer's batch path: every interface, comments and flags. */
function copyCapture(inp: string, out: string, format: 'pcap' | 'pcapng', extra: Partial<WriterOptions> = {}, batchSize = 64): void {
  const reader = CaptureReader.open(inp);
  const batch = new RecordBatch(batchSize);
  let w: CaptureWriter | undefined;
  let map = new Uint32Array(0);
  try {
    for (;;) {
      const n = reader.next(batch);
      if (w === undefined) {
        const ifs = format === 'pcap' ? [{ name: 'x', linktype: reader.interfaces[0]?.linktype ?? 1, snaplen: extra.interfaces?.[0]?.snaplen, fcsLen: reader.interfaces[0]?.fcsLen }] : [];
        const sec = reader.sections[0];
        w = CaptureWriter.open(out, {
          format,
          interfaces: ifs,
          userAppl: sec?.userAppl,
          sectionComment: sec?.comments?.[0],
          nanosecond: extra.nanosecond,
          inputPaths: [inp],
          bufferSize: extra.bufferSize,
        });
      }
      if (reader.interfaces.length > map.length) {
        const m = new Uint32Array(reader.interfaces.length);
        m.set(map);
        for (let k = map.length; k < m.length; k++) {
          const ifc = reader.interfaces[k]!;
          m[k] = w.addInterface({ name: ifc.name ?? `if${k}`, description: ifc.description, linktype: ifc.linktype, snaplen: format === 'pcapng' ? ifc.snaplen : undefined, fcsLen: ifc.fcsLen });
        }
        map = m;
      }
      if (n === 0) break;
      w.writeBatch(batch, map);
    }
    w!.commit();
  } catch (e) {
    w?.abort();
    throw e;
  } finally {
    reader.close();
  }
}

describe('round trip through CaptureReader', () => {
  const frames = Array.from({ length: 40 }, (_, i) => (i % 4 === 3 ? rawFrame(i, 10 + i * 7) : udpFrame(i, 10 + i * 7)));
  const src = (): Rec[] =>
    frames.map((f, i) => ({
      data: toHex(f),
      caplen: f.length,
      origlen: f.length + (i % 3),
      sec: 1_700_000_000 + i * 1000,
      nsec: (i * 123_456_789) % 1e9,
      iface: i % 4 === 3 ? 2 : i % 2,
      comments: i % 5 === 0 ? ['DNAT 172.21.0.10:3306 -> 10.190.12.6:3306 [KUBE-SEP-X, nth]', 'ünï ✓'] : i % 5 === 1 ? ['one'] : [],
      flags: i % 3 === 0 ? 0 : i % 3,
    }));
  const ifaces = [
    { name: 'eth0', linktype: 1, description: 'underlay' },
    { name: 'vxlan.calico', linktype: 1, snaplen: 65535 },
    { name: 'tunl0', linktype: LINKTYPE_RAW },
  ];
  const writeSrc = (p: string, opts: WriterOptions, recs: Rec[]) =>
    writeFile(p, opts, (w) => recs.forEach((r, i) => w.writeRecord(frames[i]!, 0, r.caplen, r.origlen, r.sec, r.nsec, r.iface, r.comments.length ? r.comments : undefined, r.flags)));

  it('pcapng: write → read gives the same records; read → write gives the same file', () => {
    const a = file('rt-a.pcapng');
    const b = file('rt-b.pcapng');
    writeSrc(a, { format: 'pcapng', interfaces: ifaces, userAppl: 'dpemu 0.1.0', sectionComment: 'round trip' }, src());
    const got = readAll(a);
    expect(got.recs).toEqual(src());
    expect(got.reader.interfaces.map((x) => [x.name, x.description, x.linktype, x.snaplen, x.tsUnitsPerSec])).toEqual([
      ['eth0', 'underlay', 1, 0, 1e9],
      ['vxlan.calico', undefined, 1, 65535, 1e9],
      ['tunl0', undefined, 101, 0, 1e9],
    ]);
    copyCapture(a, b, 'pcapng');
    expect(toHex(new Uint8Array(fs.readFileSync(b)))).toBe(toHex(new Uint8Array(fs.readFileSync(a))));
  });

  it('pcap µs and ns: write → read gives the same records (µs floored); read → write gives the same file', () => {
    const eth = src().filter((r) => r.iface !== 2).map((r) => ({ ...r, iface: 0, comments: [], flags: 0 }));
    const ethFrames = frames.filter((_, i) => i % 4 !== 3);
    for (const ns of [false, true]) {
      const a = file(`rt-a-${ns}.pcap`);
      const b = file(`rt-b-${ns}.pcap`);
      writeFile(a, { format: 'pcap', nanosecond: ns, interfaces: [ETH0] }, (w) =>
        eth.forEach((r, i) => w.writeRecord(ethFrames[i]!, 0, r.caplen, r.origlen, r.sec, r.nsec, 0, ['dropped'], 1)),
      );
      const got = readAll(a);
      expect(got.reader.nanosecond).toBe(ns);
      expect(got.recs).toEqual(eth.map((r) => ({ ...r, nsec: ns ? r.nsec : Math.floor(r.nsec / 1000) * 1000 })));
      copyCapture(a, b, 'pcap', { nanosecond: ns });
      expect(toHex(new Uint8Array(fs.readFileSync(b)))).toBe(toHex(new Uint8Array(fs.readFileSync(a))));
    }
  });

  it('the corpus: read → write (pcapng, and pcap when one link type) → read gives the same records', () => {
    const corpus = '/work/shared/corpus';
    if (!fs.existsSync(corpus)) return; // the shared corpus is not everywhere
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(pcap|pcapng|cap|pcapng\.ntar)$/.test(e.name) || /\.pcap/.test(e.name)) files.push(p);
      }
    };
    walk(corpus);
    let checked = 0;
    let checkedPcap = 0;
    const refusedByWriter: string[] = [];
    for (const f of files) {
      let orig: Rec[];
      let reader: CaptureReader;
      try {
        ({ reader, recs: orig } = readAll(f, 64));
      } catch (e) {
        if (e instanceof CaptureError) continue; // damaged input: the reader's business
        throw e;
      }
      const multiSection = reader.sections.length > 1;
      const outNg = file('corpus.pcapng');
      try {
        copyCapture(f, outNg, 'pcapng');
      } catch (e) {
        if (e instanceof CaptureError) continue; // damage found only by the second read pass? (should not happen)
        if (e instanceof WriterError && /timestamp/.test(e.message)) {
          refusedByWriter.push(`${f}: ${e.message}`);
          continue;
        }
        throw new Error(`${f}: ${(e as Error).message}`);
      }
      const back = readAll(outNg).recs;
      // Interface ids are global in the reader across sections; ours is one section with the same
      // order. The writer raises origlen to caplen (damaged inputs have caplen > origlen).
      orig = orig.map((r) => (r.origlen < r.caplen ? { ...r, origlen: r.caplen } : r));
      expect(back, f).toEqual(orig);
      checked++;
      if (reader.interfaces.length >= 1 && !multiSection && new Set(reader.interfaces.map((x) => `${x.linktype}/${x.fcsLen}`)).size === 1 && orig.length > 0) {
        const outP = file('corpus.pcap');
        try {
          copyCapture(f, outP, 'pcap', { nanosecond: true, interfaces: [{ name: 'x', linktype: 0, snaplen: reader.interfaces[0]!.snaplen }] });
        } catch (e) {
          if (e instanceof WriterError && /timestamp/.test(e.message)) {
            refusedByWriter.push(`${f} (pcap): ${e.message}`);
            continue;
          }
          throw e;
        }
        const backP = readAll(outP).recs;
        expect(backP, f).toEqual(orig.map((r) => ({ ...r, iface: 0, comments: [], flags: 0 })));
        checkedPcap++;
      }
      fs.rmSync(outNg, { force: true });
    }
    // Most readable corpus files round-trip (571 files, about 250 damaged).
    expect(checked).toBeGreaterThan(250);
    expect(checkedPcap).toBeGreaterThan(200);
    expect(refusedByWriter.length, refusedByWriter.join('\n')).toBeLessThan(10);
  }, 120_000);
});
