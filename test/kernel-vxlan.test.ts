/**
 * Scenario 5 (kernel differential): routing into a VXLAN device (Calico VXLAN mode) and
 * decapsulation of what the remote worker sends.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { compareRuns, decodeFrame, vxlanSourcePortProblems, type Decoded } from './support/compare.js';
import { kernelAvailability, liveKernelNamespaces } from './support/kernel.js';
import { expectNothingSent, expectOnlyFrame, expectValidCapture, FIXTURES, runDpemu, runKernel, sentAfter, type KernelRunResult } from './support/scenario.js';
import { NODE_IP, POD, REMOTE_NODE, REMOTE_POD, REMOTE_VTEP_MAC, steps, VNI } from './fixtures/kernel/vxlan.frames.js';

const avail = kernelAvailability();
if (!avail.ok) console.warn(`kernel-vxlan: kernel tests skipped: ${avail.reason}`);

const NODE = join(FIXTURES, 'vxlan.yaml');

describe.skipIf(!avail.ok)('kernel differential: routing into VXLAN', () => {
  const cfg = loadNodeConfig(NODE);
  const script = steps(cfg);
  let k: KernelRunResult;

  beforeAll(async () => {
    k = await runKernel(cfg, script, { tag: 'vxlan' });
  });
  afterAll(() => {
    expect(liveKernelNamespaces()).toEqual([]);
  });

  const sent = (name: string) => sentAfter(k, name);
  const only = (name: string, iface: string) => expectOnlyFrame(k, name, iface);
  const nothing = (name: string) => expectNothingSent(k, name);
  /** Outer headers as §10 describes them. */
  const expectOuter = (d: Decoded) => {
    expect(d.str('eth.src')).toBe('06:a1:0e:05:00:05');
    expect(d.str('eth.dst')).toBe(REMOTE_NODE.mac);
    expect([d.str('ip.src'), d.str('ip.dst'), d.num('ip.ttl'), d.num('ip.flags.df'), d.num('ip.proto')]).toEqual([NODE_IP, REMOTE_NODE.ip, 64, 0, 17]);
    expect(d.num('udp.dstport')).toBe(4789);
    expect(d.str('udp.checksum')).not.toBe('0x0000');
    expect([d.str('vxlan.flags'), d.num('vxlan.vni')]).toEqual(['0x08', VNI]);
    expect(d.str('inner.eth.src')).toBe('66:1e:2a:05:00:05');
    expect(d.str('inner.eth.dst')).toBe(REMOTE_VTEP_MAC);
    expect(d.str('inner.ip.dst')).toBe(REMOTE_POD);
    expect(d.num('inner.ip.ttl')).toBe(63);
  };

  it('every frame the kernel sent is valid (tshark, checksum validation on)', () => {
    expectValidCapture(k);
  });

  it('pod traffic leaves encapsulated: outer TTL 64, DF clear, UDP 4789 with a checksum, VNI, inner TTL-1', () => {
    for (const n of ['flow1 SYN', 'flow1 ACK', 'flow2 SYN', 'echo id 1', 'echo id 2', 'UDP with DSCP EF and ECN CE', 'flow1 1450-byte segment with DF (fits)']) {
      expectOuter(only(n, 'eth0'));
    }
  });

  it('outer source ports: in 32768-60999, one per flow, ICMP ids not hashed', () => {
    const frames = k.outputs.map((o) => ({ iface: o.iface, d: decodeFrame(o.data) }));
    expect(vxlanSourcePortProblems(frames).problems).toEqual([]);
    const port = (n: string) => only(n, 'eth0').num('udp.srcport');
    expect(port('flow1 ACK')).toBe(port('flow1 SYN'));
    expect(port('echo id 1')).toBe(port('echo id 2'));
  });

  it('DSCP is not copied to the outer header, ECN is (CE becomes ECT(0))', () => {
    const d = only('UDP with DSCP EF and ECN CE', 'eth0');
    expect(d.str('inner.ip.dsfield')).toBe('0xbb');
    expect(d.str('ip.dsfield')).toBe('0x02');
  });

  it('an inner packet of the device MTU (1450) with DF makes a 1500-byte outer packet', () => {
    const d = only('flow1 1450-byte segment with DF (fits)', 'eth0');
    expect([d.num('ip.len'), d.num('inner.ip.len')]).toEqual([1500, 1450]);
  });

  it('1460 bytes with DF: ICMP frag-needed (mtu 1450) back to the pod, nothing encapsulated', () => {
    const d = only('1460-byte segment with DF (too big)', POD.iface);
    expect([d.num('icmp.type'), d.num('icmp.code'), d.num('icmp.mtu'), d.str('ip.dst'), d.num('ip.ttl'), d.str('ip.dsfield'), d.num('ip.flags.df')]).toEqual([3, 4, 1450, POD.ip, 64, '0xc0', 0]);
    expect([d.str('icmp.quoted.ip.src'), d.str('icmp.quoted.ip.dst'), d.num('icmp.quoted.ip.ttl')]).toEqual([POD.ip, REMOTE_POD, 64]);
    // The pod's veth has no address: the source is the preferred source of the route back to
    // the pod, which falls back to the first universe-scope address of the node (eth0's).
    expect(d.str('ip.src')).toBe(NODE_IP);
    // The kernel quotes as much as fits in 576 bytes: 548 bytes of the 1460.
    expect([d.num('ip.len'), d.num('icmp.quoted.ip.quoted_bytes')]).toEqual([576, 548]);
  });

  it('1460 bytes without DF: fragmented before encapsulation (1444 + 36), one port for both', () => {
    const out = sent('1460-byte UDP without DF (fragmented)');
    expect(out.map((o) => o.iface)).toEqual(['eth0', 'eth0']);
    const [a, b] = out.map((o) => o.d);
    expectOuter(a!);
    expectOuter(b!);
    expect([a!.num('inner.ip.len'), a!.num('inner.ip.flags.mf'), a!.num('inner.ip.frag_offset')]).toEqual([1444, 1, 0]);
    expect([b!.num('inner.ip.len'), b!.num('inner.ip.flags.mf'), b!.num('inner.ip.frag_offset')]).toEqual([36, 0, 1424]);
    expect(a!.str('inner.ip.id')).toBe(b!.str('inner.ip.id'));
    expect(a!.num('udp.srcport')).toBe(b!.num('udp.srcport'));
  });

  it('encapsulated answers are decapsulated and forwarded to the pod (inner TTL-1)', () => {
    for (const n of ['flow1 SYN-ACK, encapsulated', 'flow1 data, encapsulated']) {
      const d = only(n, POD.iface);
      expect([d.str('ip.src'), d.str('ip.dst'), d.num('ip.ttl'), d.str('eth.src'), d.str('eth.dst')]).toEqual([REMOTE_POD, POD.ip, 62, 'ee:ee:ee:ee:ee:ee', POD.mac]);
    }
  });

  it('VXLAN with an unknown VNI or a foreign inner MAC is dropped', () => {
    nothing('VXLAN with an unknown VNI');
    nothing('VXLAN whose inner MAC is not the device\'s');
  });

  it('dpemu replay --node sends the same frames as the kernel', () => {
    const d = runDpemu(NODE, cfg, script, { tag: 'vxlan' });
    const c = compareRuns(k, d, { ignoreInterfaces: ['vxlan.calico'] });
    expect(c.ok, c.text).toBe(true);
  });
});
