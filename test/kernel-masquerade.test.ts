/**
 * Scenario 2 (kernel differential): Calico natOutgoing MASQUERADE with a source-port clash
 * (TCP, UDP) and an ICMP echo id clash, and the replies.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { compareRuns } from './support/compare.js';
import { kernelAvailability, liveKernelNamespaces } from './support/kernel.js';
import { expectOnlyFrame, expectValidCapture, FIXTURES, runDpemu, runKernel, type KernelRunResult } from './support/scenario.js';
import { DNS, ECHO_ID, NODE_IP, POD1, POD2, SERVER, steps, TCP_PORT, UDP_PORT } from './fixtures/kernel/masquerade.frames.js';

const avail = kernelAvailability();
if (!avail.ok) console.warn(`kernel-masquerade: kernel tests skipped: ${avail.reason}`);

const NODE = join(FIXTURES, 'masquerade.yaml');

describe.skipIf(!avail.ok)('kernel differential: pod egress MASQUERADE with clashes', () => {
  const cfg = loadNodeConfig(NODE);
  const script = steps(cfg);
  let k: KernelRunResult;

  beforeAll(async () => {
    k = await runKernel(cfg, script, { tag: 'masq' });
  });
  afterAll(() => {
    expect(liveKernelNamespaces()).toEqual([]);
  });

  const only = (name: string, iface: string) => expectOnlyFrame(k, name, iface);

  it('every frame the kernel sent is valid (tshark, checksum validation on)', () => {
    expectValidCapture(k);
  });

  it('TCP: the first pod keeps its port, the second gets a random one in 1024-65535, kept for the flow', () => {
    const s1 = only('pod1 SYN', 'eth0');
    expect([s1.str('ip.src'), s1.num('tcp.srcport'), s1.str('ip.dst')]).toEqual([NODE_IP, TCP_PORT, SERVER]);
    const s2 = only('pod2 SYN (same port)', 'eth0');
    expect(s2.str('ip.src')).toBe(NODE_IP);
    const p2 = s2.num('tcp.srcport');
    expect(p2).not.toBe(TCP_PORT);
    expect(p2).toBeGreaterThanOrEqual(1024);
    expect(p2).toBeLessThanOrEqual(65535);
    expect(only('pod2 ACK', 'eth0').num('tcp.srcport')).toBe(p2);
    expect(only('pod2 request', 'eth0').num('tcp.srcport')).toBe(p2);
    expect(only('pod1 ACK', 'eth0').num('tcp.srcport')).toBe(TCP_PORT);
    const s3 = only('pod1 second connection SYN', 'eth0');
    expect(s3.num('tcp.srcport')).toBe(TCP_PORT + 1);
  });

  it('TCP replies are un-NATed to the right pod', () => {
    for (const [name, pod, port] of [
      ['SYN-ACK to pod1', POD1, TCP_PORT],
      ['SYN-ACK to pod2', POD2, TCP_PORT],
      ['response to pod2', POD2, TCP_PORT],
      ['SYN-ACK to pod1 second connection', POD1, TCP_PORT + 1],
    ] as const) {
      const d = only(name, pod.iface);
      expect([d.str('ip.src'), d.num('tcp.srcport'), d.str('ip.dst'), d.num('tcp.dstport'), d.num('ip.ttl')]).toEqual([SERVER, 443, pod.ip, port, 56]);
      expect(d.str('eth.dst')).toBe(pod.mac);
    }
  });

  it('ICMP echo: the clashing id is replaced by another, replies get the pods\' ids back', () => {
    const e1 = only('pod1 echo request', 'eth0');
    expect([e1.str('ip.src'), e1.num('icmp.ident')]).toEqual([NODE_IP, ECHO_ID]);
    const e2 = only('pod2 echo request (same id)', 'eth0');
    expect(e2.str('ip.src')).toBe(NODE_IP);
    expect(e2.num('icmp.ident')).not.toBe(ECHO_ID);
    const r2 = only('echo reply to pod2', POD2.iface);
    expect([r2.str('ip.dst'), r2.num('icmp.ident')]).toEqual([POD2.ip, ECHO_ID]);
    const r1 = only('echo reply to pod1', POD1.iface);
    expect([r1.str('ip.dst'), r1.num('icmp.ident')]).toEqual([POD1.ip, ECHO_ID]);
  });

  it('UDP: the clashing source port is replaced, the answers reach both pods', () => {
    const q1 = only('pod1 DNS query', 'eth0');
    expect([q1.str('ip.src'), q1.num('udp.srcport'), q1.str('ip.dst')]).toEqual([NODE_IP, UDP_PORT, DNS]);
    const q2 = only('pod2 DNS query (same port)', 'eth0');
    expect(q2.num('udp.srcport')).not.toBe(UDP_PORT);
    expect(q2.num('udp.srcport')).toBeGreaterThanOrEqual(1024);
    const a2 = only('DNS answer to pod2', POD2.iface);
    expect([a2.str('ip.dst'), a2.num('udp.dstport')]).toEqual([POD2.ip, UDP_PORT]);
    const a1 = only('DNS answer to pod1', POD1.iface);
    expect([a1.str('ip.dst'), a1.num('udp.dstport')]).toEqual([POD1.ip, UDP_PORT]);
  });

  it('dpemu replay --node sends the same frames as the kernel', () => {
    const d = runDpemu(NODE, cfg, script, { tag: 'masq' });
    const c = compareRuns(k, d);
    expect(c.ok, c.text).toBe(true);
  });
});
