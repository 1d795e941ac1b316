/**
 * Seeded pseudo-random numbers for everything the real system randomises
 * (`-m statistic --mode random`, MASQUERADE ports on a clash, VXLAN hash keys...).
 *
 * xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c), seeded through
 * splitmix32 so that any 32-bit seed (0 included) gives a well-mixed state. 32-bit integer math
 * only: no allocation, no BigInt, identical results on every platform.
 */
export class Prng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  constructor(seed = 1) {
    this.reseed(seed);
  }

  reseed(seed: number): void {
    let x = seed >>> 0;
    const next = (): number => {
      // splitmix32
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [min, max] (inclusive); unbiased by rejection. */
  nextInt(min: number, max: number): number {
    const span = max - min + 1;
    if (span <= 0 || span > 4294967296) throw new RangeError(`bad range ${min}..${max}`);
    if (span === 4294967296) return min + this.nextU32();
    const limit = 4294967296 - (4294967296 % span);
    let r: number;
    do r = this.nextU32();
    while (r >= limit);
    return min + (r % span);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
