/**
 * NAT: what nf_nat does with the conntrack entries (net/netfilter/nf_nat_core.c, nf_nat_proto.c,
 * nf_nat_masquerade.c, xt_NETMAP.c; Linux 6.x).
 *
 * The element calls, at each NAT hook (DST manip at PREROUTING and OUTPUT, SRC manip at
 * POSTROUTING and INPUT), as nf_nat_inet_fn / nf_nat_ipv4_fn do:
 *
 *   if (nat.needsSetup(skb, manip)) { traverse the nat table (a DNAT/SNAT/MASQUERADE/NETMAP
 *     target fills skb.natRange); if (!nat.setup(skb, manip)) drop; }
 *   if (!nat.apply(skb, manip)) drop;
 *
 * NAT is decided once, for the first packet of a connection (NEW, or RELATED), and replayed
 * from the conntrack entry for every later packet, replies included (SEMANTICS §0). Nothing is
 * allocated per packet except trace text when skb.trace is set.
 */
import { ipv4ToString } from '../packet/addr.js';
import { l4ChecksumOk } from '../packet/checksum.js';
import {
  setDstIp,
  setDstPort,
  setIcmpId,
  setInnerDstIp,
  setInnerDstPort,
  setInnerIcmpId,
  setInnerSrcIp,
  setInnerSrcPort,
  setSrcIp,
  setSrcPort,
} from '../packet/rewrite.js';
import type { Prng } from '../util/prng.js';
import { Conntrack, icmpInvType, protoHasPorts } from './conntrack.js';
import type { NetfilterEnv } from './env.js';
import {
  CT_NEW,
  CT_RELATED,
  HOOK_POSTROUTING,
  IPS_DST_NAT,
  IPS_DST_NAT_DONE,
  IPS_SRC_NAT,
  IPS_SRC_NAT_DONE,
  NAT_MANIP_DST,
  NAT_MANIP_SRC,
  NAT_RANGE_MASQUERADE,
  NAT_RANGE_NETMAP,
  NF_NAT_RANGE_MAP_IPS,
  NF_NAT_RANGE_PERSISTENT,
  NF_NAT_RANGE_PROTO_RANDOM,
  NF_NAT_RANGE_PROTO_RANDOM_FULLY,
  NF_NAT_RANGE_PROTO_SPECIFIED,
  type NatRange,
  type Skb,
} from './skb.js';
import { TCP_CONNTRACK_SYN_SENT, TCP_CONNTRACK_TIME_WAIT } from './tcp-state.js';
import { bswap32, jhash2Ip, reciprocalScale } from './tuple-hash.js';

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const ICMP_REDIRECT = 5;

const NF_NAT_RANGE_PROTO_RANDOM_ALL = NF_NAT_RANGE_PROTO_RANDOM | NF_NAT_RANGE_PROTO_RANDOM_FULLY;
const IPS_NAT_MASK = IPS_DST_NAT | IPS_SRC_NAT;
const IPS_NAT_DONE_MASK = IPS_DST_NAT_DONE | IPS_SRC_NAT_DONE;
/** NF_NAT_MAX_ATTEMPTS and NF_NAT_HARDER_THRESH of nf_nat_core.c. */
const NF_NAT_MAX_ATTEMPTS = 128;
const NF_NAT_HARDER_THRESH = NF_NAT_MAX_ATTEMPTS / 4;

export interface NatConfig {
  /**
   * Accepted for the element's convenience; the kernel's NAT port choice does not use
   * ip_local_port_range (nf_nat_l4proto_unique_tuple uses 1–511 / 600–1023 / 1024–65535).
   */
  localPortRange?: [number, number];
}

export class Nat {
  private readonly ct: Conntrack;
  private readonly env: NetfilterEnv;
  private readonly prng: Prng;

  // The tuple being built by get_unique_tuple (t*) and the one it starts from (o*): the
  // original-direction tuple as it will look after this manip (ports: ICMP id / type<<8|code).
  // Addresses are int32 (`ip | 0`), as in conntrack's hot paths; range addresses are uint32.
  private tS = 0;
  private tD = 0;
  private tSp = 0;
  private tDp = 0;
  private oS = 0;
  private oD = 0;
  private oSp = 0;
  private oDp = 0;
  private p = 0;
  /** The entry being set up (ignored_conntrack). */
  private id = -1;
  private now = 0;
  // The range (nf_nat_range2) in use.
  private rFlags = 0;
  private rMinIp = 0;
  private rMaxIp = 0;
  private rMinPort = 0;
  private rMaxPort = 0;

  constructor(ct: Conntrack, env: NetfilterEnv, prng: Prng, cfg: NatConfig = {}) {
    this.ct = ct;
    this.env = env;
    this.prng = prng;
    void cfg;
  }

  // ---- nf_nat_inet_fn's question ---------------------------------------------------------------

  /**
   * Must the nat table be traversed for this packet at this manip? For a NEW packet (or a
   * RELATED one that is not ICMP: nf_nat_ipv4_fn sends RELATED ICMP errors straight to
   * nf_nat_icmp_reply_translation) whose entry has not had `manip` set up
   * (!nf_nat_initialized). INVALID and untracked packets never reach the nat table.
   */
  needsSetup(skb: Skb, manip: number): boolean {
    const id = skb.ct;
    if (id < 0) return false;
    const s = skb.ctState;
    if (s === CT_RELATED) {
      if (skb.v.ipProto === IPPROTO_ICMP) return false;
    } else if (s !== CT_NEW) {
      return false;
    }
    return (this.ct.status[id]! & (manip === NAT_MANIP_SRC ? IPS_SRC_NAT_DONE : IPS_DST_NAT_DONE)) === 0;
  }

  // ---- nf_nat_setup_info -----------------------------------------------------------------------

  /**
   * nf_nat_setup_info with skb.natRange (when skb.natRangeSet and its manip is `manip`), else
   * the null binding (nf_nat_alloc_null_binding). Returns false when the packet must be dropped:
   * MASQUERADE with no address on the output interface ("... ate my IP address"), or the manip
   * was already set up. A confirmed entry is left alone ("Can't setup nat info for confirmed ct").
   */
  setup(skb: Skb, manip: number): boolean {
    const ct = this.ct;
    const id = skb.ct;
    if (id < 0) return true;
    if (ct.isConfirmed(id)) return true;
    const doneBit = manip === NAT_MANIP_SRC ? IPS_SRC_NAT_DONE : IPS_DST_NAT_DONE;
    if (ct.status[id]! & doneBit) return false; // WARN_ON(nf_nat_initialized) → NF_DROP
    const v = skb.v;
    let range: NatRange | null = skb.natRangeSet && skb.natRange.manip === manip ? skb.natRange : null;
    if (range !== null) {
      const f = range.flags;
      this.rMinPort = range.minPort;
      this.rMaxPort = range.maxPort;
      if (f & NAT_RANGE_MASQUERADE) {
        // nf_nat_masquerade_ipv4
        if (ct.origSrc[id] === 0) {
          range = null; // "locally generated packet that is probably not supposed to be masqueraded"
        } else {
          const newsrc = this.env.masqueradeAddress(skb.outIf, skb.nextHop) >>> 0;
          if (newsrc === 0) {
            if (skb.trace) skb.trace.add('nat', `MASQUERADE: no address on the output interface (interface ${skb.outIf}): drop`);
            return false;
          }
          ct.masqOif[id] = skb.outIf; // nat->masq_index
          this.rFlags = (f & ~(NAT_RANGE_MASQUERADE | NAT_RANGE_NETMAP)) | NF_NAT_RANGE_MAP_IPS;
          this.rMinIp = newsrc;
          this.rMaxIp = newsrc;
        }
      } else if (f & NAT_RANGE_NETMAP) {
        // netmap_tg_v4: the prefix of the range, the host bits of the packet's address.
        const mask = range.netmapMask >>> 0;
        const addr = manip === NAT_MANIP_DST ? v.dstIp : v.srcIp;
        const ip = ((addr & ~mask) | (range.minIp & mask)) >>> 0;
        this.rFlags = (f & ~(NAT_RANGE_MASQUERADE | NAT_RANGE_NETMAP)) | NF_NAT_RANGE_MAP_IPS;
        this.rMinIp = ip;
        this.rMaxIp = ip;
      } else {
        this.rFlags = f;
        this.rMinIp = range.minIp >>> 0;
        this.rMaxIp = range.maxIp >>> 0;
      }
    }
    if (range === null) {
      // __nf_nat_alloc_null_binding: force the IP, let the protocol choose (no PROTO_SPECIFIED);
      // "Use reply in case it's already been mangled (eg local packet)."
      const ip = manip === NAT_MANIP_SRC ? ct.replDst[id]! : ct.replSrc[id]!;
      this.rFlags = NF_NAT_RANGE_MAP_IPS;
      this.rMinIp = ip;
      this.rMaxIp = ip;
      this.rMinPort = 0;
      this.rMaxPort = 0;
    }

    // "What we've got will look like inverse of reply."
    const p = ct.proto[id]!;
    this.p = p;
    this.id = id;
    this.now = skb.nowSec;
    this.oS = ct.replDstI[id]!;
    this.oD = ct.replSrcI[id]!;
    if (p === IPPROTO_ICMP) {
      this.oSp = ct.replSport[id]!;
      const rd = ct.replDport[id]!;
      this.oDp = ((icmpInvType(rd >>> 8) & 255) << 8) | (rd & 255);
    } else {
      this.oSp = ct.replDport[id]!;
      this.oDp = ct.replSport[id]!;
    }

    this.getUniqueTuple(manip);

    let changed = false;
    if (this.tS !== this.oS || this.tD !== this.oD || this.tSp !== this.oSp || this.tDp !== this.oDp) {
      // nf_conntrack_alter_reply(ct, invert(new))
      ct.replSrc[id] = this.tD;
      ct.replDst[id] = this.tS;
      if (p === IPPROTO_ICMP) {
        ct.replSport[id] = this.tSp;
        ct.replDport[id] = ((icmpInvType(this.tDp >>> 8) & 255) << 8) | (this.tDp & 255);
      } else {
        ct.replSport[id] = this.tDp;
        ct.replDport[id] = this.tSp;
      }
      ct.status[id]! |= manip === NAT_MANIP_SRC ? IPS_SRC_NAT : IPS_DST_NAT;
      changed = true;
    }
    if (manip === NAT_MANIP_SRC) ct.bysrcAdd(id);
    ct.status[id]! |= doneBit;
    if (skb.trace) {
      const kind = manip === NAT_MANIP_SRC ? 'SNAT' : 'DNAT';
      const what = range === null ? 'null binding' : `${kind} binding${range.ruleRef ? ` (${range.ruleRef}${range.how ? `, ${range.how}` : ''})` : ''}`;
      const from = manip === NAT_MANIP_SRC ? this.endpoint(p, this.oS, this.oSp) : this.endpoint(p, this.oD, p === IPPROTO_ICMP ? this.oSp : this.oDp);
      const to = manip === NAT_MANIP_SRC ? this.endpoint(p, this.tS, this.tSp) : this.endpoint(p, this.tD, p === IPPROTO_ICMP ? this.tSp : this.tDp);
      skb.trace.add('nat', changed ? `${what}: ${kind} ${from} -> ${to}` : `${what}: ${from} unchanged`);
    }
    return true;
  }

  /** get_unique_tuple: fill t* from o* and the range. */
  private getUniqueTuple(manip: number): void {
    const flags = this.rFlags;
    // 1) SRC manip: keep the original tuple if it is in range and unused (source port
    //    preservation), or reuse an existing mapping of this source (find_appropriate_src).
    if (manip === NAT_MANIP_SRC && !(flags & NF_NAT_RANGE_PROTO_RANDOM_ALL)) {
      if (this.inRange(this.oS, this.oSp)) {
        // nf_nat_used_tuple_new: its reverse-clash case only arises with parallel CPUs.
        if (!this.used(this.oS, this.oD, this.oSp, this.oDp)) {
          this.tS = this.oS;
          this.tD = this.oD;
          this.tSp = this.oSp;
          this.tDp = this.oDp;
          return;
        }
      } else if (this.findAppropriateSrc()) {
        if (!this.used(this.tS, this.tD, this.tSp, this.tDp)) return;
      }
    }
    // 2) Select the IP in the range.
    this.tS = this.oS;
    this.tD = this.oD;
    this.tSp = this.oSp;
    this.tDp = this.oDp;
    this.findBestIps(manip);
    // 3) Only bother mapping the port if it is not already in range and unique.
    if (!(flags & NF_NAT_RANGE_PROTO_RANDOM_ALL)) {
      if (flags & NF_NAT_RANGE_PROTO_SPECIFIED) {
        if (this.l4InRange(manip) && (this.rMinPort === this.rMaxPort || !this.used(this.tS, this.tD, this.tSp, this.tDp))) return;
      } else if (!this.used(this.tS, this.tD, this.tSp, this.tDp)) {
        return;
      }
    }
    this.l4UniqueTuple(manip);
  }

  /** in_range (for the SRC manip): address in the range if MAP_IPS, source port/id in range if specified. */
  private inRange(s: number, sp: number): boolean {
    const f = this.rFlags;
    const u = s >>> 0;
    if (f & NF_NAT_RANGE_MAP_IPS && (u < this.rMinIp || u > this.rMaxIp)) return false;
    if (!(f & NF_NAT_RANGE_PROTO_SPECIFIED)) return true;
    const p = this.p;
    if (p === IPPROTO_ICMP || protoHasPorts(p) || p === 47) return sp >= this.rMinPort && sp <= this.rMaxPort;
    return true;
  }

  /** l4proto_in_range for t*. */
  private l4InRange(manip: number): boolean {
    const p = this.p;
    let port: number;
    if (p === IPPROTO_ICMP) port = this.tSp;
    else if (protoHasPorts(p) || p === 47) port = manip === NAT_MANIP_SRC ? this.tSp : this.tDp;
    else return true;
    return port >= this.rMinPort && port <= this.rMaxPort;
  }

  /**
   * find_appropriate_src: an entry with the same original source (protocol, address, port or
   * id) already SRC-mapped: its mapping, if in range, into t* (with our destination).
   */
  private findAppropriateSrc(): boolean {
    const ct = this.ct;
    const p = this.p;
    const now = this.now;
    for (let e = ct.bysrcHead[ct.srcBucket(this.oS, this.oSp, p)]!; e >= 0; e = ct.bysrcNext[e]!) {
      if (ct.proto[e] !== p || ct.origSrcI[e] !== this.oS || ct.origSport[e] !== this.oSp) continue;
      if (!ct.isLive(e) || ct.expires[e]! <= now) continue;
      // Copy the source part from the (inverted) reply tuple.
      this.tS = ct.replDstI[e]!;
      this.tSp = p === IPPROTO_ICMP ? ct.replSport[e]! : ct.replDport[e]!;
      this.tD = this.oD;
      this.tDp = this.oDp;
      if (this.inRange(this.tS, this.tSp)) return true;
    }
    return false;
  }

  /** find_best_ips_proto: the address from the range, hashed as the kernel does (jhash2). */
  private findBestIps(manip: number): void {
    const f = this.rFlags;
    if (!(f & NF_NAT_RANGE_MAP_IPS)) return;
    const min = this.rMinIp;
    const max = this.rMaxIp;
    let ip: number;
    if (min === max) {
      ip = min; // fast path: only one choice
    } else {
      // jhash2(&tuple->src.u3, 4, PERSISTENT ? 0 : tuple->dst.u3.all[0] ^ zone->id), raw be32 words.
      const j = jhash2Ip(bswap32(this.tS), f & NF_NAT_RANGE_PERSISTENT ? 0 : bswap32(this.tD));
      const dist = (max - min + 1) >>> 0;
      ip = (min + reciprocalScale(j, dist)) >>> 0;
    }
    if (manip === NAT_MANIP_SRC) this.tS = ip | 0;
    else this.tD = ip | 0;
  }

  /**
   * nf_nat_l4proto_unique_tuple: search a free port (ICMP: id) from a random offset
   * (get_random_u16, from the Prng; 0 for a DST manip without --random, "restore default DNAT
   * behavior"), min(range, 128) tries, then halving windows at new offsets while ≥ 16.
   */
  private l4UniqueTuple(manip: number): void {
    const p = this.p;
    const f = this.rFlags;
    let min: number;
    let size: number;
    let keyIsSrc: boolean;
    if (p === IPPROTO_ICMP) {
      keyIsSrc = true; // "id is same for either direction"
      if (!(f & NF_NAT_RANGE_PROTO_SPECIFIED)) {
        min = 0;
        size = 65536;
      } else {
        min = this.rMinPort;
        size = this.rMaxPort - this.rMinPort + 1;
      }
    } else if (protoHasPorts(p)) {
      keyIsSrc = manip === NAT_MANIP_SRC;
      if (!(f & NF_NAT_RANGE_PROTO_SPECIFIED)) {
        if (manip === NAT_MANIP_DST) return; // "If it's dst rewrite, can't change port"
        const key = this.tSp;
        if (key < 1024) {
          // "Loose convention: >> 512 is credential passing"
          if (key < 512) {
            min = 1;
            size = 511;
          } else {
            min = 600;
            size = 1023 - 600 + 1;
          }
        } else {
          min = 1024;
          size = 65535 - 1024 + 1;
        }
      } else {
        let lo = this.rMinPort;
        let hi = this.rMaxPort;
        if (hi < lo) {
          const x = lo;
          lo = hi;
          hi = x;
        }
        min = lo;
        size = hi - lo + 1;
      }
    } else {
      return; // GRE without a PPTP master, generic protocols: no per-protocol part
    }
    if (size <= 0) return;
    let off = f & NF_NAT_RANGE_PROTO_RANDOM_ALL || manip !== NAT_MANIP_DST ? this.prng.nextU32() & 0xffff : 0;
    let attempts = size < NF_NAT_MAX_ATTEMPTS ? size : NF_NAT_MAX_ATTEMPTS;
    for (;;) {
      for (let i = 0; i < attempts; i++) {
        const key = (min + (off % size)) & 0xffff;
        if (keyIsSrc) this.tSp = key;
        else this.tDp = key;
        if (!this.usedHarder(attempts - i)) return;
        off = (off + 1) & 0xffff; // u16 off
      }
      if (attempts >= size || attempts < 16) return;
      attempts = attempts >>> 1;
      off = this.prng.nextU32() & 0xffff;
    }
  }

  /** nf_nat_used_tuple: is the reply of this tuple already in the table (not ours)? */
  private used(s: number, d: number, sp: number, dp: number): boolean {
    const p = this.p;
    if (p === IPPROTO_ICMP) return this.ct.tupleTaken(d, s, sp, ((icmpInvType(dp >>> 8) & 255) << 8) | (dp & 255), p, this.id, this.now);
    return this.ct.tupleTaken(d, s, dp, sp, p, this.id, this.now);
  }

  /**
   * nf_nat_used_tuple_harder: in the last NF_NAT_HARDER_THRESH attempts for a TCP SYN, evict a
   * colliding SNATed entry in TIME_WAIT or later whose sequence number our SYN has passed.
   */
  private usedHarder(attemptsLeft: number): boolean {
    const ct = this.ct;
    const id = this.id;
    if (attemptsLeft > NF_NAT_HARDER_THRESH || this.p !== IPPROTO_TCP || ct.tcpStateOf(id) !== TCP_CONNTRACK_SYN_SENT) return this.used(this.tS, this.tD, this.tSp, this.tDp);
    const rs = this.tD;
    const rd = this.tS;
    const rsp = this.tDp;
    const rdp = this.tSp;
    const node = ct.findNode(ct.hash(rs, rd, rsp, rdp, IPPROTO_TCP), rs, rd, rsp, rdp, IPPROTO_TCP, this.now);
    if (node < 0) return false;
    if ((node & 1) === 0) return true; // the colliding tuple is an original one
    const other = node >>> 1;
    if (other === id) return true;
    // nf_nat_may_kill: closing state, and SNATed.
    if (ct.tcpStateOf(other) < TCP_CONNTRACK_TIME_WAIT) return true;
    if (!(ct.status[other]! & IPS_SRC_NAT)) return true;
    // nf_seq_has_advanced(old, new)
    if (((ct.tdEndOf(id, 0) - ct.tdEndOf(other, 0)) | 0) <= 0) return true;
    ct.killEntry(other);
    return false;
  }

  // ---- nf_nat_packet / nf_nat_icmp_reply_translation ------------------------------------------

  /**
   * Rewrite the packet for this manip from its entry: nf_nat_packet (replies get the inverse
   * mapping), or nf_nat_icmp_reply_translation for a RELATED ICMP error (outer and quoted inner
   * header). Every checksum is updated incrementally. Returns false when the packet must be
   * dropped: the masqueraded flow's output interface changed (nf_nat_oif_changed; the entry is
   * killed), or a RELATED ICMP error with a bad checksum or an untranslatable redirect.
   */
  apply(skb: Skb, manip: number): boolean {
    const id = skb.ct;
    if (id < 0) return true;
    const ct = this.ct;
    const v = skb.v;
    // nf_nat_ipv4_fn: RELATED ICMP errors are translated, never set up.
    if (skb.ctState === CT_RELATED && v.ipProto === IPPROTO_ICMP) return this.icmpReplyTranslation(skb, id, manip);
    const dir = skb.ctDir;
    // nf_nat_oif_changed: a masqueraded flow must keep its output interface.
    if (manip === NAT_MANIP_SRC && dir === 0 && skb.hook === HOOK_POSTROUTING) {
      const m = ct.masqOif[id]!;
      if (m >= 0 && m !== skb.outIf) {
        if (skb.trace) skb.trace.add('nat', `masqueraded flow changed output interface (${m} -> ${skb.outIf}): entry killed, packet dropped`);
        ct.killEntry(id);
        return false;
      }
    }
    let statusbit = manip === NAT_MANIP_SRC ? IPS_SRC_NAT : IPS_DST_NAT;
    if (dir === 1) statusbit ^= IPS_NAT_MASK; // invert if this is reply direction
    if (!(ct.status[id]! & statusbit)) return true;
    this.manipPkt(skb, id, manip, dir);
    return true;
  }

  /** nf_nat_manip_pkt: target = invert(tuplehash[!dir]); SRC → source from it, DST → destination. */
  private manipPkt(skb: Skb, id: number, manip: number, dir: number): void {
    const ct = this.ct;
    const v = skb.v;
    const buf = skb.buf;
    const dv = skb.dv;
    const p = ct.proto[id]!;
    // T = the tuple of the other direction.
    const Ts = dir === 0 ? ct.replSrcI[id]! : ct.origSrcI[id]!;
    const Td = dir === 0 ? ct.replDstI[id]! : ct.origDstI[id]!;
    const Tsp = dir === 0 ? ct.replSport[id]! : ct.origSport[id]!;
    const Tdp = dir === 0 ? ct.replDport[id]! : ct.origDport[id]!;
    const trace = skb.trace;
    const oldIp = manip === NAT_MANIP_SRC ? v.srcIp : v.dstIp;
    const oldPort = this.pktPort(skb, manip);
    if (manip === NAT_MANIP_SRC) {
      const ip = Td;
      if (p === IPPROTO_TCP || p === IPPROTO_UDP) {
        if (v.srcPort !== Tdp) setSrcPort(v, buf, dv, Tdp);
      } else if (p === IPPROTO_ICMP) {
        if (v.icmpId >= 0 && v.icmpId !== Tsp) setIcmpId(v, buf, dv, Tsp);
      }
      if ((v.srcIp | 0) !== ip) setSrcIp(v, buf, dv, ip);
    } else {
      const ip = Ts;
      if (p === IPPROTO_TCP || p === IPPROTO_UDP) {
        if (v.dstPort !== Tsp) setDstPort(v, buf, dv, Tsp);
      } else if (p === IPPROTO_ICMP) {
        if (v.icmpId >= 0 && v.icmpId !== Tsp) setIcmpId(v, buf, dv, Tsp);
      }
      if ((v.dstIp | 0) !== ip) setDstIp(v, buf, dv, ip);
    }
    if (trace) {
      const kind = manip === NAT_MANIP_SRC ? 'SNAT' : 'DNAT';
      const newIp = manip === NAT_MANIP_SRC ? v.srcIp : v.dstIp;
      trace.add('nat', `${kind} ${this.endpointText(p, oldIp, oldPort)} -> ${this.endpointText(p, newIp, this.pktPort(skb, manip))}${dir === 1 ? ' (reply)' : ''}`);
    }
  }

  /** The packet's port for this manip (ICMP: id; -1 when none), for trace text. */
  private pktPort(skb: Skb, manip: number): number {
    const v = skb.v;
    const p = v.ipProto;
    if (p === IPPROTO_TCP || p === IPPROTO_UDP) return manip === NAT_MANIP_SRC ? v.srcPort : v.dstPort;
    if (p === IPPROTO_ICMP) return v.icmpId;
    return -1;
  }

  /**
   * nf_nat_icmp_reply_translation: if this direction's manip applies to the related
   * connection, translate the quoted header with the opposite manip to the other direction's
   * tuple ("it's the packet we sent, seen from the other side"), then the outer header so that
   * it looks like the reply to the packet it quotes.
   */
  private icmpReplyTranslation(skb: Skb, id: number, manip: number): boolean {
    const ct = this.ct;
    const v = skb.v;
    const buf = skb.buf;
    const dv = skb.dv;
    const dir = skb.ctDir;
    // nf_ip_checksum over the ICMP message (checkable only when wholly captured).
    if (v.l4Off < 0) return true;
    if (v.l4Captured >= v.l4Len && !l4ChecksumOk(buf, v.l4Off, v.l4Len, IPPROTO_ICMP, 0, 0, skb.dv)) {
      if (skb.trace) skb.trace.add('nat', 'related ICMP error with a bad checksum: drop');
      return false;
    }
    const st = ct.status[id]!;
    if (v.icmpType === ICMP_REDIRECT) {
      // Redirects are only allowed for connections that are not NATed.
      if ((st & IPS_NAT_DONE_MASK) !== IPS_NAT_DONE_MASK) return false;
      if (st & IPS_NAT_MASK) return false;
    }
    let statusbit = manip === NAT_MANIP_SRC ? IPS_SRC_NAT : IPS_DST_NAT;
    if (dir === 1) statusbit ^= IPS_NAT_MASK;
    if (!(st & statusbit)) return true;
    if (v.innerIpOff < 0) return true;
    const p = ct.proto[id]!;
    const Ts = dir === 0 ? ct.replSrcI[id]! : ct.origSrcI[id]!;
    const Td = dir === 0 ? ct.replDstI[id]! : ct.origDstI[id]!;
    const Tsp = dir === 0 ? ct.replSport[id]! : ct.origSport[id]!;
    const Tdp = dir === 0 ? ct.replDport[id]! : ct.origDport[id]!;
    const trace = skb.trace;
    const before = trace ? this.icmpText(skb) : '';
    // Inner: manip !manip with target tuplehash[!dir] itself.
    const ip = v.innerProto;
    if (manip === NAT_MANIP_SRC) {
      // inner DST manip
      if (ip === IPPROTO_TCP || ip === IPPROTO_UDP) {
        if (v.innerDstPort !== Tdp) setInnerDstPort(v, buf, dv, Tdp);
      } else if (ip === IPPROTO_ICMP && p === IPPROTO_ICMP) {
        if (v.innerIcmpId >= 0 && v.innerIcmpId !== Tsp) setInnerIcmpId(v, buf, dv, Tsp);
      }
      if ((v.innerDstIp | 0) !== Td) setInnerDstIp(v, buf, dv, Td);
      // Outer: SRC manip to invert(T): source = T's destination.
      if ((v.srcIp | 0) !== Td) setSrcIp(v, buf, dv, Td);
    } else {
      // inner SRC manip
      if (ip === IPPROTO_TCP || ip === IPPROTO_UDP) {
        if (v.innerSrcPort !== Tsp) setInnerSrcPort(v, buf, dv, Tsp);
      } else if (ip === IPPROTO_ICMP && p === IPPROTO_ICMP) {
        if (v.innerIcmpId >= 0 && v.innerIcmpId !== Tsp) setInnerIcmpId(v, buf, dv, Tsp);
      }
      if ((v.innerSrcIp | 0) !== Ts) setInnerSrcIp(v, buf, dv, Ts);
      // Outer: DST manip to invert(T): destination = T's source.
      if ((v.dstIp | 0) !== Ts) setDstIp(v, buf, dv, Ts);
    }
    if (trace) trace.add('nat', `related ICMP ${manip === NAT_MANIP_SRC ? 'SNAT' : 'DNAT'}: ${before} => ${this.icmpText(skb)}${dir === 1 ? ' (reply)' : ''}`);
    return true;
  }

  private icmpText(skb: Skb): string {
    const v = skb.v;
    const ip = v.innerProto;
    const ports = ip === IPPROTO_TCP || ip === IPPROTO_UDP;
    const inner = `${ipv4ToString(v.innerSrcIp)}${ports ? `:${v.innerSrcPort}` : ''} -> ${ipv4ToString(v.innerDstIp)}${ports ? `:${v.innerDstPort}` : ''}`;
    return `${ipv4ToString(v.srcIp)} -> ${ipv4ToString(v.dstIp)} [quoting ${inner}]`;
  }

  // ---- text ------------------------------------------------------------------------------------

  /**
   * The NAT binding of entry id for output comments: "DNAT 172.21.0.10:3306 -> 10.190.12.6:3306",
   * "SNAT 172.30.1.5:40000 -> 10.0.0.5:40000", both joined by "; ", or "" if none.
   */
  bindingText(id: number): string {
    const ct = this.ct;
    if (id < 0) return '';
    const st = ct.status[id]!;
    if (!(st & IPS_NAT_MASK)) return '';
    const p = ct.proto[id]!;
    const icmp = p === IPPROTO_ICMP;
    let s = '';
    if (st & IPS_DST_NAT) {
      s = `DNAT ${this.endpointText(p, ct.origDst[id]!, icmp ? ct.origSport[id]! : ct.origDport[id]!)} -> ${this.endpointText(p, ct.replSrc[id]!, ct.replSport[id]!)}`;
    }
    if (st & IPS_SRC_NAT) {
      const t = `SNAT ${this.endpointText(p, ct.origSrc[id]!, ct.origSport[id]!)} -> ${this.endpointText(p, ct.replDst[id]!, icmp ? ct.replSport[id]! : ct.replDport[id]!)}`;
      s = s ? `${s}; ${t}` : t;
    }
    return s;
  }

  private endpoint(p: number, ip: number, port: number): string {
    return this.endpointText(p, ip, port);
  }

  private endpointText(p: number, ip: number, port: number): string {
    if (p === IPPROTO_ICMP) return port >= 0 ? `${ipv4ToString(ip)} id ${port}` : ipv4ToString(ip);
    if (protoHasPorts(p) && port >= 0) return `${ipv4ToString(ip)}:${port}`;
    return ipv4ToString(ip);
  }
}
