/**
 * Scenario 6 (kernel differential): TTL expiry on a DNATed connection; the ICMP error is
 * translated back (outer source = the Service VIP, quoted header = the original one).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { compareRuns } from './support/compare.js';
import { kernelAvailability, liveKernelNamespaces } from './support/kernel.js';
import { expectOnlyFrame, expectValidCapture, FIXTURES, runDpemu, runKernel, type KernelRunResult } from './support/scenario.js';
import { EMPTY_VIP, EP_A, EP_B, NODE_IP, POD, steps, VIP } from './fixtures/kernel/ttl-dnat.frames.js';

const avail = kernelAvailability();
if (!avail.ok) console.warn(`kernel-ttl-dnat: kernel tests skipped: ${avail.reason}`);

const NODE = join(FIXTURES, 'ttl-dnat.yaml');

describe.skipIf(!avail.ok)('kernel differential: TTL expiry on a DNATed connection', () => {
  const cfg = loadNodeConfig(NODE);
  const script = steps(cfg);
  let k: KernelRunResult;

  beforeAll(async () => {
    k = await runKernel(cfg, script, { tag: 'ttl' });
  });
  afterAll(() => {
    expect(liveKernelNamespaces()).toEqual([]);
  });

  const only = (name: string, iface: string) => expectOnlyFrame(k, name, iface);

  it('every frame the kernel sent is valid (tshark, checksum validation on)', () => {
    expectValidCapture(k);
  });

  const expectTimeExceeded = (name: string, src: string, quoted: [string, number, string, number]) => {
    const d = only(name, POD.iface);
    expect([d.str('ip.src'), d.str('ip.dst'), d.num('ip.ttl'), d.str('ip.dsfield'), d.num('ip.flags.df')]).toEqual([src, POD.ip, 64, '0xc0', 0]);
    expect([d.num('icmp.type'), d.num('icmp.code')]).toEqual([11, 0]);
    expect([d.str('icmp.quoted.ip.src'), d.num('icmp.quoted.tcp.srcport'), d.str('icmp.quoted.ip.dst'), d.num('icmp.quoted.tcp.dstport')]).toEqual(quoted);
    // As received: TTL 1, the whole (short) datagram quoted.
    expect(d.num('icmp.quoted.ip.ttl')).toBe(1);
    expect(d.num('icmp.quoted.ip.quoted_bytes')).toBe(d.num('icmp.quoted.ip.len'));
    return d;
  };

  it('a NEW SYN with TTL 1 to the VIP: time-exceeded from the VIP quoting the original header', () => {
    expectTimeExceeded('c1 SYN with TTL 1', VIP, [POD.ip, 42001, VIP, 443]);
  });

  it('the SYN that expired took its nth slot: the retried SYN lands on the second endpoint', () => {
    const d = only('c1 SYN', 'eth0');
    expect([d.str('ip.dst'), d.num('tcp.dstport'), d.str('eth.dst')]).toEqual([EP_B.ip, 8443, EP_B.nodeMac]);
    expect(k.counters).toMatch(/\[1:40\] -A KUBE-SEP-ZFIBDVOJB4PAMDQO .*DNAT/);
    expect(k.counters).toMatch(/\[1:40\] -A KUBE-SEP-RNCEOFXUNLQT7YXS .*DNAT/);
    expect(only('c1 SYN-ACK', POD.iface).str('ip.src')).toBe(VIP);
  });

  it('TTL 1 on the established connection: the RELATED error is translated back (source VIP, quoted original)', () => {
    expectTimeExceeded('c1 data with TTL 1', VIP, [POD.ip, 42001, VIP, 443]);
    expect(only('c1 data, again with TTL 64', 'eth0').str('ip.dst')).toBe(EP_B.ip);
  });

  it('without DNAT the error comes from the node (the address of the route back to the pod)', () => {
    expectTimeExceeded('TTL 1 straight to an endpoint (no DNAT)', NODE_IP, [POD.ip, 42002, EP_A.ip, 8443]);
  });

  it('the TTL check comes before the FORWARD filter (REJECT of a Service without endpoints)', () => {
    expectTimeExceeded('TTL 1 to a Service without endpoints', NODE_IP, [POD.ip, 42003, EMPTY_VIP, 80]);
  });

  it('REJECT sends port-unreachable from the node, quoting the packet after the TTL decrement', () => {
    const d = only('SYN to a Service without endpoints (REJECT)', POD.iface);
    expect([d.str('ip.src'), d.num('ip.ttl'), d.str('ip.dsfield'), d.num('icmp.type'), d.num('icmp.code')]).toEqual([NODE_IP, 64, '0xc0', 3, 3]);
    expect([d.str('icmp.quoted.ip.dst'), d.num('icmp.quoted.tcp.dstport'), d.num('icmp.quoted.ip.ttl')]).toEqual([EMPTY_VIP, 80, 63]);
  });

  it('dpemu replay --node sends the same frames as the kernel', () => {
    const d = runDpemu(NODE, cfg, script, { tag: 'ttl' });
    const c = compareRuns(k, d);
    expect(c.ok, c.text).toBe(true);
  });
});
