/**
 * Open-addressing hash maps over typed arrays for the per-packet lookups of the rule evaluator,
 * ipsets and `recent` tables: keys are 32-bit integers (addresses, proto<<16|port) or pairs of
 * them, values are non-negative 32-bit integers. `get` allocates nothing and never boxes a
 * number (a JS Map would box addresses above 2^30 into heap numbers).
 *
 * Linear probing, load factor <= 1/2, deletion by backward shift (no tombstones).
 */

function hash1(k: number): number {
  let h = Math.imul(k ^ (k >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return h ^ (h >>> 16);
}

function hash2(a: number, b: number): number {
  return hash1(a ^ Math.imul(b, 0x9e3779b1));
}

/** Slots for `expected` keys: a power of two, at most half full. */
function capacityFor(expected: number): number {
  let cap = 16;
  while (cap < expected * 2) cap *= 2;
  return cap;
}

/** int32 key → int32 value >= 0; `get` returns -1 when absent. */
export class IntMap {
  private keys: Int32Array;
  private vals: Int32Array;
  private used: Uint8Array;
  private mask: number;
  size = 0;

  constructor(expected = 8) {
    const cap = capacityFor(expected);
    this.keys = new Int32Array(cap);
    this.vals = new Int32Array(cap);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
  }

  get(key: number): number {
    const k = key | 0;
    const mask = this.mask;
    let i = hash1(k) & mask;
    const used = this.used;
    const keys = this.keys;
    while (used[i] !== 0) {
      if (keys[i] === k) return this.vals[i]!;
      i = (i + 1) & mask;
    }
    return -1;
  }

  has(key: number): boolean {
    return this.get(key) >= 0;
  }

  set(key: number, val: number): void {
    if ((this.size + 1) * 2 > this.used.length) this.grow();
    const k = key | 0;
    const mask = this.mask;
    let i = hash1(k) & mask;
    while (this.used[i] !== 0) {
      if (this.keys[i] === k) {
        this.vals[i] = val;
        return;
      }
      i = (i + 1) & mask;
    }
    this.used[i] = 1;
    this.keys[i] = k;
    this.vals[i] = val;
    this.size++;
  }

  delete(key: number): boolean {
    const k = key | 0;
    const mask = this.mask;
    let i = hash1(k) & mask;
    while (this.used[i] !== 0) {
      if (this.keys[i] === k) {
        this.removeAt(i);
        return true;
      }
      i = (i + 1) & mask;
    }
    return false;
  }

  clear(): void {
    this.used.fill(0);
    this.size = 0;
  }

  /** Calls fn(key, value) for every entry (configuration time only). */
  forEach(fn: (key: number, val: number) => void): void {
    for (let i = 0; i < this.used.length; i++) if (this.used[i] !== 0) fn(this.keys[i]!, this.vals[i]!);
  }

  private removeAt(i: number): void {
    const mask = this.mask;
    this.used[i] = 0;
    this.size--;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (this.used[j] === 0) return;
      const h = hash1(this.keys[j]!) & mask;
      // Move entry j into the hole at i if its home slot h is not in the cyclic range (i, j].
      if (i <= j ? h <= i || h > j : h <= i && h > j) {
        this.keys[i] = this.keys[j]!;
        this.vals[i] = this.vals[j]!;
        this.used[i] = 1;
        this.used[j] = 0;
        i = j;
      }
    }
  }

  private grow(): void {
    const oldK = this.keys;
    const oldV = this.vals;
    const oldU = this.used;
    const cap = oldU.length * 2;
    this.keys = new Int32Array(cap);
    this.vals = new Int32Array(cap);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < oldU.length; i++) if (oldU[i] !== 0) this.set(oldK[i]!, oldV[i]!);
  }
}

/** (int32, int32) key → int32 value >= 0; `get` returns -1 when absent. Insert-only. */
export class IntPairMap {
  private ka: Int32Array;
  private kb: Int32Array;
  private vals: Int32Array;
  private used: Uint8Array;
  private mask: number;
  size = 0;

  constructor(expected = 8) {
    const cap = capacityFor(expected);
    this.ka = new Int32Array(cap);
    this.kb = new Int32Array(cap);
    this.vals = new Int32Array(cap);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
  }

  get(a: number, b: number): number {
    const ka = a | 0;
    const kb = b | 0;
    const mask = this.mask;
    let i = hash2(ka, kb) & mask;
    while (this.used[i] !== 0) {
      if (this.ka[i] === ka && this.kb[i] === kb) return this.vals[i]!;
      i = (i + 1) & mask;
    }
    return -1;
  }

  set(a: number, b: number, val: number): void {
    if ((this.size + 1) * 2 > this.used.length) this.grow();
    const ka = a | 0;
    const kb = b | 0;
    const mask = this.mask;
    let i = hash2(ka, kb) & mask;
    while (this.used[i] !== 0) {
      if (this.ka[i] === ka && this.kb[i] === kb) {
        this.vals[i] = val;
        return;
      }
      i = (i + 1) & mask;
    }
    this.used[i] = 1;
    this.ka[i] = ka;
    this.kb[i] = kb;
    this.vals[i] = val;
    this.size++;
  }

  forEach(fn: (a: number, b: number, val: number) => void): void {
    for (let i = 0; i < this.used.length; i++) if (this.used[i] !== 0) fn(this.ka[i]!, this.kb[i]!, this.vals[i]!);
  }

  private grow(): void {
    const oa = this.ka;
    const ob = this.kb;
    const ov = this.vals;
    const ou = this.used;
    const cap = ou.length * 2;
    this.ka = new Int32Array(cap);
    this.kb = new Int32Array(cap);
    this.vals = new Int32Array(cap);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < ou.length; i++) if (ou[i] !== 0) this.set(oa[i]!, ob[i]!, ov[i]!);
  }
}
