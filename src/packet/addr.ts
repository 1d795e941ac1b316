/**
 * Addresses at configuration time: text ⇄ the numbers the hot path uses.
 *
 * An IPv4 address is an unsigned 32-bit number in host order (`>>> 0`), e.g. 10.0.0.1 is
 * 0x0a000001. A MAC address is 6 bytes. The parsers throw an Error quoting the bad text: they
 * run when configuration and specs are loaded, never per packet.
 */
import { Address4 } from 'ip-address';

/**
 * Dotted-quad IPv4 text → unsigned 32-bit number. Strict: four decimal parts 0–255, no leading
 * zeros (inet_aton would read "010" as octal), no prefix, no surrounding blanks.
 */
export function parseIpv4(s: string): number {
  // The canonical form is read here (configuration files hold tens of thousands of addresses:
  // Address4 costs ~1 µs and several objects each); anything else goes to Address4 below,
  // which accepts or rejects it with its own message.
  const fast = typeof s === 'string' ? dottedQuad(s) : -1;
  if (fast >= 0) return fast;
  // Address4 also accepts "a.b.c.d/len"; an address is only the address.
  if (typeof s !== 'string' || s.includes('/')) throw new Error(`invalid IPv4 address: "${String(s)}"`);
  let parts: number[];
  try {
    parts = new Address4(s).toArray();
  } catch (e) {
    throw new Error(`invalid IPv4 address: "${s}" (${(e as Error).message})`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/**
 * Four decimal parts 0–255 without leading zeros, nothing else: the address as an unsigned
 * 32-bit number, else -1 (the caller decides what the text is).
 */
function dottedQuad(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let ip = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      ip = ip * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return -1; // leading zero
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return ip * 256 + part;
}

/** Unsigned 32-bit number → dotted quad. */
export function ipv4ToString(ip: number): string {
  return `${(ip >>> 24) & 255}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** Netmask of a prefix length 0–32 as an unsigned 32-bit number (prefixMask(24) = 0xffffff00). */
export function prefixMask(len: number): number {
  if (!Number.isInteger(len) || len < 0 || len > 32) throw new Error(`invalid prefix length: ${len}`);
  // `x << 32` is `x << 0` in JavaScript, so /0 needs its own case.
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export interface Cidr {
  /** The address as written ("10.1.2.3/8" → 10.1.2.3), as iproute2 keeps an interface address. */
  addr: number;
  /** addr & mask: the network ("10.1.2.3/8" → 10.0.0.0), as iptables and ipset store it. */
  network: number;
  /** Prefix length 0–32, or -1 for a non-contiguous dotted mask (iptables accepts those). */
  prefix: number;
  mask: number;
}

/**
 * "a.b.c.d/len", "a.b.c.d/m.m.m.m" (dotted mask, as iptables accepts) or a bare "a.b.c.d"
 * (= /32, as iptables reads `-s 1.2.3.4`).
 */
export function parseCidr(s: string): Cidr {
  if (typeof s !== 'string') throw new Error(`invalid IPv4 CIDR: "${String(s)}"`);
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  let addr: number;
  try {
    addr = parseIpv4(addrText);
  } catch {
    throw new Error(`invalid IPv4 CIDR: "${s}" (bad address)`);
  }
  let prefix = 32;
  let mask = 0xffffffff;
  if (slash >= 0) {
    const m = s.slice(slash + 1);
    if (/^(0|[1-9][0-9]?)$/.test(m) && Number(m) <= 32) {
      prefix = Number(m);
      mask = prefixMask(prefix);
    } else if (m.includes('.')) {
      try {
        mask = parseIpv4(m);
      } catch {
        throw new Error(`invalid IPv4 CIDR: "${s}" (bad netmask)`);
      }
      prefix = maskToPrefix(mask);
    } else {
      throw new Error(`invalid IPv4 CIDR: "${s}" (prefix length must be 0-32)`);
    }
  }
  return { addr, network: (addr & mask) >>> 0, prefix, mask };
}

/** Prefix length of a contiguous netmask, or -1 when the mask is not contiguous. */
export function maskToPrefix(mask: number): number {
  const inv = ~mask >>> 0;
  // Contiguous iff the inverted mask is 2^k - 1.
  if ((inv & (inv + 1)) !== 0) return -1;
  return Math.clz32(inv);
}

/** "02:00:00:00:00:01" (or with '-') → 6 bytes. */
export function parseMac(s: string): Uint8Array {
  if (typeof s !== 'string' || !/^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/.test(s)) {
    throw new Error(`invalid MAC address: "${String(s)}"`);
  }
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) out[i] = parseInt(s.substr(i * 3, 2), 16);
  return out;
}

/** 6 bytes at buf[off] → "02:00:00:00:00:01" (lower case, as iproute2 and tshark print). */
export function macToString(buf: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const b = buf[off + i] ?? 0;
    s += (i ? ':' : '') + (b < 16 ? '0' : '') + b.toString(16);
  }
  return s;
}
