/**
 * IPv4 reassembly before conntrack (nf_defrag_ipv4, priority NF_IP_PRI_CONNTRACK_DEFRAG = -400,
 * net/ipv4/ip_fragment.c ip_defrag): fragments are queued by (src, dst, protocol, id); when the
 * datagram is complete it continues through the stack whole, and the output re-fragments it to
 * min(device MTU, the largest fragment received) (IPCB(skb)->frag_max_size, ip_do_fragment).
 *
 * Overlapping fragments discard the whole queue (ip_frag_queue → inet_frag_queue_insert returns
 * IPFRAG_OVERLAP since the 2018 fragment-handling fixes); an exact duplicate is dropped alone.
 * Queues expire after ipfrag_time (30 s, capture time); a router reassembling for conntrack sends
 * no ICMP on expiry (ip_expire: frag_expire_skip_icmp for IP_DEFRAG_CONNTRACK_IN when not local).
 *
 * Fragmented traffic is rare, so queues are plain objects (allocated per datagram, not per packet
 * of ordinary traffic).
 */

export const IPFRAG_TIME_SEC = 30;

interface Piece {
  off: number;
  data: Uint8Array;
}

interface Queue {
  key: string;
  first: number;
  header: Uint8Array | null;
  pieces: Piece[];
  /** Total payload length, known once the last fragment (MF clear) arrived; -1 before. */
  total: number;
  /** Input frames held by this queue. */
  held: number;
  maxFragSize: number;
  bytes: number;
}

export const DEFRAG_HELD = 0;
export const DEFRAG_COMPLETE = 1;
export const DEFRAG_DUPLICATE = 2;
export const DEFRAG_OVERLAP = 3;
export const DEFRAG_TOO_BIG = 4;

export class Defragmenter {
  private readonly queues = new Map<string, Queue>();
  private bytes = 0;
  /** After DEFRAG_COMPLETE: the datagram (header + payload), its largest fragment and how many earlier input frames it absorbed. */
  datagram = new Uint8Array(0);
  datagramLen = 0;
  maxFragSize = 0;
  absorbed = 0;
  /** After DEFRAG_OVERLAP: how many earlier input frames the discarded queue held. */
  discarded = 0;

  /**
   * Add the fragment at `ipOff` of `buf` (header `hlen` bytes, `totalLen` in all). Returns
   * DEFRAG_HELD (queued), DEFRAG_COMPLETE (this.datagram holds the whole datagram), or a reason
   * it was dropped.
   */
  add(buf: Uint8Array, ipOff: number, hlen: number, totalLen: number, fragOffset: number, mf: boolean, src: number, dst: number, proto: number, id: number, now: number): number {
    const key = `${src}/${dst}/${proto}/${id}`;
    let q = this.queues.get(key);
    if (q === undefined) {
      q = { key, first: now, header: null, pieces: [], total: -1, held: 0, maxFragSize: 0, bytes: 0 };
      this.queues.set(key, q);
    }
    const len = totalLen - hlen;
    const end = fragOffset + len;
    if (end > 65535 - hlen) {
      this.forget(q);
      this.discarded = q.held;
      return DEFRAG_TOO_BIG;
    }
    for (const p of q.pieces) {
      const pEnd = p.off + p.data.length;
      if (p.off === fragOffset && pEnd === end) return DEFRAG_DUPLICATE;
      if (fragOffset < pEnd && p.off < end) {
        this.forget(q);
        this.discarded = q.held;
        return DEFRAG_OVERLAP;
      }
    }
    if (!mf) {
      if (q.total >= 0 && q.total !== end) {
        this.forget(q);
        this.discarded = q.held;
        return DEFRAG_OVERLAP;
      }
      q.total = end;
    }
    q.pieces.push({ off: fragOffset, data: buf.slice(ipOff + hlen, ipOff + totalLen) });
    if (fragOffset === 0) q.header = buf.slice(ipOff, ipOff + hlen);
    if (totalLen > q.maxFragSize) q.maxFragSize = totalLen;
    q.bytes += totalLen;
    this.bytes += totalLen;
    if (q.total < 0 || q.header === null) return this.hold(q);
    q.pieces.sort((a, b) => a.off - b.off);
    let at = 0;
    for (const p of q.pieces) {
      if (p.off !== at) return this.hold(q);
      at += p.data.length;
    }
    if (at !== q.total) return this.hold(q);
    // Complete: the first fragment's header, MF and offset cleared, length and checksum redone.
    const h = q.header;
    const n = h.length + q.total;
    if (this.datagram.length < n) this.datagram = new Uint8Array(65536);
    const d = this.datagram;
    d.set(h, 0);
    for (const p of q.pieces) d.set(p.data, h.length + p.off);
    d[2] = n >>> 8;
    d[3] = n & 255;
    d[6] &= 0x40; // keep DF, clear MF and the offset
    d[7] = 0;
    d[10] = 0;
    d[11] = 0;
    let s = 0;
    for (let i = 0; i < h.length; i += 2) s += (d[i]! << 8) | d[i + 1]!;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    const c = ~s & 0xffff;
    d[10] = c >>> 8;
    d[11] = c & 255;
    this.datagramLen = n;
    this.maxFragSize = q.maxFragSize;
    this.absorbed = q.held;
    this.forget(q);
    return DEFRAG_COMPLETE;
  }

  private hold(q: Queue): number {
    q.held++;
    return DEFRAG_HELD;
  }

  private forget(q: Queue): void {
    this.bytes -= q.bytes;
    this.queues.delete(q.key);
  }

  /** Drop queues older than ipfrag_time; returns how many held input frames they had. */
  expire(now: number): number {
    let n = 0;
    for (const q of this.queues.values()) {
      if (now - q.first >= IPFRAG_TIME_SEC) {
        n += q.held;
        this.forget(q);
      }
    }
    return n;
  }

  /** Input frames still held (incomplete datagrams), e.g. at the end of a capture. */
  heldFrames(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.held;
    return n;
  }

  get queued(): number {
    return this.queues.size;
  }

  get queuedBytes(): number {
    return this.bytes;
  }
}
