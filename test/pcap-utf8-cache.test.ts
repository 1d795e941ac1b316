/**
 * The cache of encoded comments (src/pcap/utf8-cache.ts): its bytes are Buffer's UTF-8 encoding
 * of the string, whatever was cached before (equal strings, other strings, a cleared cache), and
 * it declines strings too long to cache.
 */
import { describe, expect, it } from 'vitest';
import { Utf8Cache } from '../src/pcap/utf8-cache.js';

const texts = ['', 'a', 'FORWARD eth0->eth1: filter/FORWARD rule 20 (line 58): ACCEPT', 'é ü ß — “quotes”', '日本語', '\u{1F600}', '\ud800 lone', 'x\udc00'];

describe('Utf8Cache', () => {
  it('gives the UTF-8 bytes of each string, cached or not, for equal copies too', () => {
    const c = new Utf8Cache();
    for (let round = 0; round < 3; round++) {
      for (const t of texts) {
        const copy = (' ' + t).slice(1);
        expect(Buffer.from(c.get(t)!)).toEqual(Buffer.from(t, 'utf8'));
        expect(Buffer.from(c.get(copy)!)).toEqual(Buffer.from(t, 'utf8'));
      }
    }
    // Cached: the second lookup returns the same bytes object.
    expect(c.get(texts[2]!)).toBe(c.get(texts[2]!));
  });

  it('stays right across clears when more strings than it holds go through it', () => {
    const c = new Utf8Cache(8);
    for (let i = 0; i < 100; i++) {
      const s = `DNAT 10.0.0.${i % 13}:80 -> é${i % 29}`;
      expect(Buffer.from(c.get(s)!).toString('utf8')).toBe(s);
    }
  });

  it('declines strings longer than 4096 characters (the caller encodes them)', () => {
    const c = new Utf8Cache();
    expect(c.get('y'.repeat(4096))!.length).toBe(4096);
    expect(c.get('y'.repeat(4097))).toBeNull();
  });
});
