/**
 * Scenario 7 (kernel differential): fragmentation on a smaller egress MTU, ICMP frag-needed
 * with the next-hop MTU, reassembly of incoming fragments by conntrack.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../src/elements/linux/config.js';
import { compareRuns } from './support/compare.js';
import { kernelAvailability, liveKernelNamespaces } from './support/kernel.js';
import { expectOnlyFrame, expectValidCapture, FIXTURES, runDpemu, runKernel, sentAfter, type KernelRunResult } from './support/scenario.js';
import { DST, ROUTER_IP, SRC, steps } from './fixtures/kernel/fragment.frames.js';

const avail = kernelAvailability();
if (!avail.ok) console.warn(`kernel-fragment: kernel tests skipped: ${avail.reason}`);

const NODE = join(FIXTURES, 'fragment.yaml');

describe.skipIf(!avail.ok)('kernel differential: fragmentation and frag-needed', () => {
  const cfg = loadNodeConfig(NODE);
  const script = steps(cfg);
  let k: KernelRunResult;

  beforeAll(async () => {
    k = await runKernel(cfg, script, { tag: 'frag' });
  });
  afterAll(() => {
    expect(liveKernelNamespaces()).toEqual([]);
  });

  it('every frame the kernel sent is valid (tshark, checksum validation on)', () => {
    expectValidCapture(k);
  });

  const sent = (name: string) => sentAfter(k, name);
  const only = (name: string, iface: string) => expectOnlyFrame(k, name, iface);
  /** [ip.len, MF, offset] of each frame, plus the common IP ID, TTL and DF. */
  const layout = (name: string, iface: string) => {
    const out = sent(name);
    expect(out.every((o) => o.iface === iface), `${name}: all on ${iface}`).toBe(true);
    const ds = out.map((o) => o.d);
    expect(new Set(ds.map((d) => `${d.str('ip.id')} ttl ${d.num('ip.ttl')} df ${d.num('ip.flags.df')}`)).size).toBe(1);
    return ds.map((d) => [d.num('ip.len'), d.num('ip.flags.mf'), d.num('ip.frag_offset')]);
  };
  const expectIcmpError = (name: string, type: number, code: number) => {
    const d = only(name, 'eth0');
    // From the address of the route back to the sender; as much quoted as fits in 576 bytes.
    expect([d.str('ip.src'), d.str('ip.dst'), d.num('ip.ttl'), d.str('ip.dsfield'), d.num('ip.flags.df'), d.num('ip.len')]).toEqual([ROUTER_IP, SRC.ip, 64, '0xc0', 0, 576]);
    expect([d.num('icmp.type'), d.num('icmp.code'), d.num('icmp.quoted.ip.quoted_bytes')]).toEqual([type, code, 548]);
    expect([d.str('icmp.quoted.ip.src'), d.str('icmp.quoted.ip.dst')]).toEqual([SRC.ip, DST.ip]);
    return d;
  };

  it('without DF a 1500-byte datagram leaves in two fragments (1396 + 124), same IP ID, TTL-1', () => {
    expect(layout('UDP 1500 without DF', 'eth1')).toEqual([
      [1396, 1, 0],
      [124, 0, 1376],
    ]);
    expect(sent('UDP 1500 without DF')[0]!.d.str('ip.id')).toBe('0x8a01');
    expect(sent('UDP 1500 without DF')[0]!.d.str('eth.dst')).toBe(DST.mac);
    expect(layout('ICMP echo 1500 without DF', 'eth1')).toEqual([
      [1396, 1, 0],
      [124, 0, 1376],
    ]);
  });

  it('with DF: ICMP frag-needed carrying the next-hop MTU 1400; 1400 bytes still fit', () => {
    expect(expectIcmpError('TCP 1500 with DF', 3, 4).num('icmp.mtu')).toBe(1400);
    expect(expectIcmpError('UDP 1401 with DF', 3, 4).num('icmp.mtu')).toBe(1400);
    const d = only('UDP 1400 with DF (fits)', 'eth1');
    expect([d.num('ip.len'), d.num('ip.flags.df'), d.num('ip.ttl')]).toEqual([1400, 1, 63]);
  });

  it('fragments that arrive are reassembled (conntrack) and cut again for the egress MTU', () => {
    expect(sent('first fragment of a 2000-byte datagram')).toEqual([]);
    expect(layout('second fragment of a 2000-byte datagram', 'eth1')).toEqual([
      [1396, 1, 0],
      [624, 0, 1376],
    ]);
  });

  it('on a bigger egress MTU the kernel keeps the size of the largest fragment received', () => {
    expect(sent('first 1396-byte fragment from the 1400 side')).toEqual([]);
    expect(layout('second fragment from the 1400 side', 'eth0')).toEqual([
      [1396, 1, 0],
      [624, 0, 1376],
    ]);
  });

  it('TTL 1 is checked before the MTU: time-exceeded, with or without DF', () => {
    expect(expectIcmpError('UDP 1500 without DF and TTL 1', 11, 0).num('icmp.quoted.ip.ttl')).toBe(1);
    expectIcmpError('UDP 1500 with DF and TTL 1', 11, 0);
  });

  it('dpemu replay --node sends the same frames as the kernel', () => {
    const d = runDpemu(NODE, cfg, script, { tag: 'frag' });
    const c = compareRuns(k, d);
    expect(c.ok, c.text).toBe(true);
  });
});
