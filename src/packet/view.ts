/**
 * PacketView: the parsed headers of one frame, as offsets and numbers over the batch buffer.
 *
 * One long-lived instance per worker is re-pointed at each frame by `parse`; nothing is
 * allocated per packet and nothing throws: a frame that is not IPv4, is malformed, or was cut by
 * the capture's snaplen is classified by the returned status (and `malformedReason`).
 *
 * Conventions: offsets are absolute offsets into `buf` (the batch buffer), -1 when absent;
 * values are 0 when absent, except those whose 0 is a valid value on the wire (vlanId, the
 * ICMP type, code, id and sequence number, inner ICMP type and id), which are -1. IPv4
 * addresses are unsigned 32-bit numbers in host order (10.0.0.1 is 0x0a000001); compare them
 * with `===` against `>>> 0` values. Multi-byte fields are read big-endian (network order).
 *
 * Typical use:
 *   const st = view.parse(batch.buf, batch.dv, batch.offset[i], batch.caplen[i], linktype, fcsLen, batch.origlen[i]);
 *   if (st === PARSE_OK || (st === PARSE_TRUNCATED && view.malformedReason === REASON_PAYLOAD_TRUNCATED)) {
 *     // headers complete: match on view.srcIp, view.dstPort ...; rewrite with rewrite.ts
 *   }
 */

// Link types (https://www.tcpdump.org/linktypes.html; same values as src/pcap/types.ts, which
// this layer does not import: packet depends on nothing).
export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_LINUX_SLL2 = 276;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100; // 802.1Q C-tag
export const ETHERTYPE_QINQ = 0x88a8; // 802.1ad S-tag
export const ETHERTYPE_QINQ_OLD = 0x9100; // pre-802.1ad QinQ, still seen; Wireshark decodes it as VLAN

export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ESP = 50;

// TCP flags (byte 13 of the header).
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

// ICMP types that carry an identifier and sequence number (RFC 792, RFC 950).
export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETER_PROBLEM = 12;
export const ICMP_TIMESTAMP = 13;
export const ICMP_TIMESTAMP_REPLY = 14;
export const ICMP_INFO_REQUEST = 15;
export const ICMP_INFO_REPLY = 16;
export const ICMP_ADDRESS = 17;
export const ICMP_ADDRESS_REPLY = 18;

/** True for ICMP query types whose bytes 4–7 are identifier and sequence number. */
export function icmpIsQuery(type: number): boolean {
  return type === 0 || type === 8 || (type >= 13 && type <= 18);
}

/** True for ICMP error types, which quote the offending IP header + data (RFC 792, RFC 1812 §4.3.2.3). */
export function icmpIsError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

// ---- parse status ----
/** The IPv4 packet is wholly captured and its headers are consistent. */
export const PARSE_OK = 0;
/** Not an IPv4 frame (ARP, IPv6, LLC, an unknown link type ...): carry it through untouched. */
export const PARSE_NON_IPV4 = 1;
/** An IPv4 frame whose headers contradict each other or the frame; see malformedReason. */
export const PARSE_MALFORMED = 2;
/**
 * A valid IPv4 frame cut by the capture's snaplen (caplen < origlen) before the end of the IP
 * packet. malformedReason says where the capture ends: REASON_PAYLOAD_TRUNCATED means every
 * header (IP, L4, the ICMP error's quote) is complete and its fields are set, so the packet
 * can be processed with incremental checksum updates; any other reason names the header the
 * capture stops in, and only the fields before it are set.
 */
export const PARSE_TRUNCATED = 3;

// ---- reasons (malformedReason) ----
export const REASON_NONE = 0;
/** The frame is shorter than its link-layer header (incl. VLAN tags). */
export const REASON_LINK_HEADER_TRUNCATED = 1;
/** IP version is not 4 in a frame that says IPv4 (EtherType 0x0800, LINKTYPE_IPV4) or not 4/6 in RAW. */
export const REASON_BAD_IP_VERSION = 2;
/** Fewer bytes than the IP header (20 bytes, or IHL*4) after the link header. */
export const REASON_IP_HEADER_TRUNCATED = 3;
/** IHL < 5 (RFC 791: the minimum header is 5 words). */
export const REASON_IHL_TOO_SHORT = 4;
/** Total Length < IHL*4. */
export const REASON_TOTAL_LENGTH_TOO_SHORT = 5;
/** Total Length reaches past the end of the frame (and the capture was not cut). */
export const REASON_TOTAL_LENGTH_BEYOND_FRAME = 6;
/** Less than 20 bytes of TCP header inside the IP packet. */
export const REASON_TCP_HEADER_TRUNCATED = 7;
/** TCP data offset < 5 words, or the header it gives reaches past the IP packet. */
export const REASON_TCP_BAD_DATA_OFFSET = 8;
/** Less than 8 bytes of UDP header inside the IP packet. */
export const REASON_UDP_HEADER_TRUNCATED = 9;
/** UDP length < 8, or (unfragmented) greater than the IP payload. */
export const REASON_UDP_BAD_LENGTH = 10;
/** Less than 8 bytes of ICMP header inside the IP packet. */
export const REASON_ICMP_HEADER_TRUNCATED = 11;
/** An ICMP error quotes less than the offending IP header + 64 bits of its data (RFC 792). */
export const REASON_ICMP_QUOTE_TOO_SHORT = 12;
/** The IP header quoted in an ICMP error is not IPv4 or has IHL < 5. */
export const REASON_ICMP_QUOTE_BAD_IP = 13;
/** PARSE_TRUNCATED only: all headers captured, the payload was cut by the snaplen. */
export const REASON_PAYLOAD_TRUNCATED = 14;

const REASON_TEXT = [
  'none',
  'frame shorter than its link-layer header',
  'bad IP version',
  'IP header truncated',
  'IP header length (IHL) < 5',
  'IP total length < header length',
  'IP total length beyond the end of the frame',
  'TCP header truncated',
  'bad TCP data offset',
  'UDP header truncated',
  'bad UDP length',
  'ICMP header truncated',
  'ICMP error quotes less than IP header + 8 bytes',
  'ICMP error quotes a bad IP header',
  'payload not captured (snaplen)',
];

/** Short English text of a malformedReason code (for accounting and traces). */
export function parseReasonText(code: number): string {
  return REASON_TEXT[code] ?? `reason ${code}`;
}

/** Short English text of a parse status. */
export function parseStatusText(status: number): string {
  return status === PARSE_OK
    ? 'ok'
    : status === PARSE_NON_IPV4
      ? 'not IPv4'
      : status === PARSE_MALFORMED
        ? 'malformed'
        : status === PARSE_TRUNCATED
          ? 'truncated by snaplen'
          : `status ${status}`;
}

/** -0: a number that is not a small integer (see PacketView's fields). */
const DOUBLE_ZERO = -0;

export class PacketView {
  // Every field is initialised here, in one order, with a value of its final representation, so
  // every instance has one hidden class and parse() only overwrites fields in place. Fields that
  // take values beyond the small-integer range (addresses, sequence numbers) start as a double
  // (DOUBLE_ZERO) so V8 gives them a double field from the start: storing a large number
  // into a double field writes in place, into a tagged field it would allocate.
  // ---- frame ----
  /** Link type the frame was parsed as. */
  linktype = 0;
  /** Offset of the frame's first byte (the link-layer header). */
  frameOff = 0;
  /** Captured bytes of the frame, as passed (may include an FCS). */
  caplen = 0;
  /** Original length of the frame on the wire, as passed (defaults to caplen). */
  origlen = 0;
  /** FCS bytes at the end of the frame on the wire, as passed. */
  fcsLen = 0;
  /** One past the last usable byte: frameOff + caplen, less any captured FCS. */
  dataEnd = 0;
  /** Bytes before the IP header (link header + VLAN tags). */
  l2Len = 0;

  // ---- link layer ----
  /**
   * EtherType of the payload after any VLAN tags (Ethernet, SLL, SLL2 protocol field; an
   * Ethernet value < 0x600 is an 802.3 length). RAW: 0x0800/0x86dd by version; NULL: 0x0800
   * for AF_INET, 0x86dd for the AF_INET6 values, else 0.
   */
  etherType = 0;
  /** Number of 802.1Q/802.1ad tags. */
  vlanCount = 0;
  /**
   * Offset of the first tag's TPID, -1 without tags. On Ethernet and SLL the 4-byte tag
   * (TPID, TCI) is contiguous there; on SLL2 the TPID is the header's protocol field (offset 0)
   * and the first TCI follows the 20-byte header.
   */
  vlanTagOff = -1;
  /** VLAN id (low 12 bits of the TCI) of the outer tag, -1 without tags. */
  vlanId = -1;

  // ---- IPv4 ----
  ipOff = -1;
  /** IHL * 4. */
  ipHdrLen = 0;
  ipTotalLen = 0;
  ipProto = 0;
  tos = 0;
  ttl = 0;
  ipId = 0;
  /** Flags (3 bits) and fragment offset (13 bits): the 16-bit word at byte 6. */
  fragField = 0;
  /** Don't Fragment: 1 or 0. */
  df = 0;
  /** More Fragments: 1 or 0. */
  mf = 0;
  /** Fragment offset in bytes. */
  fragOffset = 0;
  srcIp = DOUBLE_ZERO;
  dstIp = DOUBLE_ZERO;
  /** ipHdrLen - 20. */
  ipOptionsLen = 0;

  // ---- L4 ----
  /** Offset of the L4 header; -1 for non-first fragments (no L4 header). */
  l4Off = -1;
  /** Bytes of L4 (header + data) inside the IP total length; 0 when l4Off is -1. */
  l4Len = 0;
  /** Bytes of L4 actually captured (< l4Len when the snaplen cut the packet). */
  l4Captured = 0;
  /** TCP/UDP ports (0 otherwise). */
  srcPort = 0;
  dstPort = 0;
  tcpFlags = 0;
  tcpSeq = DOUBLE_ZERO;
  tcpAck = DOUBLE_ZERO;
  /** TCP header length in bytes (data offset * 4). */
  tcpDataOff = 0;
  tcpWindow = 0;
  /** ICMP type and code, -1 when not ICMP. */
  icmpType = -1;
  icmpCode = -1;
  /** Identifier and sequence number of ICMP query types (echo, timestamp, info, mask); -1 otherwise. */
  icmpId = -1;
  icmpSeq = -1;

  // ---- ICMP error quote (types 3, 4, 5, 11, 12) ----
  /** Offset of the quoted IP header, -1 when not an ICMP error. */
  innerIpOff = -1;
  innerIpHdrLen = 0;
  innerProto = 0;
  innerSrcIp = DOUBLE_ZERO;
  innerDstIp = DOUBLE_ZERO;
  /** Offset of the quoted L4 header; -1 when absent (quoted packet is a non-first fragment). */
  innerL4Off = -1;
  /** Quoted bytes of the inner L4 header and data (inside the outer IP packet and captured). */
  innerL4Len = 0;
  innerSrcPort = 0;
  innerDstPort = 0;
  /** Quoted ICMP message (an error about an ICMP packet): its type, -1 otherwise. */
  innerIcmpType = -1;
  /** Identifier of a quoted ICMP query, -1 otherwise. */
  innerIcmpId = -1;

  /** REASON_* for PARSE_MALFORMED and PARSE_TRUNCATED, REASON_NONE otherwise. */
  malformedReason = 0;

  /** Groups of fields holding values of an earlier packet (G_* bits); see fin(). */
  private dirty = 0;

  constructor() {
    // The double fields now hold +0 like every other "absent" value (their representation
    // stays double).
    this.clean(G_ALL);
  }

  /**
   * Point the view at the frame buf[off, off+caplen) and parse it. `dv` is a DataView over
   * exactly the bytes of `buf` (new DataView(buf.buffer, buf.byteOffset, buf.byteLength), as
   * RecordBatch keeps it). `fcsLen` bytes of FCS end the frame on the wire and are
   * excluded; `origlen` is the frame's length on the wire (pcap orig_len), which tells a frame
   * cut by the snaplen (PARSE_TRUNCATED) from a malformed one. Returns a PARSE_* status.
   *
   * Every field describes this frame afterwards: a field the frame does not reach has its
   * "absent" value. The IP fields (ipOff included) are set once the IP header is complete;
   * before that, the IP header (if any) starts at frameOff + l2Len.
   */
  parse(buf: Uint8Array, dv: DataView, off: number, caplen: number, linktype: number, fcsLen = 0, origlen = caplen): number {
    this.linktype = linktype;
    this.frameOff = off;
    this.caplen = caplen;
    this.origlen = origlen;
    this.fcsLen = fcsLen;
    // End of the frame's bytes without FCS: on the wire (origEnd) and captured (end).
    const origEnd = off + origlen - fcsLen;
    let end = off + caplen;
    if (end > origEnd) end = origEnd; // the captured tail is (part of) the FCS
    if (end > buf.length) end = buf.length; // never read past the buffer, whatever the caller says
    if (end < off) end = off;
    this.dataEnd = end;
    this.l2Len = 0;
    this.etherType = 0;
    // Field groups this frame has written (G_*); fin() resets the others that are dirty.
    let filled = 0;

    // ---- link layer: find the IPv4 header ----
    let p: number; // offset of the network-layer header
    if (linktype === LINKTYPE_ETHERNET || linktype === LINKTYPE_LINUX_SLL || linktype === LINKTYPE_LINUX_SLL2) {
      let typeOff: number;
      if (linktype === LINKTYPE_ETHERNET) {
        typeOff = off + 12;
        p = off + 14;
      } else if (linktype === LINKTYPE_LINUX_SLL) {
        typeOff = off + 14; // pkttype, arphrd, lladdr_len, lladdr[8], protocol
        p = off + 16;
      } else {
        typeOff = off; // protocol, reserved, ifindex, arphrd, pkttype, lladdr_len, lladdr[8]
        p = off + 20;
      }
      if (p > end) return this.cut(p, origEnd, REASON_LINK_HEADER_TRUNCATED, filled);
      let et = dv.getUint16(typeOff);
      if (et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ || et === ETHERTYPE_QINQ_OLD) {
        // 802.1Q / 802.1ad tags, possibly stacked: each is TCI(2) + the next type(2).
        if (p + 4 > end) return this.cut(p + 4, origEnd, REASON_LINK_HEADER_TRUNCATED, filled);
        const vid = dv.getUint16(p) & 0xfff;
        let n = 0;
        do {
          if (p + 4 > end) return this.cut(p + 4, origEnd, REASON_LINK_HEADER_TRUNCATED, filled);
          et = dv.getUint16(p + 2);
          p += 4;
          n++;
        } while (et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ || et === ETHERTYPE_QINQ_OLD);
        this.vlanTagOff = typeOff;
        this.vlanId = vid;
        this.vlanCount = n;
        filled = G_VLAN;
      }
      this.etherType = et;
      this.l2Len = p - off;
      if (et !== ETHERTYPE_IPV4) return this.fin(PARSE_NON_IPV4, REASON_NONE, filled);
    } else if (linktype === LINKTYPE_IPV4) {
      p = off;
      this.etherType = ETHERTYPE_IPV4;
    } else if (linktype === LINKTYPE_RAW) {
      // IPv4 or IPv6: the version nibble decides.
      p = off;
      if (p + 1 > end) return this.cut(p + 1, origEnd, REASON_IP_HEADER_TRUNCATED, filled);
      const ver = buf[p]! >> 4;
      if (ver === 6) {
        this.etherType = ETHERTYPE_IPV6;
        return this.fin(PARSE_NON_IPV4, REASON_NONE, filled);
      }
      this.etherType = ETHERTYPE_IPV4;
      if (ver !== 4) return this.fin(PARSE_MALFORMED, REASON_BAD_IP_VERSION, filled);
    } else if (linktype === LINKTYPE_NULL) {
      // BSD loopback: a 4-byte address family in the capturing host's byte order; AF_INET is 2
      // everywhere, AF_INET6 is 24, 28 or 30 depending on the OS.
      p = off + 4;
      if (p > end) return this.cut(p, origEnd, REASON_LINK_HEADER_TRUNCATED, filled);
      this.l2Len = 4;
      let fam = dv.getUint32(off, true);
      if (fam > 0xffff) fam = dv.getUint32(off, false);
      if (fam !== 2) {
        this.etherType = fam === 24 || fam === 28 || fam === 30 ? ETHERTYPE_IPV6 : 0;
        return this.fin(PARSE_NON_IPV4, REASON_NONE, filled);
      }
      this.etherType = ETHERTYPE_IPV4;
    } else {
      return this.fin(PARSE_NON_IPV4, REASON_NONE, filled);
    }

    // ---- IPv4 header (RFC 791) ----
    if (p + 1 > end) return this.cut(p + 1, origEnd, REASON_IP_HEADER_TRUNCATED, filled);
    const b0 = buf[p]!;
    if (b0 >> 4 !== 4) return this.fin(PARSE_MALFORMED, REASON_BAD_IP_VERSION, filled);
    const ihl = (b0 & 15) << 2;
    if (ihl < 20) return this.fin(PARSE_MALFORMED, REASON_IHL_TOO_SHORT, filled);
    if (p + ihl > end) return this.cut(p + ihl, origEnd, REASON_IP_HEADER_TRUNCATED, filled);
    const totalLen = dv.getUint16(p + 2);
    const frag = dv.getUint16(p + 6);
    const proto = buf[p + 9]!;
    const fragOffset = (frag & 0x1fff) << 3;
    this.ipOff = p;
    this.ipHdrLen = ihl;
    this.ipTotalLen = totalLen;
    this.ipProto = proto;
    this.tos = buf[p + 1]!;
    this.ttl = buf[p + 8]!;
    this.ipId = dv.getUint16(p + 4);
    this.fragField = frag;
    this.df = (frag >> 14) & 1;
    this.mf = (frag >> 13) & 1;
    this.fragOffset = fragOffset;
    this.srcIp = dv.getUint32(p + 12);
    this.dstIp = dv.getUint32(p + 16);
    this.ipOptionsLen = ihl - 20;
    filled |= G_IP;
    if (totalLen < ihl) return this.fin(PARSE_MALFORMED, REASON_TOTAL_LENGTH_TOO_SHORT, filled);
    const ipEnd = p + totalLen;
    // Bytes after ipEnd are Ethernet padding (60-byte minimum frame) or a trailer: ignored.
    let status = PARSE_OK;
    if (ipEnd > end) {
      if (ipEnd > origEnd) return this.fin(PARSE_MALFORMED, REASON_TOTAL_LENGTH_BEYOND_FRAME, filled);
      status = PARSE_TRUNCATED; // the snaplen cut it; the headers may still be complete
    }
    if (fragOffset !== 0) return this.done(status, filled); // non-first fragment: no L4 header

    // ---- L4 (first fragment or unfragmented) ----
    const l4 = p + ihl;
    const l4Len = totalLen - ihl;
    const l4Cap = (ipEnd < end ? ipEnd : end) - l4;
    this.l4Off = l4;
    this.l4Len = l4Len;
    this.l4Captured = l4Cap;
    filled |= G_L4;
    if (proto === IPPROTO_TCP) {
      if (l4Len < 20) return this.fin(PARSE_MALFORMED, REASON_TCP_HEADER_TRUNCATED, filled);
      if (l4Cap < 20) return this.cut(l4 + 20, origEnd, REASON_TCP_HEADER_TRUNCATED, filled);
      const doff = (buf[l4 + 12]! >> 4) << 2;
      if (doff < 20 || doff > l4Len) return this.fin(PARSE_MALFORMED, REASON_TCP_BAD_DATA_OFFSET, filled);
      this.srcPort = dv.getUint16(l4);
      this.dstPort = dv.getUint16(l4 + 2);
      this.tcpSeq = dv.getUint32(l4 + 4);
      this.tcpAck = dv.getUint32(l4 + 8);
      this.tcpDataOff = doff;
      this.tcpFlags = buf[l4 + 13]!;
      this.tcpWindow = dv.getUint16(l4 + 14);
      filled |= G_PORTS | G_TCP;
      if (l4Cap < doff) return this.cut(l4 + doff, origEnd, REASON_TCP_HEADER_TRUNCATED, filled);
    } else if (proto === IPPROTO_UDP) {
      if (l4Len < 8) return this.fin(PARSE_MALFORMED, REASON_UDP_HEADER_TRUNCATED, filled);
      if (l4Cap < 8) return this.cut(l4 + 8, origEnd, REASON_UDP_HEADER_TRUNCATED, filled);
      const ulen = dv.getUint16(l4 + 4);
      // As nf_conntrack's udp_error: a length < 8, or more than the IP payload, is malformed; a
      // shorter one is trimmed by the kernel. A first fragment holds only part of the datagram.
      if (ulen < 8 || (ulen > l4Len && (frag & 0x2000) === 0)) return this.fin(PARSE_MALFORMED, REASON_UDP_BAD_LENGTH, filled);
      this.srcPort = dv.getUint16(l4);
      this.dstPort = dv.getUint16(l4 + 2);
      filled |= G_PORTS;
    } else if (proto === IPPROTO_ICMP) {
      if (l4Len < 8) return this.fin(PARSE_MALFORMED, REASON_ICMP_HEADER_TRUNCATED, filled);
      if (l4Cap < 8) return this.cut(l4 + 8, origEnd, REASON_ICMP_HEADER_TRUNCATED, filled);
      const type = buf[l4]!;
      this.icmpType = type;
      this.icmpCode = buf[l4 + 1]!;
      if (type === 0 || type === 8 || (type >= 13 && type <= 18)) {
        this.icmpId = dv.getUint16(l4 + 4);
        this.icmpSeq = dv.getUint16(l4 + 6);
      } else {
        this.icmpId = -1;
        this.icmpSeq = -1;
      }
      filled |= G_ICMP;
      if (type === 3 || type === 11 || type === 4 || type === 5 || type === 12) {
        return this.parseQuote(buf, dv, l4 + 8, ipEnd, end, origEnd, status, filled);
      }
    }
    return this.done(status, filled);
  }

  /** The ICMP error's quote at q: IP header + at least 8 bytes of its data (RFC 792). */
  private parseQuote(buf: Uint8Array, dv: DataView, q: number, ipEnd: number, end: number, origEnd: number, status: number, filled: number): number {
    const qLen = ipEnd - q;
    if (qLen < 20) return this.fin(PARSE_MALFORMED, REASON_ICMP_QUOTE_TOO_SHORT, filled);
    if (q + 1 > end) return this.cut(q + 1, origEnd, REASON_ICMP_QUOTE_TOO_SHORT, filled);
    const b0 = buf[q]!;
    const ihl = (b0 & 15) << 2;
    if (b0 >> 4 !== 4 || ihl < 20) return this.fin(PARSE_MALFORMED, REASON_ICMP_QUOTE_BAD_IP, filled);
    if (qLen < ihl) return this.fin(PARSE_MALFORMED, REASON_ICMP_QUOTE_TOO_SHORT, filled);
    if (q + ihl > end) return this.cut(q + ihl, origEnd, REASON_ICMP_QUOTE_TOO_SHORT, filled);
    const proto = buf[q + 9]!;
    this.innerIpOff = q;
    this.innerIpHdrLen = ihl;
    this.innerProto = proto;
    this.innerSrcIp = dv.getUint32(q + 12);
    this.innerDstIp = dv.getUint32(q + 16);
    filled |= G_INNER_IP;
    if ((dv.getUint16(q + 6) & 0x1fff) !== 0) return this.done(status, filled); // quotes a non-first fragment
    const l4 = q + ihl;
    // RFC 792 asks for 64 bits of the original data, or all of it if there was less.
    let need = dv.getUint16(q + 2) - ihl;
    if (need > 8) need = 8;
    if (ipEnd - l4 < need) return this.fin(PARSE_MALFORMED, REASON_ICMP_QUOTE_TOO_SHORT, filled);
    const avail = (ipEnd < end ? ipEnd : end) - l4;
    this.innerL4Off = l4;
    this.innerL4Len = avail > 0 ? avail : 0;
    filled |= G_INNER_L4;
    if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) {
      if (need >= 4) {
        if (avail < 4) return this.cut(l4 + 4, origEnd, REASON_ICMP_QUOTE_TOO_SHORT, filled);
        this.innerSrcPort = dv.getUint16(l4);
        this.innerDstPort = dv.getUint16(l4 + 2);
        filled |= G_INNER_PORTS;
      }
    } else if (proto === IPPROTO_ICMP && need >= 1) {
      if (avail < 1) return this.cut(l4 + 1, origEnd, REASON_ICMP_QUOTE_TOO_SHORT, filled);
      const type = buf[l4]!;
      let id = -1;
      if (need >= 6 && (type === 0 || type === 8 || (type >= 13 && type <= 18))) {
        if (avail < 6) return this.cut(l4 + 6, origEnd, REASON_ICMP_QUOTE_TOO_SHORT, filled);
        id = dv.getUint16(l4 + 4);
      }
      this.innerIcmpType = type;
      this.innerIcmpId = id;
      filled |= G_INNER_ICMP;
    }
    return this.done(status, filled);
  }

  /**
   * Every exit of parse comes here: reset the field groups an earlier packet left values in and
   * this one did not write (so the common case, a run of similar packets, resets nothing),
   * record the reason, return the status.
   */
  private fin(status: number, reason: number, filled: number): number {
    const stale = this.dirty & ~filled;
    if (stale !== 0) this.clean(stale);
    this.dirty = filled;
    this.malformedReason = reason;
    return status;
  }

  private done(status: number, filled: number): number {
    return this.fin(status, status === PARSE_TRUNCATED ? REASON_PAYLOAD_TRUNCATED : REASON_NONE, filled);
  }

  /**
   * Bytes up to `need` were required but not captured: the snaplen cut the frame if they lie
   * within its length on the wire, else the frame itself is too short (malformed).
   */
  private cut(need: number, origEnd: number, reason: number, filled: number): number {
    return this.fin(need <= origEnd ? PARSE_TRUNCATED : PARSE_MALFORMED, reason, filled);
  }

  /** Put the groups of fields in `groups` (G_* bits) back to their "absent" values. */
  private clean(groups: number): void {
    if (groups & G_VLAN) {
      this.vlanCount = 0;
      this.vlanTagOff = -1;
      this.vlanId = -1;
    }
    if (groups & G_IP) {
      this.ipOff = -1;
      this.ipHdrLen = 0;
      this.ipTotalLen = 0;
      this.ipProto = 0;
      this.tos = 0;
      this.ttl = 0;
      this.ipId = 0;
      this.fragField = 0;
      this.df = 0;
      this.mf = 0;
      this.fragOffset = 0;
      this.srcIp = 0;
      this.dstIp = 0;
      this.ipOptionsLen = 0;
    }
    if (groups & G_L4) {
      this.l4Off = -1;
      this.l4Len = 0;
      this.l4Captured = 0;
    }
    if (groups & G_PORTS) {
      this.srcPort = 0;
      this.dstPort = 0;
    }
    if (groups & G_TCP) {
      this.tcpFlags = 0;
      this.tcpSeq = 0;
      this.tcpAck = 0;
      this.tcpDataOff = 0;
      this.tcpWindow = 0;
    }
    if (groups & G_ICMP) {
      this.icmpType = -1;
      this.icmpCode = -1;
      this.icmpId = -1;
      this.icmpSeq = -1;
    }
    if (groups & G_INNER_IP) {
      this.innerIpOff = -1;
      this.innerIpHdrLen = 0;
      this.innerProto = 0;
      this.innerSrcIp = 0;
      this.innerDstIp = 0;
    }
    if (groups & G_INNER_L4) {
      this.innerL4Off = -1;
      this.innerL4Len = 0;
    }
    if (groups & G_INNER_PORTS) {
      this.innerSrcPort = 0;
      this.innerDstPort = 0;
    }
    if (groups & G_INNER_ICMP) {
      this.innerIcmpType = -1;
      this.innerIcmpId = -1;
    }
  }
}

// Groups of PacketView fields that parse() writes together (see PacketView.fin).
const G_VLAN = 1;
const G_IP = 2;
const G_L4 = 4;
const G_PORTS = 8;
const G_TCP = 16;
const G_ICMP = 32;
const G_INNER_IP = 64;
const G_INNER_L4 = 128;
const G_INNER_PORTS = 256;
const G_INNER_ICMP = 512;
const G_ALL = 1023;
