/**
 * Builders of valid frames, for tests and `dpemu gen` (allocation is fine here; this is not the
 * hot path). Every checksum is computed in full. Bad input (a port out of range, options that
 * do not fit) throws an Error saying what is wrong.
 *
 * Decisions:
 *  - Ethernet frames are padded with zero bytes to 60 bytes (the 64-byte minimum less the FCS,
 *    IEEE 802.3 §4.2.3.3), as a NIC sends them and a capture on the receiving side shows them;
 *    tshark shows the bytes as `eth.padding`, not as an error. `pad: false` gives the unpadded
 *    frame a capture on the sending host shows (the NIC pads after the capture point). VLAN
 *    tags count towards the 60 bytes, as Linux pads (ETH_ZLEN) with the tag in the frame.
 *  - UDP: a computed checksum of 0 is sent as 0xffff (RFC 768); `noChecksum` sends 0 ("none"),
 *    as VXLAN and ESP-in-UDP do.
 *  - IP and TCP options are padded with zero bytes (End of Option List) to a 4-byte multiple.
 *  - For a fragment (mf or fragOffset), the L4 header and checksum are computed over the bytes
 *    of this packet only; use `kind: 'raw'` to give a fragment's bytes exactly.
 */
import { parseIpv4, parseMac } from './addr.js';
import { icmpChecksum, ipv4HeaderChecksum, l4Checksum } from './checksum.js';

export type MacLike = string | Uint8Array;
export type Ipv4Like = string | number;
export type Bytes = Uint8Array | string;

export interface IpSpec {
  src: Ipv4Like;
  dst: Ipv4Like;
  /** Default 64. */
  ttl?: number;
  /** DSCP and ECN byte; default 0. */
  tos?: number;
  /** Identification; default 0. */
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in bytes (a multiple of 8); default 0. */
  fragOffset?: number;
  /** Raw option bytes (padded to a multiple of 4 with EOL); at most 40 bytes. */
  options?: Uint8Array;
  /** Protocol field; default from the L4 spec. */
  proto?: number;
}

export interface TcpSpec {
  kind: 'tcp';
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** A number, or letters as tcpdump prints them: F S R P U E C and A or '.' for ACK ("S", "SA", "FA", "P."). */
  flags: number | string;
  /** Default 65535. */
  window?: number;
  urgent?: number;
  payload?: Bytes;
  /** Raw option bytes (padded to a multiple of 4 with EOL); at most 40 bytes. */
  options?: Uint8Array;
}

export interface UdpSpec {
  kind: 'udp';
  sport: number;
  dport: number;
  payload?: Bytes;
  /** Send checksum 0 ("no checksum", RFC 768). */
  noChecksum?: boolean;
}

export interface IcmpSpec {
  kind: 'icmp';
  type: number;
  code: number;
  /** Identifier and sequence number (bytes 4–7) of a query; default 0. */
  id?: number;
  seq?: number;
  /**
   * Bytes 4–7 as one 32-bit number, overriding id/seq: the next-hop MTU of "fragmentation
   * needed" (RFC 1191: low 16 bits), the pointer of parameter problem (high 8 bits), the
   * gateway of a redirect.
   */
  rest?: number;
  payload?: Bytes;
}

export interface RawSpec {
  kind: 'raw';
  proto: number;
  payload?: Bytes;
}

export type L4Spec = TcpSpec | UdpSpec | IcmpSpec | RawSpec;

export interface IpPacketSpec {
  ip: IpSpec;
  l4: L4Spec;
}

export interface VlanTag {
  vid: number;
  /** Priority code point 0–7; default 0. */
  pcp?: number;
  dei?: boolean;
  /** Default: 0x88a8 for the outer tags of a stack, 0x8100 for the innermost (802.1ad QinQ). */
  tpid?: number;
}

export interface FrameSpec extends IpPacketSpec {
  srcMac: MacLike;
  dstMac: MacLike;
  /** VLAN tags, outermost first: VLAN ids or full tags. */
  vlan?: (number | VlanTag)[];
  /** Pad the frame with zeros to 60 bytes (default true). */
  pad?: boolean;
}

/** Minimum Ethernet frame without FCS. */
export const ETH_MIN_FRAME = 60;

/** Build an IPv4 packet (no link layer), e.g. for LINKTYPE_RAW or as a quote. */
export function buildIpPacket(spec: IpPacketSpec): Uint8Array {
  const { ip, l4 } = spec;
  const src = toIp(ip.src, 'ip.src');
  const dst = toIp(ip.dst, 'ip.dst');
  const ipOpts = padOptions(ip.options, 'ip.options');
  const ihl = 20 + ipOpts.length;
  const l4Proto = l4.kind === 'tcp' ? 6 : l4.kind === 'udp' ? 17 : l4.kind === 'icmp' ? 1 : checkInt(l4.proto, 0, 255, 'l4.proto');
  const proto = ip.proto === undefined ? l4Proto : checkInt(ip.proto, 0, 255, 'ip.proto');
  const payload = toBytes(l4.payload);
  let l4HdrLen: number;
  let tcpOpts: Uint8Array = new Uint8Array(0);
  if (l4.kind === 'tcp') {
    tcpOpts = padOptions(l4.options, 'tcp options');
    l4HdrLen = 20 + tcpOpts.length;
  } else if (l4.kind === 'udp' || l4.kind === 'icmp') {
    l4HdrLen = 8;
  } else {
    l4HdrLen = 0;
  }
  const l4Len = l4HdrLen + payload.length;
  const total = ihl + l4Len;
  if (total > 0xffff) throw new Error(`IP packet of ${total} bytes exceeds 65535`);
  const fragOffset = ip.fragOffset ?? 0;
  if (!Number.isInteger(fragOffset) || fragOffset < 0 || fragOffset % 8 !== 0 || fragOffset > 0x1fff * 8) {
    throw new Error(`ip.fragOffset must be a multiple of 8 in 0..65528, got ${fragOffset}`);
  }

  const pkt = new Uint8Array(total);
  const dv = new DataView(pkt.buffer);
  pkt[0] = 0x40 | (ihl >> 2);
  pkt[1] = checkInt(ip.tos ?? 0, 0, 255, 'ip.tos');
  dv.setUint16(2, total);
  dv.setUint16(4, checkInt(ip.id ?? 0, 0, 0xffff, 'ip.id'));
  dv.setUint16(6, (ip.df ? 0x4000 : 0) | (ip.mf ? 0x2000 : 0) | (fragOffset >> 3));
  pkt[8] = checkInt(ip.ttl ?? 64, 0, 255, 'ip.ttl');
  pkt[9] = proto;
  dv.setUint32(12, src);
  dv.setUint32(16, dst);
  pkt.set(ipOpts, 20);

  const o = ihl;
  if (l4.kind === 'tcp') {
    dv.setUint16(o, checkInt(l4.sport, 0, 0xffff, 'tcp sport'));
    dv.setUint16(o + 2, checkInt(l4.dport, 0, 0xffff, 'tcp dport'));
    dv.setUint32(o + 4, checkInt(l4.seq ?? 0, 0, 0xffffffff, 'tcp seq'));
    dv.setUint32(o + 8, checkInt(l4.ack ?? 0, 0, 0xffffffff, 'tcp ack'));
    pkt[o + 12] = (l4HdrLen >> 2) << 4;
    pkt[o + 13] = tcpFlags(l4.flags);
    dv.setUint16(o + 14, checkInt(l4.window ?? 65535, 0, 0xffff, 'tcp window'));
    dv.setUint16(o + 18, checkInt(l4.urgent ?? 0, 0, 0xffff, 'tcp urgent'));
    pkt.set(tcpOpts, o + 20);
    pkt.set(payload, o + l4HdrLen);
    dv.setUint16(o + 16, l4Checksum(pkt, o, l4Len, 6, src, dst));
  } else if (l4.kind === 'udp') {
    dv.setUint16(o, checkInt(l4.sport, 0, 0xffff, 'udp sport'));
    dv.setUint16(o + 2, checkInt(l4.dport, 0, 0xffff, 'udp dport'));
    dv.setUint16(o + 4, l4Len);
    pkt.set(payload, o + 8);
    dv.setUint16(o + 6, l4.noChecksum ? 0 : l4Checksum(pkt, o, l4Len, 17, src, dst));
  } else if (l4.kind === 'icmp') {
    pkt[o] = checkInt(l4.type, 0, 255, 'icmp type');
    pkt[o + 1] = checkInt(l4.code, 0, 255, 'icmp code');
    if (l4.rest !== undefined) dv.setUint32(o + 4, checkInt(l4.rest, 0, 0xffffffff, 'icmp rest'));
    else {
      dv.setUint16(o + 4, checkInt(l4.id ?? 0, 0, 0xffff, 'icmp id'));
      dv.setUint16(o + 6, checkInt(l4.seq ?? 0, 0, 0xffff, 'icmp seq'));
    }
    pkt.set(payload, o + 8);
    dv.setUint16(o + 2, icmpChecksum(pkt, o, l4Len));
  } else {
    pkt.set(payload, o);
  }
  dv.setUint16(10, ipv4HeaderChecksum(pkt, 0, ihl));
  return pkt;
}

/** Build an Ethernet frame (DIX, EtherType 0x0800, optional 802.1Q/802.1ad tags) around an IPv4 packet. */
export function buildFrame(spec: FrameSpec): Uint8Array {
  return ethernetFrame(spec, buildIpPacket(spec));
}

/** Wrap an IPv4 packet (e.g. from buildIpPacket) in an Ethernet header. */
export function ethernetFrame(l2: Pick<FrameSpec, 'srcMac' | 'dstMac' | 'vlan' | 'pad'>, ipPacket: Uint8Array, etherType = 0x0800): Uint8Array {
  const tags = (l2.vlan ?? []).map((t, i, all) => {
    const tag: VlanTag = typeof t === 'number' ? { vid: t } : t;
    return {
      tpid: tag.tpid ?? (i < all.length - 1 ? 0x88a8 : 0x8100),
      tci: (checkInt(tag.pcp ?? 0, 0, 7, 'vlan pcp') << 13) | (tag.dei ? 0x1000 : 0) | checkInt(tag.vid, 0, 4095, 'vlan id'),
    };
  });
  const hdr = 14 + 4 * tags.length;
  let len = hdr + ipPacket.length;
  if (l2.pad !== false && len < ETH_MIN_FRAME) len = ETH_MIN_FRAME;
  const f = new Uint8Array(len);
  const dv = new DataView(f.buffer);
  f.set(toMac(l2.dstMac, 'dstMac'), 0);
  f.set(toMac(l2.srcMac, 'srcMac'), 6);
  let p = 12;
  for (const t of tags) {
    dv.setUint16(p, t.tpid);
    dv.setUint16(p + 2, t.tci);
    p += 4;
  }
  dv.setUint16(p, etherType);
  f.set(ipPacket, hdr);
  return f;
}

export interface IcmpErrorQuoteOpts {
  /** Bytes 4–7 (see IcmpSpec.rest): e.g. the next-hop MTU for type 3 code 4. Default 0. */
  rest?: number;
  /**
   * Bytes of the offending packet to quote. Default: its IP header + 8 bytes (RFC 792), or
   * all of it if shorter. Linux quotes as much as fits in 576 bytes (RFC 1812 §4.3.2.3):
   * pass Math.min(packet.length, 548) for that.
   */
  quoteBytes?: number;
}

/** The L4 spec of an ICMP error quoting `quoted` (an IPv4 packet starting at its IP header). */
export function icmpErrorL4(type: number, code: number, quoted: Uint8Array, opts: IcmpErrorQuoteOpts = {}): IcmpSpec {
  if (quoted.length < 20 || quoted[0]! >> 4 !== 4) throw new Error('icmp error: the quoted packet must start with an IPv4 header');
  const ihl = (quoted[0]! & 15) * 4;
  const n = Math.min(quoted.length, opts.quoteBytes ?? ihl + 8);
  return { kind: 'icmp', type, code, rest: opts.rest ?? 0, payload: quoted.slice(0, n) };
}

export interface IcmpErrorOpts extends Omit<FrameSpec, 'l4'>, IcmpErrorQuoteOpts {}

/**
 * An Ethernet frame carrying an ICMP error (type 3, 4, 5, 11, 12) that quotes `quoted` (the
 * offending IPv4 packet). `opts.ip` gives the outer header; its TOS defaults to 0xc0
 * (internetwork control, as Linux's icmp_send sets it). For the IP packet alone use
 * buildIpPacket({ ip, l4: icmpErrorL4(...) }).
 */
export function buildIcmpError(type: number, code: number, quoted: Uint8Array, opts: IcmpErrorOpts): Uint8Array {
  return buildFrame({ ...opts, ip: { ...opts.ip, tos: opts.ip.tos ?? 0xc0 }, l4: icmpErrorL4(type, code, quoted, opts) });
}

// ---- helpers ----

function toIp(x: Ipv4Like, what: string): number {
  if (typeof x === 'number') return checkInt(x, 0, 0xffffffff, what);
  return parseIpv4(x);
}

function toMac(x: MacLike, what: string): Uint8Array {
  if (typeof x === 'string') return parseMac(x);
  if (!(x instanceof Uint8Array) || x.length !== 6) throw new Error(`${what} must be 6 bytes or "xx:xx:xx:xx:xx:xx"`);
  return x;
}

function toBytes(x: Bytes | undefined): Uint8Array {
  if (x === undefined) return new Uint8Array(0);
  return typeof x === 'string' ? new TextEncoder().encode(x) : x;
}

function checkInt(x: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(x) || x < min || x > max) throw new Error(`${what} must be an integer in ${min}..${max}, got ${x}`);
  return x;
}

function padOptions(o: Uint8Array | undefined, what: string): Uint8Array {
  if (o === undefined || o.length === 0) return new Uint8Array(0);
  const n = (o.length + 3) & ~3;
  if (n > 40) throw new Error(`${what}: ${o.length} bytes do not fit in 40`);
  const out = new Uint8Array(n);
  out.set(o);
  return out;
}

const FLAG_LETTERS: Record<string, number> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10, '.': 0x10, U: 0x20, E: 0x40, C: 0x80, W: 0x80 };

/** TCP flags from a number or tcpdump-style letters. */
export function tcpFlags(f: number | string): number {
  if (typeof f === 'number') return checkInt(f, 0, 255, 'tcp flags');
  let v = 0;
  for (const ch of f.toUpperCase()) {
    const bit = FLAG_LETTERS[ch];
    if (bit === undefined) throw new Error(`tcp flags: unknown flag "${ch}" in "${f}" (use F S R P A . U E C)`);
    v |= bit;
  }
  return v;
}

export interface LinkOpts {
  /** Ethernet and SLL/SLL2 link-layer source address; default 02:00:00:00:00:01. */
  srcMac?: MacLike;
  /** Ethernet destination; default 02:00:00:00:00:02. */
  dstMac?: MacLike;
  /** Ethernet: VLAN tags (see FrameSpec.vlan). */
  vlan?: (number | VlanTag)[];
  /** Ethernet: pad to 60 bytes (default true). */
  pad?: boolean;
  /** SLL/SLL2 packet type: 0 to us (default), 1 broadcast, 2 multicast, 3 other host, 4 outgoing. */
  pktType?: number;
  /** SLL2 interface index; default 1. */
  ifindex?: number;
  /** NULL: write the address family big-endian (as a big-endian host would); default little-endian. */
  bigEndianNull?: boolean;
}

/**
 * Put an IP packet (IPv4 or IPv6, by its version nibble) in a frame of the given link type:
 * ETHERNET (1), NULL (0), RAW (101), IPV4 (228), LINUX_SLL (113) or LINUX_SLL2 (276). SLL and
 * SLL2 fields are big-endian, as libpcap writes them; the NULL family is in the writing host's
 * byte order (AF_INET 2; AF_INET6 is written as 30, the macOS/FreeBSD value).
 */
export function wrapIpPacket(linktype: number, ip: Uint8Array, opts: LinkOpts = {}): Uint8Array {
  const v6 = ip.length > 0 && ip[0]! >> 4 === 6;
  const etherType = v6 ? 0x86dd : 0x0800;
  const src = toMac(opts.srcMac ?? '02:00:00:00:00:01', 'srcMac');
  let hdr: Uint8Array;
  switch (linktype) {
    case 1:
      return ethernetFrame({ srcMac: src, dstMac: opts.dstMac ?? '02:00:00:00:00:02', vlan: opts.vlan, pad: opts.pad }, ip, etherType);
    case 101:
    case 228:
      return ip.slice();
    case 0: {
      hdr = new Uint8Array(4);
      new DataView(hdr.buffer).setUint32(0, v6 ? 30 : 2, !opts.bigEndianNull);
      break;
    }
    case 113: {
      hdr = new Uint8Array(16);
      const dv = new DataView(hdr.buffer);
      dv.setUint16(0, opts.pktType ?? 0);
      dv.setUint16(2, 1); // ARPHRD_ETHER
      dv.setUint16(4, 6);
      hdr.set(src, 6);
      dv.setUint16(14, etherType);
      break;
    }
    case 276: {
      hdr = new Uint8Array(20);
      const dv = new DataView(hdr.buffer);
      dv.setUint16(0, etherType);
      dv.setUint32(4, opts.ifindex ?? 1);
      dv.setUint16(8, 1); // ARPHRD_ETHER
      hdr[10] = opts.pktType ?? 0;
      hdr[11] = 6;
      hdr.set(src, 12);
      break;
    }
    default:
      throw new Error(`wrapIpPacket: unsupported link type ${linktype}`);
  }
  const f = new Uint8Array(hdr.length + ip.length);
  f.set(hdr, 0);
  f.set(ip, hdr.length);
  return f;
}
