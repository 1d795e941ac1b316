/**
 * Scenario 3 (kernel differential): a stateful, Calico-rendered NetworkPolicy in FORWARD.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { compareRuns } from './support/compare.js';
import { kernelAvailability, liveKernelNamespaces } from './support/kernel.js';
import { expectNothingSent, expectOnlyFrame, expectValidCapture, FIXTURES, ruleCounter, runDpemu, runKernel, type KernelRunResult } from './support/scenario.js';
import { APP, DB, DNS1, DNS2, steps } from './fixtures/kernel/netpol.frames.js';

const avail = kernelAvailability();
if (!avail.ok) console.warn(`kernel-netpol: kernel tests skipped: ${avail.reason}`);

const NODE = join(FIXTURES, 'netpol.yaml');

describe.skipIf(!avail.ok)('kernel differential: stateful NetworkPolicy in FORWARD', () => {
  const cfg = loadNodeConfig(NODE);
  const script = steps(cfg);
  let k: KernelRunResult;

  beforeAll(async () => {
    k = await runKernel(cfg, script, { tag: 'netpol' });
  });
  afterAll(() => {
    expect(liveKernelNamespaces()).toEqual([]);
  });

  const only = (name: string, iface: string) => expectOnlyFrame(k, name, iface);
  const nothing = (name: string) => expectNothingSent(k, name);
  const counter = (text: string) => ruleCounter(k, text);

  it('every frame the kernel sent is valid (tshark, checksum validation on)', () => {
    expectValidCapture(k);
  });

  it('an allowed connection passes both ways, handshake to close', () => {
    for (const n of ['app SYN to 5432', 'app ACK', 'app query', 'app FIN', 'app last ACK']) {
      const d = only(n, DB.iface);
      expect([d.str('ip.src'), d.str('ip.dst'), d.num('ip.ttl'), d.str('eth.dst')]).toEqual([APP.ip, DB.ip, 61, DB.mac]);
    }
    for (const n of ['db SYN-ACK', 'db answer', 'db FIN-ACK']) {
      const d = only(n, 'eth0');
      expect([d.str('ip.src'), d.str('ip.dst'), d.num('ip.ttl'), d.str('eth.dst')]).toEqual([DB.ip, APP.ip, 63, APP.nodeMac]);
    }
  });

  it('NEW connections the policy does not allow are dropped at the end of the tier', () => {
    nothing('VM SYN to 5432 (not a pod)');
    nothing('app SYN to 22 (no policy)');
    nothing('app ICMP echo (no policy)');
    nothing('db SYN to 161.26.0.10:443 (egress not allowed)');
    expect(counter('-A cali-tw-calid8e1f2a3b4c -m comment --comment "cali:W_Nb5ZXmYhQ0bNYe"')).toBe(3);
    expect(counter('-A cali-fw-calid8e1f2a3b4c -m comment --comment "cali:qyHm2i8jbYwt2Zs9"')).toBe(1);
  });

  it('an unsolicited SYN-ACK is INVALID and dropped by the INVALID rule', () => {
    nothing('unsolicited SYN-ACK');
    expect(counter('-A cali-tw-calid8e1f2a3b4c -m comment --comment "cali:T8sKf3dZ1q6v-Wwj"')).toBe(1);
  });

  it('a mid-stream ACK with data opens a NEW entry (tcp_loose) the policy allows; the answer is ESTABLISHED', () => {
    expect(only('mid-stream ACK with data', DB.iface).num('tcp.dstport')).toBe(5432);
    expect(only('db answer to mid-stream', 'eth0').num('tcp.srcport')).toBe(5432);
  });

  it('the pod\'s DNS passes, its answer is ESTABLISHED, an ICMP error about it is RELATED', () => {
    expect(only('db DNS query', 'eth0').str('eth.dst')).toBe(DNS1.nodeMac);
    expect(only('DNS answer', DB.iface).num('udp.dstport')).toBe(38000);
    expect(only('db DNS query to DNS2', 'eth0').str('ip.dst')).toBe(DNS2.ip);
    const err = only('port unreachable from DNS2 (RELATED)', DB.iface);
    expect([err.num('icmp.type'), err.num('icmp.code'), err.num('ip.ttl'), err.str('icmp.quoted.ip.dst')]).toEqual([3, 3, 61, DNS2.ip]);
    expect(counter('-A cali-tw-calid8e1f2a3b4c -m comment --comment "cali:2qHBhmZC3xbe7Mmc"')).toBeGreaterThanOrEqual(1);
  });

  it('dpemu replay --node sends the same frames as the kernel', () => {
    const d = runDpemu(NODE, cfg, script, { tag: 'netpol' });
    const c = compareRuns(k, d);
    expect(c.ok, c.text).toBe(true);
  });
});
