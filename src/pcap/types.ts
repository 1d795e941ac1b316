/**
 * Shared shapes of the capture I/O layer.
 *
 * A RecordBatch is the unit that moves through dpemu: a long-lived set of parallel typed
 * arrays describing up to `capacity` records whose bytes live in `buf` (usually the reader's
 * own reusable buffer). Nothing here is allocated per packet; comments are the one exception
 * and only exist for records that carry them (they are rare and come from the file).
 */

/** Link-layer header types we understand (https://www.tcpdump.org/linktypes.html). */
export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

/** pcapng epb_flags direction bits (bits 0-1). */
export const EPB_DIR_UNKNOWN = 0;
export const EPB_DIR_INBOUND = 1;
export const EPB_DIR_OUTBOUND = 2;

export type CaptureFormat = 'pcap' | 'pcapng';

/** One capture interface: the single pseudo-interface of a pcap file, or one pcapng IDB. */
export interface CaptureInterface {
  /** Index in the reader's `interfaces` (global across pcapng sections, in file order). */
  id: number;
  /** pcapng section number (0 for pcap). */
  section: number;
  /** Interface id inside its section (the EPB interface_id). */
  localId: number;
  /** LinkType (low 16 bits of the pcap link-type field). */
  linktype: number;
  /** FCS bytes at the end of every frame: pcap link-type FCS bits, or pcapng if_fcslen. */
  fcsLen: number;
  snaplen: number;
  name?: string;
  description?: string;
  /** Timestamp units per second: 10^n or 2^n (if_tsresol), 1e6 when absent. */
  tsUnitsPerSec: number;
  /** if_tsoffset, seconds added to every timestamp. */
  tsOffsetSec: number;
  comments?: string[];
}

/** One pcapng section (or the pcap file header). */
export interface SectionInfo {
  index: number;
  /** Byte offset of the SHB (0 for pcap). */
  offset: number;
  littleEndian: boolean;
  major: number;
  minor: number;
  hardware?: string;
  os?: string;
  userAppl?: string;
  comments?: string[];
}

export class RecordBatch {
  /** Bytes of the records; replaced only when a reader has to grow its buffer. */
  buf: Uint8Array;
  /** One long-lived DataView over `buf`. */
  dv: DataView;
  count = 0;
  readonly capacity: number;
  /** Offset in `buf` of record i's first byte (link-layer header). */
  readonly offset: Uint32Array;
  readonly caplen: Uint32Array;
  readonly origlen: Uint32Array;
  /** Seconds since 1970 (float64 keeps integers exact up to 2^53). */
  readonly tsSec: Float64Array;
  readonly tsNsec: Uint32Array;
  /** Index into the reader's `interfaces`. */
  readonly iface: Uint32Array;
  /** pcapng epb_flags (0 when absent). */
  readonly flags: Uint32Array;
  /** Comments of record i, only for records that have any (sparse; reset per batch). */
  comments: (string[] | undefined)[] = [];
  /** Byte offset in the file of record i's header (for error messages and tracing). */
  readonly fileOffset: Float64Array;
  /** Ordinal of record i in the whole file (0-based). */
  readonly index: Float64Array;

  constructor(capacity = 4096, buf: Uint8Array = new Uint8Array(0)) {
    this.capacity = capacity;
    this.buf = buf;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.offset = new Uint32Array(capacity);
    this.caplen = new Uint32Array(capacity);
    this.origlen = new Uint32Array(capacity);
    this.tsSec = new Float64Array(capacity);
    this.tsNsec = new Uint32Array(capacity);
    this.iface = new Uint32Array(capacity);
    this.flags = new Uint32Array(capacity);
    this.fileOffset = new Float64Array(capacity);
    this.index = new Float64Array(capacity);
  }

  /** Point the batch at a (new) buffer; keeps the DataView long-lived per buffer. */
  setBuffer(buf: Uint8Array): void {
    if (buf !== this.buf) {
      this.buf = buf;
      this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
  }

  reset(): void {
    this.count = 0;
    if (this.comments.length) this.comments = [];
  }
}

/** Interface described for output (one IDB in pcapng). */
export interface OutputInterface {
  name: string;
  description?: string;
  linktype: number;
  /** 0 = no limit (pcapng); pcap uses 262144 when 0. */
  snaplen?: number;
  /** Bytes of FCS at the end of every frame (pcap link-type FCS bits, pcapng if_fcslen); 0 when absent. */
  fcsLen?: number;
}

/** A Decryption Secrets Block to embed in pcapng output. */
export interface DecryptionSecrets {
  /** Secrets type, e.g. SECRETS_TYPE_ESP_SA. */
  type: number;
  data: Uint8Array;
}

/** pcapng DSB secrets type for ESP SAs ("ESPS"). */
export const SECRETS_TYPE_ESP_SA = 0x45535053;
