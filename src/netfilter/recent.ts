/**
 * `-m recent` lists (net/netfilter/xt_recent.c), one per --name, shared by every rule of a
 * node that names it. Entries are kept in preallocated typed arrays: address → slot through an
 * IntMap, an LRU list (head = oldest) and a ring of time stamps per entry. Time is the packet's
 * capture time in seconds (skb.nowSec) where the kernel uses jiffies.
 *
 * Behaviour reproduced from recent_mt / recent_entry_init / recent_entry_update /
 * recent_entry_reap (the version that does not reap the entry it is about to update):
 * - a table holds at most ip_list_tot (module parameter, default 100) addresses; adding one more
 *   evicts the least recently updated;
 * - each entry keeps the last nstamps_max_mask + 1 stamps (32 by default; roundup_pow_of_two
 *   of the largest --hitcount of the rules naming the table);
 * - the table's address mask is the --mask of the first rule that names it;
 * - --reap removes at most the oldest entry of the table, when its last stamp is older than
 *   --seconds.
 */
import { IntMap } from './inthash.js';

export const RECENT_SET = 1;
export const RECENT_CHECK = 2;
export const RECENT_UPDATE = 4;
export const RECENT_REMOVE = 8;

export class RecentTable {
  readonly name: string;
  /** Address mask of the table (the first rule's --mask). */
  readonly mask: number;
  readonly capacity: number;
  /** Stamps per entry - 1 (a power of two minus one). */
  nstampsMaxMask: number;

  private readonly slotOf = new IntMap(64);
  private readonly addr: Int32Array;
  private readonly ttl: Uint8Array;
  private readonly index: Int32Array;
  private readonly nstamps: Int32Array;
  private stamps: Float64Array;
  /** LRU doubly linked list over slots; node `capacity` is the sentinel (next = oldest). */
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly freeList: Int32Array;
  private freeTop: number;
  entries = 0;

  constructor(name: string, mask: number, nstampsMaxMask: number, capacity = 100) {
    this.name = name;
    this.mask = mask;
    this.capacity = capacity;
    this.nstampsMaxMask = nstampsMaxMask;
    this.addr = new Int32Array(capacity);
    this.ttl = new Uint8Array(capacity);
    this.index = new Int32Array(capacity);
    this.nstamps = new Int32Array(capacity);
    this.stamps = new Float64Array(capacity * (nstampsMaxMask + 1));
    this.prev = new Int32Array(capacity + 1);
    this.next = new Int32Array(capacity + 1);
    this.prev[capacity] = capacity;
    this.next[capacity] = capacity;
    this.freeList = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeList[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  /** Grow the stamp ring (recent_mt_check with a larger --hitcount flushes the table). */
  widen(nstampsMaxMask: number): void {
    if (nstampsMaxMask <= this.nstampsMaxMask) return;
    this.flush();
    this.nstampsMaxMask = nstampsMaxMask;
    this.stamps = new Float64Array(this.capacity * (nstampsMaxMask + 1));
  }

  flush(): void {
    while (this.entries > 0) this.remove(this.next[this.capacity]!);
  }

  /** Whether an address (masked by the table mask) is in the list; for tests and traces. */
  has(ip: number): boolean {
    return this.slotOf.get((ip & this.mask) | 0) >= 0;
  }

  /** Last stamp of an address, or -1. */
  lastSeen(ip: number): number {
    const e = this.slotOf.get((ip & this.mask) | 0);
    if (e < 0) return -1;
    const stride = this.nstampsMaxMask + 1;
    return this.stamps[e * stride + ((this.index[e]! - 1) & this.nstampsMaxMask)]!;
  }

  /**
   * recent_mt for one rule. `op` is one of RECENT_*; `ttl` is the packet's TTL as the kernel
   * sees it (already +1 for forwarded packets); `now` in seconds. Returns the match result
   * (with --invert applied); sets `hotdrop` never (allocation cannot fail here).
   */
  match(ip: number, ttl: number, op: number, invert: boolean, seconds: number, hitcount: number, reap: boolean, rttl: boolean, now: number): boolean {
    let ret = invert;
    const key = (ip & this.mask) | 0;
    let e = this.slotOf.get(key);
    // recent_entry_lookup: with --rttl the TTL must agree (0 on either side is a wildcard).
    if (e >= 0 && rttl && ttl !== 0 && this.ttl[e] !== 0 && this.ttl[e] !== ttl) e = -1;
    if (e < 0) {
      if (op !== RECENT_SET) return ret;
      this.init(key, ttl, now);
      return !ret;
    }
    if (op === RECENT_SET) {
      ret = !ret;
    } else if (op === RECENT_REMOVE) {
      this.remove(e);
      return !ret;
    } else {
      const time = now - seconds;
      const stride = this.nstampsMaxMask + 1;
      const base = e * stride;
      const n = this.nstamps[e]!;
      let hits = 0;
      for (let i = 0; i < n; i++) {
        if (seconds !== 0 && this.stamps[base + i]! < time) continue;
        if (hitcount === 0 || ++hits >= hitcount) {
          ret = !ret;
          break;
        }
      }
      if (reap) this.reap(time, e, op === RECENT_UPDATE && ret);
    }
    if (op === RECENT_SET || (op === RECENT_UPDATE && ret)) {
      this.update(e, now);
      this.ttl[e] = ttl;
    }
    return ret;
  }

  private init(key: number, ttl: number, now: number): void {
    if (this.entries >= this.capacity) this.remove(this.next[this.capacity]!);
    const e = this.freeList[--this.freeTop]!;
    this.slotOf.set(key, e);
    this.addr[e] = key;
    this.ttl[e] = ttl;
    this.stamps[e * (this.nstampsMaxMask + 1)] = now;
    this.nstamps[e] = 1;
    this.index[e] = 1;
    this.linkTail(e);
    this.entries++;
  }

  private update(e: number, now: number): void {
    let idx = this.index[e]! & this.nstampsMaxMask;
    this.stamps[e * (this.nstampsMaxMask + 1) + idx] = now;
    idx++;
    this.index[e] = idx;
    if (idx > this.nstamps[e]!) this.nstamps[e] = idx;
    this.unlink(e);
    this.linkTail(e);
  }

  private reap(time: number, working: number, update: boolean): void {
    const e = this.next[this.capacity]!;
    if (e === working && update) return;
    const last = this.stamps[e * (this.nstampsMaxMask + 1) + ((this.index[e]! - 1) & this.nstampsMaxMask)]!;
    if (last < time) this.remove(e);
  }

  private remove(e: number): void {
    this.slotOf.delete(this.addr[e]!);
    this.unlink(e);
    this.freeList[this.freeTop++] = e;
    this.entries--;
  }

  private linkTail(e: number): void {
    const s = this.capacity;
    const last = this.prev[s]!;
    this.next[last] = e;
    this.prev[e] = last;
    this.next[e] = s;
    this.prev[s] = e;
  }

  private unlink(e: number): void {
    const p = this.prev[e]!;
    const n = this.next[e]!;
    this.next[p] = n;
    this.prev[n] = p;
  }
}
