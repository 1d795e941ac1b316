// Regenerates the sample captures in pcaps/ (run after `npm run build`): node scripts/make-samples.mjs
import { buildFrame } from '../dist/packet/index.js';
import { CaptureWriter } from '../dist/pcap/writer.js';

const CLIENT_MAC = '02:00:00:00:01:fe'; // the upstream router
const VM_MAC = '02:00:00:00:02:0a';
const frames = [];
const t0 = 1_767_225_600; // 2026-01-01
const add = (iface, f) => frames.push({ iface, f });
const up = (ip, l4) => add(0, buildFrame({ srcMac: CLIENT_MAC, dstMac: '02:00:00:00:01:01', ip, l4 }));
const vm = (ip, l4) => add(1, buildFrame({ srcMac: VM_MAC, dstMac: '02:00:00:00:02:01', ip, l4 }));
// 1. A client on the internet opens HTTPS to the public VIP; the web VM answers.
up({ src: '203.0.113.7', dst: '169.61.10.5', id: 1, df: true }, { kind: 'tcp', sport: 40000, dport: 443, seq: 1000, flags: 'S' });
vm({ src: '10.0.1.10', dst: '203.0.113.7', id: 2, df: true }, { kind: 'tcp', sport: 8443, dport: 40000, seq: 5000, ack: 1001, flags: 'SA' });
up({ src: '203.0.113.7', dst: '169.61.10.5', id: 3, df: true }, { kind: 'tcp', sport: 40000, dport: 443, seq: 1001, ack: 5001, flags: 'A' });
up({ src: '203.0.113.7', dst: '169.61.10.5', id: 4, df: true }, { kind: 'tcp', sport: 40000, dport: 443, seq: 1001, ack: 5001, flags: 'PA', payload: 'GET / HTTP/1.1\r\nHost: web\r\n\r\n' });
// 2. SSH from the internet straight to a VM is rejected with a reset.
up({ src: '203.0.113.8', dst: '10.0.1.11', id: 5, df: true }, { kind: 'tcp', sport: 40001, dport: 22, seq: 7, flags: 'S' });
// 3. The VM resolves a name through the internet: MASQUERADE to the uplink address, reply un-NATed.
vm({ src: '10.0.1.10', dst: '8.8.8.8', id: 6 }, { kind: 'udp', sport: 53001, dport: 53, payload: new Uint8Array(30) });
up({ src: '8.8.8.8', dst: '169.61.10.5', id: 7 }, { kind: 'udp', sport: 53, dport: 53001, payload: new Uint8Array(46) });
// 4. A packet to the VIP that arrives with TTL 1: ICMP time exceeded, translated back.
up({ src: '203.0.113.9', dst: '169.61.10.5', id: 8, ttl: 1 }, { kind: 'tcp', sport: 40002, dport: 443, seq: 1, flags: 'S' });
// 5. An unsolicited SYN-ACK: INVALID, dropped.
up({ src: '203.0.113.10', dst: '169.61.10.5', id: 9 }, { kind: 'tcp', sport: 443, dport: 40003, seq: 1, ack: 1, flags: 'SA' });

const w = CaptureWriter.open('pcaps/edge-flows.pcapng', {
  format: 'pcapng',
  interfaces: [
    { name: 'uplink', description: 'edge uplink (internet side)', linktype: 1 },
    { name: 'vmnet', description: 'edge VM segment', linktype: 1 },
  ],
  userAppl: 'dpemu scripts/make-samples.mjs',
});
frames.forEach(({ iface, f }, i) => w.writeRecord(f, 0, f.length, f.length, t0, i * 1_000_000, iface, undefined, 1));
w.commit();
console.log(`pcaps/edge-flows.pcapng: ${frames.length} frames`);
