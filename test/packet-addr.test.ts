/** Address text ⇄ numbers (configuration time). */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Address4 } from 'ip-address';
import { ipv4ToString, macToString, maskToPrefix, parseCidr, parseIpv4, parseMac, prefixMask } from '../src/packet/index.js';

describe('IPv4 addresses', () => {
  it('parse and print, unsigned host order', () => {
    expect(parseIpv4('10.0.0.1')).toBe(0x0a000001);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(parseIpv4('192.168.1.2')).toBeGreaterThan(0);
    expect(ipv4ToString(0xc0a80102)).toBe('192.168.1.2');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (ip) => {
        expect(parseIpv4(ipv4ToString(ip))).toBe(ip);
      }),
    );
  });

  it('the canonical dotted quad read by hand agrees with ip-address on any dotted text', () => {
    // parseIpv4 reads the canonical form itself and leaves the rest to Address4: the two must
    // give the same number, or the same refusal, whatever the text.
    const viaAddress4 = (s: string): number | null => {
      if (s.includes('/')) return null;
      try {
        const p = new Address4(s).toArray();
        return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
      } catch {
        return null;
      }
    };
    const part = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('', '00', '01', '007', '1a', ' 1', '+1', '-1', '1e2', '0x1'));
    const text = fc.oneof(
      fc.array(part, { minLength: 1, maxLength: 6 }).map((a) => a.join('.')),
      fc.string({ unit: fc.constantFrom('0', '1', '2', '5', '9', '.', '/', ' ', 'x'), maxLength: 18 }),
    );
    fc.assert(
      fc.property(text, (s) => {
        let got: number | null;
        try {
          got = parseIpv4(s);
        } catch {
          got = null;
        }
        expect(got).toBe(viaAddress4(s));
      }),
      { numRuns: 5000 },
    );
  });

  it('rejects bad text with the text in the message', () => {
    for (const s of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', ' 1.2.3.4', '1.2.3.4/24', '', 'a.b.c.d', '1..2.3']) {
      expect(() => parseIpv4(s)).toThrow(s === '' ? /invalid IPv4 address/ : s.trim());
    }
  });
});

describe('prefixes and CIDRs', () => {
  it('prefixMask', () => {
    expect(prefixMask(0)).toBe(0);
    expect(prefixMask(8)).toBe(0xff000000);
    expect(prefixMask(24)).toBe(0xffffff00);
    expect(prefixMask(32)).toBe(0xffffffff);
    expect(() => prefixMask(33)).toThrow();
    expect(() => prefixMask(-1)).toThrow();
    for (let i = 0; i <= 32; i++) expect(maskToPrefix(prefixMask(i))).toBe(i);
    expect(maskToPrefix(0xff00ff00)).toBe(-1);
  });

  it('parseCidr: /len, dotted masks, bare address', () => {
    expect(parseCidr('10.1.2.3/8')).toEqual({ addr: 0x0a010203, network: 0x0a000000, prefix: 8, mask: 0xff000000 });
    expect(parseCidr('172.30.0.0/16')).toEqual({ addr: 0xac1e0000, network: 0xac1e0000, prefix: 16, mask: 0xffff0000 });
    expect(parseCidr('0.0.0.0/0')).toEqual({ addr: 0, network: 0, prefix: 0, mask: 0 });
    expect(parseCidr('1.2.3.4')).toEqual({ addr: 0x01020304, network: 0x01020304, prefix: 32, mask: 0xffffffff });
    expect(parseCidr('10.0.0.0/255.255.0.0').prefix).toBe(16);
    expect(parseCidr('10.0.0.0/255.0.255.0')).toEqual({ addr: 0x0a000000, network: 0x0a000000, prefix: -1, mask: 0xff00ff00 });
    for (const s of ['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/08', '10.0.0/8', '10.0.0.0/x', '10.0.0.0/1.2.3']) {
      expect(() => parseCidr(s)).toThrow(s);
    }
  });
});

describe('MAC addresses', () => {
  it('parse and print', () => {
    const m = parseMac('02:00:00:AB:cd:01');
    expect([...m]).toEqual([2, 0, 0, 0xab, 0xcd, 1]);
    expect(macToString(m)).toBe('02:00:00:ab:cd:01');
    expect([...parseMac('02-00-00-00-00-ff')]).toEqual([2, 0, 0, 0, 0, 255]);
    const buf = new Uint8Array([9, 9, 0xde, 0xad, 0xbe, 0xef, 0, 1]);
    expect(macToString(buf, 2)).toBe('de:ad:be:ef:00:01');
    for (const s of ['02:00:00:00:00', '02:00:00:00:00:0g', '02:00-00:00:00:01', '2:0:0:0:0:1', '0200.0000.0001']) {
      expect(() => parseMac(s)).toThrow(s);
    }
  });
});
