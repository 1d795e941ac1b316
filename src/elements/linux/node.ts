/**
 * A `linux` element: one Linux network stack doing to each frame what the kernel does, in the
 * kernel's order (SEMANTICS.md §0, DESIGN.md "The path of a packet"):
 *
 *   receive → PREROUTING (raw → conntrack → mangle → nat DNAT) → routing
 *     → forward: TTL / MTU checks (ICMP errors) → TTL−1 → FORWARD (mangle → filter)
 *         → POSTROUTING (mangle → nat SNAT → conntrack confirm) → device (fragment; vxlan/ipip
 *           encapsulation re-enters as local out) → wire
 *     → local: INPUT (mangle → filter → nat SNAT → confirm) → delivered, or decapsulated
 *         (vxlan, ipip) and re-entered at PREROUTING on the tunnel device
 *   local out (ICMP errors, resets, tunnel outer packets): OUTPUT (raw → conntrack → mangle →
 *     nat DNAT → filter) → POSTROUTING → device
 *
 * Each packet lives in a per-level scratch buffer with headroom, so that headers can be
 * rewritten, replaced (L2) and prepended (tunnels) in place; nothing is allocated per packet.
 * With `inPlace`, an Ethernet input frame is not copied: it is walked and rewritten where it is,
 * in the caller's buffer, and copied into the level buffer only when a tunnel needs room in front
 * of it or a datagram is reassembled (the copy costs ~20 ns of a ~100-byte frame's walk).
 */
import { ipv4ToString, macToString } from '../../packet/addr.js';
import { csumApplyDelta, icmpChecksum, ipv4HeaderChecksumOk, udpCsumApplyDelta } from '../../packet/checksum.js';
import { decrementTtl } from '../../packet/rewrite.js';
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_IPV4,
  PARSE_MALFORMED,
  PARSE_NON_IPV4,
  PARSE_OK,
  parseReasonText,
} from '../../packet/view.js';
import { Conntrack } from '../../netfilter/conntrack.js';
import { Nat } from '../../netfilter/nat.js';
import { Ruleset } from '../../netfilter/ruleset.js';
import { ADDRTYPE_BROADCAST, ADDRTYPE_LOCAL, RPF_ACCEPT_LOCAL, RPF_LOOSE, type NetfilterEnv } from '../../netfilter/env.js';
import {
  CT_ESTABLISHED,
  CT_INVALID,
  CT_NEW,
  CT_UNTRACKED,
  HOOK_FORWARD,
  HOOK_INPUT,
  HOOK_NAMES,
  HOOK_OUTPUT,
  HOOK_POSTROUTING,
  HOOK_PREROUTING,
  NAT_MANIP_DST,
  NAT_MANIP_SRC,
  REJECT_ICMP_ADMIN_PROHIBITED,
  REJECT_ICMP_HOST_PROHIBITED,
  REJECT_ICMP_HOST_UNREACHABLE,
  REJECT_ICMP_NET_PROHIBITED,
  REJECT_ICMP_NET_UNREACHABLE,
  REJECT_ICMP_PORT_UNREACHABLE,
  REJECT_ICMP_PROT_UNREACHABLE,
  REJECT_TCP_RESET,
  Skb,
  TABLE_FILTER,
  TABLE_MANGLE,
  TABLE_NAMES,
  TABLE_NAT,
  TABLE_RAW,
  VERDICT_ACCEPT,
  VERDICT_REJECT,
} from '../../netfilter/skb.js';
import { Trace } from '../../netfilter/trace.js';
import { Prng } from '../../util/prng.js';
import { copyBytes } from '../../util/bytes.js';
import { IP_DF, IP_MF, writeIpv4Header } from '../../tunnels/ipv4-header.js';
import { IntMap } from '../../netfilter/inthash.js';
import { FlowMemo } from './flow-memo.js';
import { innerFlowHash, udpFlowSrcPort, VXLAN_FLAG_I, VXLAN_OVERHEAD, vxlanEncap, type VxlanParams } from '../../tunnels/vxlan.js';
import { IPIP_OVERHEAD, ipipEncap } from '../../tunnels/ipip.js';
import { ConfigError, type InterfaceConfig, type NodeConfig } from './config.js';
import { RoutingTable, RT_BLACKHOLE, RT_BROADCAST, RT_LOCAL, RT_PROHIBIT, RT_UNREACHABLE, type Route } from './routing.js';
import { DEFAULT_TTL, icmpErrorAllowed, writeIcmpError, writeTcpReset } from './icmp.js';
import { Defragmenter, DEFRAG_COMPLETE, DEFRAG_DUPLICATE, DEFRAG_HELD } from './defrag.js';

/** Room in front of a packet for a new L2 header and tunnel headers. */
const HEADROOM = 256;
const LEVEL_BUF = 65536 + 2 * HEADROOM;
/** Nesting of tunnels, fragments and generated packets for one input frame. */
const MAX_LEVEL = 8;

const ETH_BROADCAST = new Uint8Array([255, 255, 255, 255, 255, 255]);

/** What became of an input frame. */
export const FATE_NONE = 0;
export const FATE_LEFT = 1;
export const FATE_DELIVERED = 2;
export const FATE_DROPPED = 3;
export const FATE_ERROR = 4;
/** A fragment held for reassembly: its fate is decided with its datagram's (see `absorbed`). */
export const FATE_HELD = 5;

/**
 * Receives the frames a node sends. The bytes are valid only during the call; `comments` is never
 * changed afterwards (a sink may keep it). A frozen `comments` array is the flow memo's: the same
 * array comes back for every packet the memo forwards for that connection direction, so a sink
 * may key a cache of its encoding on it; any other array is the walk's, one per packet.
 */
export interface FrameSink {
  frame(buf: Uint8Array, off: number, len: number, outIf: number, comments: readonly string[] | null): void;
}

const NO_NOTES: readonly string[] = Object.freeze([]);

export interface LinuxNodeOptions {
  /** Seed of the PRNG behind statistic random, NAT port choice, hash keys. */
  seed?: number;
  /** Build a comment per written frame (verdict, NAT). */
  comments?: boolean;
  /**
   * The caller's input buffer may be modified: Ethernet frames are processed where they are, not
   * copied (the engine: it reads each frame once). Default false: the input is left untouched.
   */
  inPlace?: boolean;
  /** Keep and use the flow memo (flow-memo.ts); default true. Off: every packet walks the tables. */
  flowMemo?: boolean;
}

class Level {
  readonly own = new Uint8Array(LEVEL_BUF);
  readonly ownDv = new DataView(this.own.buffer);
  /** The buffer the packet is in: `own`, or (level 0 in place) the caller's input buffer. */
  buf: Uint8Array = this.own;
  dv: DataView = this.ownDv;
  /** First byte of `buf` the node may write: headers are prepended down to here, not below. */
  lo = 0;
  readonly skb = new Skb();
  /** Does this packet descend from the input frame (vs. generated by the node)? */
  fromInput = true;
  /** IPCB(skb)->frag_max_size: the largest fragment of a reassembled datagram, 0 otherwise. */
  fragMax = 0;
}

export class LinuxNode implements NetfilterEnv {
  readonly cfg: NodeConfig;
  readonly routing: RoutingTable;
  readonly ct: Conntrack;
  readonly nat: Nat;
  readonly rules: Ruleset | undefined;
  readonly interfaceNames: string[];
  readonly ifaces: InterfaceConfig[];
  private readonly prng: Prng;
  private readonly levels: Level[] = [];
  private readonly hasTable: boolean[] = [false, false, false, false];
  /**
   * Permanent neighbours: per interface, ip → entry k, whose Ethernet header (neighbour MAC,
   * then the interface's MAC) is stored as three big-endian words at neighHdr[3k..3k+2], so the
   * device writes it with three stores.
   */
  private readonly neigh: IntMap[];
  private readonly neighHdr: Int32Array;
  /** MACs of the Ethernet interfaces (first four bytes, last two) and their indexes, for ifByMac. */
  private readonly etherMacHi: Int32Array;
  private readonly etherMacLo: Int32Array;
  private readonly etherIf: Int32Array;
  private readonly vxlanParams: (VxlanParams | undefined)[];
  private readonly hashKey: number;
  private ipId = 0;
  private sink: FrameSink | null = null;
  private readonly commentsOn: boolean;
  private readonly inPlace: boolean;
  /** Outcomes of pure walks per conntrack node (flow-memo.ts); null when off. */
  readonly memo: FlowMemo | null;
  /** The walk being recorded for the memo: conntrack node (2·id + dir), or -1; and its key. */
  private recNode = -1;
  /**
   * The walk being recorded is the connection's first packet (its entry not confirmed yet): the
   * memo is keyed with the status the entry has once confirmed (memoStore), see memoLookup.
   * Meaningful only while recNode ≥ 0 (a stale true with recNode −1 changes nothing: only
   * memoLookup starts a record, and it sets both).
   */
  private recFirst = false;
  private recState = 0;
  private recStatus = 0;
  private recMark = 0;
  /** The recorded packet's tuple as it came in (int32; ports sport << 16 | dport). */
  private recSrc = 0;
  private recDst = 0;
  private recPorts = 0;
  /** Neighbour entry of the last Ethernet header written (for the memo). */
  private lastNeigh = -1;
  /** Comments for the frames of the current input (reused array). */
  private readonly notes: string[] = [];
  /** The flow memo's comments of the frame memoForward sends (FrameSink: never changed). */
  private memoNotes: readonly string[] | null = null;

  private readonly defrag = new Defragmenter();
  /** Per conntrack entry: the NAT binding and the rules that chose it, for output comments. */
  private readonly ctNotes: string[] = [];
  private dnatRef = '';

  // Outcome of the current input frame.
  fate = FATE_NONE;
  fateReason = '';
  /** Earlier input frames (held fragments) whose fate is decided with this one's. */
  absorbed = 0;
  /** Held fragments whose queues expired or were discarded since the last call (dropped). */
  expiredFragments = 0;
  /** Frames written for the current input (fragments count one by one), and generated ones. */
  framesOut = 0;
  framesGenerated = 0;

  constructor(cfg: NodeConfig, opts: LinuxNodeOptions = {}) {
    this.cfg = cfg;
    this.ifaces = cfg.interfaces;
    this.interfaceNames = cfg.interfaces.map((i) => i.name);
    this.prng = new Prng(opts.seed ?? 1);
    this.hashKey = this.prng.nextU32();
    this.ipId = this.prng.nextU32() & 0xffff;
    this.commentsOn = opts.comments ?? false;
    this.inPlace = opts.inPlace ?? false;
    this.memo = opts.flowMemo === false ? null : new FlowMemo();
    try {
      this.routing = new RoutingTable(cfg.interfaces, cfg.routes);
    } catch (e) {
      throw new ConfigError(`${cfg.file}:${(e as Error).message}`);
    }
    this.neigh = cfg.interfaces.map(() => new IntMap());
    const idx = new Map(cfg.interfaces.map((i) => [i.name, i.index]));
    const ethers = cfg.interfaces.filter((i) => i.kind === 'ether' && i.mac !== undefined);
    this.etherMacHi = Int32Array.from(ethers, (i) => (i.mac![0]! << 24) | (i.mac![1]! << 16) | (i.mac![2]! << 8) | i.mac![3]!);
    this.etherMacLo = Int32Array.from(ethers, (i) => (i.mac![4]! << 8) | i.mac![5]!);
    this.etherIf = Int32Array.from(ethers, (i) => i.index);
    this.neighHdr = new Int32Array(3 * cfg.neighbors.length);
    const hdr = new Uint8Array(12);
    const hdrDv = new DataView(hdr.buffer);
    cfg.neighbors.forEach((n, k) => {
      const ifc = idx.get(n.dev)!;
      hdr.set(n.mac, 0);
      hdr.set(cfg.interfaces[ifc]!.mac ?? new Uint8Array(6), 6);
      for (let w = 0; w < 3; w++) this.neighHdr[3 * k + w] = hdrDv.getInt32(4 * w);
      this.neigh[ifc]!.set(n.ip | 0, k);
    });
    const [lo, hi] = cfg.sysctls.localPortRange;
    this.vxlanParams = cfg.interfaces.map((i) =>
      i.vxlan
        ? {
            vni: i.vxlan.vni,
            local: i.vxlan.local,
            remote: i.vxlan.remote,
            dstport: i.vxlan.dstport,
            udpcsum: i.vxlan.udpcsum,
            ttl: i.vxlan.ttl,
            ttlInherit: i.vxlan.ttlInherit,
            tos: i.vxlan.tos,
            // ip_local_port_range; the kernel's upper end is exclusive here (SEMANTICS §10).
            srcPortMin: i.vxlan.srcPortMin ?? lo,
            srcPortMax: i.vxlan.srcPortMax ?? hi,
          }
        : undefined,
    );
    this.ct = new Conntrack({
      max: cfg.sysctls.conntrackMax,
      tcpLoose: cfg.sysctls.tcpLoose,
      checksum: cfg.sysctls.conntrackChecksum,
      tcpBeLiberal: cfg.sysctls.tcpBeLiberal,
    });
    const memo = this.memo;
    if (memo !== null) this.ct.onFree = (id) => memo.forget(id);
    this.nat = new Nat(this.ct, this, this.prng, { localPortRange: [lo, hi] });
    if (cfg.iptables) {
      this.rules = Ruleset.fromText(cfg.iptables.text, {
        file: cfg.iptables.file,
        firstLine: cfg.iptables.firstLine,
        ipsetSave: cfg.ipset?.text,
        ipsetFile: cfg.ipset?.file,
        env: this,
        ct: this.ct,
        prng: this.prng,
      });
      for (let t = 0; t < 4; t++) this.hasTable[t] = this.rules.hasTable(t);
    }
  }

  // ---- NetfilterEnv ------------------------------------------------------------------------

  addrType(ip: number, limitIf: number): number {
    return this.routing.addrType(ip, limitIf);
  }

  masqueradeAddress(outIf: number, nextHop: number): number {
    return this.routing.selectAddr(outIf, nextHop);
  }

  /**
   * ipt_rpfilter.c rpfilter_mt / rpfilter_lookup_reverse: route the source back; the packet
   * passes when that route is unicast through the interface it came in on (any interface with
   * --loose), or local with --accept-local. A 0.0.0.0 source to a broadcast or local multicast
   * destination (DHCP) passes. Policy routing by mark is not modelled, so --validmark changes nothing.
   */
  rpfilter(src: number, dst: number, inIf: number, _mark: number, flags: number): boolean {
    if (src === 0 && (dst === 0xffffffff || dst >>> 8 === 0xe00000)) return true;
    const r = this.routing.lookup(src);
    if (r === undefined) return false;
    if (r.type !== 0 && (r.type !== RT_LOCAL || (flags & RPF_ACCEPT_LOCAL) === 0)) return false;
    return r.outIf === inIf || (flags & RPF_LOOSE) !== 0;
  }

  // ---- entry points -------------------------------------------------------------------------

  /** Interface index by name, or -1. */
  ifIndex(name: string): number {
    return this.interfaceNames.indexOf(name);
  }

  /** Interface whose MAC is the frame's destination MAC (ingress selection), or -1. */
  ifByMac(buf: Uint8Array, off: number): number {
    // Runs for every frame of a pcap input: the MACs are compared as a 32-bit and a 16-bit
    // number (etherMacHi/Lo, one entry per Ethernet interface) rather than byte by byte.
    const hi = ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) | 0;
    const lo = (buf[off + 4]! << 8) | buf[off + 5]!;
    const H = this.etherMacHi;
    for (let k = 0; k < H.length; k++) if (H[k] === hi && this.etherMacLo[k] === lo) return this.etherIf[k]!;
    return -1;
  }

  /**
   * One input frame arrives on interface `inIf` at capture time tsSec + tsNsec·10⁻⁹ (two
   * integers: a double argument would be boxed on every call). Frames the node sends go to
   * `sink`; the fate of the input (this.fate / fateReason) says what became of it.
   */
  receive(
    frame: Uint8Array,
    frameDv: DataView,
    off: number,
    caplen: number,
    origlen: number,
    linktype: number,
    fcsLen: number,
    inIf: number,
    tsSec: number,
    tsNsec: number,
    sink: FrameSink,
    trace: Trace | null = null,
  ): number {
    this.sink = sink;
    this.fate = FATE_NONE;
    this.fateReason = '';
    this.framesOut = 0;
    this.framesGenerated = 0;
    this.absorbed = 0;
    this.recNode = -1;
    this.recFirst = false;
    if (this.notes.length !== 0) this.notes.length = 0;
    this.memoNotes = null;
    const L = this.level(0);
    L.fromInput = true;
    L.fragMax = 0;
    const len = caplen - fcsLen;
    if (len <= 0 || len > LEVEL_BUF - HEADROOM) {
      this.error(`frame of ${caplen} bytes cannot be processed`);
      return this.fate;
    }
    let buf: Uint8Array;
    let dv: DataView;
    let start: number;
    if (this.inPlace && linktype === LINKTYPE_ETHERNET) {
      // Same-size L2 out (Ethernet): every rewrite stays inside the frame. A tunnel or a
      // reassembly moves the packet into the level buffer first (unshare, reassemble).
      buf = frame;
      dv = frameDv;
      start = off;
    } else {
      buf = L.own;
      dv = L.ownDv;
      start = HEADROOM;
      copyBytes(buf, dv, HEADROOM, frame, frameDv, off, len);
    }
    L.buf = buf;
    L.dv = dv;
    L.lo = start;
    const skb = L.skb;
    // Capture time in seconds; the two integers come in (a double argument would be boxed).
    const nowSec = tsSec + tsNsec * 1e-9;
    skb.reset(buf, dv, inIf);
    skb.nowSec = nowSec;
    skb.trace = trace;
    const v = skb.v;
    const st = v.parse(buf, dv, start, len, linktype, 0, origlen - fcsLen);
    const ifc = this.ifaces[inIf]!;
    if (trace) trace.add('in', `${ifc.name}: ${this.describe(skb)}`);
    if (st === PARSE_NON_IPV4) {
      this.drop(L, 'not IPv4 (ARP, IPv6... are not modelled by the node)');
      return this.fate;
    }
    if (st === PARSE_MALFORMED) {
      this.drop(L, `malformed IPv4 (${parseReasonText(v.malformedReason)}): ip_rcv drops it`);
      return this.fate;
    }
    if (st !== PARSE_OK) {
      this.error('snaplen-truncated frame: the rest of the packet is not in the capture');
      return this.fate;
    }
    if (v.vlanCount > 0) {
      this.drop(L, `VLAN-tagged frame (tag ${v.vlanId}) and no VLAN device on ${ifc.name}`);
      return this.fate;
    }
    if (linktype === LINKTYPE_ETHERNET && ifc.mac) {
      // eth_type_trans: a unicast frame for another MAC is PACKET_OTHERHOST, which ip_rcv drops.
      const m = ifc.mac;
      const d = v.frameOff;
      const group = (buf[d]! & 1) === 1;
      if (!group && (m[0] !== buf[d] || m[1] !== buf[d + 1] || m[2] !== buf[d + 2] || m[3] !== buf[d + 3] || m[4] !== buf[d + 4] || m[5] !== buf[d + 5])) {
        this.drop(L, `destination MAC ${macToString(buf, d)} is not ${ifc.name}'s (PACKET_OTHERHOST)`);
        return this.fate;
      }
    }
    if (!ipv4HeaderChecksumOk(buf, v.ipOff, v.ipHdrLen, dv)) {
      this.drop(L, 'bad IPv4 header checksum: ip_rcv drops it');
      return this.fate;
    }
    if (v.mf !== 0 || v.fragOffset !== 0) {
      if (!this.reassemble(L, nowSec)) return this.fate;
    }
    this.prerouting(L, 0);
    return this.fate;
  }

  /**
   * nf_defrag_ipv4 (before raw and conntrack): queue the fragment; when its datagram is complete,
   * put the whole datagram in the level buffer and go on. False when the packet stops here.
   */
  private reassemble(L: Level, now: number): boolean {
    const skb = L.skb;
    const v = skb.v;
    this.expiredFragments += this.defrag.expire(now);
    const r = this.defrag.add(L.buf, v.ipOff, v.ipHdrLen, v.ipTotalLen, v.fragOffset, v.mf !== 0, v.srcIp, v.dstIp, v.ipProto, v.ipId, now);
    if (r === DEFRAG_HELD) {
      if (skb.trace) skb.trace.add('defrag', `fragment id ${v.ipId} offset ${v.fragOffset} held for reassembly (${this.defrag.queued} queue(s))`);
      this.fate = FATE_HELD;
      this.fateReason = 'held for reassembly';
      return false;
    }
    if (r === DEFRAG_DUPLICATE) {
      this.drop(L, 'duplicate fragment (ip_frag_queue)');
      return false;
    }
    if (r !== DEFRAG_COMPLETE) {
      this.expiredFragments += this.defrag.discarded;
      this.drop(L, 'overlapping or oversized fragments: reassembly queue discarded (ip_frag_queue)');
      return false;
    }
    const d = this.defrag.datagram;
    const n = this.defrag.datagramLen;
    const off = HEADROOM + 14;
    L.buf = L.own;
    L.dv = L.ownDv;
    L.lo = 0;
    L.buf.set(d.subarray(0, n), off);
    L.fragMax = this.defrag.maxFragSize;
    this.absorbed = this.defrag.absorbed;
    const trace = skb.trace;
    const inIf = skb.inIf;
    skb.reset(L.buf, L.dv, inIf);
    skb.trace = trace;
    v.parse(L.buf, L.dv, off, n, LINKTYPE_IPV4, 0, n);
    if (trace) trace.add('defrag', `reassembled ${n} bytes from ${this.absorbed + 1} fragments (largest ${L.fragMax}): ${this.describe(skb)}`);
    return true;
  }

  /** Input frames still held in incomplete reassembly queues (at the end of a capture: dropped). */
  heldFragments(): number {
    return this.defrag.heldFrames();
  }

  /** Outcome text of the current input, for the accounting. */
  get reason(): string {
    return this.fateReason;
  }

  // ---- the walk -----------------------------------------------------------------------------

  private level(i: number): Level {
    let l = this.levels[i];
    if (l === undefined) {
      l = new Level();
      this.levels[i] = l;
    }
    return l;
  }

  private prerouting(L: Level, depth: number): void {
    const skb = L.skb;
    skb.hook = HOOK_PREROUTING;
    const trace = skb.trace;
    if (trace) trace.add('hook', `PREROUTING in ${this.ifaces[skb.inIf]!.name}`);
    if (this.hasTable[TABLE_RAW] && !this.table(L, TABLE_RAW, HOOK_PREROUTING)) return;
    if (!this.conntrackIn(L)) return;
    if (depth === 0 && this.memo !== null && skb.ct >= 0 && this.memoLookup(L)) return;
    if (this.hasTable[TABLE_MANGLE] && !this.table(L, TABLE_MANGLE, HOOK_PREROUTING)) return;
    if (!this.natHook(L, NAT_MANIP_DST, HOOK_PREROUTING)) return;
    const v = skb.v;
    const rt = this.routing.lookup(v.dstIp);
    if (trace) trace.add('route', rt ? `${ipv4ToString(v.dstIp)} via ${this.routeText(rt)}` : `${ipv4ToString(v.dstIp)}: no route`);
    if (rt === undefined) return this.routeError(L, 0, 'no route to destination (ICMP net unreachable)', depth);
    if (rt.type === RT_LOCAL || rt.type === RT_BROADCAST) return this.localIn(L, depth, rt.type === RT_BROADCAST);
    if (v.dstIp === 0xffffffff || v.dstIp >>> 28 === 0xe) return this.drop(L, 'broadcast/multicast destination (not forwarded)');
    if (rt.type === RT_BLACKHOLE) return this.drop(L, `blackhole route (${rt.text})`);
    if (rt.type === RT_UNREACHABLE) return this.routeError(L, 1, `unreachable route (${rt.text})`, depth);
    if (rt.type === RT_PROHIBIT) return this.routeError(L, 13, `prohibit route (${rt.text})`, depth);
    // ip_route_input_slow: forwarding off → -EHOSTUNREACH → ip_error sends host unreachable.
    if (!this.cfg.sysctls.ipForward) return this.routeError(L, 1, 'ip_forward=0: not forwarding', depth);
    this.forward(L, rt, depth);
  }

  // ---- the flow memo (flow-memo.ts) -----------------------------------------------------------

  /**
   * For an input packet of a confirmed TCP/UDP connection: replay the memoised walk (true: the
   * packet is done), or start recording this walk for the memo (false: walk on).
   */
  private memoLookup(L: Level): boolean {
    const skb = L.skb;
    const id = skb.ct;
    const st = skb.ctState;
    const v = skb.v;
    if (skb.trace !== null || !L.fromInput || L.fragMax !== 0 || (st !== CT_NEW && st !== CT_ESTABLISHED) || (v.ipProto !== 6 && v.ipProto !== 17)) return false;
    const ct = this.ct;
    const node = 2 * id + skb.ctDir;
    const status = ct.status[id]!;
    if (ct.isConfirmed(id)) {
      const o = this.memo!.find(node, st, status, skb.mark, skb.inIf);
      if (o >= 0 && this.memoForward(L, o, node)) return true;
      this.recFirst = false;
    } else {
      // The first packet of a connection (NEW, original direction, its entry made by this
      // lookup): its walk is the second packet's walk plus the nat chains, which the second
      // packet does not traverse (nf_nat_inet_fn: the bindings are set up by then). natHook
      // keeps what those chains read out of the walk's purity and gives up if they set the mark;
      // rules elsewhere that read what NAT set-up and confirmation change (ct status, reply
      // tuple) set Skb.ctLive. The key's status is the entry's once confirmed (memoStore).
      if (st !== CT_NEW || skb.ctDir !== 0) return false;
      this.recFirst = true;
    }
    this.recNode = node;
    this.recState = st;
    this.recStatus = status;
    this.recMark = skb.mark;
    this.recSrc = v.srcIp | 0;
    this.recDst = v.dstIp | 0;
    this.recPorts = (v.srcPort << 16) | v.dstPort;
    return false;
  }

  /**
   * The memoised forward, when the packet passes the per-packet checks the key does not cover
   * (ip_forward's TTL and MTU checks); false sends it through the full walk. It writes what the
   * walk wrote (addresses, ports, TTL − 1, the neighbour's Ethernet header) and updates each
   * checksum once with the record's summed difference, which gives the bytes of the walk's
   * one-by-one updates (PREROUTING's nf_nat_manip_pkt, ip_decrease_ttl, POSTROUTING's
   * nf_nat_manip_pkt; see flow-memo.ts).
   */
  private memoForward(L: Level, o: number, node: number): boolean {
    const memo = this.memo!;
    const v = L.skb.v;
    const ttl = v.ttl;
    const tcp = v.ipProto === 6;
    // (Conntrack tracked the packet, so its TCP/UDP header is whole and the last test never
    // fails; it keeps the writes below inside the captured bytes all the same.)
    if (ttl <= 1 || v.ipTotalLen > memo.mtu(o) || v.l4Captured < (tcp ? 18 : 8)) return false;
    const dv = L.dv;
    const ipOff = v.ipOff;
    const src = memo.src(o);
    const dst = memo.dst(o);
    dv.setInt32(ipOff + 12, src);
    dv.setInt32(ipOff + 16, dst);
    dv.setUint8(ipOff + 8, ttl - 1);
    dv.setUint16(ipOff + 10, csumApplyDelta(dv.getUint16(ipOff + 10), memo.ipDelta(o)));
    v.srcIp = src >>> 0;
    v.dstIp = dst >>> 0;
    v.ttl = ttl - 1;
    const dl4 = memo.l4Delta(o);
    if (dl4 >= 0) {
      const l4 = v.l4Off;
      const ports = memo.ports(o);
      dv.setInt32(l4, ports);
      if (tcp) dv.setUint16(l4 + 16, csumApplyDelta(dv.getUint16(l4 + 16), dl4));
      else dv.setUint16(l4 + 6, udpCsumApplyDelta(dv.getUint16(l4 + 6), dl4));
      v.srcPort = ports >>> 16;
      v.dstPort = ports & 0xffff;
    }
    const outIf = memo.outIf(o);
    L.skb.outIf = outIf;
    const off = ipOff - 14;
    this.writeEthernet(dv, off, memo.neigh(o));
    if (this.commentsOn) {
      const notes = memo.notesOf(node);
      if (notes !== null) {
        if (this.notes.length === 0) this.memoNotes = notes;
        else for (let i = 0; i < notes.length; i++) this.notes.push(notes[i]!);
      }
    }
    this.emit(L, off, v.ipTotalLen + 14, outIf);
    return true;
  }

  /** At the first frame the recorded walk sends: keep it when it is the plain forward of the input. */
  private memoStore(L: Level, off: number, len: number, outIf: number): void {
    const skb = L.skb;
    const v = skb.v;
    const node = this.recNode;
    this.recNode = -1;
    if (skb.impure || L !== this.levels[0] || !L.fromInput || this.framesOut !== 0 || this.framesGenerated !== 0 || this.lastNeigh < 0) return;
    if (off !== v.ipOff - 14 || len !== v.ipTotalLen + 14 || skb.ct !== node >> 1) return;
    let status = this.recStatus;
    if (this.recFirst) {
      // POSTROUTING confirmed the entry before the frame left: the key takes its status as the
      // next packet's lookup will see it (should it have changed by then, that is a miss).
      if (skb.ctLive || !this.ct.isConfirmed(skb.ct)) return;
      status = this.ct.status[skb.ct]!;
    }
    this.memo!.store(node, this.recState, status, this.recMark, skb.inIf, outIf, this.ifaces[outIf]!.mtu, this.lastNeigh,
      this.recSrc, this.recDst, this.recPorts, v.srcIp, v.dstIp, (v.srcPort << 16) | v.dstPort, this.commentsOn ? Object.freeze(this.notes.slice()) : null);
  }

  /** ip_error: ICMP destination unreachable with `code` for a route that says so, then drop. */
  private routeError(L: Level, code: number, reason: string, depth: number): void {
    this.icmpError(L, 3, code, 0, depth, false);
    this.drop(L, reason);
  }

  private forward(L: Level, rt: Route, depth: number): void {
    const skb = L.skb;
    const v = skb.v;
    skb.outIf = rt.outIf;
    skb.nextHop = rt.via !== 0 ? rt.via : v.dstIp;
    // ip_forward(): TTL first, then the MTU, both before the FORWARD hook (SEMANTICS §10).
    if (v.ttl <= 1) {
      this.icmpError(L, 11, 0, 0, depth, false);
      return this.drop(L, 'TTL exceeded in transit (ICMP time exceeded sent)');
    }
    const mtu = this.ifaces[rt.outIf]!.mtu;
    if (v.ipTotalLen > mtu && v.df) {
      this.icmpError(L, 3, 4, mtu, depth, false);
      return this.drop(L, `packet of ${v.ipTotalLen} bytes exceeds MTU ${mtu} of ${this.ifaces[rt.outIf]!.name} with DF set (ICMP frag needed sent)`);
    }
    decrementTtl(v, skb.dv);
    skb.hook = HOOK_FORWARD;
    if (skb.trace) skb.trace.add('hook', `FORWARD ${this.ifaces[skb.inIf]!.name} -> ${this.ifaces[skb.outIf]!.name}`);
    if (this.hasTable[TABLE_MANGLE] && !this.table(L, TABLE_MANGLE, HOOK_FORWARD)) return;
    if (this.hasTable[TABLE_FILTER] && !this.table(L, TABLE_FILTER, HOOK_FORWARD, depth)) return;
    this.postrouting(L, depth);
  }

  private localIn(L: Level, depth: number, broadcast: boolean): void {
    this.recNode = -1;
    const skb = L.skb;
    skb.hook = HOOK_INPUT;
    if (skb.trace) skb.trace.add('hook', `INPUT on ${this.ifaces[skb.inIf]!.name}`);
    if (this.hasTable[TABLE_MANGLE] && !this.table(L, TABLE_MANGLE, HOOK_INPUT)) return;
    if (this.hasTable[TABLE_FILTER] && !this.table(L, TABLE_FILTER, HOOK_INPUT, depth)) return;
    if (!this.natHook(L, NAT_MANIP_SRC, HOOK_INPUT)) return;
    if (!this.confirm(L)) return;
    const v = skb.v;
    if (!broadcast && v.fragOffset === 0 && !v.mf) {
      if (v.ipProto === 17 && v.l4Off >= 0) {
        for (const ifc of this.ifaces) {
          if (ifc.vxlan && ifc.vxlan.dstport === v.dstPort && (ifc.vxlan.local === 0 || ifc.vxlan.local === v.dstIp)) return this.vxlanDecap(L, ifc, depth);
        }
      } else if (v.ipProto === 4) {
        for (const ifc of this.ifaces) if (ifc.kind === 'ipip') return this.ipipDecap(L, ifc, depth);
      }
    }
    if (v.ipProto === 1 && v.l4Off >= 0 && v.icmpType === 8 && !broadcast && v.l4Captured >= v.l4Len) {
      this.deliver(L, `ICMP echo request delivered to ${ipv4ToString(v.dstIp)} (echo reply sent)`);
      return this.echoReply(L, depth);
    }
    this.deliver(L, `delivered locally to ${ipv4ToString(v.dstIp)}`);
  }

  /**
   * icmp_echo → icmp_reply: type 0 with the request's identifier, sequence and data; from the
   * address pinged, TOS of the request, TTL 64, no DF (ICMP sockets use IP_PMTUDISC_DONT).
   * IP options of the request are not echoed (dpemu does not model ip_options_echo).
   */
  private echoReply(L: Level, depth: number): void {
    if (depth + 1 >= MAX_LEVEL) return;
    const v = L.skb.v;
    const G = this.generatedLevel(depth);
    const icmpLen = v.l4Len;
    const off = HEADROOM;
    const b = G.buf;
    copyBytes(b, G.dv, off + 20, L.buf, L.dv, v.l4Off, icmpLen);
    b[off + 20] = 0;
    b[off + 21] = 0;
    G.dv.setUint16(off + 22, 0);
    G.dv.setUint16(off + 22, icmpChecksum(b, off + 20, icmpLen));
    writeIpv4Header(b, G.dv, off, v.tos, 20 + icmpLen, this.nextIpId(), 0, DEFAULT_TTL, 1, v.dstIp, v.srcIp);
    // The reply finds the echo's conntrack entry by lookup (it is confirmed by now): no attach.
    this.sendGenerated(L, G, 20 + icmpLen, depth, false, `echo reply to ${ipv4ToString(v.srcIp)} from ${ipv4ToString(v.dstIp)}`, `echo reply from ${this.cfg.name}`);
  }

  /** vxlan_rcv: check the VXLAN header, the VNI and the inner destination MAC, then re-enter. */
  private vxlanDecap(L: Level, ifc: InterfaceConfig, depth: number): void {
    const skb = L.skb;
    const v = skb.v;
    const vx = v.l4Off + 8;
    const inner = vx + 8;
    if (v.l4Off + v.l4Len < inner + 14) return this.drop(L, `VXLAN on ${ifc.name}: packet too short`);
    if ((L.buf[vx]! & VXLAN_FLAG_I) === 0) return this.drop(L, `VXLAN on ${ifc.name}: I flag clear`);
    const vni = L.dv.getUint32(vx + 4) >>> 8;
    const dev = this.ifaces.find((i) => i.vxlan && i.vxlan.dstport === v.dstPort && i.vxlan.vni === vni);
    if (dev === undefined) return this.drop(L, `VXLAN: unknown VNI ${vni}`);
    const m = dev.mac!;
    const b = L.buf;
    const group = (b[inner]! & 1) === 1;
    if (!group && (m[0] !== b[inner] || m[1] !== b[inner + 1] || m[2] !== b[inner + 2] || m[3] !== b[inner + 3] || m[4] !== b[inner + 4] || m[5] !== b[inner + 5])) {
      return this.drop(L, `VXLAN VNI ${vni}: inner destination MAC ${macToString(b, inner)} is not ${dev.name}'s`);
    }
    const innerLen = v.l4Off + v.l4Len - inner;
    if (skb.trace) skb.trace.add('device', `${dev.name}: VXLAN VNI ${vni} decapsulated, re-entering PREROUTING`);
    this.reenter(L, inner, innerLen, LINKTYPE_ETHERNET, dev.index, depth);
  }

  private ipipDecap(L: Level, ifc: InterfaceConfig, depth: number): void {
    const v = L.skb.v;
    const inner = v.ipOff + v.ipHdrLen;
    const innerLen = v.ipTotalLen - v.ipHdrLen;
    if (L.skb.trace) L.skb.trace.add('device', `${ifc.name}: IP-in-IP decapsulated, re-entering PREROUTING`);
    this.reenter(L, inner, innerLen, LINKTYPE_IPV4, ifc.index, depth);
  }

  private reenter(L: Level, off: number, len: number, linktype: number, inIf: number, depth: number): void {
    this.recNode = -1;
    const skb = L.skb;
    const trace = skb.trace;
    skb.reset(L.buf, L.dv, inIf);
    skb.trace = trace;
    const st = skb.v.parse(L.buf, L.dv, off, len, linktype, 0, len);
    if (st !== PARSE_OK) return this.drop(L, `decapsulated packet on ${this.ifaces[inIf]!.name}: ${st === PARSE_NON_IPV4 ? 'not IPv4' : parseReasonText(skb.v.malformedReason)}`);
    if (!ipv4HeaderChecksumOk(L.buf, skb.v.ipOff, skb.v.ipHdrLen, L.dv)) return this.drop(L, 'decapsulated packet: bad IPv4 header checksum');
    if (depth >= MAX_LEVEL) return this.error('tunnel nesting too deep');
    this.prerouting(L, depth + 1);
  }

  /** A packet the node itself sends (ICMP error, reset, tunnel outer packet): OUTPUT → POSTROUTING. */
  private localOut(L: Level, depth: number): void {
    const skb = L.skb;
    const v = skb.v;
    let rt = this.routing.lookup(v.dstIp);
    if (rt === undefined || rt.outIf < 0 || (rt.type !== 0 && rt.type !== RT_LOCAL)) return this.drop(L, `local out: no route to ${ipv4ToString(v.dstIp)}`);
    skb.outIf = rt.outIf;
    skb.nextHop = rt.via !== 0 ? rt.via : v.dstIp;
    skb.hook = HOOK_OUTPUT;
    if (skb.trace) skb.trace.add('hook', `OUTPUT to ${ipv4ToString(v.dstIp)} via ${this.routeText(rt)}`);
    if (this.hasTable[TABLE_RAW] && !this.table(L, TABLE_RAW, HOOK_OUTPUT)) return;
    if (!this.conntrackIn(L)) return;
    if (this.hasTable[TABLE_MANGLE] && !this.table(L, TABLE_MANGLE, HOOK_OUTPUT)) return;
    const before = v.dstIp;
    if (!this.natHook(L, NAT_MANIP_DST, HOOK_OUTPUT)) return;
    if (v.dstIp !== before) {
      // ip_route_me_harder after a DNAT in OUTPUT.
      rt = this.routing.lookup(v.dstIp);
      if (rt === undefined || rt.outIf < 0) return this.drop(L, `local out: no route to ${ipv4ToString(v.dstIp)} after DNAT`);
      skb.outIf = rt.outIf;
      skb.nextHop = rt.via !== 0 ? rt.via : v.dstIp;
    }
    if (rt.type === RT_LOCAL) return this.deliver(L, 'local out to a local address');
    if (this.hasTable[TABLE_FILTER] && !this.table(L, TABLE_FILTER, HOOK_OUTPUT, depth)) return;
    this.postrouting(L, depth);
  }

  private postrouting(L: Level, depth: number): void {
    const skb = L.skb;
    skb.hook = HOOK_POSTROUTING;
    if (skb.trace) skb.trace.add('hook', `POSTROUTING out ${this.ifaces[skb.outIf]!.name}`);
    if (this.hasTable[TABLE_MANGLE] && !this.table(L, TABLE_MANGLE, HOOK_POSTROUTING)) return;
    if (!this.natHook(L, NAT_MANIP_SRC, HOOK_POSTROUTING)) return;
    if (!this.confirm(L)) return;
    if (this.commentsOn && skb.ct >= 0) {
      const note = this.ctNotes[skb.ct];
      if (note) this.notes.push(note);
    }
    this.deviceOut(L, depth);
  }

  // ---- devices ------------------------------------------------------------------------------

  /** ip_finish_output: fragment to the device MTU when needed, then hand each piece to the device. */
  private deviceOut(L: Level, depth: number): void {
    const skb = L.skb;
    const v = skb.v;
    const ifc = this.ifaces[skb.outIf]!;
    // ip_do_fragment: a reassembled datagram is cut at min(MTU, the largest fragment received).
    const mtu = L.fragMax > 0 && L.fragMax < ifc.mtu ? L.fragMax : ifc.mtu;
    if (v.ipTotalLen <= mtu) return this.xmit(L, v.ipOff, v.ipTotalLen, depth);
    if (v.df) {
      // A local packet with DF that does not fit (forwarded ones were checked in ip_forward).
      return this.drop(L, `${v.ipTotalLen} bytes exceed MTU ${ifc.mtu} of ${ifc.name} with DF set`);
    }
    this.fragment(L, mtu, depth);
  }

  /**
   * ip_do_fragment (net/ipv4/ip_output.c): each fragment carries (mtu − header) & ~7 bytes of
   * payload; options not marked "copied" are left out of all but the first fragment; every
   * fragment keeps the ID, TOS and TTL; the last keeps the original MF.
   */
  private fragment(L: Level, mtu: number, depth: number): void {
    this.recNode = -1;
    if (depth + 1 >= MAX_LEVEL) return this.error('fragment nesting too deep');
    const skb = L.skb;
    const v = skb.v;
    const F = this.level(depth + 1);
    F.fromInput = L.fromInput;
    F.fragMax = 0;
    const src = L.buf;
    const hlen = v.ipHdrLen;
    const payloadStart = v.ipOff + hlen;
    const payloadLen = v.ipTotalLen - hlen;
    // Header of later fragments: only options with the "copied" bit (ip_options_fragment).
    const firstHdr = hlen;
    let laterHdr = 20;
    const laterOpts = new Uint8Array(40);
    let lo = 0;
    for (let i = v.ipOff + 20; i < v.ipOff + hlen; ) {
      const t = src[i]!;
      if (t === 0) break;
      if (t === 1) {
        i++;
        continue;
      }
      const olen = src[i + 1]!;
      if (olen < 2 || i + olen > v.ipOff + hlen) break;
      if (t & 0x80) for (let k = 0; k < olen; k++) laterOpts[lo++] = src[i + k]!;
      i += olen;
    }
    while (lo % 4 !== 0) laterOpts[lo++] = 0;
    laterHdr = 20 + lo;
    const baseOffset = v.fragOffset;
    const origMf = v.mf;
    let done = 0;
    let first = true;
    while (done < payloadLen) {
      const hdr = first ? firstHdr : laterHdr;
      let chunk = payloadLen - done;
      if (chunk > mtu - hdr) chunk = (mtu - hdr) & ~7;
      if (chunk <= 0) return this.error(`MTU ${mtu} too small to fragment`);
      const last = done + chunk >= payloadLen;
      const off = HEADROOM;
      const b = F.buf;
      if (first) {
        for (let i = 0; i < hdr; i++) b[off + i] = src[v.ipOff + i]!;
      } else {
        for (let i = 0; i < 20; i++) b[off + i] = src[v.ipOff + i]!;
        for (let i = 0; i < lo; i++) b[off + 20 + i] = laterOpts[i]!;
        b[off] = 0x40 | (hdr >>> 2);
      }
      for (let i = 0; i < chunk; i++) b[off + hdr + i] = src[payloadStart + done + i]!;
      const fragField = (v.df ? IP_DF : 0) | (!last || origMf ? IP_MF : 0) | (((baseOffset + done) >>> 3) & 0x1fff);
      F.dv.setUint16(off + 2, hdr + chunk);
      F.dv.setUint16(off + 6, fragField);
      F.dv.setUint16(off + 10, 0);
      let s = 0;
      for (let i = 0; i < hdr; i += 2) s += (b[off + i]! << 8) | b[off + i + 1]!;
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      F.dv.setUint16(off + 10, ~s & 0xffff);
      const fs = F.skb;
      fs.reset(F.buf, F.dv, skb.inIf);
      fs.nowSec = skb.nowSec;
      fs.trace = skb.trace;
      fs.outIf = skb.outIf;
      fs.nextHop = skb.nextHop;
      fs.v.parse(F.buf, F.dv, off, hdr + chunk, LINKTYPE_IPV4, 0, hdr + chunk);
      if (skb.trace) skb.trace.add('device', `fragment ${(baseOffset + done) >>> 3}×8 +${chunk} bytes${last ? ' (last)' : ''}`);
      this.xmit(F, off, hdr + chunk, depth + 1);
      done += chunk;
      first = false;
    }
  }

  /** The output device: Ethernet framing, or a tunnel (whose outer packet is sent as local out). */
  private xmit(L: Level, ipOff: number, ipLen: number, depth: number): void {
    const skb = L.skb;
    const ifc = this.ifaces[skb.outIf]!;
    if (ifc.kind === 'ether') {
      const k = this.neigh[ifc.index]!.get(skb.nextHop);
      if (k < 0) return this.drop(L, `no neighbour entry for ${ipv4ToString(skb.nextHop)} on ${ifc.name} (dpemu does not model ARP: add it to neighbors)`);
      if (ipOff - 14 < L.lo) ipOff = this.unshare(L);
      const off = ipOff - 14;
      this.writeEthernet(L.dv, off, k);
      this.lastNeigh = k;
      return this.emit(L, off, ipLen + 14, ifc.index);
    }
    this.recNode = -1;
    if (depth + 1 >= MAX_LEVEL) return this.error('tunnel nesting too deep');
    if (ipOff - 14 - VXLAN_OVERHEAD < L.lo) ipOff = this.unshare(L);
    const v = skb.v;
    if (ifc.kind === 'vxlan') {
      const p = this.vxlanParams[ifc.index]!;
      if (p.remote === 0) return this.drop(L, `${ifc.name}: no remote VTEP (dpemu models only "remote")`);
      const k = this.neigh[ifc.index]!.get(skb.nextHop);
      if (k < 0) return this.drop(L, `no neighbour entry for ${ipv4ToString(skb.nextHop)} on ${ifc.name} (add it to neighbors)`);
      const ethOff = ipOff - 14;
      this.writeEthernet(L.dv, ethOff, k);
      const frag = v.mf || v.fragOffset !== 0;
      const ports = frag || v.l4Off < 0 || (v.ipProto !== 6 && v.ipProto !== 17) ? 0 : ((v.srcPort << 16) | v.dstPort) >>> 0;
      const sport = udpFlowSrcPort(innerFlowHash(this.hashKey, v.srcIp, v.dstIp, v.ipProto, ports), p.srcPortMin, p.srcPortMax);
      const outer = vxlanEncap(L.buf, L.dv, ethOff, ipLen + 14, p, sport, v.tos, v.ttl, this.nextIpId());
      if (skb.trace) skb.trace.add('device', `${ifc.name}: VXLAN VNI ${p.vni} ${ipv4ToString(p.local)} -> ${ipv4ToString(p.remote)}:${p.dstport} sport ${sport}`);
      return this.encapOut(L, outer, ipLen + 14 + VXLAN_OVERHEAD, depth);
    }
    // ipip: outer destination is the next hop ("via NODE dev tunl0 onlink") or the device's remote.
    const cfg = ifc.ipip!;
    const dst = cfg.remote !== 0 ? cfg.remote : skb.nextHop;
    let src = cfg.local;
    if (src === 0) {
      const r = this.routing.lookup(dst);
      src = r === undefined ? 0 : r.src || this.routing.selectAddr(r.outIf, r.via || dst);
    }
    const outer = ipipEncap(L.buf, L.dv, ipOff, ipLen, cfg, src, dst, v.tos, v.ttl, v.df !== 0, this.nextIpId());
    if (skb.trace) skb.trace.add('device', `${ifc.name}: IP-in-IP ${ipv4ToString(src)} -> ${ipv4ToString(dst)}`);
    this.encapOut(L, outer, ipLen + IPIP_OVERHEAD, depth);
  }

  /** The Ethernet header to neighbour entry k (its MAC, the interface's, IPv4) at `off`. */
  private writeEthernet(dv: DataView, off: number, k: number): void {
    const h = this.neighHdr;
    dv.setInt32(off, h[3 * k]!);
    dv.setInt32(off + 4, h[3 * k + 1]!);
    dv.setInt32(off + 8, h[3 * k + 2]!);
    dv.setUint16(off + 12, 0x0800);
  }

  /**
   * Move the packet of an in-place level into its own buffer (at HEADROOM + 14, room for any
   * encapsulation in front), keeping the skb's state; returns the new IP header offset.
   */
  private unshare(L: Level): number {
    this.recNode = -1;
    const skb = L.skb;
    const v = skb.v;
    const ipOff = HEADROOM + 14;
    const n = v.ipTotalLen;
    copyBytes(L.own, L.ownDv, ipOff, L.buf, L.dv, v.ipOff, n);
    L.buf = L.own;
    L.dv = L.ownDv;
    L.lo = 0;
    skb.buf = L.own;
    skb.dv = L.ownDv;
    v.parse(L.own, L.ownDv, ipOff, n, LINKTYPE_IPV4, 0, n);
    return ipOff;
  }

  /** The outer packet of a tunnel leaves as a local packet (udp_tunnel_xmit_skb / iptunnel_xmit → ip_local_out). */
  private encapOut(L: Level, outerOff: number, outerLen: number, depth: number): void {
    const skb = L.skb;
    const trace = skb.trace;
    skb.reset(L.buf, L.dv, -1);
    skb.trace = trace;
    skb.v.parse(L.buf, L.dv, outerOff, outerLen, LINKTYPE_IPV4, 0, outerLen);
    this.localOut(L, depth + 1);
  }

  private emit(L: Level, off: number, len: number, outIf: number): void {
    if (this.recNode >= 0) this.memoStore(L, off, len, outIf);
    if (L.skb.trace) L.skb.trace.add('out', `${this.ifaces[outIf]!.name}: ${this.describe(L.skb)}`);
    if (L.fromInput) {
      this.framesOut++;
      if (this.fate === FATE_NONE || this.fate === FATE_DROPPED) {
        this.fate = FATE_LEFT;
        this.fateReason = '';
      }
    } else {
      this.framesGenerated++;
    }
    let notes: readonly string[] | null = null;
    if (this.commentsOn) {
      // The memo's own array (the same for every packet it forwards), else a copy of the walk's notes.
      notes = this.memoNotes ?? (this.notes.length === 0 ? NO_NOTES : this.notes.slice());
      this.memoNotes = null;
    }
    this.sink!.frame(L.buf, off, len, outIf, notes);
  }

  // ---- netfilter glue -----------------------------------------------------------------------

  private conntrackIn(L: Level): boolean {
    const skb = L.skb;
    if (skb.notrack) {
      skb.ct = -1;
      skb.ctState = CT_UNTRACKED;
    } else if (!this.ct.lookup(skb)) {
      this.drop(L, 'conntrack table full (nf_conntrack_max) and nothing to evict');
      return false;
    }
    if (skb.trace) skb.trace.add('conntrack', skb.ct >= 0 ? this.ct.describe(skb.ct) + ` (${ctStateName(skb.ctState)}${skb.ctDir ? ', reply' : ''})` : ctStateName(skb.ctState));
    return true;
  }

  /** One table at one hook; false when the packet is gone (dropped or rejected). */
  private table(L: Level, table: number, hook: number, depth = 0): boolean {
    const skb = L.skb;
    if (skb.trace) skb.trace.add('table', `${TABLE_NAMES[table]}/${HOOK_NAMES[hook]}`);
    const verdict = this.rules!.run(table, hook, skb);
    if (this.commentsOn && table === TABLE_FILTER) this.notes.push(`${HOOK_NAMES[hook]} ${skb.inIf >= 0 ? this.ifaces[skb.inIf]!.name : 'local'}->${skb.outIf >= 0 && hook !== HOOK_INPUT ? this.ifaces[skb.outIf]!.name : 'local'}: ${skb.verdictRef}`);
    if (verdict === VERDICT_ACCEPT) return true;
    if (verdict === VERDICT_REJECT) this.reject(L, depth);
    this.drop(L, skb.verdictRef || `${TABLE_NAMES[table]}/${HOOK_NAMES[hook]}: DROP`);
    return false;
  }

  /** nf_nat_inet_fn: traverse the nat table only when the connection's NAT is not set up yet. */
  private natHook(L: Level, manip: number, hook: number): boolean {
    const skb = L.skb;
    if (skb.ct < 0) return true;
    if (this.nat.needsSetup(skb, manip)) {
      // Only the first packet's walk records through a NAT set-up (memoLookup).
      if (!this.recFirst) this.recNode = -1;
      skb.natRangeSet = false;
      if (this.hasTable[TABLE_NAT]) {
        if (skb.trace) skb.trace.add('table', `nat/${HOOK_NAMES[hook]}`);
        const impure = skb.impure;
        const ctLive = skb.ctLive;
        const mark = skb.mark;
        const verdict = this.rules!.run(TABLE_NAT, hook, skb);
        // Later packets do not traverse the nat chains: what they read does not make the walk
        // impure, but a mark they set (KUBE-MARK-MASQ) would be missing from the later walks.
        skb.impure = impure;
        skb.ctLive = ctLive;
        if (skb.mark !== mark) this.recNode = -1;
        if (verdict !== VERDICT_ACCEPT) {
          this.ct.abandon(skb);
          this.drop(L, skb.verdictRef || `nat/${HOOK_NAMES[hook]}: DROP`);
          return false;
        }
      }
      // The rule that chose the binding, for the comments (a string built per connection: not without them).
      const ref = this.commentsOn && skb.natRangeSet && skb.natRange.manip === manip ? skb.natRange.ruleRef + (skb.natRange.how ? `, ${skb.natRange.how}` : '') : '';
      if (!this.nat.setup(skb, manip)) {
        this.drop(L, `nat/${HOOK_NAMES[hook]}: no address to masquerade to on ${skb.outIf >= 0 ? this.ifaces[skb.outIf]!.name : '?'}`);
        return false;
      }
      if (this.commentsOn) {
        if (manip === NAT_MANIP_DST) this.dnatRef = ref;
        else {
          // Both manips are set up now: remember the binding and the rules that chose it.
          const refs = [this.dnatRef, ref].filter((x) => x).join('; ');
          const b = this.nat.bindingText(skb.ct);
          this.ctNotes[skb.ct] = b ? (refs ? `${b} [${refs}]` : b) : '';
          this.dnatRef = '';
        }
      }
    }
    if (!this.nat.apply(skb, manip)) {
      this.drop(L, `nat/${HOOK_NAMES[hook]}: ${skb.ctState === 4 ? 'related ICMP error cannot be translated' : 'masqueraded flow changed its output interface (nf_nat_oif_changed)'}`);
      return false;
    }
    return true;
  }

  private confirm(L: Level): boolean {
    const skb = L.skb;
    if (skb.ct < 0) return true;
    if (this.ct.confirm(skb)) return true;
    // __nf_conntrack_confirm: the tuple clashes with a confirmed entry (or the entry is dying).
    this.drop(L, 'conntrack confirm: tuple clashes with an existing connection');
    return false;
  }

  private reject(L: Level, depth: number): void {
    const skb = L.skb;
    const v = skb.v;
    switch (skb.rejectWith) {
      case REJECT_TCP_RESET:
        // nf_send_reset: never answer a RST, only TCP, only first fragments.
        if (v.ipProto === 6 && v.l4Off >= 0 && (v.tcpFlags & 0x04) === 0) this.tcpReset(L, depth);
        return;
      case REJECT_ICMP_NET_UNREACHABLE:
        return this.icmpError(L, 3, 0, 0, depth, true);
      case REJECT_ICMP_HOST_UNREACHABLE:
        return this.icmpError(L, 3, 1, 0, depth, true);
      case REJECT_ICMP_PROT_UNREACHABLE:
        return this.icmpError(L, 3, 2, 0, depth, true);
      case REJECT_ICMP_PORT_UNREACHABLE:
        return this.icmpError(L, 3, 3, 0, depth, true);
      case REJECT_ICMP_NET_PROHIBITED:
        return this.icmpError(L, 3, 9, 0, depth, true);
      case REJECT_ICMP_HOST_PROHIBITED:
        return this.icmpError(L, 3, 10, 0, depth, true);
      case REJECT_ICMP_ADMIN_PROHIBITED:
        return this.icmpError(L, 3, 13, 0, depth, true);
    }
  }

  /** icmp_send: build the error in the next level's buffer and send it as a local packet. */
  private icmpError(L: Level, type: number, code: number, info: number, depth: number, fromReject: boolean): void {
    const skb = L.skb;
    const v = skb.v;
    const dstBcast = this.routing.addrType(v.dstIp, -1) === ADDRTYPE_BROADCAST;
    if (!icmpErrorAllowed(v, dstBcast)) return;
    if (depth + 1 >= MAX_LEVEL) return;
    // Source: the offending packet's destination when it was for us, else chosen by the route
    // back to the sender (icmp_errors_use_inbound_ifaddr=0).
    let saddr: number;
    if (this.routing.addrType(v.dstIp, -1) === ADDRTYPE_LOCAL) saddr = v.dstIp;
    else {
      const back = this.routing.lookup(v.srcIp);
      saddr = back === undefined ? 0 : back.src || this.routing.selectAddr(back.outIf, back.via || v.srcIp);
    }
    if (saddr === 0) return;
    const G = this.generatedLevel(depth);
    const len = writeIcmpError(G.buf, G.dv, HEADROOM, v, L.buf, type, code, info, saddr, this.nextIpId());
    // icmp_send attaches the offending packet's conntrack (RELATED, other direction), so the
    // error is translated even when that connection is not confirmed yet (SEMANTICS §10).
    this.sendGenerated(L, G, len, depth, true,
      `${fromReject ? 'REJECT: ' : ''}ICMP type ${type} code ${code} to ${ipv4ToString(v.srcIp)} from ${ipv4ToString(saddr)}`,
      `ICMP type ${type} code ${code} sent by ${this.cfg.name}${fromReject ? ' (REJECT)' : ''}`);
  }

  private tcpReset(L: Level, depth: number): void {
    if (depth + 1 >= MAX_LEVEL) return;
    const G = this.generatedLevel(depth);
    const len = writeTcpReset(G.buf, G.dv, HEADROOM, L.skb.v);
    // nf_send_reset: nf_ct_attach(nskb, oldskb).
    this.sendGenerated(L, G, len, depth, true,
      `REJECT: TCP reset to ${ipv4ToString(L.skb.v.srcIp)}:${L.skb.v.srcPort}`,
      `TCP reset sent by ${this.cfg.name} (REJECT --reject-with tcp-reset)`);
  }

  /** The level after `depth`, for a packet the node builds in answer to the one at `depth`. */
  private generatedLevel(depth: number): Level {
    const G = this.level(depth + 1);
    G.fromInput = false;
    G.fragMax = 0;
    return G;
  }

  /**
   * Send the packet of `len` bytes built at HEADROOM in G as local out, in answer to the packet
   * in L (attached to its conntrack when `attach`), with a trace step and an output comment.
   */
  private sendGenerated(L: Level, G: Level, len: number, depth: number, attach: boolean, traceText: string, note: string): void {
    this.recNode = -1;
    const skb = L.skb;
    const gs = G.skb;
    gs.reset(G.buf, G.dv, -1);
    gs.nowSec = skb.nowSec;
    gs.trace = skb.trace;
    gs.v.parse(G.buf, G.dv, HEADROOM, len, LINKTYPE_IPV4, 0, len);
    if (attach) this.ct.attach(gs, skb);
    if (skb.trace) {
      skb.trace.add('icmp', traceText);
      skb.trace.depth++;
    }
    const notes = this.notes.length;
    if (this.commentsOn) this.notes.push(note);
    this.localOut(G, depth + 1);
    this.notes.length = notes;
    if (skb.trace) skb.trace.depth--;
  }

  // ---- outcomes -----------------------------------------------------------------------------

  private drop(L: Level, reason: string): void {
    this.recNode = -1;
    if (L.skb.trace) L.skb.trace.add('drop', reason);
    // The skb is freed: an unconfirmed conntrack entry goes with it (its NAT choices, such as an
    // nth slot, stay consumed).
    if (L.skb.ct >= 0) this.ct.abandon(L.skb);
    if (L.fromInput && this.fate === FATE_NONE) {
      this.fate = FATE_DROPPED;
      this.fateReason = reason;
    }
  }

  private deliver(L: Level, reason: string): void {
    this.recNode = -1;
    if (L.skb.trace) L.skb.trace.add('deliver', reason);
    if (L.fromInput && this.fate === FATE_NONE) {
      this.fate = FATE_DELIVERED;
      this.fateReason = reason;
    }
  }

  private error(kind: string): void {
    this.recNode = -1;
    this.fate = FATE_ERROR;
    this.fateReason = kind;
  }

  private nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  private routeText(rt: Route): string {
    const dev = rt.outIf >= 0 ? ` dev ${this.ifaces[rt.outIf]!.name}` : '';
    return `${rt.text}${rt.via ? '' : ''}${rt.text.includes(' dev ') ? '' : dev}`;
  }

  describe(skb: Skb): string {
    const v = skb.v;
    const p = v.ipProto;
    const name = p === 6 ? 'tcp' : p === 17 ? 'udp' : p === 1 ? 'icmp' : `proto ${p}`;
    let s = `${name} ${ipv4ToString(v.srcIp)}`;
    if ((p === 6 || p === 17) && v.l4Off >= 0) s += `:${v.srcPort} > ${ipv4ToString(v.dstIp)}:${v.dstPort}`;
    else s += ` > ${ipv4ToString(v.dstIp)}`;
    if (p === 6 && v.l4Off >= 0) s += ` [${tcpFlagsText(v.tcpFlags)}]`;
    if (p === 1 && v.l4Off >= 0) s += ` type ${v.icmpType} code ${v.icmpCode}`;
    s += ` ttl ${v.ttl} len ${v.ipTotalLen}${v.df ? ' DF' : ''}${v.mf || v.fragOffset ? ` frag ${v.fragOffset}${v.mf ? '+' : ''}` : ''}`;
    return s;
  }
}

export function ctStateName(s: number): string {
  const names: string[] = [];
  if (s & 1) names.push('INVALID');
  if (s & 2) names.push('ESTABLISHED');
  if (s & 4) names.push('RELATED');
  if (s & 8) names.push('NEW');
  if (s & 16) names.push('UNTRACKED');
  return names.join(',') || 'none';
}

export function tcpFlagsText(f: number): string {
  let s = '';
  if (f & 0x02) s += 'S';
  if (f & 0x10) s += '.';
  if (f & 0x01) s += 'F';
  if (f & 0x04) s += 'R';
  if (f & 0x08) s += 'P';
  if (f & 0x20) s += 'U';
  return s || 'none';
}

export { CT_INVALID, ETH_BROADCAST, HEADROOM };
