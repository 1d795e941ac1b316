/**
 * Copying frame bytes without allocating.
 *
 * Frames up to WORD_COPY_MAX bytes are copied as 32-bit words through long-lived DataViews of
 * both buffers, then 0–3 tail bytes; longer ones with one Uint8Array.prototype.set from a view.
 * Measured (Node 20, best of 45 runs):
 *   60-100 B:  DataView words x4-unrolled 26.6 M/s, DataView words 21.9, new Uint8Array view +
 *              set 18.8, set(subarray) 14.6, Buffer.copy 14.1, byte loop 7.6;
 *   128-200 B: DataView words 11.3, view + set 17.9, Buffer.copy 13.6;
 *   1400-1500: DataView words 2.0, view + set 10.9, Buffer.copy 9.4.
 * The crossover is ~110 B; words also avoid the one allocation (the view) that set() needs.
 * Buffer.copy builds the same view internally on Node 20 and is slower.
 */
export const WORD_COPY_MAX = 112;

export function copyBytes(dst: Uint8Array, ddv: DataView, dpos: number, src: Uint8Array, sdv: DataView, off: number, len: number): void {
  if (len <= WORD_COPY_MAX) {
    let i = 0;
    const w16 = len - 16;
    for (; i <= w16; i += 16) {
      ddv.setUint32(dpos + i, sdv.getUint32(off + i, true), true);
      ddv.setUint32(dpos + i + 4, sdv.getUint32(off + i + 4, true), true);
      ddv.setUint32(dpos + i + 8, sdv.getUint32(off + i + 8, true), true);
      ddv.setUint32(dpos + i + 12, sdv.getUint32(off + i + 12, true), true);
    }
    for (; i + 4 <= len; i += 4) ddv.setUint32(dpos + i, sdv.getUint32(off + i, true), true);
    for (; i < len; i++) dst[dpos + i] = src[off + i]!;
  } else {
    dst.set(new Uint8Array(src.buffer, src.byteOffset + off, len), dpos);
  }
}
