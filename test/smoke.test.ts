import { describe, expect, it } from 'vitest';
import { RecordBatch } from '../src/pcap/types.js';
describe('smoke', () => {
  it('allocates a batch', () => {
    const b = new RecordBatch(8);
    expect(b.capacity).toBe(8);
  });
});
