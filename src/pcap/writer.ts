/**
 * Capture writer: pcap (SEMANTICS.md §7.1) and pcapng (§7.2, DSB §3.4).
 *
 * Everything goes through one reusable output Buffer and one long-lived DataView over it; the
 * buffer is flushed with fs.writeSync when the next record would not fit. The record hot path
 * (writeRecord / writeBatch, with or without comments) allocates nothing for frames up to
 * WORD_COPY_MAX bytes: headers are stored through the DataView, frame bytes are copied with
 * 32-bit DataView loads/stores (see copyFrame), ASCII comments are stored four characters per
 * store, and the 64-bit pcapng timestamp is computed with exact float arithmetic, not BigInt.
 *
 * Files are written atomically: `open()` writes to `${dir}/.${base}.${pid}.tmp` in the same
 * directory and `commit()` renames it over the final path, so a failed run never leaves a
 * half-written capture at the final path. `abort()` (idempotent) closes and removes the temp
 * file; a process that exits without committing (uncaught exception, process.exit) removes the
 * temp files of its live writers from an 'exit' hook. Signals are the CLI's business: it can call
 * abortAllWriters() from its SIGINT/SIGTERM handler.
 *
 * All multi-byte fields are written little endian (the native order of the machines we run on);
 * the pcap magic and the pcapng byte-order magic say so to readers.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import type { DecryptionSecrets, OutputInterface, RecordBatch } from './types.js';
import { SECRETS_TYPE_ESP_SA } from './types.js';
import { copyBytes, WORD_COPY_MAX } from '../util/bytes.js';
import { BT_EPB, OPT_COMMENT, OPT_ENDOFOPT, OPT_EPB_FLAGS, pad4, putCommentOptions, putEpbFlags, putEpbHead, putNgTimestamp, putPcapRecordHeader } from './records.js';

export interface WriterOptions {
  format: 'pcap' | 'pcapng';
  /** pcap only: nanosecond magic 0xA1B23C4D (default false: µs, 0xA1B2C3D4). pcapng always writes if_tsresol=9. */
  nanosecond?: boolean;
  /** pcap: exactly one (its linktype, snaplen default 262144); pcapng: one IDB each, ids 0..n-1. */
  interfaces: OutputInterface[];
  /** pcapng only: Decryption Secrets Blocks written after the IDBs, before packets. */
  secrets?: DecryptionSecrets[];
  /** pcapng SHB opt_comment. */
  sectionComment?: string;
  /** pcapng shb_userappl, e.g. "dpemu 0.1.0". */
  userAppl?: string;
  /** Size of the reusable output buffer (default 4 MiB); grown only for a record larger than it. */
  bufferSize?: number;
  /** Refuse (WriterError) to write over any of these. */
  inputPaths?: string[];
}

/** An output problem: which file and why (fs errors keep their code, e.g. ENOSPC). */
export class WriterError extends Error {
  override readonly name = 'WriterError';
  constructor(
    message: string,
    /** The output path concerned (or '' when not about a file). */
    readonly path = '',
    /** The fs error code (ENOSPC, EACCES, EISDIR, ...) when the cause is an fs error. */
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Constants

const DEFAULT_BUFFER_SIZE = 4 << 20;
const MIN_BUFFER_SIZE = 4096;
const PCAP_DEFAULT_SNAPLEN = 262144;
const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;

const BT_SHB = 0x0a0d0d0a;
const BT_IDB = 0x00000001;
const BT_DSB = 0x0000000a;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

const OPT_SHB_USERAPPL = 4;
const OPT_IF_NAME = 2;
const OPT_IF_DESCRIPTION = 3;
const OPT_IF_TSRESOL = 9;
const OPT_IF_FCSLEN = 13;

/** Longest option value (the option length is a u16). */
const MAX_OPT_LEN = 0xffff;
const TWO_32 = 4294967296;

/**
 * Bytes kept free after `limit` in the output buffer: copyFrame copies whole 16-byte chunks, so
 * it may write up to 15 bytes past the end of a frame. They are overwritten by what follows, or
 * lie past `pos` and are never written out. Every block stores all of its bytes explicitly
 * (headers, options, padding), so no code relies on the buffer being zero past `pos`.
 */
const COPY_SLACK = 16;



// ---------------------------------------------------------------------------------------------
// Writers alive in this process, so an exit without commit removes their temp files.

const liveWriters = new Set<CaptureWriter>();
let exitHookInstalled = false;

function trackWriter(w: CaptureWriter): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', abortAllWriters);
  }
  liveWriters.add(w);
}

/** Abort every writer of this process that is neither committed nor aborted (for signal handlers). */
export function abortAllWriters(): void {
  for (const w of [...liveWriters]) w.abort();
}

function fsReason(e: unknown): { reason: string; code?: string } {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && typeof err.message === 'string') {
    return { reason: err.message, code: typeof err.code === 'string' ? err.code : undefined };
  }
  return { reason: String(e) };
}

/** Do two stats name the same file (device and inode)? */
export function sameFile(a: fs.Stats, b: fs.Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

type State = 'open' | 'committed' | 'aborted';

export class CaptureWriter {
  // --- output file
  /** Path the caller asked for (for messages). */
  private readonly displayPath: string;
  /** Final path (symlinks resolved) the temp file is renamed to; null when writing to an fd. */
  private readonly finalPath: string | null;
  private readonly tmpPath: string | null;
  private fd: number;
  private readonly ownsFd: boolean;
  private state: State = 'open';

  // --- buffer
  private out: Buffer;
  private dv: DataView;
  private pos = 0;
  /**
   * Capacity used by the "does it fit" test of the hot path. -1 once the writer is closed, so
   * that a write after commit/abort/failure falls into the cold path, which throws.
   */
  private limit: number;
  private flushed = 0;

  // --- format
  private readonly ng: boolean;
  private readonly ns: boolean;
  private readonly interfaces: OutputInterface[] = [];
  private nIf = 0;
  /** Effective snaplen per interface id (0 = no limit, pcapng only). */
  private snaplens = new Uint32Array(8);

  // --- long-lived DataViews of the last two source buffers of writeRecord (writeBatch uses
  // batch.dv): a node sends frames from the input buffer and from its own level buffers.
  private srcBuf: Uint8Array | null = null;
  private srcDv: DataView | null = null;
  private srcBuf2: Uint8Array | null = null;
  private srcDv2: DataView | null = null;

  // --- flushAsync: the buffer an fs.write in flight is writing (not touched until it is done),
  // that write, and its error (thrown by the next settle()).
  private spare: Buffer | null = null;
  private inFlight: Promise<void> | null = null;
  private asyncError: unknown = null;

  private records = 0;
  /** Comments dropped because the format (pcap) cannot carry them. */
  private dropped = 0;
  /** Records whose caplen exceeds their interface's snaplen (written whole). */
  private overSnaplen = 0;

  private constructor(
    displayPath: string,
    finalPath: string | null,
    tmpPath: string | null,
    fd: number,
    ownsFd: boolean,
    opts: WriterOptions,
  ) {
    this.displayPath = displayPath;
    this.finalPath = finalPath;
    this.tmpPath = tmpPath;
    this.fd = fd;
    this.ownsFd = ownsFd;
    this.ng = opts.format === 'pcapng';
    this.ns = !!opts.nanosecond;
    const size = Math.max(MIN_BUFFER_SIZE, Math.floor(opts.bufferSize ?? DEFAULT_BUFFER_SIZE));
    this.out = Buffer.alloc(size + COPY_SLACK);
    this.dv = new DataView(this.out.buffer, this.out.byteOffset, this.out.byteLength);
    this.limit = size;
  }

  // ===========================================================================================
  // Opening

  /** Open `path` for writing through a temp file in the same directory (renamed by commit()). */
  static open(path: string, opts: WriterOptions): CaptureWriter {
    validateOptions(path, opts);
    let target = nodePath.resolve(path);
    let outStat: fs.Stats | undefined;
    try {
      outStat = fs.statSync(target);
    } catch (e) {
      const { code } = fsReason(e);
      if (code !== 'ENOENT') {
        const r = fsReason(e);
        throw new WriterError(`${path}: cannot write output: ${r.reason}`, path, r.code, { cause: e });
      }
    }
    if (outStat) {
      for (const inp of opts.inputPaths ?? []) {
        let inStat: fs.Stats;
        try {
          inStat = fs.statSync(inp);
        } catch {
          continue; // not a file we could overwrite ('-', missing: the reader reports it)
        }
        if (sameFile(inStat, outStat)) {
          throw new WriterError(`output ${path} is the input file ${inp}`, path);
        }
      }
      if (outStat.isDirectory()) {
        throw new WriterError(`${path}: cannot write output: it is a directory`, path, 'EISDIR');
      }
      if (!outStat.isFile()) {
        // /dev/null, a FIFO, a terminal...: write straight into it. Renaming a temp file over
        // it would replace the device node.
        let fd: number;
        try {
          fd = fs.openSync(target, 'w');
        } catch (e) {
          const r = fsReason(e);
          throw new WriterError(`${path}: cannot open output: ${r.reason}`, path, r.code, { cause: e });
        }
        const w = new CaptureWriter(path, null, null, fd, true, opts);
        trackWriter(w);
        w.start(opts);
        return w;
      }
      // A symlink: replace its target, not the link.
      try {
        target = fs.realpathSync(target);
      } catch {
        /* keep the resolved path */
      }
    }
    const dir = nodePath.dirname(target);
    const tmp = nodePath.join(dir, `.${nodePath.basename(target)}.${process.pid}.tmp`);
    let fd: number;
    try {
      try {
        fd = fs.openSync(tmp, 'wx');
      } catch (e) {
        if (fsReason(e).code !== 'EEXIST') throw e;
        fs.unlinkSync(tmp); // left by an earlier process that had our pid
        fd = fs.openSync(tmp, 'wx');
      }
    } catch (e) {
      const r = fsReason(e);
      throw new WriterError(`${path}: cannot create temporary file ${tmp}: ${r.reason}`, path, r.code, { cause: e });
    }
    const w = new CaptureWriter(path, target, tmp, fd, true, opts);
    trackWriter(w);
    w.start(opts);
    return w;
  }

  /** Write to an already open fd (e.g. stdout): no temp file; commit() flushes and leaves the fd open. */
  static toFd(fd: number, opts: WriterOptions): CaptureWriter {
    validateOptions(`fd ${fd}`, opts);
    const w = new CaptureWriter(`fd ${fd}`, null, null, fd, false, opts);
    w.start(opts);
    return w;
  }

  /** Write the file header (pcap) or SHB, IDBs and DSBs (pcapng). Aborts on failure. */
  private start(opts: WriterOptions): void {
    try {
      if (this.ng) {
        this.writeShb(opts.sectionComment, opts.userAppl);
        for (const iface of opts.interfaces) this.addInterface(iface);
        for (const s of opts.secrets ?? []) this.writeDsb(s);
      } else {
        const iface = opts.interfaces[0]!;
        this.registerInterface(iface, iface.snaplen ? iface.snaplen : PCAP_DEFAULT_SNAPLEN);
        const dv = this.dv;
        dv.setUint32(0, this.ns ? PCAP_MAGIC_NS : PCAP_MAGIC_US, true);
        dv.setUint16(4, 2, true);
        dv.setUint16(6, 4, true);
        dv.setUint32(8, 0, true);
        dv.setUint32(12, 0, true);
        dv.setUint32(16, this.snaplens[0]!, true);
        dv.setUint32(20, pcapLinkField(iface), true);
        this.pos = 24;
      }
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  // ===========================================================================================
  // Public API

  get recordsWritten(): number {
    return this.records;
  }

  /** Bytes of output so far, buffered ones included (the file size once committed). */
  get bytesWritten(): number {
    return this.flushed + this.pos;
  }

  /** Comments not written because the format (pcap) cannot carry them. */
  get commentsDropped(): number {
    return this.dropped;
  }

  /**
   * Records written with a caplen above their interface's (non-zero) snaplen. They are written
   * whole, not cut: Wireshark reads them (wiretap checks only the link type's maximum), while
   * libpcap cuts them to the snaplen when reading. Cutting would lose bytes the emulator added
   * (encapsulation) or change an identity replay of a file that already had such records.
   */
  get recordsOverSnaplen(): number {
    return this.overSnaplen;
  }

  /** The interfaces defined so far (index = interface id). */
  get outputInterfaces(): readonly OutputInterface[] {
    return this.interfaces;
  }

  /**
   * pcapng: writes an IDB now (also after packets) and returns its id. pcap: returns 0 if the
   * linktype is the file's, WriterError otherwise (a pcap file has one linktype).
   */
  addInterface(iface: OutputInterface): number {
    this.checkOpen();
    validateInterface(this.displayPath, iface, this.ng ? 'pcapng' : 'pcap');
    if (!this.ng) {
      const first = this.interfaces[0];
      if (first && (first.linktype !== iface.linktype || (first.fcsLen ?? 0) !== (iface.fcsLen ?? 0))) {
        throw new WriterError(
          `${this.displayPath}: a pcap file has one link type: cannot add interface ${JSON.stringify(iface.name)} ` +
            `with linktype ${iface.linktype} (FCS ${iface.fcsLen ?? 0} B) to a file of linktype ${first.linktype} ` +
            `(FCS ${first.fcsLen ?? 0} B); write pcapng`,
          this.displayPath,
        );
      }
      return 0;
    }
    const name = iface.name ?? '';
    const desc = iface.description;
    const snaplen = iface.snaplen ? iface.snaplen >>> 0 : 0;
    // Body: linktype u16, reserved u16, snaplen u32, options.
    const fcsLen = iface.fcsLen ?? 0;
    const bound = 16 + (name ? optBound(name) : 0) + (desc !== undefined ? optBound(desc) : 0) + 8 + 8 + 4 + 4;
    this.reserve(bound);
    const dv = this.dv;
    const start = this.pos;
    dv.setUint32(start, BT_IDB, true);
    dv.setUint16(start + 8, iface.linktype & 0xffff, true);
    dv.setUint16(start + 10, 0, true);
    dv.setUint32(start + 12, snaplen, true);
    let p = start + 16;
    if (name) p = this.putStringOpt(p, OPT_IF_NAME, name);
    if (desc !== undefined) p = this.putStringOpt(p, OPT_IF_DESCRIPTION, desc);
    dv.setUint16(p, OPT_IF_TSRESOL, true);
    dv.setUint16(p + 2, 1, true);
    dv.setUint32(p + 4, 9, true); // value 9 (10^-9 s) then three zero pad bytes (LE u32)
    p += 8;
    if (fcsLen !== 0) {
      dv.setUint16(p, OPT_IF_FCSLEN, true);
      dv.setUint16(p + 2, 1, true);
      dv.setUint32(p + 4, fcsLen & 0xff, true);
      p += 8;
    }
    dv.setUint32(p, OPT_ENDOFOPT, true); // code 0, length 0
    p += 4;
    this.endBlock(start, p);
    return this.registerInterface(iface, snaplen);
  }

  /**
   * writeRecord with the comments already encoded as a comment block: blk[bOff, bOff + bLen)
   * holds, per comment, its UTF-8 length (u16 little endian, at most 65535) and bytes. The same
   * bytes as writeRecord with those strings, without encoding them again (a node repeats a
   * connection's comments on each of its packets; WriterSink keeps their block).
   */
  writeRecordBlock(buf: Uint8Array, off: number, caplen: number, origlen: number, tsSec: number, tsNsec: number, iface: number, blk: Uint8Array, blkDv: DataView, bOff: number, bLen: number, flags: number): void {
    const sdv = buf === this.srcBuf ? this.srcDv! : this.srcView(buf);
    const end = bOff + bLen;
    if (!this.ng) {
      for (let c = bOff; c < end; c += 2 + blkDv.getUint16(c, true)) this.dropped++;
      this.pcapRecord(buf, sdv, off, caplen, origlen, tsSec, tsNsec, iface);
      return;
    }
    if (bLen === 0) return this.epb(buf, sdv, off, caplen, origlen, tsSec, tsNsec, iface, flags);
    // Each comment of l bytes: 2 + l in the block, 4 + pad4(l) as an option (at most 8/3 as much, l = 1).
    const p = this.epbOpen(buf, sdv, off, caplen, origlen, tsSec, tsNsec, iface, 3 * bLen);
    this.epbClose(putCommentOptions(this.out, this.dv, p, blk, blkDv, bOff, bLen), flags);
  }

  /**
   * The checks of an EPB: its interface is defined, a caplen over the snaplen is counted, the
   * frame lies inside `buf`. Returns origlen raised to caplen.
   */
  private epbChecks(buf: Uint8Array, off: number, caplen: number, origlen: number, iface: number): number {
    if (!(iface >= 0 && iface < this.nIf)) this.badInterface(iface);
    const snaplen = this.snaplens[iface]!;
    if (snaplen !== 0 && caplen > snaplen) this.overSnaplen++;
    if (off + caplen > buf.length || off < 0) this.badRange(buf, off, caplen);
    return origlen < caplen ? caplen : origlen;
  }

  /** Position of the EPB that epbOpen opened (its options are being written). */
  private openPos = 0;

  /**
   * The head of an EPB with options (epbComments, writeRecordBlock): the checks, room for `optRoom`
   * bytes of options besides epb_flags, the head and the frame. Returns where the options go.
   */
  private epbOpen(buf: Uint8Array, sdv: DataView, off: number, caplen: number, origlen: number, tsSec: number, tsNsec: number, iface: number, optRoom: number): number {
    origlen = this.epbChecks(buf, off, caplen, origlen, iface);
    const padded = (caplen + 3) & ~3;
    const bound = 32 + padded + optRoom + 12;
    let pos = this.pos;
    if (pos + bound > this.limit) pos = this.makeRoom(bound);
    const dv = this.dv;
    // The total length is patched by endBlock once the options are written.
    const bad = putEpbHead(dv, pos, 0, iface, tsSec, tsNsec, caplen, origlen);
    if (bad !== null) this.badTime(tsSec, bad);
    this.copyFrame(buf, sdv, off, caplen, pos + 28);
    clearPadding(dv, pos + 28, caplen);
    this.openPos = pos;
    return pos + 28 + padded;
  }

  /** End the EPB epbOpen opened, whose options end at p: epb_flags, end of options, lengths. */
  private epbClose(p: number, flags: number): void {
    const dv = this.dv;
    if (flags !== 0) p = putEpbFlags(dv, p, flags);
    dv.setUint32(p, OPT_ENDOFOPT, true);
    p += 4;
    this.endBlock(this.openPos, p);
    this.records++;
  }

  /**
   * Write one record. `buf[off .. off+caplen)` are the frame bytes; origlen is raised to caplen
   * if smaller (Wireshark flags frame.len_lt_caplen); a caplen above the interface snaplen is
   * kept and counted in recordsOverSnaplen. tsSec is an
   * integer count of seconds since 1970, tsNsec the nanoseconds in that second. pcap files
   * cannot carry comments or flags; comments given for them are counted in commentsDropped.
   */
  writeRecord(
    buf: Uint8Array,
    off: number,
    caplen: number,
    origlen: number,
    tsSec: number,
    tsNsec: number,
    iface: number,
    comment?: string | string[],
    flags?: number,
  ): void {
    const sdv = buf === this.srcBuf ? this.srcDv! : this.srcView(buf);
    if (this.ng) {
      if (comment === undefined) this.epb(buf, sdv, off, caplen, origlen, tsSec, tsNsec, iface, flags ?? 0);
      else this.epbComments(buf, sdv, off, caplen, origlen, tsSec, tsNsec, iface, comment, flags ?? 0);
    } else {
      if (comment !== undefined && comment.length !== 0) this.dropped += typeof comment === 'string' ? 1 : comment.length;
      this.pcapRecord(buf, sdv, off, caplen, origlen, tsSec, tsNsec, iface);
    }
  }

  /** The DataView of a source buffer that is not the last one (cold: one view per buffer, kept). */
  private srcView(buf: Uint8Array): DataView {
    if (buf === this.srcBuf2) {
      this.srcBuf2 = this.srcBuf;
      const dv = this.srcDv2!;
      this.srcDv2 = this.srcDv;
      this.srcBuf = buf;
      this.srcDv = dv;
      return dv;
    }
    this.srcBuf2 = this.srcBuf;
    this.srcDv2 = this.srcDv;
    this.srcBuf = buf;
    return (this.srcDv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength));
  }

  /**
   * Write every record of a batch (comments and flags included), iface remapped through ifaceMap
   * if given.
   *
   * Records that lie in the source buffer with the same stride as their output blocks (pcap →
   * pcap: 16-byte header + data; pcapng → pcapng: EPBs without options other than epb_flags) are
   * copied as one run with a single Uint8Array.prototype.set (memcpy), and then every header,
   * padding, option and trailer in the run is rewritten. Identity replays hit this path for
   * nearly every record; anything else (and runs of one) takes the per-record path.
   */
  writeBatch(batch: RecordBatch, ifaceMap?: Uint32Array): void {
    const n = batch.count;
    const buf = batch.buf;
    const sdv = batch.dv;
    const { offset, caplen, origlen, tsSec, tsNsec, iface, flags } = batch;
    const comments = batch.comments;
    const anyComments = comments.length !== 0;
    let i = 0;
    if (this.ng) {
      while (i < n) {
        // Try a run only when the next record follows at the stride of an output EPB.
        if (i + 1 < n && offset[i + 1] === offset[i]! + (flags[i] !== 0 ? 44 : 32) + ((caplen[i]! + 3) & ~3)) {
          const j = this.epbRun(batch, i, ifaceMap, anyComments);
          if (j > i) {
            i = j;
            continue;
          }
        }
        const ifc = ifaceMap !== undefined ? ifaceMap[iface[i]!]! : iface[i]!;
        const c = anyComments ? comments[i] : undefined;
        if (c === undefined) this.epb(buf, sdv, offset[i]!, caplen[i]!, origlen[i]!, tsSec[i]!, tsNsec[i]!, ifc, flags[i]!);
        else this.epbComments(buf, sdv, offset[i]!, caplen[i]!, origlen[i]!, tsSec[i]!, tsNsec[i]!, ifc, c, flags[i]!);
        i++;
      }
    } else {
      while (i < n) {
        if (i + 1 < n && offset[i + 1] === offset[i]! + 16 + caplen[i]!) {
          const j = this.pcapRun(batch, i, ifaceMap);
          if (j > i) {
            if (anyComments) this.countDropped(comments, i, j);
            i = j;
            continue;
          }
        }
        const ifc = ifaceMap !== undefined ? ifaceMap[iface[i]!]! : iface[i]!;
        this.pcapRecord(buf, sdv, offset[i]!, caplen[i]!, origlen[i]!, tsSec[i]!, tsNsec[i]!, ifc);
        if (anyComments) this.countDropped(comments, i, i + 1);
        i++;
      }
    }
  }

  private countDropped(comments: (string[] | undefined)[], i: number, j: number): void {
    for (let k = i; k < j; k++) {
      const c = comments[k];
      if (c !== undefined) this.dropped += c.length;
    }
  }

  /**
   * pcap: the longest run of records from i that are valid, contiguous in the source with a
   * 16-byte gap (their pcap headers) and fit the buffer; copies it with one memcpy and rewrites
   * the headers. Returns the end of the run, or i if it is shorter than two records.
   */
  private pcapRun(batch: RecordBatch, i: number, ifaceMap: Uint32Array | undefined): number {
    const { offset, caplen, origlen, tsSec, tsNsec, iface } = batch;
    const n = batch.count;
    let room = this.limit - this.pos;
    if (room < 1024 && this.limit > 0) {
      this.flushBuffer();
      room = this.limit;
    }
    let j = i;
    let bytes = 0;
    let next = offset[i]!;
    for (; j < n; j++) {
      const c = caplen[j]!;
      const ts = tsSec[j]!;
      const nsec = tsNsec[j]!;
      if (
        offset[j] !== next ||
        (ifaceMap !== undefined ? ifaceMap[iface[j]!] : iface[j]) !== 0 ||
        !(ts >= 0 && ts < TWO_32) ||
        !(nsec < 1e9) ||
        bytes + 16 + c > room
      ) {
        break;
      }
      bytes += 16 + c;
      next += 16 + c;
    }
    if (j - i < 2) return i;
    const start = offset[i]!;
    const end = offset[j - 1]! + caplen[j - 1]!;
    if (end > batch.buf.length) return i; // the per-record path reports it
    const buf = batch.buf;
    const pos = this.pos;
    this.out.set(new Uint8Array(buf.buffer, buf.byteOffset + start, end - start), pos + 16);
    const dv = this.dv;
    const ns = this.ns;
    const snaplen = this.snaplens[0]!;
    for (let k = i; k < j; k++) {
      const h = pos + offset[k]! - start;
      const c = caplen[k]!;
      const o = origlen[k]!;
      if (c > snaplen) this.overSnaplen++;
      dv.setUint32(h, tsSec[k]!, true);
      dv.setUint32(h + 4, ns ? tsNsec[k]! : tsNsec[k]! / 1000, true);
      dv.setUint32(h + 8, c, true);
      dv.setUint32(h + 12, o < c ? c : o, true);
    }
    this.pos = pos + bytes;
    this.records += j - i;
    return j;
  }

  /**
   * pcapng: like pcapRun for EPBs. The source stride of record k must equal its output block
   * length (32 + padded caplen, + 12 with epb_flags): that is how an EPB without other options
   * lies in a pcapng reader's buffer.
   */
  private epbRun(batch: RecordBatch, i: number, ifaceMap: Uint32Array | undefined, anyComments: boolean): number {
    const { offset, caplen, origlen, tsSec, tsNsec, iface, flags, comments } = batch;
    const n = batch.count;
    const nIf = this.nIf;
    let room = this.limit - this.pos;
    if (room < 1024 && this.limit > 0) {
      this.flushBuffer();
      room = this.limit;
    }
    let j = i;
    let bytes = 0;
    let next = offset[i]!;
    for (; j < n; j++) {
      const c = caplen[j]!;
      const ts = tsSec[j]!;
      const ifc = ifaceMap !== undefined ? ifaceMap[iface[j]!]! : iface[j]!;
      if (offset[j] !== next || !(ifc < nIf) || (anyComments && comments[j] !== undefined)) break;
      const blockLen = (flags[j] !== 0 ? 44 : 32) + ((c + 3) & ~3);
      if (!(ts >= 0 && ts < TWO_32) || !(tsNsec[j]! < 1e9) || bytes + blockLen > room) break;
      bytes += blockLen;
      next += blockLen;
    }
    if (j - i < 2) return i;
    const start = offset[i]!;
    const end = offset[j - 1]! + caplen[j - 1]!;
    if (end > batch.buf.length) return i;
    const buf = batch.buf;
    const pos = this.pos;
    const out = this.out;
    out.set(new Uint8Array(buf.buffer, buf.byteOffset + start, end - start), pos + 28);
    const dv = this.dv;
    const snaplens = this.snaplens;
    for (let k = i; k < j; k++) {
      const b = pos + offset[k]! - start; // block start = data start - 28
      const c = caplen[k]!;
      const o = origlen[k]!;
      const f = flags[k]!;
      const ifc = ifaceMap !== undefined ? ifaceMap[iface[k]!]! : iface[k]!;
      const snap = snaplens[ifc]!;
      if (snap !== 0 && c > snap) this.overSnaplen++;
      const padded = (c + 3) & ~3;
      const blockLen = (f !== 0 ? 44 : 32) + padded;
      dv.setUint32(b, BT_EPB, true);
      dv.setUint32(b + 4, blockLen, true);
      dv.setUint32(b + 8, ifc, true);
      this.putTimestamp(b + 12, tsSec[k]!, tsNsec[k]!);
      dv.setUint32(b + 20, c, true);
      dv.setUint32(b + 24, o < c ? c : o, true);
      for (let z = c; z < padded; z++) out[b + 28 + z] = 0;
      let p = b + 28 + padded;
      if (f !== 0) {
        dv.setUint16(p, OPT_EPB_FLAGS, true);
        dv.setUint16(p + 2, 4, true);
        dv.setUint32(p + 4, f, true);
        dv.setUint32(p + 8, OPT_ENDOFOPT, true);
        p += 12;
      }
      dv.setUint32(p, blockLen, true);
    }
    this.pos = pos + bytes;
    this.records += j - i;
    return j;
  }

  /**
   * Append `count` records that are already encoded for this file: bytes[off, off+len) are pcap
   * records or pcapng blocks, e.g. made by encoder threads (src/engine/encode.ts, which writes
   * records exactly as writeRecord does). Large runs go straight from `bytes` to the file (a
   * SharedArrayBuffer view is fine); small ones through the buffer.
   */
  writeEncoded(bytes: Uint8Array, off: number, len: number, count: number): void {
    this.putEncoded(bytes, off, len, count, 65536);
  }

  /**
   * writeEncoded for runs that should go through the buffer (and so to flushAsync's writes from
   * the thread pool): copied unless the run is larger than the whole buffer.
   */
  appendEncoded(bytes: Uint8Array, off: number, len: number, count: number): void {
    this.putEncoded(bytes, off, len, count, this.limit + 1);
  }

  /** Encoded records: from `direct` bytes on straight to the file, else through the buffer. */
  private putEncoded(bytes: Uint8Array, off: number, len: number, count: number, direct: number): void {
    this.checkOpen();
    if (off < 0 || len < 0 || off + len > bytes.length) this.badRange(bytes, off, len);
    const straight = len >= direct || len > this.limit;
    if (straight || len > this.limit - this.pos) this.flushBuffer();
    if (straight) {
      this.writeFully(bytes, off, len);
      this.flushed += len;
    } else {
      this.out.set(bytes.subarray(off, off + len), this.pos);
      this.pos += len;
    }
    this.records += count;
  }

  /** Flush what is buffered (the file stays open). */
  flush(): void {
    this.checkOpen();
    this.flushBuffer();
  }

  /**
   * Start writing what is buffered (if at least `min` bytes) without waiting for it: the write
   * runs in libuv's thread pool, on another core, while the caller fills a second buffer. The
   * write syscalls are ~15% of a one-thread node replay. Only for the temp file of open() (a
   * regular file: every write of this writer then goes to an explicit position, so a synchronous
   * flush may run while this one is in flight); elsewhere (toFd, devices) it does nothing.
   * Awaits the previous such write first. settle() before commit() (which throws otherwise).
   */
  async flushAsync(min = this.limit >>> 1): Promise<void> {
    this.checkOpen();
    if (this.tmpPath === null || this.pos < min) return;
    await this.settle();
    const full = this.out;
    const len = this.pos;
    const at = this.flushed;
    let next = this.spare;
    if (next === null || next.length !== full.length) next = Buffer.alloc(full.length);
    this.out = next;
    this.dv = new DataView(next.buffer, next.byteOffset, next.byteLength);
    this.spare = full;
    this.pos = 0;
    this.flushed += len;
    this.inFlight = writeAllAt(this.fd, full, len, at).catch((e: unknown) => {
      this.asyncError = e;
    });
  }

  /** Wait for the write of flushAsync; WriterError (and the temp file removed) if it failed. */
  async settle(): Promise<void> {
    if (this.inFlight === null) return;
    await this.inFlight;
    this.inFlight = null;
    if (this.asyncError !== null && this.state === 'open') this.fail('write failed', this.asyncError);
  }

  /** Flush, close, rename the temp file to the final path. WriterError (and the temp file removed) on failure. */
  commit(): void {
    this.checkOpen();
    if (this.inFlight !== null) throw new WriterError(`${this.displayPath}: commit() while a write is in flight (await settle() first)`, this.displayPath);
    this.flushBuffer();
    if (this.ownsFd) {
      const fd = this.fd;
      this.fd = -1;
      try {
        fs.closeSync(fd);
      } catch (e) {
        this.fail('cannot close output', e);
      }
    }
    if (this.tmpPath !== null && this.finalPath !== null) {
      try {
        // Renaming over an existing file makes ext4 (auto_da_alloc) flush the new file's data
        // first: ~50 ms per 100 MB, a third of a 1M-frame replay. Removing the old file first
        // avoids it; the output is still never half-written (it is the old file, no file, or
        // the complete new one).
        try {
          if (fs.lstatSync(this.finalPath).isFile()) fs.unlinkSync(this.finalPath);
        } catch {
          /* no old output */
        }
        fs.renameSync(this.tmpPath, this.finalPath);
      } catch (e) {
        this.fail(`cannot rename ${this.tmpPath} to the output`, e);
      }
    }
    this.close('committed');
  }

  /** Close and delete the temp file. Idempotent; safe after a failure; a no-op after commit(). */
  abort(): void {
    if (this.state !== 'open') return;
    this.close('aborted');
    if (this.ownsFd && this.fd >= 0) {
      const fd = this.fd;
      const closeFd = (): void => {
        try {
          fs.closeSync(fd);
        } catch {
          /* already broken */
        }
      };
      // Not under a write in flight: the fd number could be reused and written to by it.
      if (this.inFlight !== null) void this.inFlight.then(closeFd);
      else closeFd();
    }
    this.fd = -1;
    if (this.tmpPath !== null) {
      try {
        fs.unlinkSync(this.tmpPath);
      } catch {
        /* gone already */
      }
    }
  }

  // ===========================================================================================
  // Records

  private pcapRecord(
    buf: Uint8Array,
    sdv: DataView,
    off: number,
    caplen: number,
    origlen: number,
    tsSec: number,
    tsNsec: number,
    iface: number,
  ): void {
    if (iface !== 0) this.badInterface(iface);
    if (caplen > this.snaplens[0]!) this.overSnaplen++;
    if (origlen < caplen) origlen = caplen;
    if (off + caplen > buf.length || off < 0) this.badRange(buf, off, caplen);
    const need = 16 + caplen;
    let pos = this.pos;
    if (pos + need > this.limit) pos = this.makeRoom(need);
    const dv = this.dv;
    const bad = putPcapRecordHeader(dv, pos, tsSec, tsNsec, caplen, origlen, this.ns);
    if (bad !== null) this.badTime(tsSec, bad);
    this.copyFrame(buf, sdv, off, caplen, pos + 16);
    this.pos = pos + need;
    this.records++;
  }

  /** EPB without comments: the hot path. */
  private epb(
    buf: Uint8Array,
    sdv: DataView,
    off: number,
    caplen: number,
    origlen: number,
    tsSec: number,
    tsNsec: number,
    iface: number,
    flags: number,
  ): void {
    origlen = this.epbChecks(buf, off, caplen, origlen, iface);
    const padded = (caplen + 3) & ~3;
    const blockLen = flags !== 0 ? 44 + padded : 32 + padded;
    let pos = this.pos;
    if (pos + blockLen > this.limit) pos = this.makeRoom(blockLen);
    const dv = this.dv;
    const bad = putEpbHead(dv, pos, blockLen, iface, tsSec, tsNsec, caplen, origlen);
    if (bad !== null) this.badTime(tsSec, bad);
    this.copyFrame(buf, sdv, off, caplen, pos + 28);
    clearPadding(dv, pos + 28, caplen);
    let p = pos + 28 + padded;
    if (flags !== 0) {
      p = putEpbFlags(dv, p, flags);
      dv.setUint32(p, OPT_ENDOFOPT, true);
      p += 4;
    }
    dv.setUint32(p, blockLen, true);
    this.pos = p + 4;
    this.records++;
  }

  /**
   * EPB with comments (a node's verdicts: one or two per frame when comments are on). The block
   * is built in place and its length patched.
   */
  private epbComments(
    buf: Uint8Array,
    sdv: DataView,
    off: number,
    caplen: number,
    origlen: number,
    tsSec: number,
    tsNsec: number,
    iface: number,
    comment: string | readonly string[],
    flags: number,
  ): void {
    // A string is one comment; an array is read by index (no iterator, no wrapping array).
    const one = typeof comment === 'string';
    const n = one ? 1 : comment.length;
    if (n === 0) return this.epb(buf, sdv, off, caplen, origlen, tsSec, tsNsec, iface, flags);
    let room = 0;
    for (let k = 0; k < n; k++) room += optBound(one ? comment : comment[k]!);
    let p = this.epbOpen(buf, sdv, off, caplen, origlen, tsSec, tsNsec, iface, room);
    for (let k = 0; k < n; k++) p = this.putStringOpt(p, OPT_COMMENT, one ? comment : comment[k]!);
    this.epbClose(p, flags);
  }

  /**
   * Copy a frame to out[d..]. Small frames are copied in whole 16-byte chunks of 32-bit words
   * (copyChunks) when the source has 15 readable bytes after the frame (the output always has:
   * COPY_SLACK): no tail loop and no byte stores, ~8 ns less per 60–100-byte record than
   * copyBytes. Larger frames, and frames at the very end of their buffer, go through copyBytes
   * (which switches to memcpy above WORD_COPY_MAX bytes).
   */
  private copyFrame(buf: Uint8Array, sdv: DataView, off: number, len: number, d: number): void {
    if (len <= WORD_COPY_MAX && off + len + 15 <= buf.length) copyChunks(this.dv, d, sdv, off, len);
    else copyBytes(this.out, this.dv, d, buf, sdv, off, len);
  }

  /** Store the 64-bit pcapng timestamp (see putNgTimestamp). */
  private putTimestamp(p: number, tsSec: number, tsNsec: number): void {
    const bad = putNgTimestamp(this.dv, p, tsSec, tsNsec);
    if (bad !== null) this.badTime(tsSec, bad);
  }

  // ===========================================================================================
  // Blocks

  private writeShb(comment: string | undefined, userAppl: string | undefined): void {
    let bound = 28 + 4;
    if (userAppl !== undefined) bound += optBound(userAppl);
    if (comment !== undefined) bound += optBound(comment);
    bound += 4;
    this.reserve(bound);
    const dv = this.dv;
    const start = this.pos;
    dv.setUint32(start, BT_SHB, true);
    dv.setUint32(start + 8, BYTE_ORDER_MAGIC, true);
    dv.setUint16(start + 12, 1, true);
    dv.setUint16(start + 14, 0, true);
    dv.setInt32(start + 16, -1, true); // section length -1 (unknown) as i64
    dv.setInt32(start + 20, -1, true);
    let p = start + 24;
    if (comment !== undefined) p = this.putStringOpt(p, OPT_COMMENT, comment);
    if (userAppl !== undefined) p = this.putStringOpt(p, OPT_SHB_USERAPPL, userAppl);
    if (p !== start + 24) {
      dv.setUint32(p, OPT_ENDOFOPT, true);
      p += 4;
    }
    this.endBlock(start, p);
  }

  private writeDsb(s: DecryptionSecrets): void {
    const len = s.data.length;
    const padded = pad4(len);
    const blockLen = 20 + padded;
    this.reserve(blockLen);
    const dv = this.dv;
    const start = this.pos;
    dv.setUint32(start, BT_DSB, true);
    dv.setUint32(start + 8, s.type >>> 0, true);
    dv.setUint32(start + 12, len, true);
    if (padded !== len) dv.setUint32(start + 12 + padded, 0, true);
    this.out.set(s.data, start + 16);
    this.endBlock(start, start + 16 + padded);
  }

  /** Finish a block whose body ends at p: trailing length, and the length in the header. */
  private endBlock(start: number, p: number): void {
    const blockLen = p + 4 - start;
    this.dv.setUint32(start + 4, blockLen, true);
    this.dv.setUint32(p, blockLen, true);
    this.pos = p + 4;
  }

  /**
   * A string option at p (room reserved by the caller with optBound): UTF-8, not NUL-terminated,
   * cut to 65535 bytes on a character boundary, padded with zeros. ASCII is stored byte by byte
   * (no allocation); anything else is encoded by Buffer.write straight into the output buffer.
   * Returns the position after the option.
   */
  private putStringOpt(p: number, code: number, s: string): number {
    const out = this.out;
    const v = p + 4;
    const n = s.length;
    let len = 0;
    let i = 0;
    const asciiMax = n < MAX_OPT_LEN ? n : MAX_OPT_LEN;
    const dv = this.dv;
    // Four ASCII characters per 32-bit store, then one by one; stops at the first non-ASCII one.
    for (; i + 4 <= asciiMax; i += 4) {
      const c0 = s.charCodeAt(i);
      const c1 = s.charCodeAt(i + 1);
      const c2 = s.charCodeAt(i + 2);
      const c3 = s.charCodeAt(i + 3);
      if ((c0 | c1 | c2 | c3) >= 0x80) break;
      dv.setUint32(v + i, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24), true);
    }
    for (; i < asciiMax; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      out[v + i] = c;
    }
    if (i === n || i === MAX_OPT_LEN) len = i;
    else len = out.write(s, v, Math.min(MAX_OPT_LEN, out.length - v), 'utf8'); // re-encodes the whole string; rare
    const padded = pad4(len);
    for (let k = len; k < padded; k++) out[v + k] = 0;
    dv.setUint16(p, code, true);
    dv.setUint16(p + 2, len, true);
    return v + padded;
  }

  // ===========================================================================================
  // Buffer management (cold)

  /** Make room for `need` contiguous bytes: flush, grow for an oversized record. Returns pos. */
  private makeRoom(need: number): number {
    this.checkOpen();
    if (this.pos + need > this.limit) {
      this.flushBuffer();
      if (need > this.limit) this.grow(need);
    }
    return this.pos;
  }

  private reserve(need: number): void {
    this.makeRoom(need);
  }

  private grow(need: number): void {
    let size = this.limit;
    while (size < need) size *= 2;
    const old = this.out;
    this.out = Buffer.alloc(size + COPY_SLACK);
    old.copy(this.out, 0, 0, this.pos);
    this.dv = new DataView(this.out.buffer, this.out.byteOffset, this.out.byteLength);
    this.limit = size;
  }

  private flushBuffer(): void {
    const end = this.pos;
    this.writeFully(this.out, 0, end);
    this.flushed += end;
    this.pos = 0;
  }

  private writeFully(buf: Uint8Array, off: number, len: number): void {
    // The temp file is written at explicit positions (see flushAsync), anything else where it is.
    const at = this.tmpPath !== null ? this.flushed : null;
    let done = 0;
    while (done < len) {
      let n: number;
      try {
        n = fs.writeSync(this.fd, buf, off + done, len - done, at === null ? null : at + done);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
          // A non-blocking pipe (stdout) is full: wait a little for the reader.
          Atomics.wait(waitCell, 0, 0, 1);
          continue;
        }
        this.fail('write failed', e);
      }
      done += n;
    }
  }

  private registerInterface(iface: OutputInterface, snaplen: number): number {
    const id = this.nIf;
    if (id === this.snaplens.length) {
      const s = new Uint32Array(id * 2);
      s.set(this.snaplens);
      this.snaplens = s;
    }
    this.snaplens[id] = snaplen;
    this.interfaces.push(iface);
    this.nIf = id + 1;
    return id;
  }

  // ===========================================================================================
  // Errors and state

  private checkOpen(): void {
    if (this.state !== 'open') {
      throw new WriterError(`${this.displayPath}: the writer is ${this.state}`, this.displayPath);
    }
  }

  private close(state: State): void {
    this.state = state;
    this.limit = -1;
    liveWriters.delete(this);
  }

  /** An fs failure: remove the temp file, throw WriterError naming the output and the reason. */
  private fail(what: string, e: unknown): never {
    const r = fsReason(e);
    this.abort();
    throw new WriterError(`${this.displayPath}: ${what}: ${r.reason}`, this.displayPath, r.code, { cause: e });
  }

  private badInterface(iface: number): never {
    this.checkOpen();
    throw new WriterError(
      `${this.displayPath}: record ${this.records}: interface ${iface} is not defined ` +
        `(${this.nIf} interface${this.nIf === 1 ? '' : 's'})`,
      this.displayPath,
    );
  }

  private badRange(buf: Uint8Array, off: number, caplen: number): never {
    this.checkOpen();
    throw new WriterError(
      `${this.displayPath}: record ${this.records}: bytes ${off}..${off + caplen} are outside the ${buf.length}-byte source buffer`,
      this.displayPath,
    );
  }

  private badTime(tsSec: number, why: string): never {
    this.checkOpen();
    throw new WriterError(`${this.displayPath}: record ${this.records}: timestamp ${tsSec} s: ${why}`, this.displayPath);
  }
}

const waitCell = new Int32Array(new SharedArrayBuffer(4));

/** Write buf[0, len) at file position `at`, in libuv's thread pool, to the end (short writes). */
async function writeAllAt(fd: number, buf: Buffer, len: number, at: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesWritten } = await new Promise<{ bytesWritten: number }>((resolve, reject) =>
      fs.write(fd, buf, done, len - done, at + done, (e, bytesWritten) => (e ? reject(e) : resolve({ bytesWritten }))),
    );
    done += bytesWritten;
  }
}

/**
 * Copy len bytes from sdv[s..] to ddv[d..] in whole 16-byte chunks of 32-bit words: reads and
 * writes up to 15 bytes past the end of both ranges (the caller checks they exist).
 */
function copyChunks(ddv: DataView, d: number, sdv: DataView, s: number, len: number): void {
  for (let i = 0; i < len; i += 16) {
    ddv.setUint32(d + i, sdv.getUint32(s + i, true), true);
    ddv.setUint32(d + i + 4, sdv.getUint32(s + i + 4, true), true);
    ddv.setUint32(d + i + 8, sdv.getUint32(s + i + 8, true), true);
    ddv.setUint32(d + i + 12, sdv.getUint32(s + i + 12, true), true);
  }
}

/** Zero the 1–3 padding bytes after a frame of len bytes at d that copyChunks may have filled. */
function clearPadding(dv: DataView, d: number, len: number): void {
  const r = len & 3;
  if (r !== 0) {
    const q = d + len - r;
    // Little endian: the frame's r bytes are the low 8r bits of the word.
    dv.setUint32(q, dv.getUint32(q, true) & ((1 << (r << 3)) - 1), true);
  }
}

/** Upper bound of the bytes a string option takes (header + UTF-8 + padding). */
function optBound(s: string): number {
  const utf8 = s.length * 3;
  return 4 + pad4(utf8 < MAX_OPT_LEN ? utf8 : MAX_OPT_LEN);
}

/** pcap header link-type field: LinkType, and the FCS length (in 16-bit words) with the P bit. */
function pcapLinkField(iface: OutputInterface): number {
  const fcs = iface.fcsLen ?? 0;
  return fcs ? ((iface.linktype & 0xffff) | (1 << 26) | (((fcs >> 1) & 0xf) << 28)) >>> 0 : iface.linktype & 0xffff;
}

function validateOptions(where: string, opts: WriterOptions): void {
  if (opts.format !== 'pcap' && opts.format !== 'pcapng') {
    throw new WriterError(`${where}: unknown capture format ${JSON.stringify(opts.format)}`, where);
  }
  if (opts.format === 'pcap') {
    if (opts.interfaces.length !== 1) {
      throw new WriterError(`${where}: a pcap file has exactly one interface (got ${opts.interfaces.length}); write pcapng`, where);
    }
    if (opts.secrets && opts.secrets.length) {
      throw new WriterError(`${where}: decryption secrets need pcapng output`, where);
    }
  }
  for (const i of opts.interfaces) validateInterface(where, i, opts.format);
}

function validateInterface(where: string, i: OutputInterface, format: 'pcap' | 'pcapng'): void {
  if (!Number.isInteger(i.linktype) || i.linktype < 0 || i.linktype > 0xffff) {
    throw new WriterError(`${where}: interface ${JSON.stringify(i.name)}: bad linktype ${i.linktype}`, where);
  }
  const fcs = i.fcsLen ?? 0;
  if (!Number.isInteger(fcs) || fcs < 0 || fcs > (format === 'pcap' ? 30 : 255) || (format === 'pcap' && fcs % 2 !== 0)) {
    throw new WriterError(`${where}: interface ${JSON.stringify(i.name)}: bad FCS length ${fcs}`, where);
  }
  const snap = i.snaplen ?? 0;
  if (!Number.isInteger(snap) || snap < 0 || snap > 0xffffffff) {
    throw new WriterError(`${where}: interface ${JSON.stringify(i.name)}: bad snaplen ${snap}`, where);
  }
}


// ---------------------------------------------------------------------------------------------
// ESP SA decryption secrets (SEMANTICS.md §3.4)

export interface EspSaRow {
  protocol: 'IPv4' | 'IPv6' | 'Any';
  /** Address or '*'. */
  src: string;
  dst: string;
  spi: number;
  /** Wireshark encryption string, e.g. "AES-GCM with 16 octet ICV [RFC4106]" or "NULL". */
  encryption: string;
  /** "0x…" hex (GCM: key ‖ 4-byte salt); "0x" for none. */
  encKey: string;
  /** Wireshark authentication string, e.g. "HMAC-SHA-256-128 [RFC4868]" or "NULL". */
  authentication: string;
  authKey: string;
  sn?: '32-bit' | '64-bit';
  /** "0x…" high 32 bits of the ESN. */
  esnHigh?: string;
}

const csvField = (s: string): string => `"${s.replace(/"/g, '""')}"`;

/**
 * The Decryption Secrets payload (type 0x45535053, "ESPS") for ESP SAs: one CSV line per SA,
 * every field double-quoted, columns Protocol, Src IP, Dest IP, SPI (0x hex), Encryption,
 * Encryption Key, Authentication, Authentication Key, SN, ESN High Bits.
 */
export function espSaSecrets(rows: EspSaRow[]): DecryptionSecrets {
  let text = '';
  for (const r of rows) {
    if (!Number.isInteger(r.spi) || r.spi < 0 || r.spi > 0xffffffff) {
      throw new WriterError(`ESP SA ${r.src} -> ${r.dst}: bad SPI ${r.spi}`);
    }
    const fields = [
      r.protocol,
      r.src,
      r.dst,
      `0x${r.spi.toString(16).padStart(8, '0')}`,
      r.encryption,
      r.encKey,
      r.authentication,
      r.authKey,
      r.sn ?? '32-bit',
      r.esnHigh ?? '0x00000000',
    ];
    text += fields.map(csvField).join(',') + '\n';
  }
  return { type: SECRETS_TYPE_ESP_SA, data: new TextEncoder().encode(text) };
}
