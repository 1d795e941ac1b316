/**
 * The kernel differential harness checks itself:
 *  - compare.ts on synthetic runs: what it accepts (randomised fields by their properties) and
 *    what it reports (readable field-by-field diffs, missing and extra frames);
 *  - the kernel against itself: the same scenario built twice in the kernel must compare equal
 *    (NAT-chosen ports, IP IDs of built headers differ between the two runs), and nothing may be
 *    left behind in /run/netns.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { compareRuns, decodeFrame, tsharkProblems, vxlanSourcePortProblems, type InFrame, type OutFrame, type RunResult } from './support/compare.js';
import { buildFrame, buildVxlanFrame, type FrameSpec } from './support/frames.js';
import { kernelAvailability, KernelNode, liveKernelNamespaces } from './support/kernel.js';
import { readPcapng, writePcapng } from './support/pcapng.js';
import { ARTIFACTS, FIXTURES, runKernel } from './support/scenario.js';
import { steps as masqSteps } from './fixtures/kernel/masquerade.frames.js';
import { steps as ttlSteps } from './fixtures/kernel/ttl-dnat.frames.js';
import { steps as vxlanSteps } from './fixtures/kernel/vxlan.frames.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const tcp = (o: Partial<FrameSpec['ip']> = {}, sport = 40000, dport = 80): Uint8Array =>
  buildFrame({ srcMac: A, dstMac: B, ip: { src: '10.0.0.1', dst: '10.0.1.1', ttl: 63, id: 0x1234, df: true, ...o }, l4: { kind: 'tcp', sport, dport, seq: 1, flags: 'S' } });
const run = (side: 'kernel' | 'dpemu', inputs: Uint8Array[], outputs: [string, Uint8Array][]): RunResult => ({
  side,
  inputs: inputs.map((data, i): InFrame => ({ iface: 'eth0', data, name: `in${i}`, dynamic: false })),
  outputs: outputs.map(([iface, data], i): OutFrame => ({ iface, data, after: side === 'kernel' ? i : undefined })),
  artifacts: {},
});

describe('compare.ts', () => {
  it('accepts identical runs', () => {
    const f = tcp();
    expect(compareRuns(run('kernel', [f], [['eth1', f]]), run('dpemu', [f], [['eth1', f]])).ok).toBe(true);
  });

  it('names the field, the frame, the interface and both values', () => {
    const input = tcp({ ttl: 64 });
    const c = compareRuns(run('kernel', [input], [['eth1', tcp({ ttl: 63 })]]), run('dpemu', [input], [['eth1', tcp({ ttl: 64 })]]));
    expect(c.ok).toBe(false);
    expect(c.text).toContain('frame 0 on eth1');
    expect(c.text).toContain('field ip.ttl kernel 63 dpemu 64');
    // The checksum follows the TTL: reported too.
    expect(c.text).toContain('field ip.checksum');
  });

  it('reports missing, extra and misplaced frames', () => {
    const f = tcp();
    const c = compareRuns(run('kernel', [f], [['eth1', f]]), run('dpemu', [f], [['eth2', f]]));
    expect(c.problems.join('\n')).toMatch(/eth1: kernel sent 1 frames, dpemu 0/);
    expect(c.problems.join('\n')).toMatch(/eth2: kernel sent 0 frames, dpemu 1/);
  });

  it('verifies checksums on each side', () => {
    const bad = tcp();
    bad[14 + 10] ^= 0xff;
    expect(decodeFrame(bad).problems).toEqual(['ip.checksum is wrong']);
    const c = compareRuns(run('kernel', [tcp()], [['eth1', tcp()]]), run('dpemu', [tcp()], [['eth1', bad]]));
    expect(c.text).toContain('dpemu: frame 0 on eth1: ip.checksum is wrong');
  });

  it('lets the IP ID of headers the node built differ, not of forwarded ones', () => {
    const input = tcp({ id: 0x1111 });
    const err = (id: number) =>
      buildFrame({ srcMac: B, dstMac: A, ip: { src: '10.0.0.254', dst: '10.0.0.1', id, tos: 0xc0 }, l4: { kind: 'icmp', type: 11, code: 0, payload: input.subarray(14, 14 + 28) } });
    expect(compareRuns(run('kernel', [input], [['eth0', err(0x5555)]]), run('dpemu', [input], [['eth0', err(0x0001)]])).ok).toBe(true);
    const c = compareRuns(run('kernel', [input], [['eth1', tcp({ id: 0x1111 })]]), run('dpemu', [input], [['eth1', tcp({ id: 0x1112 })]]));
    expect(c.text).toContain('field ip.id kernel 0x1111 dpemu 0x1112');
  });

  it('lets NAT-chosen ports differ when they map one to one, not kept ones', () => {
    const input = tcp({}, 45000, 443);
    const out = (p: number) => tcp({}, p, 443);
    // The kernel kept 45000, dpemu changed it: reported.
    const c1 = compareRuns(run('kernel', [input], [['eth1', out(45000)]]), run('dpemu', [input], [['eth1', out(50000)]]));
    expect(c1.text).toContain('field tcp.srcport kernel 45000 dpemu 50000');
    // Both invented a port (a clash): fine if stable.
    expect(compareRuns(run('kernel', [input], [['eth1', out(33000)], ['eth1', out(33000)]]), run('dpemu', [input], [['eth1', out(51000)], ['eth1', out(51000)]])).ok).toBe(true);
    // ... not if dpemu's mapping is not one to one.
    const c3 = compareRuns(run('kernel', [input], [['eth1', out(33000)], ['eth1', out(33000)]]), run('dpemu', [input], [['eth1', out(51000)], ['eth1', out(51001)]]));
    expect(c3.ok).toBe(false);
  });

  it('checks VXLAN source ports by their properties', () => {
    const inner = (sport: number) => buildFrame({ srcMac: A, dstMac: B, ip: { src: '172.30.0.1', dst: '172.30.1.1', ttl: 63 }, l4: { kind: 'tcp', sport, dport: 80, flags: 'S' } });
    const vx = (port: number, innerPort: number) => buildVxlanFrame({ srcMac: A, dstMac: B, ip: { src: '10.0.0.1', dst: '10.0.0.2', id: 7 }, sport: port, dport: 4789, vni: 42, inner: inner(innerPort) });
    const frames = (ports: [number, number][]) => ports.map(([p, i]) => ({ iface: 'eth0', d: decodeFrame(vx(p, i)) }));
    expect(vxlanSourcePortProblems(frames([[40000, 1], [40000, 1], [50000, 2]])).problems).toEqual([]);
    expect(vxlanSourcePortProblems(frames([[40000, 1], [40001, 1]])).problems).toHaveLength(1);
    expect(vxlanSourcePortProblems(frames([[61000, 1]])).problems).toHaveLength(1);
    const input = inner(1);
    expect(compareRuns(run('kernel', [input], [['eth0', vx(40000, 1)]]), run('dpemu', [input], [['eth0', vx(55555, 1)]])).ok).toBe(true);
  });

  it('reads back the pcapng it writes (and tshark reads it)', () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const dir = mkdtempSync(join(ARTIFACTS, 'pcapng-'));
    const f = join(dir, 'x.pcapng');
    writePcapng(f, ['eth0', 'cali7f3a91c2d4e'], [
      { iface: 'cali7f3a91c2d4e', data: tcp(), tsNs: 1_700_000_000_123_456_789n, comment: 'hello' },
      { iface: 'eth0', data: tcp({ ttl: 9 }), tsNs: 1_700_000_001_000_000_000n },
    ]);
    const r = readPcapng(f);
    expect(r.ifaces).toEqual(['eth0', 'cali7f3a91c2d4e']);
    expect(r.records.map((x) => [x.iface, x.tsNs, x.comment])).toEqual([
      ['cali7f3a91c2d4e', 1_700_000_000_123_456_789n, 'hello'],
      ['eth0', 1_700_000_001_000_000_000n, undefined],
    ]);
    expect(tsharkProblems(f)).toEqual([]);
  });
});

const avail = kernelAvailability();
if (!avail.ok) console.warn(`kernel-harness: kernel tests skipped: ${avail.reason}`);

describe.skipIf(!avail.ok)('the kernel against itself', () => {
  afterAll(() => {
    expect(liveKernelNamespaces()).toEqual([]);
  });

  // Scenarios whose kernel output has random parts: NAT ports and ids on a clash (masquerade),
  // IP IDs of ICMP errors the node builds (ttl-dnat), VXLAN outer headers (vxlan).
  for (const [name, file, steps] of [
    ['MASQUERADE', 'masquerade', masqSteps],
    ['TTL expiry', 'ttl-dnat', ttlSteps],
    ['VXLAN', 'vxlan', vxlanSteps],
  ] as const) {
    it(`two kernel runs of the ${name} scenario compare equal`, async () => {
      const cfg = loadNodeConfig(join(FIXTURES, `${file}.yaml`));
      const script = steps(cfg);
      const a = await runKernel(cfg, script, { tag: `self-${file}-a` });
      const b = await runKernel(cfg, script, { tag: `self-${file}-b` });
      // Nothing but the frames' consequences: no ARP, IGMP or IPv6 noise.
      expect([a.noiseBeforeStart, b.noiseBeforeStart]).toEqual([0, 0]);
      const c = compareRuns(a, { ...b, side: 'dpemu' });
      expect(c.ok, c.text).toBe(true);
    });
  }

  it('builds nothing outside its namespaces and deletes them by name', () => {
    const cfg = loadNodeConfig(join(FIXTURES, 'service-nth.yaml'));
    const node = KernelNode.create(cfg, { tag: 'self-c' });
    try {
      expect(existsSync(`/run/netns/${node.r}`)).toBe(true);
      expect(existsSync(`/run/netns/${node.p}`)).toBe(true);
      // P has no addresses at all (the peers never answer).
      const addrs = JSON.parse(node.inP(['ip', '-j', 'addr', 'show'])) as { ifname: string; addr_info: { family: string }[] }[];
      expect(addrs.filter((i) => i.ifname !== 'lo').flatMap((i) => i.addr_info)).toEqual([]);
    } finally {
      node.destroy();
    }
    expect(existsSync(`/run/netns/${node.r}`)).toBe(false);
    expect(existsSync(`/run/netns/${node.p}`)).toBe(false);
  });
});
