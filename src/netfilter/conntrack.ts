/**
 * Connection tracking: what nf_conntrack does to each IPv4 packet (net/netfilter/nf_conntrack_core.c
 * and the protocol trackers nf_conntrack_proto_{tcp,udp,icmp,gre,generic}.c, Linux 6.x).
 *
 * Storage: parallel typed arrays indexed by entry id (the ConntrackView the rule evaluator's
 * `-m conntrack` reads), one 64-byte record per entry for the TCP state, an open-addressing
 * hash table (linear probing over an Int32Array of (hash, node) slots) with two nodes per entry
 * (node 2*id = original tuple, 2*id+1 = reply tuple, like the kernel's tuplehash[2]), a free
 * list of ids, and no object per entry. Nothing is allocated per packet (arrays grow by
 * doubling, which allocates, but only when the number of live entries reaches a new high).
 * Iteration (ids(), gc) is in id order: deterministic.
 * NOTE for readers of the ConntrackView arrays: they are replaced when the table grows, so read
 * them through this object at each access (`ct.status[id]`), never keep a reference.
 *
 * Lifecycle (kernel → here):
 *  - nf_conntrack_in (PREROUTING / OUTPUT) → lookup(): finds the entry by tuple, or allocates an
 *    unconfirmed one (not in the hash) — the table limit is enforced *here*, as
 *    __nf_conntrack_alloc does, and lookup() returns false when the packet must be dropped
 *    ("nf_conntrack: table full, dropping packet").
 *  - nf_conntrack_confirm (end of POSTROUTING / INPUT) → confirm(): hashes the entry.
 *  - the skb is freed without confirmation → abandon(), or automatically: an unconfirmed entry
 *    neither confirmed nor abandoned is reclaimed after LIMBO_GRACE further lookups.
 *  - Entries killed while a packet may still refer to them (early drop, the RST-only reply,
 *    a re-opened TIME_WAIT, the masquerade oif change, abandon) are unhashed at once and freed
 *    LIMBO_GRACE lookups later, as the kernel keeps a dying conntrack until its last reference
 *    goes. Expired entries are gone for lookups at once (matched by tuple → freed), swept a
 *    few per lookup, and all at once when the table is full (at most once per capture second),
 *    which stands in for the kernel's gc_worker.
 */
import { ipv4ToString } from '../packet/addr.js';
import { l4ChecksumOk, tcpUdpChecksumOk } from '../packet/checksum.js';
import { REASON_NONE, REASON_PAYLOAD_TRUNCATED } from '../packet/view.js';
import type { ConntrackView } from './env.js';
import {
  CT_ESTABLISHED,
  CT_INVALID,
  CT_NEW,
  CT_RELATED,
  CT_UNTRACKED,
  HOOK_PREROUTING,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_DST_NAT,
  IPS_SEEN_REPLY,
  IPS_SRC_NAT,
  type Skb,
} from './skb.js';
import {
  IP_CT_EXP_CHALLENGE_ACK,
  IP_CT_TCP_FLAG_BE_LIBERAL,
  IP_CT_TCP_FLAG_CLOSE_INIT,
  IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED,
  IP_CT_TCP_FLAG_MAXACK_SET,
  IP_CT_TCP_FLAG_SACK_PERM,
  IP_CT_TCP_FLAG_WINDOW_SCALE,
  IP_CT_TCP_SIMULTANEOUS_OPEN,
  TCP_ACK_SET,
  TCP_CONNTRACK_CLOSE,
  TCP_CONNTRACK_CLOSE_WAIT,
  TCP_CONNTRACK_ESTABLISHED,
  TCP_CONNTRACK_FIN_WAIT,
  TCP_CONNTRACK_IGNORE,
  TCP_CONNTRACK_LAST_ACK,
  TCP_CONNTRACK_MAX,
  TCP_CONNTRACK_NONE,
  TCP_CONNTRACK_RETRANS,
  TCP_CONNTRACK_SYN_RECV,
  TCP_CONNTRACK_SYN_SENT,
  TCP_CONNTRACK_SYN_SENT2,
  TCP_CONNTRACK_TIME_WAIT,
  TCP_CONNTRACK_TIMEOUT_MAX,
  TCP_CONNTRACK_UNACK,
  TCP_FIN_SET,
  TCP_NONE_SET,
  TCP_RST_SET,
  TCP_STATE_NAMES,
  TCP_SYN_SET,
  TCP_SYNACK_SET,
  TcpOptionsResult,
  segmentSeqPlusLen,
  seqAfter,
  seqBefore,
  tcpFlagsValid,
  tcpIndex,
  tcpNextState,
  tcpOptions,
  tcpSack,
} from './tcp-state.js';
import { reciprocalScale, srcHash, tupleHash } from './tuple-hash.js';

// ---- configuration -------------------------------------------------------------------------

/** Timeouts in seconds, named after the nf_conntrack_*_timeout* sysctls (SEMANTICS §6). */
export interface ConntrackTimeouts {
  tcpSynSent: number;
  tcpSynRecv: number;
  tcpEstablished: number;
  tcpFinWait: number;
  tcpCloseWait: number;
  tcpLastAck: number;
  tcpTimeWait: number;
  tcpClose: number;
  /** TCP_CONNTRACK_SYN_SENT2 (simultaneous open); no sysctl, 2 min. */
  tcpSynSent2: number;
  tcpMaxRetrans: number;
  tcpUnacknowledged: number;
  udp: number;
  udpStream: number;
  icmp: number;
  generic: number;
  gre: number;
  greStream: number;
}

/** Kernel defaults (tcp_timeouts[] of nf_conntrack_proto_tcp.c; udp, icmp, generic, gre trackers). */
export const DEFAULT_TIMEOUTS: Readonly<ConntrackTimeouts> = Object.freeze({
  tcpSynSent: 120,
  tcpSynRecv: 60,
  tcpEstablished: 432000,
  tcpFinWait: 120,
  tcpCloseWait: 60,
  tcpLastAck: 30,
  tcpTimeWait: 120,
  tcpClose: 10,
  tcpSynSent2: 120,
  tcpMaxRetrans: 300,
  tcpUnacknowledged: 300,
  udp: 30,
  udpStream: 120,
  icmp: 30,
  generic: 600,
  gre: 30,
  greStream: 180,
});

export interface ConntrackConfig {
  /** nf_conntrack_max; 0 = no limit (as the kernel reads 0). */
  max: number;
  /** nf_conntrack_tcp_loose (default true). */
  tcpLoose?: boolean;
  /** nf_conntrack_checksum (default true). */
  checksum?: boolean;
  /** nf_conntrack_tcp_be_liberal (default false). */
  tcpBeLiberal?: boolean;
  /** nf_conntrack_tcp_max_retrans (default 3). */
  tcpMaxRetrans?: number;
  /** nf_conntrack_tcp_ignore_invalid_rst (default false). */
  tcpIgnoreInvalidRst?: boolean;
  timeouts?: Partial<ConntrackTimeouts>;
  /**
   * nf_conntrack_buckets (default: max, as modern kernels set max = buckets). The table itself
   * is an open-addressing array sized by the live entries; the buckets only decide which
   * entries early_drop looks at (the kernel's 8 buckets from the new tuple's bucket).
   */
  buckets?: number;
  /** Seed of the tuple hash (the kernel's is random per boot). */
  hashSeed?: number;
  /** Entries checked for expiry per lookup (incremental GC); default 2. */
  gcStep?: number;
  /**
   * Initial slots of the hash table (power of two, ≥ 16; default 16,384, for 8,192 entries: the
   * entry arrays start at that size too). Both grow as needed; starting them large spares a
   * replay's first connections, which run before the JIT has compiled this code, four rounds
   * of growing and rehashing (measured: main-thread CPU of the bench capture's first 12,288
   * frames, 4,096 connections, median 99 → 86 ms). The kernel, too, sizes its hash table once
   * (nf_conntrack_buckets).
   */
  initialSlots?: number;
}

// ---- constants -----------------------------------------------------------------------------

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_DCCP = 33;
const IPPROTO_GRE = 47;
const IPPROTO_SCTP = 132;
const IPPROTO_UDPLITE = 136;

const TH_SYN = 0x02;
const TH_RST = 0x04;
const TH_ACK = 0x10;

// Private entry flags.
const F_USED = 1;
/** Confirmed and in the hash. */
const F_HASHED = 2;
/** Killed (nf_ct_kill) or abandoned: out of the hash, freed when no packet can refer to it. */
const F_DYING = 4;
/** Linked in NAT's by-source chains. */
const F_BYSRC = 8;

// Results of a protocol tracker (nf_conntrack_handle_packet).
const PKT_INVALID = 0; // -NF_ACCEPT
const PKT_ACCEPT = 1;
const PKT_REPEAT = 2; // -NF_REPEAT: re-lookup (reopened TCP connection)

// tcp_in_window results (enum nf_ct_tcp_action).
const TCPW_IGNORE = 0;
const TCPW_INVALID = 1;
const TCPW_ACCEPT = 2;

// A hash slot: SLOT int32 (two per 64-byte line), see Conntrack.slots.
const SLOT = 8;
const S_NODE = 1;
const S_SRC = 2;
const S_DST = 3;
const S_PORTS = 4;
const S_PROTO = 5;

/** Ring of entries out of the hash that may still be referenced (unconfirmed or dying). */
const LIMBO_SIZE = 4096;
/** Lookups after which such an entry can no longer be referenced by a packet in flight. */
const LIMBO_GRACE = 256;

// The TCP record: int32 slots (from id << 4) and byte slots (from id << 6); "+ dir" for the
// per-direction fields (struct ip_ct_tcp_state seen[2]).
const I_TD_END = 0;
const I_TD_MAXEND = 2;
const I_TD_MAXWIN = 4; // uint32 stored in int32: read with >>> 0
const I_TD_MAXACK = 6;
const I_LAST_SEQ = 8;
const I_LAST_ACK = 9;
const I_LAST_END = 10;
const I_LAST_WIN = 11;
const B_STATE = 48;
const B_LAST_DIR = 49;
const B_LAST_INDEX = 50;
const B_RETRANS = 51;
const B_LAST_FLAGS = 52;
const B_LAST_WSCALE = 53;
const B_TD_SCALE = 54;
const B_TD_FLAGS = 56;

/** ICMP inversion (invmap of nf_conntrack_proto_icmp.c): request ⇄ reply, -1 when none. */
const ICMP_INVMAP = new Int16Array(256).fill(-1);
ICMP_INVMAP[8] = 0;
ICMP_INVMAP[0] = 8;
ICMP_INVMAP[13] = 14;
ICMP_INVMAP[14] = 13;
ICMP_INVMAP[15] = 16;
ICMP_INVMAP[16] = 15;
ICMP_INVMAP[17] = 18;
ICMP_INVMAP[18] = 17;

/** The inverse of an ICMP query type (echo ⇄ echo reply ...), -1 if it has none. */
export function icmpInvType(type: number): number {
  return ICMP_INVMAP[type & 255]!;
}

function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/** Protocols whose tuple carries ports (nf_ct_get_tuple_ports). */
export function protoHasPorts(p: number): boolean {
  return p === IPPROTO_TCP || p === IPPROTO_UDP || p === IPPROTO_UDPLITE || p === IPPROTO_SCTP || p === IPPROTO_DCCP;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function growU32(a: Uint32Array, n: number): Uint32Array {
  const b = new Uint32Array(n);
  b.set(a);
  return b;
}
function growI32(a: Int32Array, n: number, fill: number): Int32Array {
  const b = new Int32Array(n);
  if (fill !== 0) b.fill(fill, a.length);
  b.set(a);
  return b;
}
function growU16(a: Uint16Array, n: number): Uint16Array {
  const b = new Uint16Array(n);
  b.set(a);
  return b;
}
function growU8(a: Uint8Array, n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}
function growF64(a: Float64Array, n: number, fill: number): Float64Array {
  const b = new Float64Array(n);
  if (fill !== 0) b.fill(fill, a.length);
  b.set(a);
  return b;
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 33: 'dccp', 47: 'gre', 132: 'sctp', 136: 'udplite' };

export function protoName(p: number): string {
  return PROTO_NAMES[p] ?? `proto ${p}`;
}

export class Conntrack implements ConntrackView {
  // ---- ConntrackView (indexed by entry id) ----
  status: Uint32Array;
  proto: Uint8Array;
  origSrc: Uint32Array;
  origDst: Uint32Array;
  /** TCP/UDP...: source port; ICMP: identifier. */
  origSport: Uint16Array;
  /** TCP/UDP...: destination port; ICMP: type << 8 | code (the kernel's tuple.dst.u.all). */
  origDport: Uint16Array;
  replSrc: Uint32Array;
  replDst: Uint32Array;
  replSport: Uint16Array;
  replDport: Uint16Array;
  /**
   * The four address arrays again, as Int32Array views of the same memory: the hot paths keep
   * addresses, hashes and sequence numbers in int32 range (`x | 0`) so that V8 never boxes them
   * when they are passed between functions (a uint32 above 2^31 would be a heap number).
   */
  origSrcI: Int32Array;
  origDstI: Int32Array;
  replSrcI: Int32Array;
  replDstI: Int32Array;
  /** Capture time (seconds) at which the entry expires (nf_ct_is_expired: now >= expires). */
  expires: Float64Array;

  // ---- TCP tracking (struct ip_ct_tcp): one 64-byte record per entry, so that a TCP packet
  // touches one cache line for it: int32 slots I_* at (id << 4) and byte slots B_* at
  // (id << 6), two views of one buffer. Sequence-space values are int32 (mod 2^32). ----
  private tcpI: Int32Array;
  private tcpB: Uint8Array;
  /** UDP: stream_ts (capture seconds); GRE: unused. */
  private aux: Float64Array;

  // ---- NAT extension (nf_conn_nat), used by nat.ts ----
  /** nat->masq_index: the output interface a MASQUERADE binding was made on, -1 if none. */
  masqOif: Int32Array;
  /** nf_nat_bysource chains: heads per bucket, next per entry. */
  readonly bysrcHead: Int32Array;
  private readonly bysrcMask: number;
  bysrcNext: Int32Array;

  /**
   * Called with the id of each entry freed (its id may be reused from now on), so that a cache
   * keyed by entry id (the node's flow memo) forgets it.
   */
  onFree: ((id: number) => void) | null = null;

  // ---- hash table ----
  private flags: Uint8Array;
  /** Per node (2*id+dir): the tuple's hash. */
  private hashv: Int32Array;
  /** Free list of ids: next free id per free entry. */
  private freeNext: Int32Array;
  /**
   * The tuple hash table: open addressing with linear probing, slot i at [SLOT·i, SLOT·i + SLOT)
   * = (hash, node, then the node's tuple: src, dst, sport << 16 | dport, proto), node -1 when
   * empty. The tuple is copied into the slot (it never changes while hashed: NAT sets it up
   * before confirmation) so that a lookup compares in the one cache line of the slot instead of
   * touching six per-entry arrays: with 4096 live flows that saves ~40 ns a packet. A tuple's
   * home slot is the top bits of its hash, so slots are ordered by hash (which lets early_drop
   * find the kernel's buckets); deletion shifts the following entries back (no tombstones).
   * Kept at most 3/4 full; doubled (rehash) beyond.
   */
  private slots: Int32Array;
  private smask: number;
  private sshift: number;
  private nNodes = 0;
  /** nf_conntrack_buckets, for early_drop. */
  readonly kernelBuckets: number;
  readonly hashSeed: number;
  private cap: number;
  private readonly maxCap: number;
  private highWater = 0;
  private freeHead = -1;
  private nUsed = 0;
  private nDying = 0;

  // ---- limbo ring ----
  private limboSeq: Float64Array;
  private readonly ringId = new Int32Array(LIMBO_SIZE);
  private readonly ringSeq = new Float64Array(LIMBO_SIZE);
  private ringHead = 0;
  private ringCount = 0;
  /** Lookups so far (the clock of the limbo). */
  private seq = 0;

  private gcCursor = 0;
  private readonly gcStep: number;
  private lastSweepSec = -Infinity;

  // ---- configuration ----
  readonly max: number;
  readonly tcpLoose: boolean;
  readonly checksum: boolean;
  readonly tcpBeLiberal: boolean;
  readonly tcpMaxRetrans: number;
  readonly tcpIgnoreInvalidRst: boolean;
  readonly timeouts: Readonly<ConntrackTimeouts>;
  /** tcp_timeouts[] by TCP state, plus RETRANS and UNACK slots. */
  private readonly tcpT = new Float64Array(TCP_CONNTRACK_TIMEOUT_MAX);

  private readonly opts = new TcpOptionsResult();

  /** Statistics (as /proc/net/stat/nf_conntrack): entries early-dropped, packets dropped for a full table. */
  earlyDrops = 0;
  tableFullDrops = 0;

  constructor(cfg: ConntrackConfig) {
    const max = Math.max(0, Math.floor(cfg.max));
    this.max = max;
    this.tcpLoose = cfg.tcpLoose ?? true;
    this.checksum = cfg.checksum ?? true;
    this.tcpBeLiberal = cfg.tcpBeLiberal ?? false;
    this.tcpMaxRetrans = cfg.tcpMaxRetrans ?? 3;
    this.tcpIgnoreInvalidRst = cfg.tcpIgnoreInvalidRst ?? false;
    const t: ConntrackTimeouts = { ...DEFAULT_TIMEOUTS, ...(cfg.timeouts ?? {}) };
    this.timeouts = Object.freeze(t);
    const T = this.tcpT;
    T[TCP_CONNTRACK_NONE] = t.tcpSynSent;
    T[TCP_CONNTRACK_SYN_SENT] = t.tcpSynSent;
    T[TCP_CONNTRACK_SYN_RECV] = t.tcpSynRecv;
    T[TCP_CONNTRACK_ESTABLISHED] = t.tcpEstablished;
    T[TCP_CONNTRACK_FIN_WAIT] = t.tcpFinWait;
    T[TCP_CONNTRACK_CLOSE_WAIT] = t.tcpCloseWait;
    T[TCP_CONNTRACK_LAST_ACK] = t.tcpLastAck;
    T[TCP_CONNTRACK_TIME_WAIT] = t.tcpTimeWait;
    T[TCP_CONNTRACK_CLOSE] = t.tcpClose;
    T[TCP_CONNTRACK_SYN_SENT2] = t.tcpSynSent2;
    T[TCP_CONNTRACK_RETRANS] = t.tcpMaxRetrans;
    T[TCP_CONNTRACK_UNACK] = t.tcpUnacknowledged;
    this.gcStep = cfg.gcStep ?? 2;
    this.hashSeed = (cfg.hashSeed ?? 0x2545f491) >>> 0;
    this.kernelBuckets = Math.max(1, Math.floor(cfg.buckets ?? (max > 0 ? max : 262144)));
    const sz = nextPow2(Math.max(16, cfg.initialSlots ?? 16384));
    this.slots = new Int32Array(SLOT * sz);
    for (let i = 0; i < sz; i++) this.slots[SLOT * i + S_NODE] = -1;
    this.smask = sz - 1;
    this.sshift = 32 - Math.log2(sz);
    const nb = nextPow2(Math.min(Math.max(max >>> 2, 1024), 1 << 20));
    this.bysrcMask = nb - 1;
    this.bysrcHead = new Int32Array(nb).fill(-1);
    this.maxCap = max > 0 ? max + LIMBO_SIZE : 0x7fffffff;
    const cap = Math.min(this.maxCap, Math.max(16, sz >>> 1));
    this.cap = cap;
    this.status = new Uint32Array(cap);
    this.proto = new Uint8Array(cap);
    this.origSrc = new Uint32Array(cap);
    this.origDst = new Uint32Array(cap);
    this.origSport = new Uint16Array(cap);
    this.origDport = new Uint16Array(cap);
    this.replSrc = new Uint32Array(cap);
    this.replDst = new Uint32Array(cap);
    this.replSport = new Uint16Array(cap);
    this.replDport = new Uint16Array(cap);
    this.origSrcI = new Int32Array(this.origSrc.buffer);
    this.origDstI = new Int32Array(this.origDst.buffer);
    this.replSrcI = new Int32Array(this.replSrc.buffer);
    this.replDstI = new Int32Array(this.replDst.buffer);
    this.expires = new Float64Array(cap);
    this.tcpI = new Int32Array(16 * cap);
    this.tcpB = new Uint8Array(this.tcpI.buffer);
    this.aux = new Float64Array(cap);
    this.masqOif = new Int32Array(cap).fill(-1);
    this.bysrcNext = new Int32Array(cap).fill(-1);
    this.flags = new Uint8Array(cap);
    this.hashv = new Int32Array(2 * cap);
    this.freeNext = new Int32Array(cap).fill(-1);
    this.limboSeq = new Float64Array(cap).fill(-1);
  }

  /** Live entries: confirmed plus unconfirmed, without the dying ones (ct.count of the kernel). */
  get count(): number {
    return this.nUsed - this.nDying;
  }

  /** Slots of the open-addressing table (grows with the entries). */
  get buckets(): number {
    return this.smask + 1;
  }

  // ---- nf_conntrack_in ------------------------------------------------------------------------

  /**
   * nf_conntrack_in: sets skb.ct, skb.ctState and skb.ctDir. Returns false when the packet must
   * be dropped (the table is full and early_drop found nothing to evict: NF_DROP).
   * A packet that already carries a conntrack (attach()) or is UNTRACKED is left alone.
   */
  lookup(skb: Skb): boolean {
    const now = skb.nowSec;
    this.seq++;
    if (this.ringCount > 0) this.flushLimbo();
    if (this.gcStep > 0 && this.highWater > 0) this.gcIncremental(now);
    // "Previously seen (loopback or untracked)? Ignore."
    if (skb.ct >= 0 || skb.ctState === CT_UNTRACKED) return true;
    skb.ctDir = 0;
    if (skb.notrack) {
      skb.ct = -1;
      skb.ctState = CT_UNTRACKED;
      return true;
    }
    skb.ct = -1;
    skb.ctState = CT_INVALID;
    const v = skb.v;
    if (v.ipOff < 0) return true;
    const reason = v.malformedReason;
    // Truncated or malformed headers: nf_ct_get_tuple / the trackers' header checks fail.
    if (reason !== REASON_NONE && reason !== REASON_PAYLOAD_TRUNCATED) return true;
    // ipv4_get_l4proto: a non-first fragment is "not prepared to track" (conntrack normally
    // sees reassembled packets: nf_defrag_ipv4 runs first and is the caller's job).
    if (v.fragOffset !== 0 || v.l4Off < 0) return true;
    const proto = v.ipProto;
    const l4 = v.l4Off;
    let sport = 0;
    let dport = 0;
    let icmpType = 0;
    if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) {
      sport = v.srcPort;
      dport = v.dstPort;
    } else if (proto === IPPROTO_ICMP) {
      // nf_conntrack_icmpv4_error, before the tuple lookup.
      if (this.checksum && skb.hook === HOOK_PREROUTING && v.mf === 0 && v.l4Captured >= v.l4Len && !l4ChecksumOk(skb.buf, l4, v.l4Len, IPPROTO_ICMP, 0, 0, skb.dv)) return true;
      icmpType = v.icmpType;
      if (icmpType > 18) return true; // "invalid icmp type"
      if (isIcmpError(icmpType)) {
        this.icmpErrorRelated(skb);
        return true;
      }
      sport = skb.dv.getUint16(l4 + 4); // icmp_pkt_to_tuple: un.echo.id whatever the type
      dport = (icmpType << 8) | v.icmpCode;
    } else if (proto === IPPROTO_UDPLITE || proto === IPPROTO_SCTP || proto === IPPROTO_DCCP) {
      if (v.l4Captured < 4) return true;
      sport = skb.dv.getUint16(l4);
      dport = skb.dv.getUint16(l4 + 2);
    }
    const src = v.srcIp | 0;
    const dst = v.dstIp | 0;
    const h = tupleHash(this.hashSeed, src, dst, sport, dport, proto);
    for (;;) {
      // resolve_normal_ct
      const node = this.findNode(h, src, dst, sport, dport, proto, now);
      let id: number;
      let dir: number;
      let state: number;
      let fresh = false;
      if (node < 0) {
        // init_conntrack: the reply tuple is the inverse (ICMP: only for query types).
        let rs: number;
        let rd: number;
        if (proto === IPPROTO_ICMP) {
          const inv = ICMP_INVMAP[icmpType]!;
          if (inv < 0) return true; // "Can't invert tuple": not a valid part of a connection
          rs = sport;
          rd = (inv << 8) | (dport & 255);
        } else {
          rs = dport;
          rd = sport;
        }
        id = this.alloc(h, now);
        if (id < 0) {
          this.tableFullDrops++;
          return false;
        }
        this.status[id] = 0;
        this.proto[id] = proto;
        this.origSrc[id] = src;
        this.origDst[id] = dst;
        this.origSport[id] = sport;
        this.origDport[id] = dport;
        this.replSrc[id] = dst;
        this.replDst[id] = src;
        this.replSport[id] = rs;
        this.replDport[id] = rd;
        this.expires[id] = now;
        this.masqOif[id] = -1;
        dir = 0;
        state = CT_NEW;
        fresh = true;
      } else {
        id = node >>> 1;
        dir = node & 1;
        // Once we've had two way comms, always ESTABLISHED.
        state = dir === 1 || (this.status[id]! & IPS_SEEN_REPLY) !== 0 ? CT_ESTABLISHED : CT_NEW;
      }
      let r: number;
      // The trackers read the time from skb: a double passed to a call that is not inlined is
      // boxed (a heap allocation per packet).
      if (proto === IPPROTO_TCP) r = this.tcpPacket(skb, id, dir, fresh);
      else if (proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE) r = this.udpPacket(skb, id);
      else if (proto === IPPROTO_ICMP) r = this.icmpPacket(skb, id);
      else if (proto === IPPROTO_GRE) r = this.grePacket(skb, id);
      else {
        this.expires[id] = now + this.timeouts.generic;
        r = PKT_ACCEPT;
      }
      if (r === PKT_ACCEPT) {
        if (dir === 1) this.status[id]! |= IPS_SEEN_REPLY;
        skb.ct = id;
        skb.ctState = state;
        skb.ctDir = dir;
        return true;
      }
      if (fresh) this.free(id); // nf_conntrack_free of the never-confirmed entry
      if (r !== PKT_REPEAT) return true; // INVALID
      // -NF_REPEAT: the old entry was killed; look up again (creates a fresh entry).
    }
  }

  /**
   * nf_conntrack_inet_error / nf_conntrack_icmpv4_error: an ICMP error is RELATED to the
   * connection its quoted header belongs to, if the outer destination is that direction's
   * destination; else it stays INVALID.
   */
  private icmpErrorRelated(skb: Skb): void {
    const v = skb.v;
    const il4 = v.innerL4Off;
    if (v.innerIpOff < 0 || il4 < 0) return; // quote of a non-first fragment or no quote
    const iproto = v.innerProto;
    let sp = 0;
    let dp = 0;
    let type = 0;
    if (iproto === IPPROTO_TCP || iproto === IPPROTO_UDP) {
      if (v.innerL4Len < 4) return;
      sp = v.innerSrcPort;
      dp = v.innerDstPort;
    } else if (iproto === IPPROTO_ICMP) {
      if (v.innerL4Len < 8) return; // icmp_pkt_to_tuple needs the whole icmphdr
      type = skb.buf[il4]!;
      sp = skb.dv.getUint16(il4 + 4);
      dp = (type << 8) | skb.buf[il4 + 1]!;
    } else if (iproto === IPPROTO_UDPLITE || iproto === IPPROTO_SCTP || iproto === IPPROTO_DCCP) {
      if (v.innerL4Len < 4) return;
      sp = skb.dv.getUint16(il4);
      dp = skb.dv.getUint16(il4 + 2);
    }
    // "Ordinarily, we'd expect the inverted tupleproto, but it's been preserved inside the ICMP."
    let isp: number;
    let idp: number;
    if (iproto === IPPROTO_ICMP) {
      const inv = ICMP_INVMAP[type]!;
      if (inv < 0) return;
      isp = sp;
      idp = (inv << 8) | (dp & 255);
    } else {
      isp = dp;
      idp = sp;
    }
    const is = v.innerDstIp | 0;
    const id = v.innerSrcIp | 0;
    const node = this.findNode(tupleHash(this.hashSeed, is, id, isp, idp, iproto), is, id, isp, idp, iproto, skb.nowSec);
    if (node < 0) return;
    const ct = node >>> 1;
    const dir = node & 1;
    const ctDaddr = dir === 1 ? this.replDstI[ct]! : this.origDstI[ct]!;
    if ((v.dstIp | 0) !== ctDaddr) return; // "outer daddr != inner"
    skb.ct = ct;
    skb.ctState = CT_RELATED;
    skb.ctDir = dir;
  }

  /**
   * nf_ct_attach / nf_conntrack_attach: a packet the node builds in answer to `skb` (an ICMP
   * error from icmp_send — icmp_glue_bits attaches it — or a TCP reset from nf_send_reset)
   * carries skb's conntrack as RELATED in the opposite direction; conntrack then leaves it alone
   * and NAT translates it (nf_nat_icmp_reply_translation). Works for unconfirmed entries too.
   */
  attach(nskb: Skb, skb: Skb): void {
    if (skb.ct < 0) return;
    nskb.ct = skb.ct;
    nskb.ctState = CT_RELATED;
    nskb.ctDir = skb.ctDir === 0 ? 1 : 0;
  }

  // ---- nf_conntrack_confirm ---------------------------------------------------------------------

  /**
   * __nf_conntrack_confirm at the end of POSTROUTING / INPUT: hash the unconfirmed entry.
   * False when the packet must be dropped: the entry is dying, or its original or reply tuple
   * clashes with a confirmed entry (nf_ct_resolve_clash; dpemu drops in every clash case).
   */
  confirm(skb: Skb): boolean {
    const id = skb.ct;
    if (id < 0) return true;
    // "ipt_REJECT uses nf_conntrack_attach to attach related ICMP/TCP RST packets in other
    // direction. Actual packet which created connection will be IP_CT_NEW."
    if (skb.ctDir !== 0) return true;
    const f = this.flags[id]!;
    if (f & F_HASHED) return true;
    if (f & F_DYING || !(f & F_USED)) return false;
    const now = skb.nowSec;
    const p = this.proto[id]!;
    const os = this.origSrcI[id]!;
    const od = this.origDstI[id]!;
    const rs = this.replSrcI[id]!;
    const rd = this.replDstI[id]!;
    const h0 = tupleHash(this.hashSeed, os, od, this.origSport[id]!, this.origDport[id]!, p);
    const h1 = tupleHash(this.hashSeed, rs, rd, this.replSport[id]!, this.replDport[id]!, p);
    if (this.findNode(h0, os, od, this.origSport[id]!, this.origDport[id]!, p, now) >= 0 || this.findNode(h1, rs, rd, this.replSport[id]!, this.replDport[id]!, p, now) >= 0) {
      this.killEntry(id);
      return false;
    }
    this.insert(id, h0, h1);
    this.status[id]! |= IPS_CONFIRMED;
    this.limboSeq[id] = -1;
    return true;
  }

  /** The packet was dropped before confirmation: its unconfirmed entry is forgotten. */
  abandon(skb: Skb): void {
    const id = skb.ct;
    if (id < 0) return;
    const f = this.flags[id]!;
    if (f & F_USED && !(f & F_HASHED) && !(f & F_DYING) && skb.ctDir === 0) this.killEntry(id);
  }

  // ---- protocol trackers --------------------------------------------------------------------------

  /** nf_conntrack_udp_packet (also UDP-Lite, without its checksum). */
  private udpPacket(skb: Skb, id: number): number {
    const now = skb.nowSec;
    const v = skb.v;
    // A first fragment (MF) holds part of the datagram: length and checksum describe the whole
    // (the kernel reassembles before conntrack; dpemu's caller should too).
    if (v.ipProto === IPPROTO_UDP && v.mf === 0) {
      // udp_error
      const l4 = v.l4Off;
      const ulen = skb.dv.getUint16(l4 + 4);
      if (ulen > v.l4Len || ulen < 8) return PKT_INVALID;
      const check = skb.dv.getUint16(l4 + 6);
      if (check !== 0 && skb.hook === HOOK_PREROUTING && this.checksum && v.l4Captured >= ulen && !tcpUdpChecksumOk(skb.dv, l4, ulen, IPPROTO_UDP, v.srcIp, v.dstIp)) return PKT_INVALID;
    }
    const st = this.status[id]!;
    if ((st & IPS_CONFIRMED) === 0) this.aux[id] = now + 2; // stream_ts = 2 * HZ + jiffies
    if (st & IPS_SEEN_REPLY) {
      let extra = this.timeouts.udp;
      let stream = false;
      // Still active after two seconds? Extend timeout.
      if (now > this.aux[id]!) {
        extra = this.timeouts.udpStream;
        stream = (st & IPS_ASSURED) === 0;
      }
      this.expires[id] = now + extra;
      if (stream) this.status[id]! |= IPS_ASSURED;
    } else {
      this.expires[id] = now + this.timeouts.udp;
    }
    return PKT_ACCEPT;
  }

  /** nf_conntrack_icmp_packet: only request types may create a connection. */
  private icmpPacket(skb: Skb, id: number): number {
    const now = skb.nowSec;
    const t = this.origDport[id]! >>> 8;
    if (t !== 8 && t !== 13 && t !== 15 && t !== 17) return PKT_INVALID; // "can't create new conn"
    this.expires[id] = now + this.timeouts.icmp;
    return PKT_ACCEPT;
  }

  /** nf_conntrack_gre_packet (no PPTP keys: the tuple carries none, as for plain GRE). */
  private grePacket(skb: Skb, id: number): number {
    const now = skb.nowSec;
    const st = this.status[id]!;
    if (st & IPS_SEEN_REPLY) {
      this.expires[id] = now + this.timeouts.greStream;
      this.status[id]! |= IPS_ASSURED;
    } else {
      this.expires[id] = now + this.timeouts.gre;
    }
    return PKT_ACCEPT;
  }

  /** nf_conntrack_tcp_packet (with tcp_error, tcp_new and tcp_in_window). */
  private tcpPacket(skb: Skb, id: number, dir: number, fresh: boolean): number {
    const now = skb.nowSec;
    const v = skb.v;
    const buf = skb.buf;
    const l4 = v.l4Off;
    const doff = v.tcpDataOff;
    const flags = v.tcpFlags;
    // tcp_error: not whole TCP header or malformed packet
    if (doff < 20 || v.l4Len < doff || v.l4Captured < doff) return PKT_INVALID;
    // Checksum only at PREROUTING ("We skip checking packets on the outgoing path").
    if (this.checksum && skb.hook === HOOK_PREROUTING && v.mf === 0 && v.l4Captured >= v.l4Len && !tcpUdpChecksumOk(skb.dv, l4, v.l4Len, IPPROTO_TCP, v.srcIp, v.dstIp)) return PKT_INVALID;
    if (!tcpFlagsValid(flags)) return PKT_INVALID; // "invalid tcp flag combination"
    const index = tcpIndex(flags);
    const seq = v.tcpSeq | 0;
    const ackSeq = v.tcpAck | 0;
    const win = v.tcpWindow;
    const end = segmentSeqPlusLen(seq, v.l4Len, doff, flags);
    const TI = this.tcpI;
    const TB = this.tcpB;
    const b = id << 4; // int32 index of the record
    const bb = id << 6; // byte index of the record
    const rdir = 1 - dir;
    if (fresh) {
      // tcp_new
      const ns = tcpNextState(0, index, TCP_CONNTRACK_NONE);
      if (ns >= TCP_CONNTRACK_MAX) return PKT_INVALID; // "invalid new"
      this.tcpReset(id);
      if (ns === TCP_CONNTRACK_SYN_SENT) {
        TI[b + I_TD_END] = end;
        TI[b + I_TD_MAXWIN] = win === 0 ? 1 : win;
        TI[b + I_TD_MAXEND] = end;
        this.loadOptions(buf, l4, doff, id, 0);
      } else if (!this.tcpLoose) {
        return PKT_INVALID; // don't try to pick up connections
      } else {
        // Mid-stream pickup: its history is lost for us.
        const mw = win === 0 ? 1 : win;
        TI[b + I_TD_END] = end;
        TI[b + I_TD_MAXWIN] = mw;
        TI[b + I_TD_MAXEND] = end + mw;
        // "We assume SACK and liberal window checking to handle window scaling"
        TB[bb + B_TD_FLAGS] = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
        TB[bb + B_TD_FLAGS + 1] = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
      }
      TB[bb + B_LAST_INDEX] = TCP_NONE_SET;
    }

    let oldState = TB[bb + B_STATE]!;
    let newState = tcpNextState(dir, index, oldState);
    const sf = bb + B_TD_FLAGS + dir; // sender's flags
    const rf = bb + B_TD_FLAGS + rdir; // receiver's flags
    let ignored = false;
    let skipWindow = false;
    switch (newState) {
      case TCP_CONNTRACK_SYN_SENT:
        if (oldState < TCP_CONNTRACK_TIME_WAIT) break;
        // RFC 1122 reopen from TIME_WAIT / CLOSE: an aborted or closed connection is deleted and
        // looked up again.
        if ((TB[sf]! | TB[rf]!) & IP_CT_TCP_FLAG_CLOSE_INIT || (TB[bb + B_LAST_DIR] === dir && TB[bb + B_LAST_INDEX] === TCP_RST_SET)) {
          this.killEntry(id);
          return PKT_REPEAT;
        }
        ignored = true; // fallthrough to IGNORE
        break;
      case TCP_CONNTRACK_IGNORE:
        ignored = true;
        break;
      case TCP_CONNTRACK_MAX:
        return PKT_INVALID; // "invalid state" (no SYN proxy here)
      case TCP_CONNTRACK_TIME_WAIT:
        // RFC 5961 challenge ACK must not be taken as the last ACK.
        if (
          oldState === TCP_CONNTRACK_LAST_ACK &&
          index === TCP_ACK_SET &&
          TB[bb + B_LAST_DIR] !== dir &&
          TB[bb + B_LAST_INDEX] === TCP_SYN_SET &&
          TB[bb + B_LAST_FLAGS]! & IP_CT_EXP_CHALLENGE_ACK
        ) {
          TB[bb + B_LAST_FLAGS]! &= ~IP_CT_EXP_CHALLENGE_ACK;
          return PKT_ACCEPT; // "challenge-ack ignored": don't change state
        }
        break;
      case TCP_CONNTRACK_SYN_SENT2:
        TB[bb + B_LAST_FLAGS]! |= IP_CT_TCP_SIMULTANEOUS_OPEN;
        break;
      case TCP_CONNTRACK_SYN_RECV:
        if (dir === 1 && index === TCP_ACK_SET && TB[bb + B_LAST_FLAGS]! & IP_CT_TCP_SIMULTANEOUS_OPEN) newState = TCP_CONNTRACK_ESTABLISHED;
        break;
      case TCP_CONNTRACK_CLOSE: {
        if (index !== TCP_RST_SET) break;
        // tcp_can_early_drop: closing already, the tuple might be reused: skip validation.
        if (oldState >= TCP_CONNTRACK_FIN_WAIT && oldState <= TCP_CONNTRACK_CLOSE) {
          skipWindow = true;
          break;
        }
        const st = this.status[id]!;
        const established = oldState === TCP_CONNTRACK_ESTABLISHED && (st & IPS_ASSURED) !== 0; // nf_conntrack_tcp_established
        const lastIndex = TB[bb + B_LAST_INDEX]!;
        // td_maxack might be outdated if we let a SYN through earlier.
        if (TB[rf]! & IP_CT_TCP_FLAG_MAXACK_SET && lastIndex !== TCP_SYN_SET) {
          const maxAck = TI[b + I_TD_MAXACK + rdir]!;
          if (seq === 0 && !established) break;
          if (seqBefore(seq, maxAck) && !this.tcpIgnoreInvalidRst) return PKT_INVALID; // "invalid rst"
          if (!established || seq === maxAck) break;
          // Part of a train (data, then RST at its end)?
          if (lastIndex === TCP_ACK_SET && TB[bb + B_LAST_DIR] === dir && seq === TI[b + I_LAST_END]) break;
          // RST sequence number doesn't match exactly: keep the state for a challenge ACK.
          newState = oldState;
        }
        if ((((st & IPS_SEEN_REPLY) !== 0 && lastIndex === TCP_SYN_SET) || ((st & IPS_ASSURED) === 0 && lastIndex === TCP_ACK_SET)) && ackSeq === TI[b + I_LAST_END]) {
          skipWindow = true; // RST sent to an invalid SYN or ACK we had let through: delete our entry
          break;
        }
        // Reset in response to a challenge ACK we let through earlier.
        if (oldState === TCP_CONNTRACK_SYN_SENT && lastIndex === TCP_ACK_SET && TB[bb + B_LAST_DIR] === 1 && seq === TI[b + I_LAST_ACK]) skipWindow = true;
        break;
      }
    }

    if (ignored) {
      const ld = TB[bb + B_LAST_DIR]!;
      if (index === TCP_SYNACK_SET && TB[bb + B_LAST_INDEX] === TCP_SYN_SET && ld !== dir && ackSeq === TI[b + I_LAST_END]) {
        // b) This SYN/ACK acknowledges a SYN we ignored: client and server are in sync, we are
        // not; get in sync from the annotated values.
        oldState = TCP_CONNTRACK_SYN_SENT;
        newState = TCP_CONNTRACK_SYN_RECV;
        const lastEnd = TI[b + I_LAST_END]!;
        const lastWin = TI[b + I_LAST_WIN]!;
        TI[b + I_TD_END + ld] = lastEnd;
        TI[b + I_TD_MAXEND + ld] = lastEnd;
        TI[b + I_TD_MAXWIN + ld] = lastWin === 0 ? 1 : lastWin;
        TB[bb + B_TD_SCALE + ld] = TB[bb + B_LAST_WSCALE]!;
        TB[bb + B_LAST_FLAGS]! &= ~IP_CT_EXP_CHALLENGE_ACK;
        TB[bb + B_TD_FLAGS + ld] = TB[bb + B_LAST_FLAGS]!;
        // nf_ct_tcp_state_reset(&seen[dir])
        TI[b + I_TD_END + dir] = 0;
        TI[b + I_TD_MAXEND + dir] = 0;
        TI[b + I_TD_MAXWIN + dir] = 0;
        TI[b + I_TD_MAXACK + dir] = 0;
        TB[bb + B_TD_SCALE + dir] = 0;
        TB[sf]! &= IP_CT_TCP_FLAG_BE_LIBERAL;
      } else {
        TB[bb + B_LAST_INDEX] = index;
        TB[bb + B_LAST_DIR] = dir;
        TI[b + I_LAST_SEQ] = seq;
        TI[b + I_LAST_END] = end;
        TI[b + I_LAST_WIN] = win;
        if (index === TCP_SYN_SET && dir === 0) {
          // a) a SYN in ORIGINAL: annotate its options, let it through.
          TB[bb + B_LAST_FLAGS] = 0;
          TB[bb + B_LAST_WSCALE] = 0;
          const o = this.opts;
          o.scale = 0;
          o.flags = 0;
          tcpOptions(buf, l4, doff, o);
          if (o.flags & IP_CT_TCP_FLAG_WINDOW_SCALE) {
            TB[bb + B_LAST_FLAGS]! |= IP_CT_TCP_FLAG_WINDOW_SCALE;
            TB[bb + B_LAST_WSCALE] = o.scale;
          }
          if (o.flags & IP_CT_TCP_FLAG_SACK_PERM) TB[bb + B_LAST_FLAGS]! |= IP_CT_TCP_FLAG_SACK_PERM;
          if (oldState === TCP_CONNTRACK_LAST_ACK) TB[bb + B_LAST_FLAGS]! |= IP_CT_EXP_CHALLENGE_ACK;
        }
        // possible challenge ack reply to syn
        if (oldState === TCP_CONNTRACK_SYN_SENT && index === TCP_ACK_SET && dir === 1) TI[b + I_LAST_ACK] = ackSeq;
        return PKT_ACCEPT; // "packet ignored": tracked, state unchanged
      }
    }

    if (!skipWindow) {
      // tcp_in_window reads ct->proto.tcp.state, the stored state (not the resync's old_state).
      const res = this.tcpInWindow(skb, id, dir, index, seq, ackSeq, win, end, TB[bb + B_STATE]!);
      if (res === TCPW_IGNORE) return PKT_ACCEPT;
      if (res === TCPW_INVALID) {
        this.tcpHandleInvalid(id, dir, index, now);
        return PKT_INVALID;
      }
    }

    // in_window: from now on we have got in-window packets.
    TB[bb + B_LAST_INDEX] = index;
    TB[bb + B_LAST_DIR] = dir;
    TB[bb + B_STATE] = newState;
    if (oldState !== newState && newState === TCP_CONNTRACK_FIN_WAIT) TB[sf]! |= IP_CT_TCP_FLAG_CLOSE_INIT;

    const T = this.tcpT;
    let timeout: number;
    if (TB[bb + B_RETRANS]! >= this.tcpMaxRetrans && T[newState]! > T[TCP_CONNTRACK_RETRANS]!) timeout = T[TCP_CONNTRACK_RETRANS]!;
    else if (index === TCP_RST_SET) timeout = T[TCP_CONNTRACK_CLOSE]!;
    else if ((TB[bb + B_TD_FLAGS]! | TB[bb + B_TD_FLAGS + 1]!) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED && T[newState]! > T[TCP_CONNTRACK_UNACK]!) timeout = T[TCP_CONNTRACK_UNACK]!;
    else if (TI[b + I_LAST_WIN] === 0 && T[newState]! > T[TCP_CONNTRACK_RETRANS]!) timeout = T[TCP_CONNTRACK_RETRANS]!;
    else timeout = T[newState]!;

    const st = this.status[id]!;
    if ((st & IPS_SEEN_REPLY) === 0) {
      // "If only reply is a RST, we can consider ourselves not to have an established
      // connection": delete the entry now; this packet still carries it.
      if (flags & TH_RST) {
        this.killEntry(id);
        return PKT_ACCEPT;
      }
      // Do not renew the timeout on a SYN retransmit.
      if (index === TCP_SYN_SET && oldState === TCP_CONNTRACK_SYN_SENT) return PKT_ACCEPT;
      // ESTABLISHED without SEEN_REPLY (loose pickup): avoid the large timeout.
      if (newState === TCP_CONNTRACK_ESTABLISHED && timeout > T[TCP_CONNTRACK_UNACK]!) timeout = T[TCP_CONNTRACK_UNACK]!;
    } else if ((st & IPS_ASSURED) === 0 && (oldState === TCP_CONNTRACK_SYN_RECV || oldState === TCP_CONNTRACK_ESTABLISHED) && newState === TCP_CONNTRACK_ESTABLISHED) {
      this.status[id] = st | IPS_ASSURED;
    }
    this.expires[id] = now + timeout;
    return PKT_ACCEPT;
  }

  /** tcp_in_window (6.x; no NAT sequence adjustment: dpemu has no helpers). */
  private tcpInWindow(skb: Skb, id: number, dir: number, index: number, seqIn: number, ackSeq: number, winRaw: number, endIn: number, state: number): number {
    const v = skb.v;
    const flags = v.tcpFlags;
    const TI = this.tcpI;
    const TB = this.tcpB;
    const b = id << 4;
    const bb = id << 6;
    const rdir = 1 - dir;
    // Sender's and receiver's fields.
    const sEnd = b + I_TD_END + dir;
    const rEnd = b + I_TD_END + rdir;
    const sMaxEnd = b + I_TD_MAXEND + dir;
    const rMaxEnd = b + I_TD_MAXEND + rdir;
    const sMaxWin = b + I_TD_MAXWIN + dir;
    const rMaxWin = b + I_TD_MAXWIN + rdir;
    const sMaxAck = b + I_TD_MAXACK + dir;
    const sf = bb + B_TD_FLAGS + dir;
    const rf = bb + B_TD_FLAGS + rdir;
    let seq = seqIn;
    let end = endIn;
    let ack = ackSeq;
    let sack = ackSeq;
    let win = winRaw;
    if (TB[rf]! & IP_CT_TCP_FLAG_SACK_PERM) sack = tcpSack(skb.buf, skb.dv, v.l4Off, v.tcpDataOff, sack);

    if (TI[sMaxWin] === 0) {
      if (flags & TH_SYN) {
        // SYN-ACK in reply to a SYN, or SYN from the reply direction in simultaneous open.
        this.tcpInitSender(skb, id, dir, end, win);
        if (!(flags & TH_ACK)) return TCPW_ACCEPT; // simultaneous open
      } else {
        // In the middle of a connection: use the data from the packet.
        TI[sEnd] = end;
        const swin = (win << TB[bb + B_TD_SCALE + dir]!) >>> 0;
        TI[sMaxWin] = swin === 0 ? 1 : swin;
        TI[sMaxEnd] = end + (TI[sMaxWin]! >>> 0);
        if (TI[rMaxWin] === 0) {
          TI[rEnd] = sack;
          TI[rMaxEnd] = sack;
        } else if (sack === ((TI[rEnd]! + 1) | 0)) {
          TI[rEnd] = TI[rEnd]! + 1; // likely a reply to a keepalive
        }
      }
    } else if (flags & TH_SYN && seqAfter(end, TI[sEnd]!) && (state === TCP_CONNTRACK_SYN_SENT || state === TCP_CONNTRACK_SYN_RECV)) {
      // RFC 793: re-initialised TCP with higher sequence numbers.
      this.tcpInitSender(skb, id, dir, end, win);
      if (dir === 1 && !(flags & TH_ACK)) return TCPW_ACCEPT;
    }

    if (!(flags & TH_ACK)) {
      ack = sack = TI[rEnd]!; // no ACK: pretend it was set and OK
    } else if ((flags & (TH_ACK | TH_RST)) === (TH_ACK | TH_RST) && ack === 0) {
      ack = sack = TI[rEnd]!; // broken stacks: RST with ACK and a zero ack value
    }
    if (flags & TH_RST && seq === 0 && state === TCP_CONNTRACK_SYN_SENT) {
      seq = end = TI[sEnd]!; // RST answering SYN
    }

    const sWin = TI[sMaxWin]! >>> 0;
    const rWin = TI[rMaxWin]! >>> 0;
    const maxAckWin = sWin > 66000 ? sWin : 66000; // MAXACKWINDOW(sender)
    const seqOk = seqBefore(seq, TI[sMaxEnd]! + 1);
    if (!seqOk) {
      const overshot = (end - TI[sMaxEnd]! + 1) >>> 0;
      const ackOk = seqAfter(sack, TI[rEnd]! - maxAckWin - 1);
      const inRecvWin = rWin !== 0 && seqAfter(end, TI[sEnd]! - rWin - 1);
      if (inRecvWin && ackOk && overshot <= rWin && seqBefore(sack, TI[rEnd]! + 1)) {
        // Work around TCPs that send more bytes than allowed by the receive window.
        TI[sEnd] = end;
        TB[sf]! |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
        return this.tcpLogInvalid(sf, TCPW_IGNORE);
      }
      return this.tcpLogInvalid(sf, TCPW_INVALID); // SEQ is over the upper bound
    }
    if (!seqBefore(sack, TI[rEnd]! + 1)) return this.tcpLogInvalid(sf, TCPW_INVALID); // ACK over upper bound
    const inRecvWin = rWin === 0 || seqAfter(end, TI[sEnd]! - rWin - 1);
    if (!inRecvWin) return this.tcpLogInvalid(sf, TCPW_IGNORE); // SEQ under lower bound
    if (!seqAfter(sack, TI[rEnd]! - maxAckWin - 1)) return this.tcpLogInvalid(sf, TCPW_IGNORE); // ACK under lower bound

    if (!(flags & TH_SYN)) win = (win << TB[bb + B_TD_SCALE + dir]!) >>> 0;
    // Update sender data.
    const swin = (win + (sack - ack)) >>> 0;
    if (sWin < swin) TI[sMaxWin] = swin;
    if (seqAfter(end, TI[sEnd]!)) {
      TI[sEnd] = end;
      TB[sf]! |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
    }
    if (flags & TH_ACK) {
      if (!(TB[sf]! & IP_CT_TCP_FLAG_MAXACK_SET)) {
        TI[sMaxAck] = ack;
        TB[sf]! |= IP_CT_TCP_FLAG_MAXACK_SET;
      } else if (seqAfter(ack, TI[sMaxAck]!)) {
        TI[sMaxAck] = ack;
      }
    }
    // Update receiver data.
    if (rWin !== 0 && seqAfter(end, TI[sMaxEnd]!)) TI[rMaxWin] = rWin + ((end - TI[sMaxEnd]!) | 0);
    if (seqAfter(sack + win, TI[rMaxEnd]! - 1)) {
      TI[rMaxEnd] = sack + win;
      if (win === 0) TI[rMaxEnd] = TI[rMaxEnd]! + 1;
    }
    if (ack === TI[rEnd]) TB[rf]! &= ~IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
    // Check retransmissions.
    if (index === TCP_ACK_SET) {
      if (TB[bb + B_LAST_DIR] === dir && TI[b + I_LAST_SEQ] === seq && TI[b + I_LAST_ACK] === ack && TI[b + I_LAST_END] === end && TI[b + I_LAST_WIN] === winRaw) {
        if (TB[bb + B_RETRANS]! < 255) TB[bb + B_RETRANS] = TB[bb + B_RETRANS]! + 1;
      } else {
        TB[bb + B_LAST_DIR] = dir;
        TI[b + I_LAST_SEQ] = seq;
        TI[b + I_LAST_ACK] = ack;
        TI[b + I_LAST_END] = end;
        TI[b + I_LAST_WIN] = winRaw;
        TB[bb + B_RETRANS] = 0;
      }
    }
    return TCPW_ACCEPT;
  }

  /** tcp_init_sender. */
  private tcpInitSender(skb: Skb, id: number, dir: number, end: number, win: number): void {
    const TI = this.tcpI;
    const TB = this.tcpB;
    const b = id << 4;
    const bb = id << 6;
    TI[b + I_TD_END + dir] = end;
    TI[b + I_TD_MAXEND + dir] = end;
    TI[b + I_TD_MAXWIN + dir] = win === 0 ? 1 : win;
    this.loadOptions(skb.buf, skb.v.l4Off, skb.v.tcpDataOff, id, dir);
    // RFC 1323: both sides must send the Window Scale option to enable scaling either way.
    if (dir === 1 && !(TB[bb + B_TD_FLAGS + 1]! & IP_CT_TCP_FLAG_WINDOW_SCALE && TB[bb + B_TD_FLAGS]! & IP_CT_TCP_FLAG_WINDOW_SCALE)) {
      TB[bb + B_TD_SCALE] = 0;
      TB[bb + B_TD_SCALE + 1] = 0;
    }
  }

  /** tcp_options into direction `dir` of entry `id`. */
  private loadOptions(buf: Uint8Array, l4: number, doff: number, id: number, dir: number): void {
    const TB = this.tcpB;
    const bb = id << 6;
    const o = this.opts;
    o.scale = TB[bb + B_TD_SCALE + dir]!;
    o.flags = TB[bb + B_TD_FLAGS + dir]!;
    tcpOptions(buf, l4, doff, o);
    TB[bb + B_TD_SCALE + dir] = o.scale;
    TB[bb + B_TD_FLAGS + dir] = o.flags;
  }

  /** nf_tcp_log_invalid: liberal senders (loose pickup) or tcp_be_liberal accept anyway. */
  private tcpLogInvalid(senderFlags: number, ret: number): number {
    if (this.tcpB[senderFlags]! & IP_CT_TCP_FLAG_BE_LIBERAL || this.tcpBeLiberal) return TCPW_ACCEPT;
    return ret;
  }

  /** nf_tcp_handle_invalid: shorten the timeout of an out-of-sync ASSURED connection. */
  private tcpHandleInvalid(id: number, dir: number, index: number, now: number): void {
    if (!(this.status[id]! & IPS_ASSURED)) return;
    if (index !== TCP_RST_SET && index !== TCP_FIN_SET) return;
    const TB = this.tcpB;
    const bb = id << 6;
    const li = TB[bb + B_LAST_INDEX];
    if (TB[bb + B_LAST_DIR] !== dir && (li === TCP_FIN_SET || li === TCP_RST_SET)) {
      const left = this.expires[id]! - now;
      if (left < 120) return;
      const t = this.tcpT[TCP_CONNTRACK_UNACK]!;
      if (left > t) this.expires[id] = now + t;
    } else {
      TB[bb + B_LAST_INDEX] = index;
      TB[bb + B_LAST_DIR] = dir;
    }
  }

  private tcpReset(id: number): void {
    // A loop, not TypedArray.prototype.fill: the builtin call costs ~100 ns for 16 words.
    const TI = this.tcpI;
    const b = id << 4;
    for (let k = 0; k < 16; k++) TI[b + k] = 0;
  }

  /** TCP state (TCP_CONNTRACK_*) of an entry. */
  tcpStateOf(id: number): number {
    return this.tcpB[(id << 6) + B_STATE]!;
  }

  /** td_end of one direction (int32, mod 2^32). */
  tdEndOf(id: number, dir: number): number {
    return this.tcpI[(id << 4) + I_TD_END + dir]!;
  }

  /** Window scale of one direction (td_scale). */
  tdScaleOf(id: number, dir: number): number {
    return this.tcpB[(id << 6) + B_TD_SCALE + dir]!;
  }

  // ---- hash table ---------------------------------------------------------------------------------

  /** The tuple's hash (as stored per node; int32). */
  hash(src: number, dst: number, sport: number, dport: number, proto: number): number {
    return tupleHash(this.hashSeed, src | 0, dst | 0, sport, dport, proto);
  }

  /**
   * The node (2*id+dir) of the confirmed entry with this tuple, or -1. An expired match is
   * freed and not returned (nf_ct_is_expired → nf_ct_gc_expired in ____nf_conntrack_find).
   * `h` is hash() of the tuple; addresses as int32 (`ip | 0`).
   */
  findNode(h: number, src: number, dst: number, sport: number, dport: number, proto: number, now: number): number {
    const slots = this.slots;
    const mask = this.smask;
    const ports = (sport << 16) | dport;
    let i = h >>> this.sshift;
    for (;;) {
      const b = SLOT * i;
      const n = slots[b + S_NODE]!;
      if (n < 0) return -1;
      if (slots[b] === h && slots[b + S_SRC] === src && slots[b + S_DST] === dst && slots[b + S_PORTS] === ports && slots[b + S_PROTO] === proto) {
        const id = n >>> 1;
        if (this.expires[id]! <= now) {
          this.free(id);
          return -1;
        }
        return n;
      }
      i = (i + 1) & mask;
    }
  }

  /**
   * nf_conntrack_tuple_taken: is this tuple (either direction) used by a confirmed entry other
   * than `ignore`? Not if that entry has the same original tuple as `ignore` (same flow).
   */
  tupleTaken(src: number, dst: number, sport: number, dport: number, proto: number, ignore: number, now: number): boolean {
    src |= 0;
    dst |= 0;
    const h = tupleHash(this.hashSeed, src, dst, sport, dport, proto);
    const node = this.findNode(h, src, dst, sport, dport, proto, now);
    if (node < 0) return false;
    const id = node >>> 1;
    if (id === ignore) return false;
    if (
      ignore >= 0 &&
      this.origSrc[id] === this.origSrc[ignore] &&
      this.origDst[id] === this.origDst[ignore] &&
      this.origSport[id] === this.origSport[ignore] &&
      this.origDport[id] === this.origDport[ignore] &&
      this.proto[id] === this.proto[ignore]
    ) {
      return false;
    }
    return true;
  }

  private insert(id: number, h0: number, h1: number): void {
    if (4 * (this.nNodes + 2) > 3 * (this.smask + 1)) this.rehash(2 * (this.smask + 1));
    this.hashv[2 * id] = h0;
    this.hashv[2 * id + 1] = h1;
    this.insertNode(2 * id, h0);
    this.insertNode(2 * id + 1, h1);
    this.flags[id]! |= F_HASHED;
  }

  private insertNode(n: number, h: number): void {
    const slots = this.slots;
    const mask = this.smask;
    let i = h >>> this.sshift;
    while (slots[SLOT * i + S_NODE]! >= 0) i = (i + 1) & mask;
    const b = SLOT * i;
    const id = n >>> 1;
    const orig = (n & 1) === 0;
    slots[b] = h;
    slots[b + S_NODE] = n;
    slots[b + S_SRC] = orig ? this.origSrcI[id]! : this.replSrcI[id]!;
    slots[b + S_DST] = orig ? this.origDstI[id]! : this.replDstI[id]!;
    slots[b + S_PORTS] = orig ? (this.origSport[id]! << 16) | this.origDport[id]! : (this.replSport[id]! << 16) | this.replDport[id]!;
    slots[b + S_PROTO] = this.proto[id]!;
    this.nNodes++;
  }

  /** Take node n out of the table: backward-shift deletion of linear probing. */
  private removeNode(n: number): void {
    const slots = this.slots;
    const mask = this.smask;
    const shift = this.sshift;
    let i = this.hashv[n]! >>> shift;
    while (slots[SLOT * i + S_NODE] !== n) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const m = slots[SLOT * j + S_NODE]!;
      if (m < 0) break;
      const k = slots[SLOT * j]! >>> shift; // home of the entry at j
      // Leave it if its home lies cyclically in (i, j]; else move it into the hole at i.
      if (i <= j ? i < k && k <= j : i < k || k <= j) continue;
      // Loops rather than copyWithin/fill: a builtin call costs more than 8 stores.
      for (let k = 0; k < SLOT; k++) slots[SLOT * i + k] = slots[SLOT * j + k]!;
      i = j;
    }
    for (let k = 0; k < SLOT; k++) slots[SLOT * i + k] = 0;
    slots[SLOT * i + S_NODE] = -1;
    this.nNodes--;
  }

  private rehash(size: number): void {
    const old = this.slots;
    this.slots = new Int32Array(SLOT * size);
    for (let i = 0; i < size; i++) this.slots[SLOT * i + S_NODE] = -1;
    this.smask = size - 1;
    this.sshift = 32 - Math.log2(size);
    // Slots move whole (their tuple copies too), without reading the per-entry arrays.
    const slots = this.slots;
    const mask = this.smask;
    const shift = this.sshift;
    for (let o = 0; o < old.length; o += SLOT) {
      if (old[o + S_NODE]! < 0) continue;
      let i = old[o]! >>> shift;
      while (slots[SLOT * i + S_NODE]! >= 0) i = (i + 1) & mask;
      const b = SLOT * i;
      for (let k = 0; k < SLOT; k++) slots[b + k] = old[o + k]!;
    }
  }

  private unhash(id: number): void {
    this.removeNode(2 * id);
    this.removeNode(2 * id + 1);
    this.flags[id]! &= ~F_HASHED;
  }

  // ---- NAT by-source chains (nf_nat_bysource) ----

  /** hash_by_src: bucket of an original source (address, port or ICMP id, protocol). */
  srcBucket(src: number, sport: number, proto: number): number {
    return srcHash(this.hashSeed, src, sport, proto) & this.bysrcMask;
  }

  /** Link the entry in its by-source chain (nf_nat_setup_info, SRC manip; head insertion). */
  bysrcAdd(id: number): void {
    if (this.flags[id]! & F_BYSRC) return;
    const b = this.srcBucket(this.origSrc[id]!, this.origSport[id]!, this.proto[id]!);
    this.bysrcNext[id] = this.bysrcHead[b]!;
    this.bysrcHead[b] = id;
    this.flags[id]! |= F_BYSRC;
  }

  private bysrcRemove(id: number): void {
    const b = this.srcBucket(this.origSrc[id]!, this.origSport[id]!, this.proto[id]!);
    let p = this.bysrcHead[b]!;
    if (p === id) this.bysrcHead[b] = this.bysrcNext[id]!;
    else {
      while (p >= 0) {
        const q = this.bysrcNext[p]!;
        if (q === id) {
          this.bysrcNext[p] = this.bysrcNext[id]!;
          break;
        }
        p = q;
      }
    }
    this.bysrcNext[id] = -1;
    this.flags[id]! &= ~F_BYSRC;
  }

  // ---- allocation, kill, free ---------------------------------------------------------------------

  /** __nf_conntrack_alloc: an id for a new entry, or -1 when the table is full (after early_drop). */
  private alloc(h: number, now: number): number {
    const max = this.max;
    if (max > 0 && this.nUsed - this.nDying + 1 > max) {
      // Expired entries first (what gc_worker would have reaped by now), at most once a second.
      const sec = Math.floor(now);
      if (sec !== this.lastSweepSec) {
        this.lastSweepSec = sec;
        this.gc(now);
      }
      if (this.nUsed - this.nDying + 1 > max && !this.earlyDrop(h, now)) return -1;
    }
    let id = this.freeHead;
    if (id >= 0) {
      this.freeHead = this.freeNext[id]!;
      this.freeNext[id] = -1;
    } else {
      if (this.highWater === this.cap) {
        if (this.cap >= this.maxCap) {
          // Every slot holds a live or limbo entry: free the oldest limbo entry.
          this.forceLimbo();
          if (this.freeHead < 0) return -1;
          return this.alloc(h, now);
        }
        this.grow(Math.min(this.maxCap, this.cap * 2));
      }
      id = this.highWater++;
    }
    this.flags[id] = F_USED;
    this.nUsed++;
    this.pushLimbo(id);
    return id;
  }

  /**
   * early_drop (nf_conntrack_core.c): look at NF_CT_EVICTION_RANGE (8) buckets from the new
   * tuple's bucket (reciprocal_scale(hash, nf_conntrack_buckets)); in the first one holding any,
   * delete every confirmed entry that is not ASSURED (early_drop_list), reaping expired ones.
   */
  private earlyDrop(h: number, now: number): boolean {
    const kb = this.kernelBuckets;
    let bucket = reciprocalScale(h, kb);
    for (let i = 0; i < 8; i++) {
      if (i > 0) bucket = bucket + 1 === kb ? 0 : bucket + 1;
      let drops = 0;
      for (;;) {
        const id = this.scanKernelBucket(bucket, now);
        if (id < 0) break;
        this.killEntry(id);
        drops++;
      }
      if (drops > 0) {
        this.earlyDrops += drops;
        return true;
      }
      if (kb === 1) break;
    }
    return false;
  }

  /**
   * The first non-ASSURED entry whose tuple (either direction) falls in kernel bucket `kb`,
   * freeing expired ones met on the way; -1 if none. The bucket's hashes are one contiguous
   * range, so its nodes sit in one run of slots from the range's first home slot.
   */
  private scanKernelBucket(kbucket: number, now: number): number {
    const kb = this.kernelBuckets;
    const slots = this.slots;
    const mask = this.smask;
    const unit = 2 ** this.sshift; // hashes per home slot
    // The bucket's hashes [lo, hi] (reciprocal_scale(h, kb) === kbucket) and their home slots.
    const lo = Math.ceil((kbucket * 4294967296) / kb);
    const hi = Math.ceil(((kbucket + 1) * 4294967296) / kb) - 1;
    const homeLo = Math.floor(lo / unit);
    const span = Math.floor(hi / unit) - homeLo;
    let i = homeLo & mask;
    for (let steps = 0; steps <= mask; ) {
      const n = slots[SLOT * i + S_NODE]!;
      if (n < 0) {
        // Past the last home slot of the bucket, an empty slot ends every probe run.
        if (((i - homeLo) & mask) > span) return -1;
      } else if (reciprocalScale(slots[SLOT * i]!, kb) === kbucket) {
        const id = n >>> 1;
        if (this.expires[id]! <= now) {
          this.free(id); // nf_ct_gc_expired; the following slots shifted back: look at i again
          continue;
        }
        if (!(this.status[id]! & IPS_ASSURED)) return id;
      }
      i = (i + 1) & mask;
      steps++;
    }
    return -1;
  }

  /**
   * nf_ct_kill / nf_ct_delete: take the entry out of the hash (and NAT's by-source chains) now;
   * its data stays valid for packets still carrying it, and its id is reused LIMBO_GRACE lookups
   * later. No-op on a dying or free entry.
   */
  killEntry(id: number): void {
    const f = this.flags[id]!;
    if (!(f & F_USED) || f & F_DYING) return;
    if (f & F_HASHED) this.unhash(id);
    if (f & F_BYSRC) this.bysrcRemove(id);
    this.flags[id]! |= F_DYING;
    this.nDying++;
    this.pushLimbo(id);
  }

  /** Is the entry live (allocated and not dying)? */
  isLive(id: number): boolean {
    return id >= 0 && id < this.highWater && (this.flags[id]! & (F_USED | F_DYING)) === F_USED;
  }

  /** Is the entry confirmed (in the hash)? */
  isConfirmed(id: number): boolean {
    return (this.flags[id]! & F_HASHED) !== 0;
  }

  private free(id: number): void {
    const f = this.flags[id]!;
    if (!(f & F_USED)) return;
    if (f & F_HASHED) this.unhash(id);
    if (f & F_BYSRC) this.bysrcRemove(id);
    if (f & F_DYING) this.nDying--;
    this.flags[id] = 0;
    this.nUsed--;
    this.status[id] = 0;
    this.limboSeq[id] = -1;
    this.masqOif[id] = -1;
    this.freeNext[id] = this.freeHead;
    this.freeHead = id;
    if (this.onFree !== null) this.onFree(id);
  }

  private pushLimbo(id: number): void {
    if (this.ringCount === LIMBO_SIZE) this.popLimbo();
    const i = (this.ringHead + this.ringCount) % LIMBO_SIZE;
    this.ringId[i] = id;
    this.ringSeq[i] = this.seq;
    this.limboSeq[id] = this.seq;
    this.ringCount++;
  }

  private popLimbo(): void {
    const i = this.ringHead;
    const id = this.ringId[i]!;
    const s = this.ringSeq[i]!;
    this.ringHead = (i + 1) % LIMBO_SIZE;
    this.ringCount--;
    // Stale records (the entry was confirmed, freed, or re-queued since) are skipped.
    if (this.limboSeq[id] === s && !(this.flags[id]! & F_HASHED)) this.free(id);
  }

  private flushLimbo(): void {
    const limit = this.seq - LIMBO_GRACE;
    while (this.ringCount > 0 && this.ringSeq[this.ringHead]! <= limit) this.popLimbo();
  }

  private forceLimbo(): void {
    while (this.ringCount > 0 && this.freeHead < 0) this.popLimbo();
  }

  // ---- expiry ----------------------------------------------------------------------------------------

  /** Free every confirmed entry expired at `now` (a full gc_worker pass). */
  gc(now: number): void {
    const hw = this.highWater;
    const flags = this.flags;
    const exp = this.expires;
    for (let id = 0; id < hw; id++) {
      if ((flags[id]! & (F_HASHED | F_DYING)) === F_HASHED && exp[id]! <= now) this.free(id);
    }
  }

  private gcIncremental(now: number): void {
    const hw = this.highWater;
    let c = this.gcCursor;
    for (let k = 0; k < this.gcStep; k++) {
      if (c >= hw) c = 0;
      if ((this.flags[c]! & (F_HASHED | F_DYING)) === F_HASHED && this.expires[c]! <= now) this.free(c);
      c++;
    }
    this.gcCursor = c;
  }

  private grow(n: number): void {
    const n2 = 2 * n;
    this.status = growU32(this.status, n);
    this.proto = growU8(this.proto, n);
    this.origSrc = growU32(this.origSrc, n);
    this.origDst = growU32(this.origDst, n);
    this.origSport = growU16(this.origSport, n);
    this.origDport = growU16(this.origDport, n);
    this.replSrc = growU32(this.replSrc, n);
    this.replDst = growU32(this.replDst, n);
    this.replSport = growU16(this.replSport, n);
    this.replDport = growU16(this.replDport, n);
    this.origSrcI = new Int32Array(this.origSrc.buffer);
    this.origDstI = new Int32Array(this.origDst.buffer);
    this.replSrcI = new Int32Array(this.replSrc.buffer);
    this.replDstI = new Int32Array(this.replDst.buffer);
    this.expires = growF64(this.expires, n, 0);
    this.tcpI = growI32(this.tcpI, 16 * n, 0);
    this.tcpB = new Uint8Array(this.tcpI.buffer);
    this.aux = growF64(this.aux, n, 0);
    this.masqOif = growI32(this.masqOif, n, -1);
    this.bysrcNext = growI32(this.bysrcNext, n, -1);
    this.flags = growU8(this.flags, n);
    this.hashv = growI32(this.hashv, n2, 0);
    this.freeNext = growI32(this.freeNext, n, -1);
    this.limboSeq = growF64(this.limboSeq, n, -1);
    this.cap = n;
  }

  // ---- inspection ------------------------------------------------------------------------------------

  /** Ids of the confirmed, live entries in ascending order (deterministic). */
  ids(): number[] {
    const out: number[] = [];
    for (let id = 0; id < this.highWater; id++) if ((this.flags[id]! & (F_HASHED | F_DYING)) === F_HASHED) out.push(id);
    return out;
  }

  /** TCP state name of an entry ("" for other protocols). */
  tcpStateName(id: number): string {
    return this.proto[id] === IPPROTO_TCP ? TCP_STATE_NAMES[this.tcpStateOf(id)] ?? '?' : '';
  }

  /**
   * One line per entry, e.g.
   * "tcp 10.0.0.1:1234 -> 172.21.0.10:3306 [SYN_SENT] reply 10.190.12.6:3306 -> 10.0.0.1:1234 DNAT".
   */
  describe(id: number): string {
    const p = this.proto[id]!;
    const orig = this.tupleText(p, this.origSrc[id]!, this.origDst[id]!, this.origSport[id]!, this.origDport[id]!);
    const repl = this.tupleText(p, this.replSrc[id]!, this.replDst[id]!, this.replSport[id]!, this.replDport[id]!);
    const st = this.status[id]!;
    let s = `${protoName(p)} ${orig}`;
    if (p === IPPROTO_TCP) s += ` [${this.tcpStateName(id)}]`;
    s += ` reply ${repl}`;
    if (st & IPS_ASSURED) s += ' ASSURED';
    if (st & IPS_SRC_NAT) s += ' SNAT';
    if (st & IPS_DST_NAT) s += ' DNAT';
    return s;
  }

  /** "a:p -> b:q" (ICMP: "a -> b id N type T code C"). */
  tupleText(p: number, src: number, dst: number, sport: number, dport: number): string {
    if (p === IPPROTO_ICMP) return `${ipv4ToString(src)} -> ${ipv4ToString(dst)} id ${sport} type ${dport >>> 8} code ${dport & 255}`;
    if (protoHasPorts(p)) return `${ipv4ToString(src)}:${sport} -> ${ipv4ToString(dst)}:${dport}`;
    return `${ipv4ToString(src)} -> ${ipv4ToString(dst)}`;
  }

  /**
   * Consistency of the hash table, for tests: "" when every confirmed entry's two tuples sit in
   * the probe run of their home slot and nothing else is in the table; else what is wrong.
   */
  checkInvariants(now: number): string {
    const slots = this.slots;
    const mask = this.smask;
    const shift = this.sshift;
    let nodes = 0;
    for (let i = 0; i <= mask; i++) {
      const n = slots[SLOT * i + S_NODE]!;
      if (n < 0) continue;
      nodes++;
      const id = n >>> 1;
      if ((this.flags[id]! & (F_HASHED | F_DYING)) !== F_HASHED) return `slot ${i}: node ${n} of an entry that is not hashed`;
      if (slots[SLOT * i] !== this.hashv[n]) return `slot ${i}: hash differs from the node's`;
      const h = (n & 1) === 0
        ? tupleHash(this.hashSeed, this.origSrcI[id]!, this.origDstI[id]!, this.origSport[id]!, this.origDport[id]!, this.proto[id]!)
        : tupleHash(this.hashSeed, this.replSrcI[id]!, this.replDstI[id]!, this.replSport[id]!, this.replDport[id]!, this.proto[id]!);
      if (h !== slots[SLOT * i]) return `slot ${i}: stale hash for node ${n}`;
      const b = SLOT * i;
      const orig = (n & 1) === 0;
      const ports = orig ? (this.origSport[id]! << 16) | this.origDport[id]! : (this.replSport[id]! << 16) | this.replDport[id]!;
      if (
        slots[b + S_SRC] !== (orig ? this.origSrcI[id] : this.replSrcI[id]) ||
        slots[b + S_DST] !== (orig ? this.origDstI[id] : this.replDstI[id]) ||
        slots[b + S_PORTS] !== ports ||
        slots[b + S_PROTO] !== this.proto[id]
      ) {
        return `slot ${i}: its tuple copy differs from node ${n}'s tuple`;
      }
      for (let j = h >>> shift; j !== i; j = (j + 1) & mask) if (slots[SLOT * j + S_NODE]! < 0) return `slot ${i}: empty slot ${j} inside its probe run`;
    }
    if (nodes !== this.nNodes) return `${nodes} nodes in slots, ${this.nNodes} counted`;
    let hashed = 0;
    for (let id = 0; id < this.highWater; id++) {
      if (!(this.flags[id]! & F_HASHED)) continue;
      hashed++;
      const o = this.findNode(this.hashv[2 * id]!, this.origSrcI[id]!, this.origDstI[id]!, this.origSport[id]!, this.origDport[id]!, this.proto[id]!, -Infinity);
      const r = this.findNode(this.hashv[2 * id + 1]!, this.replSrcI[id]!, this.replDstI[id]!, this.replSport[id]!, this.replDport[id]!, this.proto[id]!, -Infinity);
      if (o !== 2 * id || r !== 2 * id + 1) return `entry ${id}: not found by its tuples`;
    }
    if (2 * hashed !== nodes) return `${hashed} hashed entries for ${nodes} nodes`;
    void now;
    return '';
  }

  /** Ids of the live confirmed entries that early_drop would consider in kernel bucket `b`. */
  kernelBucketIds(b: number): number[] {
    const out: number[] = [];
    for (let id = 0; id < this.highWater; id++) {
      if ((this.flags[id]! & (F_HASHED | F_DYING)) !== F_HASHED) continue;
      if (reciprocalScale(this.hashv[2 * id]!, this.kernelBuckets) === b || reciprocalScale(this.hashv[2 * id + 1]!, this.kernelBuckets) === b) out.push(id);
    }
    return out;
  }

  /** Run early_drop for a tuple hash (for tests); returns whether it dropped anything. */
  earlyDropForTest(h: number, now: number): boolean {
    return this.earlyDrop(h, now);
  }

  /** describe() of every confirmed entry, in id order (for tests and dumps). */
  dump(): string[] {
    return this.ids().map((id) => this.describe(id));
  }
}
