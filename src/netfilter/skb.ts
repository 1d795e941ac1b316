/**
 * The per-packet context that travels through a `linux` element: the kernel's sk_buff, reduced
 * to what netfilter, conntrack, NAT and routing read and write. One long-lived instance per
 * thread is re-pointed at each packet (no per-packet allocation). The packet's headers are read
 * through `v` (a PacketView parsed over `buf`/`dv`); rewrites go through src/packet/rewrite.ts,
 * which keeps `v` and every checksum up to date.
 *
 * This file is the contract between the rule evaluator (src/netfilter/ruleset.ts), conntrack and
 * NAT (src/netfilter/conntrack.ts, nat.ts) and the element that walks the hooks
 * (src/elements/linux/). Keep it small.
 */
import { PacketView } from '../packet/view.js';
import { Trace } from './trace.js';

// Netfilter hooks (include/uapi/linux/netfilter.h numbering).
export const HOOK_PREROUTING = 0;
export const HOOK_INPUT = 1;
export const HOOK_FORWARD = 2;
export const HOOK_OUTPUT = 3;
export const HOOK_POSTROUTING = 4;
export const HOOK_NAMES = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const;

// Tables.
export const TABLE_RAW = 0;
export const TABLE_MANGLE = 1;
export const TABLE_NAT = 2;
export const TABLE_FILTER = 3;
export const TABLE_NAMES = ['raw', 'mangle', 'nat', 'filter'] as const;

// Verdicts of a table traversal.
export const VERDICT_ACCEPT = 1;
export const VERDICT_DROP = 0;
/** DROP plus an ICMP error or TCP reset sent back (REJECT target); see skb.rejectWith. */
export const VERDICT_REJECT = 2;

/**
 * Conntrack state bits as `-m conntrack --ctstate` / `-m state` see them
 * (XT_CONNTRACK_STATE_BIT(ctinfo) and the special SNAT/DNAT/UNTRACKED bits of xt_conntrack.h).
 */
export const CT_INVALID = 1 << 0;
export const CT_ESTABLISHED = 1 << 1;
export const CT_RELATED = 1 << 2;
export const CT_NEW = 1 << 3;
export const CT_UNTRACKED = 1 << 4;
export const CT_SNAT = 1 << 5;
export const CT_DNAT = 1 << 6;

/** Conntrack status bits (`--ctstatus`), values of enum ip_conntrack_status. */
export const IPS_EXPECTED = 1 << 0;
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;
export const IPS_SRC_NAT_DONE = 1 << 7;
export const IPS_DST_NAT_DONE = 1 << 8;

// REJECT --reject-with kinds.
export const REJECT_ICMP_NET_UNREACHABLE = 0;
export const REJECT_ICMP_HOST_UNREACHABLE = 1;
export const REJECT_ICMP_PROT_UNREACHABLE = 2;
export const REJECT_ICMP_PORT_UNREACHABLE = 3;
export const REJECT_ICMP_NET_PROHIBITED = 9;
export const REJECT_ICMP_HOST_PROHIBITED = 10;
export const REJECT_ICMP_ADMIN_PROHIBITED = 13;
export const REJECT_TCP_RESET = 256;

// NAT manipulation types and range flags (include/uapi/linux/netfilter/nf_nat.h).
export const NAT_MANIP_SRC = 0;
export const NAT_MANIP_DST = 1;
export const NF_NAT_RANGE_MAP_IPS = 1 << 0;
export const NF_NAT_RANGE_PROTO_SPECIFIED = 1 << 1;
export const NF_NAT_RANGE_PROTO_RANDOM = 1 << 2;
export const NF_NAT_RANGE_PERSISTENT = 1 << 3;
export const NF_NAT_RANGE_PROTO_RANDOM_FULLY = 1 << 4;
/** dpemu: the range is MASQUERADE's (address chosen from the output interface at setup time). */
export const NAT_RANGE_MASQUERADE = 1 << 16;
/** dpemu: NETMAP (address = range.minIp prefix | host bits of the original), netmask in range.netmapMask. */
export const NAT_RANGE_NETMAP = 1 << 17;

/** A NAT range chosen by a nat-table target for a NEW connection (nf_nat_range2). */
export class NatRange {
  manip = NAT_MANIP_DST;
  flags = 0;
  minIp = 0;
  maxIp = 0;
  minPort = 0;
  maxPort = 0;
  netmapMask = 0;
  /** Rule that chose it (for comments and traces), e.g. "KUBE-SEP-ABC rule 2 (line 40)". */
  ruleRef = '';
  /** Extra tags for the output comment, e.g. "nth" / "random". */
  how = '';
  set(other: NatRange): void {
    this.manip = other.manip;
    this.flags = other.flags;
    this.minIp = other.minIp;
    this.maxIp = other.maxIp;
    this.minPort = other.minPort;
    this.maxPort = other.maxPort;
    this.netmapMask = other.netmapMask;
    this.ruleRef = other.ruleRef;
    this.how = other.how;
  }
}

export class Skb {
  buf: Uint8Array = new Uint8Array(0);
  dv: DataView = new DataView(new ArrayBuffer(0));
  /** Parsed headers of the packet (ipOff etc. index into buf). */
  readonly v = new PacketView();
  /** Interface index (in the node) the packet arrived on; -1 for locally generated packets. */
  inIf = -1;
  /** Interface index the packet leaves by; -1 until routed. */
  outIf = -1;
  /** Next hop chosen by routing (the gateway, or the destination itself when on-link). */
  nextHop = 0;
  hook = HOOK_PREROUTING;
  /** nfmark. */
  mark = 0;
  /** Conntrack entry id, or -1 (untracked, invalid, or before the conntrack hook). */
  ct = -1;
  /** CT_* bit of this packet (one of INVALID/ESTABLISHED/RELATED/NEW/UNTRACKED). */
  ctState = 0;
  /** 0 original direction, 1 reply. */
  ctDir = 0;
  /** Set by `-j CT --notrack` / NOTRACK in raw. */
  notrack = false;
  /** Capture timestamp of the packet (drives conntrack timeouts and `recent`). */
  nowSec = 0;
  /** Set by a REJECT target (REJECT_*). */
  rejectWith = REJECT_ICMP_PORT_UNREACHABLE;
  /** Set by a nat-table target on a NEW connection; `natRangeSet` says whether it is valid. */
  readonly natRange = new NatRange();
  natRangeSet = false;
  /** Verdict details for the accounting and the output comment. */
  verdictRef = '';
  /** When non-null, every step is recorded (dpemu trace); null on the fast path. */
  trace: Trace | null = null;
  /**
   * Set when a rule evaluated for this packet read a field that changes from packet to packet
   * of a connection (TCP flags or options) or has state (statistic, recent): the walk's outcome
   * is then not a function of the connection alone, so the node's flow memo must not keep it.
   */
  impure = false;
  /**
   * Set when a rule read what a connection's NAT set-up and confirmation change (the status
   * bits, SNAT/DNAT states, the reply tuple): the first packet's walk then differs from the
   * next one's, and the flow memo must not keep it (LinuxNode.memoLookup).
   */
  ctLive = false;

  /**
   * Re-point at a new packet; resets all metadata but the time (nowSec, which the caller sets
   * when it changes: a double argument would be boxed on every call). The caller parses `v`
   * over buf.
   */
  reset(buf: Uint8Array, dv: DataView, inIf: number): void {
    this.buf = buf;
    this.dv = dv;
    this.inIf = inIf;
    this.outIf = -1;
    this.nextHop = 0;
    this.hook = HOOK_PREROUTING;
    this.mark = 0;
    this.ct = -1;
    this.ctState = 0;
    this.ctDir = 0;
    this.notrack = false;
    this.rejectWith = REJECT_ICMP_PORT_UNREACHABLE;
    this.natRangeSet = false;
    this.verdictRef = '';
    this.impure = false;
    this.ctLive = false;
  }
}
