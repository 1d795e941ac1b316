/**
 * Run Wireshark's command-line tools (tshark, capinfos, editcap) from tests.
 *
 * Throws a clear error when the tool is not installed (apt-get install tshark) instead of
 * letting a test fail on an empty output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface ToolResult {
  stdout: string;
  stderr: string;
  /** Exit status (null if killed by a signal). */
  status: number | null;
}

const SEARCH = ['/usr/bin', '/usr/local/bin', '/usr/sbin', '/opt/homebrew/bin'];

/** Absolute path of a Wireshark tool, or throws saying how to install it. */
export function toolPath(tool: 'tshark' | 'capinfos' | 'editcap' | 'mergecap' | 'text2pcap'): string {
  for (const dir of SEARCH) {
    const p = `${dir}/${tool}`;
    if (existsSync(p)) return p;
  }
  throw new Error(`${tool} not found (looked in ${SEARCH.join(', ')}); install Wireshark's command-line tools: apt-get install tshark`);
}

/** Run a Wireshark tool with args; never goes through a shell. */
export function runTool(tool: 'tshark' | 'capinfos' | 'editcap' | 'mergecap' | 'text2pcap', args: string[], timeoutMs = 60_000): ToolResult {
  const bin = toolPath(tool);
  const r = spawnSync(bin, args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 256 << 20,
    // A fresh profile-less environment: no user preferences change the dissection.
    env: { ...process.env, LC_ALL: 'C.UTF-8', WIRESHARK_CONFIG_DIR: '/nonexistent-dpemu-wireshark' },
  });
  if (r.error) throw new Error(`${tool} ${args.join(' ')}: ${r.error.message}`);
  return { stdout: r.stdout, stderr: stripRootWarning(r.stderr), status: r.status };
}

/** Run tshark with args. */
export function tshark(args: string[], timeoutMs?: number): ToolResult {
  return runTool('tshark', args, timeoutMs);
}

/** Run tshark and throw (with its stderr) unless it exits 0. Returns stdout. */
export function tsharkOk(args: string[], timeoutMs?: number): string {
  const r = tshark(args, timeoutMs);
  if (r.status !== 0) throw new Error(`tshark ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * `tshark -r file -T fields -e f1 -e f2 ...` as rows of columns. Multiple occurrences of a
 * field in one packet are joined by `occurrenceSep` (default: ASCII unit separator, so commas
 * in comments survive).
 */
export function tsharkFields(file: string, fields: string[], extra: string[] = [], occurrenceSep = '\x1f'): string[][] {
  const args = ['-r', file, ...extra, '-T', 'fields', '-E', `occurrence=a`, '-E', `aggregator=${occurrenceSep}`];
  for (const f of fields) args.push('-e', f);
  const out = tsharkOk(args);
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

/** tshark prints this when run as root; it is noise for tests. */
function stripRootWarning(s: string): string {
  return s
    .split('\n')
    .filter((l) => !/^Running as user "root" and group "root"\. This could be dangerous\.$/.test(l))
    .join('\n');
}
