/**
 * TCP connection tracking tables and helpers, from net/netfilter/nf_conntrack_proto_tcp.c
 * (Linux 6.x): the state names, the `tcp_conntracks` transition table, `get_conntrack_index`,
 * `tcp_valid_flags`, `segment_seq_plus_len`, `tcp_options` and `tcp_sack`.
 */

// enum tcp_conntrack (include/uapi/linux/netfilter/nf_conntrack_tcp.h).
export const TCP_CONNTRACK_NONE = 0;
export const TCP_CONNTRACK_SYN_SENT = 1;
export const TCP_CONNTRACK_SYN_RECV = 2;
export const TCP_CONNTRACK_ESTABLISHED = 3;
export const TCP_CONNTRACK_FIN_WAIT = 4;
export const TCP_CONNTRACK_CLOSE_WAIT = 5;
export const TCP_CONNTRACK_LAST_ACK = 6;
export const TCP_CONNTRACK_TIME_WAIT = 7;
export const TCP_CONNTRACK_CLOSE = 8;
export const TCP_CONNTRACK_SYN_SENT2 = 9;
export const TCP_CONNTRACK_MAX = 10;
export const TCP_CONNTRACK_IGNORE = 11;
/** Timeout slots beyond the states (tcp_timeouts[]). */
export const TCP_CONNTRACK_RETRANS = 12;
export const TCP_CONNTRACK_UNACK = 13;
export const TCP_CONNTRACK_TIMEOUT_MAX = 14;

export const TCP_STATE_NAMES = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
] as const;

// enum tcp_bit_set.
export const TCP_SYN_SET = 0;
export const TCP_SYNACK_SET = 1;
export const TCP_FIN_SET = 2;
export const TCP_ACK_SET = 3;
export const TCP_RST_SET = 4;
export const TCP_NONE_SET = 5;

// struct ip_ct_tcp_state.flags (include/uapi/linux/netfilter/nf_conntrack_tcp.h) and the
// last_flags bits of nf_conntrack_proto_tcp.c.
export const IP_CT_TCP_FLAG_WINDOW_SCALE = 0x01;
export const IP_CT_TCP_FLAG_SACK_PERM = 0x02;
export const IP_CT_TCP_FLAG_CLOSE_INIT = 0x04;
export const IP_CT_TCP_FLAG_BE_LIBERAL = 0x08;
export const IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED = 0x10;
export const IP_CT_TCP_FLAG_MAXACK_SET = 0x20;
export const IP_CT_EXP_CHALLENGE_ACK = 0x40;
export const IP_CT_TCP_SIMULTANEOUS_OPEN = 0x80;

const sNO = TCP_CONNTRACK_NONE;
const sSS = TCP_CONNTRACK_SYN_SENT;
const sSR = TCP_CONNTRACK_SYN_RECV;
const sES = TCP_CONNTRACK_ESTABLISHED;
const sFW = TCP_CONNTRACK_FIN_WAIT;
const sCW = TCP_CONNTRACK_CLOSE_WAIT;
const sLA = TCP_CONNTRACK_LAST_ACK;
const sTW = TCP_CONNTRACK_TIME_WAIT;
const sCL = TCP_CONNTRACK_CLOSE;
const sS2 = TCP_CONNTRACK_SYN_SENT2;
const sIV = TCP_CONNTRACK_MAX;
const sIG = TCP_CONNTRACK_IGNORE;
void sNO;

/**
 * tcp_conntracks[dir][index][state], flattened: [(dir * 6 + index) * 10 + state].
 * Columns: sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2 (the 6.x table, with the
 * "sSR -> sSR" SYN/ACK in the original direction and "sTW -> sSS" SYN in reply).
 */
// prettier-ignore
export const TCP_CONNTRACKS = new Uint8Array([
  // ORIGINAL
  /*syn*/    sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2,
  /*synack*/ sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR,
  /*fin*/    sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
  /*ack*/    sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV,
  /*rst*/    sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  /*none*/   sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
  // REPLY
  /*syn*/    sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2,
  /*synack*/ sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR,
  /*fin*/    sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
  /*ack*/    sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG,
  /*rst*/    sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  /*none*/   sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
]);

export function tcpNextState(dir: number, index: number, state: number): number {
  return TCP_CONNTRACKS[(dir * 6 + index) * 10 + state]!;
}

const TH_FIN = 0x01;
const TH_SYN = 0x02;
const TH_RST = 0x04;
const TH_ACK = 0x10;

/** get_conntrack_index. */
export function tcpIndex(flags: number): number {
  if (flags & TH_RST) return TCP_RST_SET;
  if (flags & TH_SYN) return flags & TH_ACK ? TCP_SYNACK_SET : TCP_SYN_SET;
  if (flags & TH_FIN) return TCP_FIN_SET;
  if (flags & TH_ACK) return TCP_ACK_SET;
  return TCP_NONE_SET;
}

/** tcp_valid_flags, indexed by the flag byte without PSH, ECE and CWR. */
const VALID_FLAGS = new Uint8Array(0x40);
VALID_FLAGS[0x02] = 1; // SYN
VALID_FLAGS[0x22] = 1; // SYN|URG
VALID_FLAGS[0x12] = 1; // SYN|ACK
VALID_FLAGS[0x04] = 1; // RST
VALID_FLAGS[0x14] = 1; // RST|ACK
VALID_FLAGS[0x11] = 1; // FIN|ACK
VALID_FLAGS[0x31] = 1; // FIN|ACK|URG
VALID_FLAGS[0x10] = 1; // ACK
VALID_FLAGS[0x30] = 1; // ACK|URG

/** tcp_error's flag check: PUSH, ECE and CWR are always valid. */
export function tcpFlagsValid(flags: number): boolean {
  return VALID_FLAGS[flags & 0x37] === 1;
}

/**
 * segment_seq_plus_len: seq + data length + SYN + FIN (mod 2^32, as an int32 like every
 * sequence-space value here). `l4Len` is the IP payload length.
 */
export function segmentSeqPlusLen(seq: number, l4Len: number, doff: number, flags: number): number {
  return (seq + l4Len - doff + (flags & TH_SYN ? 1 : 0) + (flags & TH_FIN ? 1 : 0)) | 0;
}

/** before(a, b) of include/net/tcp.h: (s32)(a - b) < 0. */
export function seqBefore(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** after(a, b). */
export function seqAfter(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_WINDOW = 3;
const TCPOPT_SACK_PERM = 4;
const TCPOPT_SACK = 5;
const TCPOPT_TIMESTAMP = 8;
const TCP_MAX_WSCALE = 14;

/** Result holder of tcpOptions (no allocation per call). */
export class TcpOptionsResult {
  scale = 0;
  flags = 0;
}

/**
 * tcp_options: window scale and SACK-permitted of the options of the TCP header at `l4`
 * (`doff` bytes long). Mirrors the kernel: td_scale and flags are reset first.
 */
export function tcpOptions(buf: Uint8Array, l4: number, doff: number, out: TcpOptionsResult): void {
  let length = doff - 20;
  if (length <= 0) return;
  out.scale = 0;
  out.flags = 0;
  let p = l4 + 20;
  while (length > 0) {
    const opcode = buf[p++]!;
    if (opcode === TCPOPT_EOL) return;
    if (opcode === TCPOPT_NOP) {
      length--;
      continue;
    }
    if (length < 2) return;
    const opsize = buf[p++]!;
    if (opsize < 2) return; // "silly options"
    if (opsize > length) return; // don't parse partial options
    if (opcode === TCPOPT_SACK_PERM && opsize === 2) out.flags |= IP_CT_TCP_FLAG_SACK_PERM;
    else if (opcode === TCPOPT_WINDOW && opsize === 3) {
      let s = buf[p]!;
      if (s > TCP_MAX_WSCALE) s = TCP_MAX_WSCALE;
      out.scale = s;
      out.flags |= IP_CT_TCP_FLAG_WINDOW_SCALE;
    }
    p += opsize - 2;
    length -= opsize;
  }
}

/**
 * tcp_sack: the highest right edge of the SACK blocks of the TCP header at `l4`, if after
 * `sack`; else `sack` (int32 sequence space).
 */
export function tcpSack(buf: Uint8Array, dv: DataView, l4: number, doff: number, sack: number): number {
  let length = doff - 20;
  if (length <= 0) return sack;
  let p = l4 + 20;
  // Fast path for timestamp-only option (NOP, NOP, TIMESTAMP, 10).
  if (length === 12 && buf[p] === TCPOPT_NOP && buf[p + 1] === TCPOPT_NOP && buf[p + 2] === TCPOPT_TIMESTAMP && buf[p + 3] === 10) return sack;
  while (length > 0) {
    const opcode = buf[p++]!;
    if (opcode === TCPOPT_EOL) return sack;
    if (opcode === TCPOPT_NOP) {
      length--;
      continue;
    }
    if (length < 2) return sack;
    const opsize = buf[p++]!;
    if (opsize < 2) return sack;
    if (opsize > length) return sack;
    if (opcode === TCPOPT_SACK && opsize >= 10 && (opsize - 2) % 8 === 0) {
      for (let i = 0; i < opsize - 2; i += 8) {
        const tmp = dv.getInt32(p + i + 4);
        if (seqAfter(tmp, sack)) sack = tmp;
      }
      return sack;
    }
    p += opsize - 2;
    length -= opsize;
  }
  return sack;
}
