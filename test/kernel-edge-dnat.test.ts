/**
 * Scenario 4 (kernel differential): an edge that DNATs a public VIP and filters forwarded
 * traffic on the original destination (conntrack --ctorigdst/--ctorigdstport).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { compareRuns } from './support/compare.js';
import { kernelAvailability, liveKernelNamespaces } from './support/kernel.js';
import { expectNothingSent, expectOnlyFrame, expectValidCapture, FIXTURES, runDpemu, runKernel, type KernelRunResult } from './support/scenario.js';
import { CLIENT, EDGE_PRIVATE, EDGE_PUBLIC, REMOTE, steps, UPSTREAM_MAC, VIP, WEB } from './fixtures/kernel/edge-dnat.frames.js';

const avail = kernelAvailability();
if (!avail.ok) console.warn(`kernel-edge-dnat: kernel tests skipped: ${avail.reason}`);

const NODE = join(FIXTURES, 'edge-dnat.yaml');

describe.skipIf(!avail.ok)('kernel differential: edge DNAT filtered on the original destination', () => {
  const cfg = loadNodeConfig(NODE);
  const script = steps(cfg);
  let k: KernelRunResult;

  beforeAll(async () => {
    k = await runKernel(cfg, script, { tag: 'edge' });
  });
  afterAll(() => {
    expect(liveKernelNamespaces()).toEqual([]);
  });

  const only = (name: string, iface: string) => expectOnlyFrame(k, name, iface);
  const nothing = (name: string) => expectNothingSent(k, name);

  it('every frame the kernel sent is valid (tshark, checksum validation on)', () => {
    expectValidCapture(k);
  });

  it('VIP:443 is DNATed to the web VM and allowed; replies come from VIP:443', () => {
    for (const n of ['client SYN to VIP:443', 'client ACK', 'client request']) {
      const d = only(n, 'eth1');
      expect([d.str('ip.src'), d.str('ip.dst'), d.num('tcp.dstport'), d.num('ip.ttl'), d.str('eth.dst')]).toEqual([CLIENT, WEB.ip, 8443, 49, WEB.mac]);
    }
    for (const n of ['web SYN-ACK', 'web response']) {
      const d = only(n, 'eth0');
      expect([d.str('ip.src'), d.num('tcp.srcport'), d.str('ip.dst'), d.num('ip.ttl'), d.str('eth.dst')]).toEqual([VIP, 443, CLIENT, 63, UPSTREAM_MAC]);
    }
  });

  it('the filter sees the original destination: VIP:80 (DNATed) and the VM address (not DNATed) are dropped', () => {
    nothing('client SYN to VIP:80 (DNATed, not published)');
    nothing('client SYN to the web VM itself');
  });

  it('the VIP\'s own ports and pings from outside end in INPUT DROP', () => {
    nothing('client SYN to VIP:8443 (local, INPUT drops)');
    nothing('client ping to VIP (INPUT drops)');
  });

  it('VMs are masqueraded to the primary address of eth0, not the VIP', () => {
    const s = only('web SYN to the internet', 'eth0');
    expect([s.str('ip.src'), s.num('tcp.srcport'), s.str('ip.dst')]).toEqual([EDGE_PUBLIC, 40100, REMOTE]);
    const r = only('internet SYN-ACK to the edge', 'eth1');
    expect([r.str('ip.src'), r.str('ip.dst'), r.num('tcp.dstport')]).toEqual([REMOTE, WEB.ip, 40100]);
    expect(only('web ACK to the internet', 'eth0').str('ip.src')).toBe(EDGE_PUBLIC);
  });

  it('the edge answers a ping on its private address (local in, local out)', () => {
    const r = only('web ping to the edge', 'eth1');
    expect([r.str('ip.src'), r.str('ip.dst'), r.num('icmp.type'), r.num('icmp.ident'), r.num('icmp.seq'), r.num('ip.ttl'), r.str('eth.dst')]).toEqual([EDGE_PRIVATE, WEB.ip, 0, 0x0202, 7, 64, WEB.mac]);
  });

  it('dpemu replay --node sends the same frames as the kernel', () => {
    const d = runDpemu(NODE, cfg, script, { tag: 'edge' });
    const c = compareRuns(k, d);
    expect(c.ok, c.text).toBe(true);
  });
});
