/**
 * The packet layer: zero-allocation views over batch buffers (view.ts), checksums (checksum.ts),
 * in-place rewrites with incremental checksum updates (rewrite.ts), address text (addr.ts) and
 * frame builders for tests and `dpemu gen` (build.ts).
 */
export * from './addr.js';
export * from './checksum.js';
export * from './view.js';
export * from './rewrite.js';
export * from './build.js';
