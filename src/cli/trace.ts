/**
 * `dpemu trace`: one packet through a node, step by step (like `ovs-appctl ofproto/trace`).
 * Either frame N of a capture (the frames before it run first, silently, so that conntrack,
 * `nth` counters and `recent` tables are what they would be), or a packet described on the
 * command line: `tcp 10.0.0.1:1234 > 10.0.0.2:80 syn in eth0`.
 */
import { CaptureReader } from '../pcap/reader.js';
import { RecordBatch, LINKTYPE_ETHERNET } from '../pcap/types.js';
import { buildFrame, parseIpv4, macToString } from '../packet/index.js';
import { loadNodeConfig } from '../elements/linux/config.js';
import { FATE_DELIVERED, FATE_DROPPED, FATE_ERROR, FATE_HELD, FATE_LEFT, LinuxNode, type FrameSink } from '../elements/linux/node.js';
import { Trace } from '../netfilter/trace.js';
import { IngressMap } from '../engine/ingress.js';
import { UserError, EXIT_USAGE } from './errors.js';

interface TraceCliOptions {
  node: string;
  in?: string;
  frame?: string;
  ingress?: string;
  seed: string;
}

class TraceSink implements FrameSink {
  out: string[] = [];
  constructor(private readonly node: LinuxNode) {}
  frame(buf: Uint8Array, off: number, len: number, outIf: number): void {
    this.out.push(`${this.node.interfaceNames[outIf]}: ${len} bytes ${macToString(buf, off + 6)} > ${macToString(buf, off)}`);
  }
}

export function runTrace(packet: string[], opts: TraceCliOptions): void {
  const cfg = loadNodeConfig(opts.node);
  const node = new LinuxNode(cfg, { seed: Number(opts.seed) });
  const trace = new Trace();
  const sink = new TraceSink(node);
  let fate: number;
  if (opts.in !== undefined) {
    if (packet.length) throw new UserError('give either --in/--frame or a packet description, not both', EXIT_USAGE);
    const target = Number(opts.frame ?? '1');
    if (!Number.isInteger(target) || target < 1) throw new UserError(`--frame must be a frame number (1 = first), not "${opts.frame}"`);
    const ingress = new IngressMap(opts.ingress, (n) => node.ifIndex(n));
    const reader = CaptureReader.open(opts.in);
    const batch = new RecordBatch(1024);
    const quiet: FrameSink = { frame() {} };
    let no = 0;
    fate = -1;
    try {
      outer: for (;;) {
        const n = reader.next(batch);
        if (n === 0) break;
        for (let i = 0; i < n; i++) {
          no++;
          const ifc = reader.interfaces[batch.iface[i]!]!;
          const off = batch.offset[i]!;
          let inIf = ingress.fromSidecar(no - 1);
          if (inIf < 0 && ifc.name !== undefined) inIf = node.ifIndex(ifc.name);
          if (inIf < 0 && ifc.linktype === LINKTYPE_ETHERNET) inIf = node.ifByMac(batch.buf, off);
          const last = no === target;
          if (inIf < 0) {
            if (last) throw new UserError(`frame ${no}: no ingress interface (use --ingress)`, 3);
            continue;
          }
          fate = node.receive(batch.buf, batch.dv, off, batch.caplen[i]!, batch.origlen[i]!, ifc.linktype, ifc.fcsLen, inIf, batch.tsSec[i]!, batch.tsNsec[i]!, last ? sink : quiet, last ? trace : null);
          if (last) break outer;
        }
      }
    } finally {
      reader.close();
    }
    if (no < target) throw new UserError(`${opts.in} has ${no} frames; there is no frame ${target}`, 3);
  } else {
    if (!packet.length) throw new UserError('give --in FILE --frame N, or a packet such as: tcp 10.0.0.1:1234 > 10.0.0.2:80 syn in eth0');
    const { frame, inIf } = describedPacket(packet.join(' '), node);
    fate = node.receive(frame, new DataView(frame.buffer, frame.byteOffset, frame.byteLength), 0, frame.length, frame.length, LINKTYPE_ETHERNET, 0, inIf, 0, 0, sink, trace);
  }
  let out = trace.toString() + '\n\n';
  if (fate === FATE_LEFT) out += `Result: sent\n${sink.out.map((s) => '  ' + s).join('\n')}\n`;
  else if (fate === FATE_DELIVERED) out += `Result: delivered locally (${node.reason})\n`;
  else if (fate === FATE_DROPPED) out += `Result: dropped: ${node.reason}\n${sink.out.length ? `Generated:\n${sink.out.map((s) => '  ' + s).join('\n')}\n` : ''}`;
  else if (fate === FATE_ERROR) out += `Result: error: ${node.reason}\n`;
  else if (fate === FATE_HELD) out += 'Result: fragment held for reassembly (its datagram is not complete yet)\n';
  process.stdout.write(out);
}

/**
 * `PROTO SRC[:PORT] > DST[:PORT] [FLAGS] in IFACE [ttl N] [tos N] [len N] [df] [id N] [type T code C]`
 * e.g. `tcp 10.0.0.1:1234 > 10.0.0.2:80 syn in eth0`, `udp 10.0.0.1:53 > 10.0.0.2:53 in eth1 ttl 1`,
 * `icmp 10.0.0.1 > 10.0.0.2 type 8 in eth0`.
 */
export function describedPacket(text: string, node: LinuxNode): { frame: Uint8Array; inIf: number } {
  const bad = (msg: string): never => {
    throw new UserError(`packet "${text}": ${msg}`);
  };
  const tok = text.trim().split(/\s+/);
  const proto = tok[0];
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'icmp') bad('starts with tcp, udp or icmp');
  const hostPort = (s: string | undefined, what: string): [number, number] => {
    if (s === undefined) return bad(`no ${what}`);
    const [h, p] = s.split(':');
    let ip = 0;
    try {
      ip = parseIpv4(h!);
    } catch {
      bad(`${what} "${s}" is not IPv4[:port]`);
    }
    const port = p === undefined ? 0 : Number(p);
    if (!Number.isInteger(port) || port < 0 || port > 65535) bad(`bad port in "${s}"`);
    if (proto !== 'icmp' && p === undefined) bad(`${what} needs a port`);
    return [ip, port];
  };
  const [src, sport] = hostPort(tok[1], 'source');
  if (tok[2] !== '>') bad('expected ">" between source and destination');
  const [dst, dport] = hostPort(tok[3], 'destination');
  let flags = 'S';
  let inName: string | undefined;
  let ttl = 64;
  let tos = 0;
  let len = 0;
  let df = false;
  let id = 0;
  let icmpType = 8;
  let icmpCode = 0;
  const num = (s: string | undefined, what: string): number => {
    const n = Number(s);
    if (s === undefined || !Number.isInteger(n) || n < 0) bad(`${what} needs a number`);
    return n;
  };
  for (let i = 4; i < tok.length; i++) {
    const w = tok[i]!.toLowerCase();
    if (w === 'in') inName = tok[++i];
    else if (w === 'ttl') ttl = num(tok[++i], 'ttl');
    else if (w === 'tos') tos = num(tok[++i], 'tos');
    else if (w === 'len') len = num(tok[++i], 'len');
    else if (w === 'id') id = num(tok[++i], 'id');
    else if (w === 'df') df = true;
    else if (w === 'type') icmpType = num(tok[++i], 'type');
    else if (w === 'code') icmpCode = num(tok[++i], 'code');
    else if (proto === 'tcp' && /^(syn|ack|fin|rst|psh|synack|syn-ack|[SAFRPU.]+)$/i.test(tok[i]!)) {
      const t = tok[i]!;
      flags = { syn: 'S', ack: 'A', fin: 'FA', rst: 'R', psh: 'PA', synack: 'SA', 'syn-ack': 'SA' }[t.toLowerCase()] ?? t.toUpperCase();
    } else bad(`unexpected "${tok[i]}"`);
  }
  if (inName === undefined) bad('say which interface it arrives on: "in IFACE"');
  const inIf = node.ifIndex(inName!);
  if (inIf < 0) bad(`"${inName}" is not an interface of the node (${node.interfaceNames.join(', ')})`);
  const ifc = node.ifaces[inIf]!;
  const headers = 20 + (proto === 'tcp' ? 20 : 8);
  const payload = new Uint8Array(Math.max(0, len - headers));
  const l4 =
    proto === 'tcp'
      ? { kind: 'tcp' as const, sport, dport, seq: 1000, ack: flags.includes('A') ? 1 : 0, flags, payload }
      : proto === 'udp'
        ? { kind: 'udp' as const, sport, dport, payload }
        : { kind: 'icmp' as const, type: icmpType, code: icmpCode, id: 1, seq: 1, payload };
  const frame = buildFrame({
    srcMac: '02:00:00:00:ff:01',
    dstMac: ifc.mac ?? '02:00:00:00:ff:02',
    ip: { src, dst, ttl, tos, df, id },
    l4,
  });
  return { frame, inIf };
}
