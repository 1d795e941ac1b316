/**
 * A minimal frame builder for the kernel differential tests: Ethernet (+802.1Q) / IPv4 /
 * TCP, UDP, ICMP or raw payload, every checksum computed unless asked to be wrong.
 *
 * Its input shape follows the project builder announced for src/packet/build.ts
 * (`buildFrame({ srcMac, dstMac, ip: {...}, l4: {kind: 'tcp', ...} })`) so that the tests can
 * switch to it once it exists. It is deliberately independent of src/ (its own checksum code):
 * a differential harness should not share code with what it checks.
 */

export interface IpSpec {
  src: string;
  dst: string;
  /** Default 64. */
  ttl?: number;
  /** The whole TOS byte (DSCP << 2 | ECN). Default 0. */
  tos?: number;
  /** Default 1. */
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  /** Protocol number; default from l4 (6, 17, 1), required for kind 'raw'. */
  proto?: number;
  /** Store a wrong header checksum. */
  badChecksum?: boolean;
}

export type TcpFlags = string; // letters: F S R P A U E C, e.g. 'S', 'SA', 'PA', 'FA'

export interface TcpSpec {
  kind: 'tcp';
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags: TcpFlags;
  window?: number;
  urgent?: number;
  /** TCP options, already padded to a multiple of 4 bytes. */
  options?: Uint8Array;
  payload?: Uint8Array | string;
  badChecksum?: boolean;
}

export interface UdpSpec {
  kind: 'udp';
  sport: number;
  dport: number;
  payload?: Uint8Array | string;
  /** 'auto' (default) computes it, 'zero' sends 0 (no checksum), 'bad' a wrong one. */
  checksum?: 'auto' | 'zero' | 'bad';
}

export interface IcmpSpec {
  kind: 'icmp';
  type: number;
  code?: number;
  /** Echo identifier (bytes 4-5). */
  id?: number;
  /** Echo sequence (bytes 6-7). */
  seq?: number;
  payload?: Uint8Array | string;
  badChecksum?: boolean;
}

/** Bytes after the IP header, as they are (e.g. a non-first fragment). */
export interface RawSpec {
  kind: 'raw';
  payload: Uint8Array;
}

export type L4Spec = TcpSpec | UdpSpec | IcmpSpec | RawSpec;

export interface FrameSpec {
  srcMac: string;
  dstMac: string;
  vlan?: number;
  ip: IpSpec;
  l4: L4Spec;
}

export function macBytes(s: string): Uint8Array {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6) throw new Error(`bad MAC ${s}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function ipBytes(s: string): Uint8Array {
  const parts = s.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`bad IPv4 ${s}`);
  return Uint8Array.from(parts);
}

export function bytesOf(p: Uint8Array | string | undefined): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  return typeof p === 'string' ? new TextEncoder().encode(p) : p;
}

/** RFC 1071 sum (not complemented, folded to 16 bits) of several byte ranges. */
export function onesSum16(...chunks: Uint8Array[]): number {
  let s = 0;
  let odd = false;
  let pending = 0;
  for (const c of chunks) {
    for (let i = 0; i < c.length; i++) {
      if (!odd) pending = c[i]! << 8;
      else s += pending | c[i]!;
      odd = !odd;
    }
  }
  if (odd) s += pending;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

export function internetChecksum(...chunks: Uint8Array[]): number {
  return ~onesSum16(...chunks) & 0xffff;
}

export function pseudoHeader(src: Uint8Array, dst: Uint8Array, proto: number, len: number): Uint8Array {
  const p = new Uint8Array(12);
  p.set(src, 0);
  p.set(dst, 4);
  p[9] = proto;
  p[10] = len >> 8;
  p[11] = len & 255;
  return p;
}

const FLAG_BITS: Record<string, number> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10, U: 0x20, E: 0x40, C: 0x80 };

export function tcpFlagBits(flags: TcpFlags): number {
  let v = 0;
  for (const ch of flags) {
    const b = FLAG_BITS[ch];
    if (b === undefined) throw new Error(`unknown TCP flag "${ch}" in "${flags}"`);
    v |= b;
  }
  return v;
}

/** The IP payload (L4 header + data) with its checksum, for src/dst. */
export function buildL4(l4: L4Spec, src: string, dst: string): { proto: number; bytes: Uint8Array } {
  const s = ipBytes(src);
  const d = ipBytes(dst);
  switch (l4.kind) {
    case 'tcp': {
      const opts = l4.options ?? new Uint8Array(0);
      if (opts.length % 4) throw new Error('TCP options must be padded to 4 bytes');
      const data = bytesOf(l4.payload);
      const hl = 20 + opts.length;
      const b = new Uint8Array(hl + data.length);
      const v = new DataView(b.buffer);
      v.setUint16(0, l4.sport);
      v.setUint16(2, l4.dport);
      v.setUint32(4, (l4.seq ?? 0) >>> 0);
      v.setUint32(8, (l4.ack ?? 0) >>> 0);
      b[12] = (hl / 4) << 4;
      b[13] = tcpFlagBits(l4.flags);
      v.setUint16(14, l4.window ?? 64240);
      v.setUint16(18, l4.urgent ?? 0);
      b.set(opts, 20);
      b.set(data, hl);
      let c = internetChecksum(pseudoHeader(s, d, 6, b.length), b);
      if (l4.badChecksum) c ^= 0x5a5a;
      v.setUint16(16, c);
      return { proto: 6, bytes: b };
    }
    case 'udp': {
      const data = bytesOf(l4.payload);
      const b = new Uint8Array(8 + data.length);
      const v = new DataView(b.buffer);
      v.setUint16(0, l4.sport);
      v.setUint16(2, l4.dport);
      v.setUint16(4, b.length);
      b.set(data, 8);
      let c = 0;
      if (l4.checksum !== 'zero') {
        c = internetChecksum(pseudoHeader(s, d, 17, b.length), b);
        if (c === 0) c = 0xffff;
        if (l4.checksum === 'bad') c ^= 0x5a5a;
      }
      v.setUint16(6, c);
      return { proto: 17, bytes: b };
    }
    case 'icmp': {
      const data = bytesOf(l4.payload);
      const b = new Uint8Array(8 + data.length);
      const v = new DataView(b.buffer);
      b[0] = l4.type;
      b[1] = l4.code ?? 0;
      v.setUint16(4, l4.id ?? 0);
      v.setUint16(6, l4.seq ?? 0);
      b.set(data, 8);
      let c = internetChecksum(b);
      if (l4.badChecksum) c ^= 0x5a5a;
      v.setUint16(2, c);
      return { proto: 1, bytes: b };
    }
    case 'raw':
      return { proto: -1, bytes: l4.payload };
  }
}

/** An IPv4 header + payload. */
export function buildIpPacket(ip: IpSpec, l4: L4Spec): Uint8Array {
  const { proto: p4, bytes } = buildL4(l4, ip.src, ip.dst);
  const proto = ip.proto ?? p4;
  if (proto < 0) throw new Error('ip.proto is required for a raw payload');
  const b = new Uint8Array(20 + bytes.length);
  const v = new DataView(b.buffer);
  b[0] = 0x45;
  b[1] = ip.tos ?? 0;
  v.setUint16(2, b.length);
  v.setUint16(4, ip.id ?? 1);
  v.setUint16(6, (ip.df ? 0x4000 : 0) | (ip.mf ? 0x2000 : 0) | ((ip.fragOffset ?? 0) & 0x1fff));
  b[8] = ip.ttl ?? 64;
  b[9] = proto;
  b.set(ipBytes(ip.src), 12);
  b.set(ipBytes(ip.dst), 16);
  let c = internetChecksum(b.subarray(0, 20));
  if (ip.badChecksum) c ^= 0x5a5a;
  v.setUint16(10, c);
  b.set(bytes, 20);
  return b;
}

export function buildFrame(spec: FrameSpec): Uint8Array {
  const pkt = buildIpPacket(spec.ip, spec.l4);
  const hl = spec.vlan === undefined ? 14 : 18;
  const f = new Uint8Array(hl + pkt.length);
  f.set(macBytes(spec.dstMac), 0);
  f.set(macBytes(spec.srcMac), 6);
  if (spec.vlan !== undefined) {
    f[12] = 0x81;
    f[13] = 0x00;
    f[14] = (spec.vlan >> 8) & 0x0f;
    f[15] = spec.vlan & 255;
  }
  f[hl - 2] = 0x08;
  f[hl - 1] = 0x00;
  f.set(pkt, hl);
  return f;
}

/** Bytes 0..n-1 of a recognisable pattern (for payloads whose content is checked). */
export function pattern(n: number, seed = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 13 + 0x41) & 0xff;
  return b;
}

/**
 * Fragments of one IPv4 datagram (as a sender would make them): the L4 bytes of `l4` are cut
 * into pieces of `sizes` bytes (each but the last a multiple of 8; the rest goes in the last).
 */
export function fragmentFrames(spec: FrameSpec, sizes: number[]): Uint8Array[] {
  const { proto, bytes } = buildL4(spec.l4, spec.ip.src, spec.ip.dst);
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i <= sizes.length && off < bytes.length; i++) {
    const len = i < sizes.length ? sizes[i]! : bytes.length - off;
    if (i < sizes.length && len % 8) throw new Error('fragment sizes must be multiples of 8');
    const last = off + len >= bytes.length;
    out.push(
      buildFrame({
        ...spec,
        ip: { ...spec.ip, proto, mf: !last, fragOffset: off / 8 },
        l4: { kind: 'raw', payload: bytes.subarray(off, Math.min(bytes.length, off + len)) },
      }),
    );
    off += len;
  }
  return out;
}

/**
 * Sequence-number bookkeeping for one TCP connection seen by the router: `c` is the client
 * (initiator), `s` the server. Each call returns the TCP spec of the next segment and advances
 * the sender's sequence number. Addresses are the ones on the wire on the side where the
 * segment is injected (pass them to buildFrame's ip).
 */
export class TcpConn {
  /** Next client sequence number (after the SYN). */
  private cSeq: number;
  private sSeq: number;
  constructor(
    readonly cPort: number,
    readonly sPort: number,
    readonly cIsn = 1000,
    readonly sIsn = 500000,
  ) {
    this.cSeq = (cIsn + 1) >>> 0;
    this.sSeq = sIsn;
  }
  /** Client SYN; call again for a retransmission (the same segment). */
  syn(): TcpSpec {
    return { kind: 'tcp', sport: this.cPort, dport: this.sPort, seq: this.cIsn, ack: 0, flags: 'S' };
  }
  synAck(cPortSeenByServer = this.cPort): TcpSpec {
    const t: TcpSpec = { kind: 'tcp', sport: this.sPort, dport: cPortSeenByServer, seq: this.sSeq, ack: this.cSeq, flags: 'SA' };
    this.sSeq = (this.sSeq + 1) >>> 0;
    return t;
  }
  ack(): TcpSpec {
    return { kind: 'tcp', sport: this.cPort, dport: this.sPort, seq: this.cSeq, ack: this.sSeq, flags: 'A' };
  }
  clientData(payload: Uint8Array | string): TcpSpec {
    const p = bytesOf(payload);
    const t: TcpSpec = { kind: 'tcp', sport: this.cPort, dport: this.sPort, seq: this.cSeq, ack: this.sSeq, flags: 'PA', payload: p };
    this.cSeq = (this.cSeq + p.length) >>> 0;
    return t;
  }
  serverData(payload: Uint8Array | string, cPortSeenByServer = this.cPort): TcpSpec {
    const p = bytesOf(payload);
    const t: TcpSpec = { kind: 'tcp', sport: this.sPort, dport: cPortSeenByServer, seq: this.sSeq, ack: this.cSeq, flags: 'PA', payload: p };
    this.sSeq = (this.sSeq + p.length) >>> 0;
    return t;
  }
  /** Client FIN (with ACK); takes one sequence number. */
  fin(): TcpSpec {
    const t: TcpSpec = { kind: 'tcp', sport: this.cPort, dport: this.sPort, seq: this.cSeq, ack: this.sSeq, flags: 'FA' };
    this.cSeq = (this.cSeq + 1) >>> 0;
    return t;
  }
  /** Server FIN (with ACK); takes one sequence number. */
  serverFin(cPortSeenByServer = this.cPort): TcpSpec {
    const t: TcpSpec = { kind: 'tcp', sport: this.sPort, dport: cPortSeenByServer, seq: this.sSeq, ack: this.cSeq, flags: 'FA' };
    this.sSeq = (this.sSeq + 1) >>> 0;
    return t;
  }
  serverAck(cPortSeenByServer = this.cPort): TcpSpec {
    return { kind: 'tcp', sport: this.sPort, dport: cPortSeenByServer, seq: this.sSeq, ack: this.cSeq, flags: 'A' };
  }
}

export interface VxlanFrameSpec {
  srcMac: string;
  dstMac: string;
  ip: IpSpec;
  sport: number;
  dport: number;
  vni: number;
  /** The inner Ethernet frame. */
  inner: Uint8Array;
  /** Outer UDP checksum (default 'auto'). */
  checksum?: 'auto' | 'zero';
}

/** An outer Ethernet/IPv4/UDP/VXLAN frame around `inner` (RFC 7348 §5: flags 0x08). */
export function buildVxlanFrame(s: VxlanFrameSpec): Uint8Array {
  const vx = new Uint8Array(8 + s.inner.length);
  vx[0] = 0x08;
  vx[4] = (s.vni >> 16) & 255;
  vx[5] = (s.vni >> 8) & 255;
  vx[6] = s.vni & 255;
  vx.set(s.inner, 8);
  return buildFrame({ srcMac: s.srcMac, dstMac: s.dstMac, ip: s.ip, l4: { kind: 'udp', sport: s.sport, dport: s.dport, payload: vx, checksum: s.checksum ?? 'auto' } });
}

/**
 * A pcap file header (little-endian, version 2.4), built by hand so that tests do not rely on
 * the writer under test: magic for micro- or nanoseconds, snaplen, link type.
 */
export function pcapFileHeader(opts: { ns?: boolean; snaplen?: number; linktype?: number } = {}): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(opts.ns ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeUInt32LE(opts.snaplen ?? 262144, 16);
  b.writeUInt32LE(opts.linktype ?? 1, 20);
  return b;
}
