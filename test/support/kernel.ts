/**
 * Build a dpemu node (src/elements/linux/config.ts) in the real Linux kernel, inside two
 * network namespaces created here, send frames into it and capture what it sends.
 *
 *  - namespace R (`dpemu-<pid>-<tag>-r`) is the router under test: one veth end per node
 *    interface (same name, MAC, MTU, addresses), vxlan devices, routes (`ip route add` with the
 *    node file's text), permanent neighbours, sysctls, `ipset restore`, `iptables-restore`.
 *  - namespace P (`dpemu-<pid>-<tag>-p`) holds the peer ends (same names as in R, same MTU, no
 *    addresses, IPv6 off: the peers never answer anything).
 *  - a small python3 program in P (AF_PACKET) injects each frame on the peer end of the given
 *    interface, so that R receives it there, and captures what R sends on every peer end (frames
 *    whose source MAC is the router end's MAC and that P did not send). It is pinned to one CPU
 *    and pauses after each frame, so that the kernel has finished with frame k (including what it
 *    sent because of it) before frame k+1 goes in.
 *
 * Nothing is ever sent outside these namespaces: every device is created inside R (its peer
 * moved straight into P), nothing in the root namespace is touched, and both namespaces are
 * deleted by their exact names in destroy(), which also runs from a process 'exit' hook.
 *
 * Harness settings that are not in the node file (they are measurement necessities):
 *  - IPv6 disabled in R and P (no router solicitations, no ND noise);
 *  - TX checksum offload off on every device of R (SIOCETHTOOL from python, no ethtool needed):
 *    with it on, packets R builds are captured with partial checksums (SEMANTICS.md §10);
 *  - net.netfilter.nf_conntrack_max is not written (read-only outside the initial namespace).
 * Everything else is the kernel's default for a new namespace (rp_filter 0, send_redirects 1,
 * icmp_ratelimit 1000 ms with a burst of 6 per destination, ...), plus the node's sysctls with
 * dpemu's defaults (ip_forward 1 unless the node says 0).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface, type Interface as ReadLine } from 'node:readline';
import type { NodeConfig } from '../../src/elements/linux/config.js';

// ---------------------------------------------------------------------------------------------
// Running commands

export class KernelSetupError extends Error {
  override readonly name = 'KernelSetupError';
}

export interface CmdResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    if (dir && existsSync(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return undefined;
}

/** The python3 used inside the namespaces (the system one when there is one). */
function python(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : (which('python3') ?? 'python3');
}

function run(argv: string[], input?: string, timeoutMs = 20_000): CmdResult {
  const r = spawnSync(argv[0]!, argv.slice(1), { input, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } });
  if (r.error) return { status: null, stdout: '', stderr: r.error.message };
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runOk(argv: string[], input?: string, what?: string): string {
  const r = run(argv, input);
  if (r.status !== 0) {
    throw new KernelSetupError(`${what ? `${what}: ` : ''}\`${argv.join(' ')}\` exited ${r.status}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// Availability

export interface KernelAvailability {
  ok: boolean;
  /** Why the kernel tests cannot run here (empty when ok). */
  reason: string;
}

let availability: KernelAvailability | undefined;

/**
 * Can this process build namespaces (root, ip, python3, iptables-restore, ipset)? Probes once by
 * creating and deleting a namespace of its own. DPEMU_KERNEL_TESTS=skip turns the kernel tests
 * off.
 */
export function kernelAvailability(): KernelAvailability {
  if (availability) return availability;
  const no = (reason: string): KernelAvailability => (availability = { ok: false, reason });
  if (process.env.DPEMU_KERNEL_TESTS === 'skip') return no('DPEMU_KERNEL_TESTS=skip');
  if (process.platform !== 'linux') return no(`not Linux (${process.platform})`);
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return no('not root (network namespaces need CAP_NET_ADMIN)');
  for (const tool of ['ip', 'iptables-restore', 'iptables-save', 'ipset', 'sysctl']) {
    if (!which(tool)) return no(`${tool} not found (apt-get install iproute2 iptables ipset procps)`);
  }
  if (run([python(), '-c', 'import socket, fcntl, ctypes; socket.AF_PACKET']).status !== 0) return no('python3 with AF_PACKET support not found');
  const probe = `dpemu-${process.pid}-probe`;
  const r = run(['ip', 'netns', 'add', probe]);
  if (r.status !== 0) return no(`cannot create a network namespace: ${r.stderr.trim()}`);
  run(['ip', 'netns', 'del', probe]);
  return (availability = { ok: true, reason: '' });
}

// ---------------------------------------------------------------------------------------------
// Namespace registry: whatever this process created is deleted by name, also on exit.

const liveNamespaces = new Set<string>();
let exitHook = false;

function cleanupAll(): void {
  for (const ns of [...liveNamespaces]) deleteNamespace(ns);
}

function registerNamespace(name: string): void {
  liveNamespaces.add(name);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', cleanupAll);
    // A signal (vitest stopping a worker, ^C) skips 'exit' hooks: clean up, then let the
    // signal do what it would have done.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        cleanupAll();
        process.kill(process.pid, sig);
      });
    }
  }
}

function deleteNamespace(name: string): void {
  if (!liveNamespaces.has(name)) return;
  // Deleting the namespace destroys the devices in it (the veth pairs and vxlan devices).
  const r = run(['ip', 'netns', 'del', name]);
  if (r.status === 0 || /No such file|not found|Invalid argument/i.test(r.stderr)) liveNamespaces.delete(name);
}

/** Names of namespaces this process created and has not deleted yet (tests assert it is empty). */
export function liveKernelNamespaces(): string[] {
  return [...liveNamespaces];
}

// ---------------------------------------------------------------------------------------------
// Python helpers run inside the namespaces

/** Turns TX (and optionally RX) checksum offload off: SIOCETHTOOL ETHTOOL_STXCSUM, as `ethtool -K dev tx off`. */
const ETHTOOL_PY = String.raw`
import socket, struct, fcntl, ctypes, sys
SIOCETHTOOL = 0x8946
def et(ifname, cmd, val=0):
    buf = ctypes.create_string_buffer(struct.pack('II', cmd, val), 8)
    ifr = struct.pack('16sP', ifname.encode(), ctypes.addressof(buf)) + b'\0' * 16
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s, SIOCETHTOOL, ifr)
    finally:
        s.close()
    return struct.unpack('II', buf.raw)[1]
for name in sys.argv[1:]:
    et(name, 0x17, 0)          # ETHTOOL_STXCSUM off
    if et(name, 0x16) != 0:    # ETHTOOL_GTXCSUM
        sys.exit('tx checksum offload still on for ' + name)
`;

/**
 * Injector and capturer, run in P. Protocol (one JSON object per line):
 *  in:  {"ifaces":[{"name","routerMac"}], "pauseMs"}        -> out: {"ready":true,"cpu":N}
 *  in:  {"op":"send","iface","hex","after"}                    -> out: {"captured":[...]}
 *  in:  {"op":"settle","ms","after"}                          -> out: {"captured":[...]}
 * A captured frame: {"iface","ts" (ns, string),"after","hex"}.
 */
const INJECT_PY = String.raw`
import sys, json, socket, struct, time, os
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
cfg = json.loads(sys.stdin.readline())
cpu = sorted(os.sched_getaffinity(0))[0]
os.sched_setaffinity(0, {cpu})
socks = {}
for itf in cfg['ifaces']:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((itf['name'], ETH_P_ALL))
    s.setblocking(False)
    socks[itf['name']] = (s, bytes.fromhex(itf['routerMac'].replace(':', '')))
def drain(after):
    out = []
    for name, (s, rmac) in socks.items():
        while True:
            try:
                data, anc, flags, addr = s.recvmsg(262144, 64)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING or data[6:12] != rmac:
                continue
            ts = 0
            for lvl, typ, d in anc:
                if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack('qq', d[:16])
                    ts = sec * 1000000000 + nsec
            out.append({'iface': name, 'ts': str(ts), 'after': after, 'hex': data.hex(), 'trunc': bool(flags & socket.MSG_TRUNC)})
    out.sort(key=lambda c: int(c['ts']))
    return out
stale = drain(-1)
pause = cfg.get('pauseMs', 2) / 1000.0
print(json.dumps({'ready': True, 'cpu': cpu, 'stale': len(stale)}), flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    cmd = json.loads(line)
    if cmd['op'] == 'send':
        socks[cmd['iface']][0].send(bytes.fromhex(cmd['hex']))
        time.sleep(pause)
    elif cmd['op'] == 'settle':
        time.sleep(cmd['ms'] / 1000.0)
    print(json.dumps({'captured': drain(cmd['after'])}), flush=True)
`;

// ---------------------------------------------------------------------------------------------
// The node

export interface KernelNodeOptions {
  /** Short tag in the namespace names (letters, digits, '-'). */
  tag: string;
}

export interface Captured {
  iface: string;
  data: Uint8Array;
  tsNs: bigint;
  /** Index of the input frame after which this was captured (-1: before the first). */
  after: number;
}

const macText = (m: Uint8Array): string => Array.from(m, (b) => b.toString(16).padStart(2, '0')).join(':');

export class KernelNode {
  readonly r: string;
  readonly p: string;
  /** Every command that built the node, for the report when something fails. */
  readonly log: string[] = [];
  private destroyed = false;

  private constructor(
    readonly config: NodeConfig,
    tag: string,
  ) {
    const t = tag.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 20);
    this.r = `dpemu-${process.pid}-${t}-r`;
    this.p = `dpemu-${process.pid}-${t}-p`;
  }

  /** Ethernet interfaces of the node (veth pairs); tunnels are built inside R only. */
  get etherInterfaces(): string[] {
    return this.config.interfaces.filter((i) => i.kind === 'ether').map((i) => i.name);
  }

  /** Build the node; on any failure the namespaces are deleted and the error says which command failed. */
  static create(config: NodeConfig, opts: KernelNodeOptions): KernelNode {
    const avail = kernelAvailability();
    if (!avail.ok) throw new KernelSetupError(`kernel tests unavailable: ${avail.reason}`);
    const node = new KernelNode(config, opts.tag);
    try {
      node.build();
    } catch (e) {
      node.destroy();
      throw e;
    }
    return node;
  }

  private cmd(argv: string[], input?: string, what?: string): string {
    this.log.push(argv.join(' ') + (input !== undefined ? ` <<EOF\n${input.trimEnd()}\nEOF` : ''));
    return runOk(argv, input, what);
  }

  /** Run argv inside R. */
  inR(argv: string[], input?: string): string {
    return this.cmd(['ip', 'netns', 'exec', this.r, ...argv], input);
  }

  /** Run argv inside P. */
  inP(argv: string[], input?: string): string {
    return this.cmd(['ip', 'netns', 'exec', this.p, ...argv], input);
  }

  private sysctl(ns: string, key: string, value: string | number): void {
    this.cmd(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
  }

  private build(): void {
    const { r, p, config } = this;
    for (const ns of [r, p]) {
      if (existsSync(`/run/netns/${ns}`)) throw new KernelSetupError(`namespace ${ns} already exists (left by an earlier run of this pid?): delete it with ip netns del ${ns}`);
    }
    for (const ns of [r, p]) {
      this.cmd(['ip', 'netns', 'add', ns]);
      registerNamespace(ns);
      this.sysctl(ns, 'net.ipv6.conf.all.disable_ipv6', 1);
      this.sysctl(ns, 'net.ipv6.conf.default.disable_ipv6', 1);
      this.cmd(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // P never routes and has no addresses; make that explicit.
    this.sysctl(p, 'net.ipv4.ip_forward', 0);

    const ifs = config.interfaces;
    for (const ifc of ifs) {
      if (ifc.kind !== 'ether') continue;
      // Created inside R, the peer moved straight into P: nothing appears in the root namespace.
      this.cmd(['ip', '-n', r, 'link', 'add', ifc.name, 'address', macText(ifc.mac!), 'mtu', String(ifc.mtu), 'type', 'veth', 'peer', 'name', ifc.name, 'mtu', String(ifc.mtu), 'netns', p], undefined, `interface ${ifc.name}`);
    }
    for (const ifc of ifs) {
      if (ifc.kind === 'ipip') {
        throw new KernelSetupError(`interface ${ifc.name}: ipip tunnels cannot be built here (this kernel has no ipip device type, SEMANTICS.md §10)`);
      }
      if (ifc.kind !== 'vxlan') continue;
      const v = ifc.vxlan!;
      const argv = ['ip', '-n', r, 'link', 'add', ifc.name, 'address', macText(ifc.mac!), 'type', 'vxlan', 'id', String(v.vni), 'local', ipText(v.local)];
      if (v.remote) argv.push('remote', ipText(v.remote));
      argv.push('dstport', String(v.dstport));
      if (v.dev) argv.push('dev', v.dev);
      argv.push(v.udpcsum ? 'udpcsum' : 'noudpcsum');
      if (v.ttlInherit) argv.push('ttl', 'inherit');
      else if (v.ttl) argv.push('ttl', String(v.ttl));
      if (v.tos === 'inherit') argv.push('tos', 'inherit');
      else if (v.tos) argv.push('tos', String(v.tos));
      if (v.srcPortMin !== undefined && v.srcPortMax !== undefined) argv.push('srcport', String(v.srcPortMin), String(v.srcPortMax));
      this.cmd(argv, undefined, `vxlan ${ifc.name}`);
      // The MTU is set afterwards: at creation the kernel derives it from the underlay device.
      this.cmd(['ip', '-n', r, 'link', 'set', ifc.name, 'mtu', String(ifc.mtu)], undefined, `vxlan ${ifc.name} mtu`);
    }
    for (const ifc of ifs) {
      for (const a of ifc.addresses) {
        this.cmd(['ip', '-n', r, 'addr', 'add', a.text.includes('/') ? a.text : `${a.text}/32`, 'dev', ifc.name], undefined, `address ${a.text} on ${ifc.name}`);
      }
    }
    for (const ifc of ifs) {
      this.cmd(['ip', '-n', r, 'link', 'set', ifc.name, 'up']);
      if (ifc.kind === 'ether') this.cmd(['ip', '-n', p, 'link', 'set', ifc.name, 'up']);
    }
    // Every device of R computes its checksums in software.
    this.cmd(['ip', 'netns', 'exec', r, python(), '-c', ETHTOOL_PY, ...ifs.map((i) => i.name)], undefined, 'checksum offload off');
    this.waitUp();
    // Read back what the kernel made of it: a silent difference would make every comparison lie.
    const links = JSON.parse(this.cmd(['ip', '-n', r, '-j', 'link', 'show'])) as { ifname: string; mtu: number; address?: string }[];
    for (const ifc of ifs) {
      const l = links.find((x) => x.ifname === ifc.name);
      if (!l) throw new KernelSetupError(`interface ${ifc.name} missing in ${r}`);
      if (l.mtu !== ifc.mtu) throw new KernelSetupError(`interface ${ifc.name}: the kernel has MTU ${l.mtu}, the node file ${ifc.mtu}`);
      if (ifc.mac && l.address !== macText(ifc.mac)) throw new KernelSetupError(`interface ${ifc.name}: the kernel has MAC ${l.address}, the node file ${macText(ifc.mac)}`);
    }

    this.sysctl(r, 'net.ipv4.ip_forward', config.sysctls.ipForward ? 1 : 0);
    this.sysctl(r, 'net.ipv4.ip_local_port_range', `${config.sysctls.localPortRange[0]} ${config.sysctls.localPortRange[1]}`);
    for (const rt of config.routes) this.cmd(['ip', '-n', r, 'route', 'add', ...rt.text.trim().split(/\s+/)], undefined, `route "${rt.text}"`);
    for (const n of config.neighbors) {
      const tok = n.text.trim().split(/\s+/);
      const i = tok.indexOf('nud');
      if (i >= 0) tok.splice(i, 2);
      this.cmd(['ip', '-n', r, 'neigh', 'replace', ...tok, 'nud', 'permanent'], undefined, `neighbour "${n.text}"`);
    }
    if (config.ipset) this.cmd(['ip', 'netns', 'exec', r, 'ipset', 'restore'], config.ipset.text, `ipset (${config.ipset.file}:${config.ipset.firstLine})`);
    if (config.iptables) this.cmd(['ip', 'netns', 'exec', r, 'iptables-restore'], config.iptables.text, `iptables (${config.iptables.file}:${config.iptables.firstLine})`);
    // Conntrack's sysctls: per namespace.
    const nf: [string, number][] = [
      ['net.netfilter.nf_conntrack_tcp_loose', config.sysctls.tcpLoose ? 1 : 0],
      ['net.netfilter.nf_conntrack_checksum', config.sysctls.conntrackChecksum ? 1 : 0],
      ['net.netfilter.nf_conntrack_tcp_be_liberal', config.sysctls.tcpBeLiberal ? 1 : 0],
    ];
    for (const [k, v] of nf) this.sysctl(r, k, v);
  }

  private waitUp(): void {
    const deadline = Date.now() + 5000;
    const want = this.etherInterfaces;
    for (;;) {
      const down: string[] = [];
      for (const ns of [this.r, this.p]) {
        const links = JSON.parse(runOk(['ip', '-n', ns, '-j', 'link', 'show'])) as { ifname: string; operstate: string }[];
        for (const name of want) {
          const l = links.find((x) => x.ifname === name);
          if (!l || l.operstate !== 'UP') down.push(`${ns}/${name}:${l?.operstate ?? 'missing'}`);
        }
      }
      if (down.length === 0) return;
      if (Date.now() > deadline) throw new KernelSetupError(`veth links not up after 5 s: ${down.join(', ')}`);
      spawnSync('sleep', ['0.02']);
    }
  }

  /** `iptables-save -c` in R (rule counters: what matched). */
  iptablesCounters(): string {
    return runOk(['ip', 'netns', 'exec', this.r, 'iptables-save', '-c']);
  }

  /** R's conntrack table (/proc/net/nf_conntrack), '' when not available. */
  conntrackTable(): string {
    const r = run(['ip', 'netns', 'exec', this.r, 'cat', '/proc/net/nf_conntrack']);
    return r.status === 0 ? r.stdout : '';
  }

  /** Start the injector/capturer in P. */
  async session(pauseMs = 2): Promise<InjectSession> {
    const ifaces = this.config.interfaces.filter((i) => i.kind === 'ether').map((i) => ({ name: i.name, routerMac: macText(i.mac!) }));
    const child = spawn('ip', ['netns', 'exec', this.p, python(), '-u', '-c', INJECT_PY], { stdio: ['pipe', 'pipe', 'pipe'] });
    const s = new InjectSession(child);
    await s.start({ ifaces, pauseMs });
    return s;
  }

  /** Delete both namespaces by their exact names (idempotent). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    deleteNamespace(this.r);
    deleteNamespace(this.p);
  }
}

function ipText(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

interface PyCaptured {
  iface: string;
  ts: string;
  after: number;
  hex: string;
  trunc: boolean;
}

export class InjectSession {
  private readonly rl: ReadLine;
  private readonly waiting: ((line: string) => void)[] = [];
  private readonly lines: string[] = [];
  private stderr = '';
  private exited: number | null | undefined;
  private sent = 0;

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.rl = createInterface({ input: child.stdout });
    this.rl.on('line', (l) => {
      const w = this.waiting.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.on('exit', (code) => {
      this.exited = code;
      for (const w of this.waiting.splice(0)) w('');
    });
  }

  private nextLine(timeoutMs = 10_000): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.exited !== undefined) return Promise.reject(new KernelSetupError(`injector exited ${this.exited}: ${this.stderr.trim()}`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new KernelSetupError(`injector did not answer in ${timeoutMs} ms: ${this.stderr.trim()}`)), timeoutMs);
      this.waiting.push((line) => {
        clearTimeout(t);
        if (line === '' && this.exited !== undefined) reject(new KernelSetupError(`injector exited ${this.exited}: ${this.stderr.trim()}`));
        else resolve(line);
      });
    });
  }

  /** Frames the router sent before the first injected frame (noise: should stay 0). */
  noiseBeforeStart = 0;

  async start(cfg: unknown): Promise<void> {
    this.child.stdin.write(`${JSON.stringify(cfg)}\n`);
    const ready = JSON.parse(await this.nextLine()) as { ready?: boolean; stale?: number };
    if (!ready.ready) throw new KernelSetupError(`injector did not start: ${this.stderr.trim()}`);
    this.noiseBeforeStart = ready.stale ?? 0;
  }

  private async request(cmd: object): Promise<Captured[]> {
    this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
    const res = JSON.parse(await this.nextLine()) as { captured: PyCaptured[] };
    return res.captured.map((c) => {
      if (c.trunc) throw new KernelSetupError(`captured frame on ${c.iface} was truncated`);
      return { iface: c.iface, data: Uint8Array.from(Buffer.from(c.hex, 'hex')), tsNs: BigInt(c.ts), after: c.after };
    });
  }

  /** Send one frame on the peer end of `iface` (the router receives it on its `iface`); returns what the router sent meanwhile. */
  send(iface: string, frame: Uint8Array): Promise<Captured[]> {
    return this.request({ op: 'send', iface, hex: Buffer.from(frame).toString('hex'), after: this.sent++ });
  }

  /** Wait `ms`, then return what the router sent meanwhile (attributed to the last frame sent). */
  settle(ms: number): Promise<Captured[]> {
    return this.request({ op: 'settle', ms, after: this.sent - 1 });
  }

  async close(): Promise<void> {
    if (this.exited !== undefined) return;
    this.child.stdin.end();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        // Only this child, by its own pid.
        if (this.exited === undefined && this.child.pid) {
          try {
            process.kill(this.child.pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
        resolve();
      }, 3000);
      this.child.on('exit', () => {
        clearTimeout(t);
        resolve();
      });
      if (this.exited !== undefined) {
        clearTimeout(t);
        resolve();
      }
    });
    this.rl.close();
  }
}
