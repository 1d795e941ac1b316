/**
 * Scenario 1 (kernel differential): kube-proxy ClusterIP DNAT over three endpoints with
 * `statistic --mode nth`. The kernel side checks what SEMANTICS.md §10 says the kernel does
 * (and so that the harness works); the last test holds dpemu's node to the same frames.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { compareRuns } from './support/compare.js';
import { kernelAvailability, liveKernelNamespaces } from './support/kernel.js';
import { expectOnlyFrame, expectValidCapture, FIXTURES, runDpemu, runKernel, sentAfter, type KernelRunResult } from './support/scenario.js';
import { ENDPOINTS, POD, steps, VIP, type Ep } from './fixtures/kernel/service-nth.frames.js';

const avail = kernelAvailability();
if (!avail.ok) console.warn(`kernel-service-nth: kernel tests skipped: ${avail.reason}`);

const NODE = join(FIXTURES, 'service-nth.yaml');

describe.skipIf(!avail.ok)('kernel differential: Service DNAT, statistic nth', () => {
  const cfg = loadNodeConfig(NODE);
  const script = steps(cfg);
  let k: KernelRunResult;

  beforeAll(async () => {
    k = await runKernel(cfg, script, { tag: 'svc-nth' });
  });
  afterAll(() => {
    expect(liveKernelNamespaces()).toEqual([]);
  });

  const only = (name: string, iface: string) => expectOnlyFrame(k, name, iface);

  it('every frame the kernel sent is valid (tshark, checksum validation on)', () => {
    expectValidCapture(k);
  });

  it('new connections go round robin A, B, C, A, B; a retransmitted SYN keeps its endpoint', () => {
    const expectEp = (name: string, ep: Ep, sport: number) => {
      const d = only(name, 'eth0');
      expect(d.str('ip.src')).toBe(POD.ip);
      expect(d.num('tcp.srcport')).toBe(sport);
      expect(d.str('ip.dst')).toBe(ENDPOINTS[ep].ip);
      expect(d.num('tcp.dstport')).toBe(8443);
      expect(d.num('ip.ttl')).toBe(63);
      expect(d.str('eth.dst')).toBe(ENDPOINTS[ep].nodeMac);
      expect(d.str('eth.src')).toBe('06:a1:0e:05:00:05');
    };
    expectEp('c1 SYN', 'A', 41001);
    expectEp('c2 SYN', 'B', 41002);
    expectEp('c2 SYN retransmitted', 'B', 41002);
    expectEp('c3 SYN', 'C', 41003);
    expectEp('c4 SYN', 'A', 41004);
    expectEp('c5 SYN', 'B', 41005);
  });

  it('a SYN with a bad TCP checksum is INVALID: dropped by KUBE-FORWARD, no nth slot taken', () => {
    expect(sentAfter(k, 'bad-checksum SYN')).toEqual([]);
    const rule = k.counters.split('\n').find((l) => l.includes('-A KUBE-FORWARD') && l.includes('INVALID'));
    expect(rule).toMatch(/^\[1:40\]/);
  });

  it('replies are un-DNATed: they leave the pod veth from the VIP:443', () => {
    for (const name of ['c1 SYN-ACK', 'c1 response', 'c2 SYN-ACK', 'c3 SYN-ACK', 'c4 SYN-ACK', 'c5 SYN-ACK']) {
      const d = only(name, POD.iface);
      expect(d.str('ip.src')).toBe(VIP);
      expect(d.num('tcp.srcport')).toBe(443);
      expect(d.str('ip.dst')).toBe(POD.ip);
      expect(d.num('ip.ttl')).toBe(62);
      expect(d.str('eth.src')).toBe('ee:ee:ee:ee:ee:ee');
      expect(d.str('eth.dst')).toBe(POD.mac);
    }
  });

  it('established traffic from the pod follows its connection', () => {
    expect(only('c1 ACK', 'eth0').str('ip.dst')).toBe(ENDPOINTS.A.ip);
    expect(only('c1 request', 'eth0').str('ip.dst')).toBe(ENDPOINTS.A.ip);
    expect(only('c2 ACK', 'eth0').str('ip.dst')).toBe(ENDPOINTS.B.ip);
    expect(only('c3 ACK', 'eth0').str('ip.dst')).toBe(ENDPOINTS.C.ip);
    expect(only('c5 ACK', 'eth0').str('ip.dst')).toBe(ENDPOINTS.B.ip);
    expect(only('c1 ACK of response', 'eth0').str('ip.dst')).toBe(ENDPOINTS.A.ip);
  });

  it('dpemu replay --node sends the same frames as the kernel', () => {
    const d = runDpemu(NODE, cfg, script, { tag: 'svc-nth' });
    const c = compareRuns(k, d);
    expect(c.ok, c.text).toBe(true);
  });
});
