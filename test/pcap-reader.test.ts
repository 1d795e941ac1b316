/**
 * The capture reader on hand-built files: pcap in both byte orders and resolutions, FCS bits,
 * truncation, damage, pcap variants; pcapng sections of both byte orders, interfaces, exact
 * timestamps, options, SPB/PB, skipped blocks, damage with 'stop' and 'skip'; the buffer
 * (records straddling its end, records bigger than it), pipes.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureError } from '../src/pcap/errors.js';
import { linktypeName, maxSnaplenForLinktype } from '../src/pcap/linktype.js';
import { CaptureReader, type ReaderOptions } from '../src/pcap/reader.js';
import { RecordBatch } from '../src/pcap/types.js';

// ---------------------------------------------------------------------------------------------
// Building files

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpemu-reader-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});
let seq = 0;
function write(name: string, bytes: Uint8Array): string {
  const f = path.join(tmp, `${++seq}-${name}`);
  fs.writeFileSync(f, bytes);
  return f;
}

/** A growable little byte writer with explicit byte order. */
class Bytes {
  private parts: number[] = [];
  constructor(public le = true) {}
  get length(): number {
    return this.parts.length;
  }
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.le ? this.u8(v).u8(v >>> 8) : this.u8(v >>> 8).u8(v);
  }
  u32(v: number): this {
    return this.le ? this.u16(v & 0xffff).u16(v >>> 16) : this.u16(v >>> 16).u16(v & 0xffff);
  }
  u64(v: bigint): this {
    const hi = Number((v >> 32n) & 0xffffffffn);
    const lo = Number(v & 0xffffffffn);
    return this.le ? this.u32(lo).u32(hi) : this.u32(hi).u32(lo);
  }
  raw(b: Iterable<number>): this {
    for (const x of b) this.parts.push(x & 0xff);
    return this;
  }
  pad4(): this {
    while (this.parts.length % 4) this.parts.push(0);
    return this;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** Packet bytes whose content identifies the packet: byte j of packet i is (i*7 + j) & 255. */
function payload(i: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let j = 0; j < len; j++) b[j] = (i * 7 + j) & 255;
  return b;
}

interface PcapRec {
  sec: number;
  frac: number;
  incl?: number;
  orig?: number;
  data: Uint8Array;
}
function pcapFile(opts: { le?: boolean; ns?: boolean; network?: number; snaplen?: number; major?: number; minor?: number; magic?: number }, recs: PcapRec[], recExtra?: (b: Bytes, i: number) => void): Uint8Array {
  const le = opts.le ?? true;
  const b = new Bytes(le);
  b.u32(opts.magic ?? (opts.ns ? 0xa1b23c4d : 0xa1b2c3d4));
  b.u16(opts.major ?? 2).u16(opts.minor ?? 4).u32(0).u32(0);
  b.u32(opts.snaplen ?? 262144).u32(opts.network ?? 1);
  recs.forEach((r, i) => {
    b.u32(r.sec).u32(r.frac).u32(r.incl ?? r.data.length).u32(r.orig ?? r.data.length);
    recExtra?.(b, i);
    b.raw(r.data);
  });
  return b.bytes();
}

// pcapng
type Opt = [code: number, value: Uint8Array];
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
function opts(b: Bytes, list: Opt[], end = true): void {
  for (const [code, v] of list) {
    b.u16(code).u16(v.length).raw(v).pad4();
  }
  if (end && list.length) b.u32(0);
}
function block(le: boolean, type: number, body: (b: Bytes) => void, lenAdjust = 0, trailerAdjust = 0): Uint8Array {
  const inner = new Bytes(le);
  body(inner);
  inner.pad4();
  const len = inner.length + 12;
  const b = new Bytes(le);
  b.u32(type).u32(len + lenAdjust).raw(inner.bytes()).u32(len + lenAdjust + trailerAdjust);
  return b.bytes();
}
function shb(le: boolean, options: Opt[] = [], major = 1, minor = 0): Uint8Array {
  return block(le, 0x0a0d0d0a, (b) => {
    b.u32(0x1a2b3c4d).u16(major).u16(minor).u64(-1n);
    opts(b, options);
  });
}
function idb(le: boolean, linktype: number, snaplen: number, options: Opt[] = []): Uint8Array {
  return block(le, 1, (b) => {
    b.u16(linktype).u16(0).u32(snaplen);
    opts(b, options);
  });
}
function epb(le: boolean, ifid: number, ts: bigint, data: Uint8Array, options: Opt[] = [], origlen = data.length): Uint8Array {
  return block(le, 6, (b) => {
    b.u32(ifid)
      .u32(Number(ts >> 32n))
      .u32(Number(ts & 0xffffffffn))
      .u32(data.length)
      .u32(origlen)
      .raw(data)
      .pad4();
    opts(b, options);
  });
}
function spb(le: boolean, data: Uint8Array, origlen = data.length): Uint8Array {
  return block(le, 3, (b) => {
    b.u32(origlen).raw(data).pad4();
  });
}
function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
const u8 = (v: number): Uint8Array => Uint8Array.of(v);
function u32b(le: boolean, v: number): Uint8Array {
  return new Bytes(le).u32(v).bytes();
}
function u64b(le: boolean, v: bigint): Uint8Array {
  return new Bytes(le).u64(v).bytes();
}

// ---------------------------------------------------------------------------------------------
// Reading

interface Rec {
  data: number[];
  caplen: number;
  origlen: number;
  sec: number;
  nsec: number;
  iface: number;
  flags: number;
  fileOffset: number;
  index: number;
  comments?: string[];
}

/** Read everything; returns the records and the error that ended reading (if any). */
function readAll(f: string, o: ReaderOptions = {}, capacity = 1000): { r: CaptureReader; recs: Rec[]; batches: number[]; error?: unknown } {
  const r = CaptureReader.open(f, o);
  const recs: Rec[] = [];
  const batches: number[] = [];
  const batch = new RecordBatch(capacity);
  let error: unknown;
  try {
    for (;;) {
      const n = r.next(batch);
      if (n === 0) break;
      batches.push(n);
      expect(batch.count).toBe(n);
      for (let i = 0; i < n; i++) {
        const off = batch.offset[i]!;
        const rec: Rec = {
          data: [...batch.buf.subarray(off, off + batch.caplen[i]!)],
          caplen: batch.caplen[i]!,
          origlen: batch.origlen[i]!,
          sec: batch.tsSec[i]!,
          nsec: batch.tsNsec[i]!,
          iface: batch.iface[i]!,
          flags: batch.flags[i]!,
          fileOffset: batch.fileOffset[i]!,
          index: batch.index[i]!,
        };
        const c = batch.comments[i];
        if (c) rec.comments = c;
        recs.push(rec);
      }
    }
  } catch (e) {
    error = e;
  }
  r.close();
  return { r, recs, batches, error };
}

function expectCaptureError(e: unknown, file: string, offset: number, where: string | RegExp, what: RegExp): CaptureError {
  expect(e).toBeInstanceOf(CaptureError);
  const ce = e as CaptureError;
  expect(ce.file).toBe(file);
  expect(ce.offset).toBe(offset);
  if (typeof where === 'string') expect(ce.where).toBe(where);
  else expect(ce.where).toMatch(where);
  expect(ce.what).toMatch(what);
  expect(ce.message).toContain(file);
  if (offset >= 0) expect(ce.message).toContain(`byte offset ${offset}`);
  return ce;
}

// ---------------------------------------------------------------------------------------------
// pcap

describe('pcap', () => {
  const recs: PcapRec[] = [
    { sec: 1700000000, frac: 1, data: payload(0, 60) },
    { sec: 1700000001, frac: 999999, data: payload(1, 99) },
    { sec: 4294967295, frac: 123456, data: payload(2, 1) },
    { sec: 0, frac: 0, data: new Uint8Array(0) },
  ];
  for (const le of [true, false]) {
    for (const ns of [false, true]) {
      it(`reads ${le ? 'little' : 'big'}-endian ${ns ? 'nanosecond' : 'microsecond'} files`, () => {
        const f = write('a.pcap', pcapFile({ le, ns, network: 113, snaplen: 65535 }, recs));
        const { r, recs: got, error } = readAll(f);
        expect(error).toBeUndefined();
        expect(r.format).toBe('pcap');
        expect(r.littleEndian).toBe(le);
        expect(r.nanosecond).toBe(ns);
        expect(r.variant).toBe(ns ? 'pcap (ns)' : 'pcap');
        expect(r.interfaces).toEqual([{ id: 0, section: 0, localId: 0, linktype: 113, fcsLen: 0, snaplen: 65535, tsUnitsPerSec: ns ? 1e9 : 1e6, tsOffsetSec: 0 }]);
        expect(r.sections).toEqual([{ index: 0, offset: 0, littleEndian: le, major: 2, minor: 4 }]);
        expect(got.map((x) => x.data)).toEqual(recs.map((x) => [...x.data]));
        expect(got.map((x) => [x.sec, x.nsec])).toEqual(recs.map((x) => [x.sec, ns ? x.frac : x.frac * 1000]));
        expect(got.map((x) => x.index)).toEqual([0, 1, 2, 3]);
        expect(got.map((x) => x.fileOffset)).toEqual([24, 24 + 76, 24 + 76 + 115, 24 + 76 + 115 + 17]);
        expect(got.every((x) => x.iface === 0 && x.flags === 0)).toBe(true);
        expect(r.recordsRead).toBe(4);
        expect(r.bytesConsumed).toBe(r.fileSize);
        expect(r.fileSize).toBe(fs.statSync(f).size);
      });
    }
  }

  it('takes the FCS length from the link-type field only when bit 26 is set', () => {
    const one = [{ sec: 1, frac: 0, data: payload(0, 64) }];
    const withFcs = readAll(write('fcs.pcap', pcapFile({ network: 0x04000000 | (2 << 28) | 1 }, one)));
    expect(withFcs.r.interfaces[0]).toMatchObject({ linktype: 1, fcsLen: 4 });
    expect(withFcs.recs).toHaveLength(1);
    const fcs0 = readAll(write('fcs0.pcap', pcapFile({ network: 0x04000000 | 1 }, one)));
    expect(fcs0.r.interfaces[0]).toMatchObject({ linktype: 1, fcsLen: 0 });
    // Length bits without the P bit (as in many fuzzed tcpdump captures): ignored.
    const noP = readAll(write('fcsnop.pcap', pcapFile({ network: 0x30000000 | 229 }, one)));
    expect(noP.r.interfaces[0]).toMatchObject({ linktype: 229, fcsLen: 0 });
    // Reserved bits 16-25: wiretap refuses the file.
    const f = write('resv.pcap', pcapFile({ network: 0x00010001 }, one));
    expect(() => CaptureReader.open(f)).toThrow(CaptureError);
    try {
      CaptureReader.open(f);
    } catch (e) {
      expectCaptureError(e, f, 20, 'file header', /reserved bits 16-25/);
    }
  });

  it('accepts snaplen-truncated records, records longer than snaplen, snaplen 0 and incl_len > orig_len (as wiretap)', () => {
    const f = write(
      'trunc.pcap',
      pcapFile({ snaplen: 0 }, [
        { sec: 1, frac: 2, orig: 1514, data: payload(0, 96) },
        { sec: 1, frac: 3, orig: 40, data: payload(1, 50) },
      ]),
    );
    const { r, recs: got, error } = readAll(f);
    expect(error).toBeUndefined();
    expect(r.interfaces[0]!.snaplen).toBe(0);
    expect(got.map((x) => [x.caplen, x.origlen])).toEqual([
      [96, 1514],
      [50, 40],
    ]);
    expect(got[0]!.data).toEqual([...payload(0, 96)]);
  });

  it('refuses a captured length above the link type maximum, after the records before it', () => {
    const recs2: PcapRec[] = [
      { sec: 1, frac: 0, data: payload(0, 10) },
      { sec: 2, frac: 0, data: payload(1, 10) },
      { sec: 3, frac: 0, incl: 262145, data: payload(2, 10) },
    ];
    const f = write('huge.pcap', pcapFile({}, recs2));
    const { recs: got, batches, error } = readAll(f);
    expect(got).toHaveLength(2);
    expect(batches).toEqual([2]);
    expectCaptureError(error, f, 24 + 26 + 26, 'record 2', /captured length 262145 exceeds the maximum 262144 for link type ETHERNET/);
    expect(maxSnaplenForLinktype(231)).toBe(128 * 1024 * 1024);
  });

  it('reports a file that ends inside a record, with the records before it first', () => {
    const full = pcapFile({}, [
      { sec: 1, frac: 0, data: payload(0, 20) },
      { sec: 2, frac: 0, data: payload(1, 60) },
    ]);
    const f = write('cut.pcap', full.subarray(0, 24 + 36 + 16 + 12));
    const r = CaptureReader.open(f);
    const batch = new RecordBatch(16);
    expect(r.next(batch)).toBe(1);
    expect([...batch.buf.subarray(batch.offset[0]!, batch.offset[0]! + 20)]).toEqual([...payload(0, 20)]);
    let e1: unknown;
    try {
      r.next(batch);
    } catch (e) {
      e1 = e;
    }
    expectCaptureError(e1, f, 60, 'record 1', /file ends inside record: 12 of 60 bytes/);
    expect(batch.count).toBe(0);
    // Later calls keep failing the same way (never a silent clean end).
    expect(() => r.next(batch)).toThrow(e1 as Error);
    r.close();

    const g = write('cuthdr.pcap', full.subarray(0, 24 + 36 + 5));
    const res = readAll(g);
    expect(res.recs).toHaveLength(1);
    expectCaptureError(res.error, g, 60, 'record 1', /file ends inside record header: 5 of 16 bytes/);
  });

  it('rejects unreadable, empty and unknown files at open', () => {
    const cases: [string, Uint8Array | null, RegExp][] = [
      ['missing', null, /cannot open/],
      ['empty', new Uint8Array(0), /empty file/],
      ['tiny', Uint8Array.of(1, 2), /too short/],
      ['text', utf8('hello world, not a capture'), /unknown magic 0x68656c6c/],
      ['gzip', Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0), /gzip/],
      ['shorthdr', pcapFile({}, []).subarray(0, 20), /ends inside the pcap file header: 20 of 24/],
      ['v1', pcapFile({ major: 1, minor: 0 }, []), /major version 1 unsupported/],
      ['ngshort', shb(true).subarray(0, 10), /first Section Header Block/],
      ['ngmagic', concat(u32b(true, 0x0a0d0d0a), u32b(true, 28), u32b(true, 0x12345678)), /unknown byte-order magic 0x78563412/],
      ['ngver', shb(true, [], 2, 0), /unsupported SHB version 2\.0/],
      ['ngtrail', block(true, 0x0a0d0d0a, (b) => b.u32(0x1a2b3c4d).u16(1).u16(0).u64(-1n), 0, 4), /trailing block length 32 differs from leading 28/],
    ];
    for (const [name, bytes, what] of cases) {
      const f = bytes ? write(name, bytes) : path.join(tmp, 'does-not-exist.pcap');
      let err: unknown;
      try {
        CaptureReader.open(f);
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(CaptureError);
      expect((err as CaptureError).file).toBe(f);
      expect((err as CaptureError).what, name).toMatch(what);
    }
    let dirErr: unknown;
    try {
      CaptureReader.open(tmp);
    } catch (e) {
      dirErr = e;
    }
    expect(dirErr).toBeInstanceOf(CaptureError);
  });

  it('carries an out-of-range fraction into the seconds', () => {
    // tshark multiplies in 32 bits (garbage), tcpdump prints "(invalid us)"; dpemu keeps nsec < 1e9.
    const f = write('frac.pcap', pcapFile({}, [{ sec: 10, frac: 2147483648, data: payload(0, 4) }]));
    const { recs: got } = readAll(f);
    expect([got[0]!.sec, got[0]!.nsec]).toEqual([10 + 2147, 483648000]);
    const g = write('fracns.pcap', pcapFile({ ns: true }, [{ sec: 10, frac: 1000000000, data: payload(0, 4) }]));
    expect(readAll(g).recs.map((x) => [x.sec, x.nsec])).toEqual([[11, 0]]);
  });

  it('swaps the length fields of format versions before 2.3, and in 2.3 when incl > orig', () => {
    const data = payload(0, 30);
    const v22 = write('v22.pcap', pcapFile({ major: 2, minor: 2, network: 1 }, [{ sec: 1, frac: 0, incl: 1000, orig: 30, data }]));
    expect(readAll(v22).recs.map((x) => [x.caplen, x.origlen])).toEqual([[30, 1000]]);
    const v23 = write('v23.pcap', pcapFile({ major: 2, minor: 3 }, [
      { sec: 1, frac: 0, incl: 1000, orig: 30, data },
      { sec: 1, frac: 0, incl: 30, orig: 40, data },
    ]));
    expect(readAll(v23).recs.map((x) => [x.caplen, x.origlen])).toEqual([
      [30, 1000],
      [30, 40],
    ]);
  });

  it('reads the 1999 "modified" pcap variants and AIX pcap like wiretap', () => {
    const recs3 = [0, 1, 2, 3].map((i) => ({ sec: 100 + i, frac: 5, data: payload(i, 40 + i) }));
    // Kuznetzov magic: SS991029 (24-byte record headers: ifindex, protocol, pkt_type, pad).
    const ss991029 = write('ss991029.pcap', pcapFile({ magic: 0xa1b2cd34 }, recs3, (b) => b.u32(2).u16(0x0800).u8(0).u8(0)));
    const a = readAll(ss991029);
    expect(a.r.variant).toBe('pcap SS991029');
    expect(a.recs.map((x) => x.data)).toEqual(recs3.map((x) => [...x.data]));
    // ... or SS990915 (28-byte headers), told apart by the heuristics.
    const ss990915 = write('ss990915.pcap', pcapFile({ magic: 0xa1b2cd34 }, recs3, (b) => b.u32(2).u16(0x0800).u8(0).raw([0, 0, 0, 0, 0])));
    const b2 = readAll(ss990915);
    expect(b2.r.variant).toBe('pcap SS990915');
    expect(b2.recs.map((x) => x.data)).toEqual(recs3.map((x) => [...x.data]));
    // Standard magic, but SS990417 headers (RedHat 6.1): the standard layout scores badly.
    const ss990417 = write('ss990417.pcap', pcapFile({}, recs3, (b) => b.u32(2).u16(0x0800).u8(4).u8(0)));
    const c = readAll(ss990417);
    expect(c.r.variant).toBe('pcap SS990417');
    expect(c.recs.map((x) => x.data)).toEqual(recs3.map((x) => [...x.data]));
    // A plain file stays plain.
    expect(readAll(write('plain.pcap', pcapFile({}, recs3))).r.variant).toBe('pcap');
    // AIX: version 2.2, ifType 6 (Ethernet), nanosecond timestamps, swapped lengths.
    const aix = write('aix.pcap', pcapFile({ major: 2, minor: 2, network: 6 }, [{ sec: 7, frac: 123456789, incl: 60, orig: 40, data: payload(0, 40) }]));
    const d = readAll(aix);
    expect(d.r.variant).toBe('AIX pcap');
    expect(d.r.nanosecond).toBe(true);
    expect(d.r.interfaces[0]!.linktype).toBe(1);
    expect(d.recs.map((x) => [x.sec, x.nsec, x.caplen, x.origlen])).toEqual([[7, 123456789, 40, 60]]);
  });

  it('reads Ixia lcap files (4 extra header bytes)', () => {
    const base = pcapFile({ magic: 0x1c0001ac }, [{ sec: 1, frac: 42, data: payload(0, 8) }]);
    const withExtra = concat(base.subarray(0, 24), u32b(true, 24), base.subarray(24));
    const { r, recs: got } = readAll(write('ixia.pcap', withExtra));
    expect(r.nanosecond).toBe(true);
    expect(got.map((x) => [x.nsec, x.data])).toEqual([[42, [...payload(0, 8)]]]);
  });
});

// ---------------------------------------------------------------------------------------------
// pcapng

describe('pcapng', () => {
  /**
   * Section 0 (little-endian): SHB options; IDB 0 Ethernet (µs default), IDB 1 RAW with
   * if_tsresol 10^-9, if_tsoffset, name, description, fcslen; EPBs on both with comments and
   * flags; an SPB; custom, unknown, NRB, ISB, DSB blocks.
   * Section 1 (big-endian): IDB with if_tsresol 2^-8; EPB; SPB limited by snaplen.
   */
  function twoSections(): Uint8Array {
    const L = true;
    const B = false;
    return concat(
      shb(L, [
        [2, utf8('hw')],
        [3, utf8('Linux 6.18')],
        [4, utf8('dpemu test')],
        [1, utf8('section comment')],
      ]),
      idb(L, 1, 0, [[2, utf8('eth0')]]),
      idb(L, 101, 128, [
        [2, utf8('tun0')],
        [3, utf8('a tunnel')],
        [9, u8(9)],
        [13, u8(32)],
        [14, u64b(L, -100n)],
        [1, utf8('if comment')],
      ]),
      block(L, 0x40000bad, (b) => b.u32(32473).raw(utf8('custom data'))),
      epb(L, 0, 1700000000123456n, payload(0, 60), [
        [1, utf8('first comment')],
        [1, utf8('second, with comma')],
        [2, u32b(L, 0x00000001)],
      ]),
      block(L, 0x12345678, (b) => b.raw(payload(9, 13))), // unknown type: skipped
      block(L, 4, (b) => b.u16(1).u16(8).raw([10, 0, 0, 1, 0x61, 0, 0x62, 0]).u16(0).u16(0)), // NRB
      epb(L, 1, 1700000000999999999n, payload(1, 61)),
      block(L, 5, (b) => b.u32(0).u32(0).u32(0)), // ISB
      block(L, 0x0a, (b) => b.u32(0x45535053).u32(5).raw(utf8('abcde')).pad4()), // DSB
      spb(L, payload(2, 62)),
      block(L, 0xbad, (b) => b.u32(32473)),
      shb(B),
      idb(B, 228, 100, [[9, u8(0x88)]]),
      epb(B, 0, (1700000000n << 8n) | 0x81n, payload(3, 63), [[2, u32b(B, 0x00000002)]]),
      spb(B, payload(4, 100), 1500),
      epb(B, 0, 0n, payload(5, 0)),
    );
  }

  it('reads several sections of different byte order, interfaces, options and skipped blocks', () => {
    const f = write('two.pcapng', twoSections());
    const { r, recs: got, error } = readAll(f);
    expect(error).toBeUndefined();
    expect(r.format).toBe('pcapng');
    expect(r.littleEndian).toBe(true);
    expect(r.nanosecond).toBe(false);
    expect(r.customBlocks).toBe(2);
    expect(r.errors).toEqual([]);
    expect(r.sections).toHaveLength(2);
    expect(r.sections[0]).toEqual({ index: 0, offset: 0, littleEndian: true, major: 1, minor: 0, hardware: 'hw', os: 'Linux 6.18', userAppl: 'dpemu test', comments: ['section comment'] });
    expect(r.sections[1]).toMatchObject({ index: 1, littleEndian: false, major: 1, minor: 0 });
    expect(r.interfaces).toEqual([
      { id: 0, section: 0, localId: 0, linktype: 1, fcsLen: 0, snaplen: 0, name: 'eth0', tsUnitsPerSec: 1e6, tsOffsetSec: 0 },
      { id: 1, section: 0, localId: 1, linktype: 101, fcsLen: 4, snaplen: 128, name: 'tun0', description: 'a tunnel', comments: ['if comment'], tsUnitsPerSec: 1e9, tsOffsetSec: -100 },
      { id: 2, section: 1, localId: 0, linktype: 228, fcsLen: 0, snaplen: 100, tsUnitsPerSec: 256, tsOffsetSec: 0 },
    ]);
    expect(got.map((x) => [x.iface, x.sec, x.nsec, x.caplen, x.origlen, x.flags])).toEqual([
      [0, 1700000000, 123456000, 60, 60, 1],
      [1, 1700000000 - 100, 999999999, 61, 61, 0],
      [0, 0, 0, 62, 62, 0], // SPB: interface 0 of its section, no timestamp
      [2, 1700000000, 503906250, 63, 63, 2], // 0x81/256 s
      [2, 0, 0, 100, 1500, 0], // SPB: min(orig 1500, snaplen 100)
      [2, 0, 0, 0, 0, 0],
    ]);
    expect(got.map((x) => x.data)).toEqual([payload(0, 60), payload(1, 61), payload(2, 62), payload(3, 63), payload(4, 100), payload(5, 0)].map((p) => [...p]));
    expect(got[0]!.comments).toEqual(['first comment', 'second, with comma']);
    expect(got.slice(1).every((x) => x.comments === undefined)).toBe(true);
    expect(got.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5]);
    // fileOffset: the block's own offset.
    const bytes = fs.readFileSync(f);
    for (const x of got) expect([3, 6].includes(bytes.readUInt32LE(x.fileOffset)) || [3, 6].includes(bytes.readUInt32BE(x.fileOffset))).toBe(true);
    expect(r.bytesConsumed).toBe(bytes.length);
  });

  it('gives the same records whatever the buffer and batch sizes', () => {
    const f = write('two.pcapng', twoSections());
    const ref = readAll(f).recs;
    for (const bufferSize of [64, 100, 256, 1000]) {
      for (const cap of [1, 2, 5]) {
        const { recs: got, error } = readAll(f, { bufferSize }, cap);
        expect(error).toBeUndefined();
        expect(got).toEqual(ref);
      }
    }
  });

  it('converts timestamps exactly for every resolution (checked against BigInt arithmetic)', () => {
    const resolutions = [0, 1, 3, 6, 9, 10, 12, 15, 19, 0x80, 0x81, 0x88, 0x8a, 0x94, 0x9e, 0x9f, 0xa0, 0xa1, 0xa8, 0xb0, 0xbf];
    const arb = fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 1, maxLength: 40 });
    fc.assert(
      fc.property(fc.constantFrom(...resolutions), arb, fc.bigInt({ min: -(1n << 40n), max: 1n << 40n }), (resol, stamps, offset) => {
        const le = (resol & 1) === 0;
        const parts = [shb(le), idb(le, 1, 0, [[9, u8(resol)], [14, u64b(le, offset)]])];
        for (const ts of stamps) parts.push(epb(le, 0, ts, payload(0, 1)));
        const f = write('ts.pcapng', concat(...parts));
        const { recs: got, error } = readAll(f, {}, 16);
        expect(error).toBeUndefined();
        const units = resol & 0x80 ? 1n << BigInt(resol & 0x7f) : 10n ** BigInt(resol);
        stamps.forEach((ts, i) => {
          const secs = ts / units + offset;
          const nsec = ((ts % units) * 1000000000n) / units;
          // Seconds are exact while they fit in a double's 53 bits.
          if (secs < 1n << 53n && secs > -(1n << 53n)) expect(got[i]!.sec).toBe(Number(secs));
          expect(got[i]!.nsec).toBe(Number(nsec));
        });
        fs.rmSync(f);
      }),
      { numRuns: 150 },
    );
  });

  it('converts edge timestamps exactly (around 2^52, 2^53, 2^64 and multiples of the unit)', () => {
    const edges: bigint[] = [0n, 1n, (1n << 52n) - 1n, 1n << 52n, (1n << 53n) + 1n, (1n << 64n) - 1n, 0xfffffn << 32n, 0x100000n << 32n];
    for (const unit of [1000n, 1000000n, 1000000000n]) {
      for (const base of [(1n << 64n) / unit, (1n << 52n) / unit, 1700000000n * (1000000000n / unit)]) {
        for (const k of [base - 1n, base]) for (const dv of [0n, 1n, unit - 1n]) edges.push(k * unit + dv);
      }
    }
    const valid = edges.filter((t) => t >= 0n && t < 1n << 64n);
    for (const resol of [3, 6, 9, 12, 0x9e, 0xa0]) {
      const parts = [shb(true), idb(true, 1, 0, [[9, u8(resol)]])];
      for (const ts of valid) parts.push(epb(true, 0, ts, payload(0, 1)));
      const { recs: got, error } = readAll(write('edge.pcapng', concat(...parts)));
      expect(error).toBeUndefined();
      const units = resol & 0x80 ? 1n << BigInt(resol & 0x7f) : 10n ** BigInt(resol);
      valid.forEach((ts, i) => {
        const secs = ts / units;
        if (secs < 1n << 53n) expect(got[i]!.sec, `${ts} @ ${resol}`).toBe(Number(secs));
        expect(got[i]!.nsec, `${ts} @ ${resol}`).toBe(Number(((ts % units) * 1000000000n) / units));
      });
    }
  });

  it('treats SHB version 1.2 as 1.0', () => {
    const f = write('v12.pcapng', concat(shb(true, [], 1, 2), idb(true, 1, 0), epb(true, 0, 5n, payload(0, 4))));
    const { recs: got, error, r } = readAll(f);
    expect(error).toBeUndefined();
    expect(got).toHaveLength(1);
    expect(r.sections[0]).toMatchObject({ major: 1, minor: 2 });
  });

  it('reads obsolete Packet Blocks (type 2)', () => {
    const pb = block(true, 2, (b) => {
      b.u16(0).u16(7).u32(0).u32(1000001).u32(5).u32(9).raw(payload(0, 5)).pad4();
      opts(b, [[2, u32b(true, 2)]]);
    });
    const f = write('pb.pcapng', concat(shb(true), idb(true, 1, 0), pb));
    expect(readAll(f).recs.map((x) => [x.sec, x.nsec, x.caplen, x.origlen, x.flags, x.data])).toEqual([[1, 1000, 5, 9, 2, [...payload(0, 5)]]]);
  });

  it('rounds block lengths up to a multiple of 4 like wiretap', () => {
    // An EPB whose length fields leave out the data padding (as some old writers did).
    const e = epb(true, 0, 1n, payload(0, 5));
    const dv = new DataView(e.buffer);
    dv.setUint32(4, 37, true);
    dv.setUint32(e.length - 4, 37, true);
    const f = write('round.pcapng', concat(shb(true), idb(true, 1, 0), e));
    const { recs: got, error } = readAll(f);
    expect(error).toBeUndefined();
    expect(got.map((x) => x.data)).toEqual([[...payload(0, 5)]]);
  });

  describe('damage', () => {
    const L = true;
    const good = (i: number): Uint8Array => epb(L, 0, BigInt(i), payload(i, 40 + i));
    const head = (): Uint8Array => concat(shb(L), idb(L, 1, 0));
    const headLen = head().length;

    /** Files with damage after two good EPBs, followed by two more good EPBs. */
    const damaged: [name: string, bad: Uint8Array, where: RegExp, what: RegExp][] = [
      ['trailer', block(L, 6, (b) => b.u32(0).u32(0).u32(9).u32(4).u32(4).u32(0xdeadbeef), 0, 4), /^block 4 \(Enhanced Packet Block\)$/, /trailing block length 40 differs from leading 36/],
      ['iface', epb(L, 3, 1n, payload(0, 4)), /^block 4 \(Enhanced Packet Block\)$/, /EPB references interface 3 but the section has 1/],
      ['short', block(L, 6, (b) => b.u32(0).u32(0), 0, 0), /^block 4 \(Enhanced Packet Block\)$/, /block total length 20 is less than the minimum Enhanced Packet Block size 32/],
      ['tiny', concat(u32b(L, 6), u32b(L, 7), u32b(L, 7)), /^block 4/, /block total length 7 is less than the minimum Enhanced Packet Block size 32/],
      ['caplen', block(L, 6, (b) => b.u32(0).u32(0).u32(0).u32(100).u32(100).raw(payload(0, 8))), /^block 4/, /too small for 100 bytes of packet data/],
      ['flags', epb(L, 0, 1n, payload(0, 4), [[2, Uint8Array.of(1, 2, 3)]]), /^block 4/, /epb_flags option length 3 is not 4/],
      ['option', block(L, 6, (b) => b.u32(0).u32(0).u32(0).u32(4).u32(4).raw(payload(0, 4)).u16(1).u16(200)), /^block 4/, /option 1 length 200 runs past the end/],
      ['garbage', Uint8Array.of(1, 2, 3, 4, 5, 6, 7), /^block 4 \(block type 0x04030201\)$/, /file ends inside block: \d+ of 101123592 bytes/],
      ['too-large', concat(u32b(L, 6), u32b(L, 0xfffffff0), payload(0, 24)), /^block 4/, /block total length 4294967280 is too large/],
      ['idb-resol', idb(L, 1, 0, [[9, u8(20)]]), /^block 4 \(Interface Description Block\)$/, /if_tsresol 10\^-20 is finer than 10\^-19/],
      ['spb-snap', block(L, 3, (b) => b.u32(1000).raw(payload(0, 8))), /^block 4 \(Simple Packet Block\)$/, /too small for 1000 bytes/],
      ['big-caplen', block(L, 6, (b) => b.u32(0).u32(0).u32(0).u32(300000).u32(300000).raw(new Uint8Array(300000))), /^block 4/, /captured length 300000 exceeds the maximum 262144 for link type ETHERNET/],
    ];
    for (const [name, bad, where, what] of damaged) {
      it(`${name}: 'stop' returns the records before the damage, then throws a located error`, () => {
        const f = write(`${name}.pcapng`, concat(head(), good(0), good(1), bad, good(2), good(3)));
        const r = CaptureReader.open(f);
        const batch = new RecordBatch(100);
        expect(r.next(batch)).toBe(2);
        let err: unknown;
        try {
          r.next(batch);
        } catch (e) {
          err = e;
        }
        const offset = headLen + good(0).length + good(1).length;
        expectCaptureError(err, f, offset, where, what);
        expect(() => r.next(batch)).toThrow(CaptureError);
        r.close();
      });
      it(`${name}: 'skip' records the damage and resyncs on the next valid block`, () => {
        const f = write(`${name}.pcapng`, concat(head(), good(0), good(1), bad, good(2), good(3)));
        for (const bufferSize of [64, 4096]) {
          const { r, recs: got, error } = readAll(f, { onDamage: 'skip', bufferSize });
          expect(error).toBeUndefined();
          expect(got.map((x) => x.data)).toEqual([0, 1, 2, 3].map((i) => [...payload(i, 40 + i)]));
          expect(got.map((x) => x.index)).toEqual([0, 1, 2, 3]);
          expect(r.errors.length).toBeGreaterThanOrEqual(1);
          expect(r.errorCount).toBe(r.errors.length);
          const offset = headLen + good(0).length + good(1).length;
          expectCaptureError(r.errors[0], f, offset, where, what);
        }
      });
    }

    it("'skip' at the end of a truncated file: records, then one error, then a clean end", () => {
      const full = concat(head(), good(0), good(1), good(2));
      const f = write('cut.pcapng', full.subarray(0, full.length - 10));
      const stop = readAll(f);
      expect(stop.recs).toHaveLength(2);
      expectCaptureError(stop.error, f, headLen + good(0).length + good(1).length, /^block 4/, /file ends inside block: \d+ of 76 bytes/);
      const skip = readAll(f, { onDamage: 'skip' });
      expect(skip.error).toBeUndefined();
      expect(skip.recs).toHaveLength(2);
      expect(skip.r.errors).toHaveLength(1);
    });

    it("an unsupported SHB version stops ('stop') or skips its whole section ('skip')", () => {
      const v2 = block(L, 0x0a0d0d0a, (b) => b.u32(0x1a2b3c4d).u16(2).u16(0).u64(-1n));
      const f = write(
        'v2.pcapng',
        concat(head(), good(0), v2, idb(L, 1, 0), good(1), block(L, 0xbad, (b) => b.u32(1)), shb(L), idb(L, 1, 0), good(2)),
      );
      const stop = readAll(f);
      expect(stop.recs).toHaveLength(1);
      expectCaptureError(stop.error, f, headLen + good(0).length, /^block 3 \(Section Header Block\)$/, /unsupported SHB version 2\.0/);
      const skip = readAll(f, { onDamage: 'skip' });
      expect(skip.error).toBeUndefined();
      expect(skip.recs.map((x) => x.data)).toEqual([[...payload(0, 40)], [...payload(2, 42)]]);
      expect(skip.r.errors).toHaveLength(1);
      expect(skip.r.customBlocks).toBe(0);
      expect(skip.r.sections.map((s) => s.major)).toEqual([1, 2, 1]);
      expect(skip.r.interfaces.map((i) => i.section)).toEqual([0, 2]);
      expect(skip.recs[1]!.iface).toBe(1);
    });

    it("'skip' terminates on arbitrary garbage and keeps memory bounded", () => {
      const junk = new Uint8Array(200000);
      let x = 12345;
      for (let i = 0; i < junk.length; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        junk[i] = x >>> 24;
      }
      // Sprinkle fake block types to tempt the scanner.
      for (let i = 0; i < junk.length - 8; i += 997) junk.set(u32b(L, 6), i);
      const f = write('junk.pcapng', concat(head(), good(0), junk, good(1)));
      const { r, recs: got, error } = readAll(f, { onDamage: 'skip', bufferSize: 4096 });
      expect(error).toBeUndefined();
      expect(got.map((y) => y.data)).toEqual([[...payload(0, 40)], [...payload(1, 41)]]);
      expect(r.errors.length).toBeGreaterThanOrEqual(1);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// The buffer

describe('buffer', () => {
  it('moves records that straddle the end of a small buffer to the front (pcap)', () => {
    const recs: PcapRec[] = [];
    for (let i = 0; i < 300; i++) recs.push({ sec: i, frac: i, data: payload(i, (i * 37) % 120) });
    const f = write('many.pcap', pcapFile({}, recs));
    const ref = readAll(f).recs;
    expect(ref).toHaveLength(300);
    for (const cap of [1, 7, 300]) {
      const { recs: got, batches, error } = readAll(f, { bufferSize: 256 }, cap);
      expect(error).toBeUndefined();
      expect(got).toEqual(ref);
      expect(batches.length).toBeGreaterThanOrEqual(Math.max(2, 300 / cap));
    }
    expect(ref.map((x) => x.data)).toEqual(recs.map((x) => [...x.data]));
  });

  it('grows the buffer for a record bigger than it, and keeps the records right', () => {
    const big = payload(1, 5000);
    const recs: PcapRec[] = [
      { sec: 1, frac: 0, data: payload(0, 100) },
      { sec: 2, frac: 0, data: big },
      { sec: 3, frac: 0, data: payload(2, 100) },
    ];
    const f = write('big.pcap', pcapFile({}, recs));
    let allocated: number[] = [];
    const { recs: got, error } = readAll(f, { bufferSize: 256, allocate: (n) => (allocated.push(n), new Uint8Array(n)) });
    expect(error).toBeUndefined();
    expect(got.map((x) => x.data)).toEqual(recs.map((x) => [...x.data]));
    expect(allocated[0]).toBe(256);
    expect(Math.max(...allocated)).toBeGreaterThanOrEqual(5016);
    expect(Math.max(...allocated)).toBeLessThan(16384);

    const g = write('big.pcapng', concat(shb(true), idb(true, 1, 0), epb(true, 0, 1n, payload(0, 10)), epb(true, 0, 2n, big), epb(true, 0, 3n, payload(2, 10))));
    allocated = [];
    const ng = readAll(g, { bufferSize: 256, allocate: (n) => (allocated.push(n), new Uint8Array(n)) });
    expect(ng.error).toBeUndefined();
    expect(ng.recs.map((x) => x.data)).toEqual([payload(0, 10), big, payload(2, 10)].map((p) => [...p]));
    expect(Math.max(...allocated)).toBeGreaterThanOrEqual(5032);
  });

  it('can allocate its buffer in a SharedArrayBuffer', () => {
    const f = write('sab.pcap', pcapFile({}, [{ sec: 1, frac: 0, data: payload(0, 33) }]));
    const r = CaptureReader.open(f, { allocate: (n) => new Uint8Array(new SharedArrayBuffer(n)) });
    const batch = new RecordBatch(4);
    expect(r.next(batch)).toBe(1);
    expect(batch.buf.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([...batch.buf.subarray(batch.offset[0]!, batch.offset[0]! + 33)]).toEqual([...payload(0, 33)]);
    expect(r.next(batch)).toBe(0);
    r.close();
  });

  it('reads a pipe sequentially (fromFd), whatever the chunking', async () => {
    const recs: PcapRec[] = [];
    for (let i = 0; i < 2000; i++) recs.push({ sec: i, frac: 0, data: payload(i, 64 + (i % 50)) });
    const f = write('pipe.pcap', pcapFile({}, recs));
    const fifo = path.join(tmp, 'fifo');
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      return; // no mkfifo here
    }
    // A writer that trickles the file in small pieces.
    const child = spawn('sh', ['-c', `dd if="${f}" bs=999 2>/dev/null > "${fifo}"`], { stdio: 'ignore' });
    const fd = fs.openSync(fifo, 'r');
    const r = CaptureReader.fromFd(fd, 'stdin', { bufferSize: 1024 });
    expect(r.fileSize).toBe(-1);
    const batch = new RecordBatch(64);
    const got: number[][] = [];
    for (;;) {
      const n = r.next(batch);
      if (!n) break;
      for (let i = 0; i < n; i++) got.push([...batch.buf.subarray(batch.offset[i]!, batch.offset[i]! + batch.caplen[i]!)]);
    }
    r.close();
    fs.closeSync(fd);
    await new Promise((res) => child.on('exit', res));
    expect(got).toEqual(recs.map((x) => [...x.data]));
  });
});

describe('fuzzing', () => {
  it('throws nothing but CaptureError and always terminates on mutated files', () => {
    const seeds = [
      pcapFile({}, [0, 1, 2, 3, 4].map((i) => ({ sec: i, frac: i, data: payload(i, 20 + 9 * i) }))),
      pcapFile({ le: false, ns: true }, [0, 1, 2].map((i) => ({ sec: i, frac: i, data: payload(i, 30) }))),
      concat(
        shb(true, [[1, utf8('c')]]),
        idb(true, 1, 64, [[9, u8(0x86)]]),
        epb(true, 0, 99n, payload(0, 30), [[1, utf8('x')], [2, u32b(true, 1)]]),
        spb(true, payload(1, 70)),
        block(true, 4, (b) => b.u16(1).u16(6).raw([1, 2, 3, 4, 0x61, 0]).u32(0)),
        shb(false),
        idb(false, 101, 0),
        epb(false, 0, 5n, payload(2, 33)),
        block(false, 0xbad, (b) => b.u32(7)),
      ),
    ];
    const mutation = fc.record({
      seed: fc.nat({ max: seeds.length - 1 }),
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { maxLength: 6 }),
      cut: fc.option(fc.nat()),
      skip: fc.boolean(),
      bufferSize: fc.constantFrom(64, 100, 4096),
    });
    const f = path.join(tmp, 'fuzz.bin');
    const batch = new RecordBatch(3);
    fc.assert(
      fc.property(mutation, (m) => {
        let b = [...seeds[m.seed]!];
        for (const [at, v, op] of m.edits) {
          // Keep the magic most of the time so that the parsers, not open(), get the damage.
          const i = 4 + (at % Math.max(1, b.length - 4));
          if (op === 'set') b[i] = v;
          else if (op === 'insert') b.splice(i, 0, v);
          else b.splice(i, 1);
        }
        if (m.cut !== null) b = b.slice(0, m.cut % (b.length + 1));
        fs.writeFileSync(f, Uint8Array.from(b));
        let reader: CaptureReader | undefined;
        try {
          reader = CaptureReader.open(f, { onDamage: m.skip ? 'skip' : 'stop', bufferSize: m.bufferSize });
          for (let calls = 0; ; calls++) {
            if (calls > 10000) throw new Error('does not terminate');
            const n = reader.next(batch);
            if (n === 0) break;
            for (let i = 0; i < n; i++) {
              expect(batch.offset[i]! + batch.caplen[i]!).toBeLessThanOrEqual(batch.buf.length);
              expect(batch.tsNsec[i]!).toBeLessThan(1e9);
            }
          }
          for (const e of reader.errors) expect(e).toBeInstanceOf(CaptureError);
        } catch (e) {
          if (!(e instanceof CaptureError)) throw e;
          expect(e.message).toContain(f);
        } finally {
          reader?.close();
        }
      }),
      { numRuns: 1500 },
    );
  });
});

describe('linktypeName', () => {
  it('names link types', () => {
    expect(linktypeName(1)).toBe('ETHERNET');
    expect(linktypeName(0)).toBe('NULL');
    expect(linktypeName(101)).toBe('RAW');
    expect(linktypeName(113)).toBe('LINUX_SLL');
    expect(linktypeName(228)).toBe('IPV4');
    expect(linktypeName(229)).toBe('IPV6');
    expect(linktypeName(276)).toBe('LINUX_SLL2');
    expect(linktypeName(150)).toBe('RESERVED_04');
    expect(linktypeName(65000)).toBe('LINKTYPE_65000');
  });
});
