/**
 * The flow memo of a `linux` element: what the walk did to the last packet of a connection, in
 * one direction, so that the next packet of that connection in the same circumstances gets the
 * same treatment without walking the tables again. A cache in front of an exact model, like the
 * datapath flow cache of Open vSwitch in front of its OpenFlow tables, and exact in the same way:
 * an entry is only made when the outcome provably depends on nothing but its key.
 *
 * Why the outcome is a function of the key. A packet reaches the memo after the raw table and
 * conntrack, like every packet (TCP window tracking, timeouts and checksum checks stay per
 * packet), and only when conntrack found a confirmed TCP or UDP connection (NEW or ESTABLISHED,
 * not RELATED: not an ICMP error). Conntrack matched the packet's addresses, ports and protocol
 * to the connection's tuple of that direction exactly, so they are fixed by (entry, direction).
 * The rest of the walk (mangle, nat apply, routing, filter, the neighbour) reads only those,
 * the input interface, the conntrack state, status and tuples, and the mark, unless a rule
 * evaluated a match that reads per-packet fields or has state (TCP flags/options, statistic,
 * recent): those set Skb.impure and the walk is not memoised. Routes, neighbours, ipsets and
 * address types never change during a run. Per-packet conditions the key does not cover (TTL,
 * the length against the MTU) are checked on each hit; a packet that fails them takes the
 * full walk, which then sends the ICMP error or fragments.
 *
 * The first packet of a connection (NEW, its entry made by that lookup) is recorded too: its walk
 * is the next packets' walk plus the nat chains, which only the first packet traverses (the
 * bindings they choose are then conntrack's and are replayed for every later packet). So what
 * those chains read does not count against the walk, a mark they set (kube-proxy's
 * KUBE-MARK-MASQ, read later by the filter) cancels the record, and rules elsewhere that read
 * what NAT set-up and confirmation change (status bits, SNAT/DNAT states, the reply tuple) set
 * Skb.ctLive, which cancels it too; the key's status is the entry's once confirmed (POSTROUTING
 * confirms it before the frame leaves). The second packet then skips the tables as well.
 *
 * Only the plainest outcome is memoised: the input frame left, whole, by one Ethernet device,
 * with no frame generated, no NAT set up (but on the first packet), no tunnel, no local
 * delivery. A hit writes the addresses, ports and TTL the walk wrote and updates each checksum
 * once with the summed difference of the walk's replacements (DNAT port and address, TTL, SNAT
 * port and address):
 * the input tuple is fixed by the key, and the TTL word always loses 0x100, so the differences
 * are constants of the record; one summed update equals the walk's updates one after the other
 * (csumApplyDelta, property-tested), so the bytes, checksums included, are those of the walk.
 *
 * Storage: one 48-byte record per conntrack node (2 × entry id + direction) in an Int32Array,
 * grown by doubling. Conntrack tells the memo when it frees an entry (Conntrack.onFree), before
 * the id can be reused, and the memo forgets both of its records.
 */

import { csumAddDelta, csumDelta32 } from '../../packet/checksum.js';

const STRIDE = 12;
/** 1 (valid) | ctState << 1 | inIf << 8. */
const M_KEY = 0;
const M_STATUS = 1;
const M_MARK = 2;
const M_SRC = 3;
const M_DST = 4;
/** sport << 16 | dport. */
const M_PORTS = 5;
const M_OUT = 6;
const M_NEIGH = 7;
/** MTU of the output interface. */
const M_MTU = 8;
/** Summed checksum difference of the IPv4 header's replacements (addresses, TTL). */
const M_DIP = 9;
/** Same for the TCP/UDP checksum (pseudo-header addresses, ports); -1: the walk did not touch it. */
const M_DL4 = 10;

/** The TTL decrement's difference: the word TTL << 8 | protocol loses 0x100 (csumDelta16). */
const TTL_DELTA = 0xfeff;

export class FlowMemo {
  private rec = new Int32Array(STRIDE * 1024);
  private notes: (readonly string[] | null)[] = [];
  /** Hits and entries made, for benchmarks and tests. */
  hits = 0;
  stores = 0;

  /** Record offset of node's entry when it matches the key, else -1. */
  find(node: number, ctState: number, status: number, mark: number, inIf: number): number {
    const o = node * STRIDE;
    const r = this.rec;
    if (o >= r.length || r[o + M_KEY] !== (1 | (ctState << 1) | (inIf << 8)) || r[o + M_STATUS] !== (status | 0) || r[o + M_MARK] !== (mark | 0)) return -1;
    this.hits++;
    return o;
  }

  /**
   * Remember the walk of `node`: the packet came in with (inSrc, inDst, inPorts) and left by
   * outIf (MTU mtu, to neighbour neigh) with (src, dst, sport << 16 | dport), TTL decremented.
   */
  store(
    node: number,
    ctState: number,
    status: number,
    mark: number,
    inIf: number,
    outIf: number,
    mtu: number,
    neigh: number,
    inSrc: number,
    inDst: number,
    inPorts: number,
    src: number,
    dst: number,
    ports: number,
    notes: readonly string[] | null,
  ): void {
    const o = node * STRIDE;
    if (o >= this.rec.length) {
      let n = this.rec.length * 2;
      while (o >= n) n *= 2;
      const b = new Int32Array(n);
      b.set(this.rec);
      this.rec = b;
    }
    const r = this.rec;
    r[o + M_KEY] = 1 | (ctState << 1) | (inIf << 8);
    r[o + M_STATUS] = status | 0;
    r[o + M_MARK] = mark | 0;
    r[o + M_SRC] = src | 0;
    r[o + M_DST] = dst | 0;
    r[o + M_PORTS] = ports | 0;
    r[o + M_OUT] = outIf;
    r[o + M_NEIGH] = neigh;
    r[o + M_MTU] = mtu;
    const dAddr = csumAddDelta(csumDelta32(inSrc | 0, src | 0), csumDelta32(inDst | 0, dst | 0));
    r[o + M_DIP] = csumAddDelta(dAddr, TTL_DELTA);
    // The walk updates the L4 checksum only for a field that changes (setAddr, setPort).
    const l4Changed = (inSrc | 0) !== (src | 0) || (inDst | 0) !== (dst | 0) || (inPorts | 0) !== (ports | 0);
    r[o + M_DL4] = l4Changed ? csumAddDelta(dAddr, csumDelta32(inPorts | 0, ports | 0)) : -1;
    if (notes !== null || this.notes.length > node) this.notes[node] = notes;
    this.stores++;
  }

  /** The conntrack entry `id` is gone: forget both directions. */
  forget(id: number): void {
    const o = 2 * id * STRIDE;
    if (o < this.rec.length) {
      this.rec[o + M_KEY] = 0;
      this.rec[o + STRIDE + M_KEY] = 0;
    }
  }

  outIf(o: number): number {
    return this.rec[o + M_OUT]!;
  }
  neigh(o: number): number {
    return this.rec[o + M_NEIGH]!;
  }
  /** Addresses as int32 (compare with `ip | 0`). */
  src(o: number): number {
    return this.rec[o + M_SRC]!;
  }
  dst(o: number): number {
    return this.rec[o + M_DST]!;
  }
  /** sport << 16 | dport. */
  ports(o: number): number {
    return this.rec[o + M_PORTS]!;
  }
  mtu(o: number): number {
    return this.rec[o + M_MTU]!;
  }
  /** Checksum differences to apply (csumApplyDelta); l4Delta -1: leave the L4 checksum alone. */
  ipDelta(o: number): number {
    return this.rec[o + M_DIP]!;
  }
  l4Delta(o: number): number {
    return this.rec[o + M_DL4]!;
  }
  /** The output comments of the memoised walk (when comments are on). */
  notesOf(node: number): readonly string[] | null {
    return this.notes[node] ?? null;
  }
}
