/** The terminal table, the charts and BENCHMARKS.md, all drawn from one RunInfo. */
import { machineLine } from './machine.js';
import { SECTION_TITLES, type Result, type RunInfo, type Section } from './model.js';
import { barChart, COLORS, human, lineChart, type Bar, type Chart } from './svg.js';
import { FLAVOUR_NAMES } from './rules.js';
import { CT_SERIES } from './conntrack-scale.js';

const ORDER: Section[] = ['stage', 'node', 'rules', 'conntrack', 'e2e', 'compare', 'memory'];

const int = (n: number): string => n.toLocaleString('en-US');

export function fmtNs(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)} ms`;
  if (a >= 1e4) return (v / 1e3).toFixed(1) + ' µs';
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function fmtRate(fps: number | undefined): string {
  if (fps === undefined || !Number.isFinite(fps)) return '–';
  const m = fps / 1e6;
  return m >= 100 ? m.toFixed(0) : m >= 10 ? m.toFixed(1) : m >= 1 ? m.toFixed(2) : m.toFixed(3);
}

export function notesOf(r: Result): string {
  const parts: string[] = [];
  if (r.status === 'pending') parts.push(`pending: ${r.note ?? ''}`);
  else if (r.status === 'unavailable') parts.push(`unavailable: ${r.note ?? ''}`);
  else if (r.status === 'failed') parts.push(`FAILED: ${r.note ?? ''}`);
  else {
    if (r.ratio) parts.push(`${r.ratio.value.toFixed(2)}× ${r.ratio.to}`);
    if (r.cpuNs) parts.push(r.perRun ? `CPU ${fmtNs(r.cpuNs.median)}` : `CPU ${fmtNs(r.cpuNs.median)} ns/frame`);
    if (r.rssMB) parts.push(`peak RSS ${r.rssMB.median.toFixed(0)} MB${r.rssMB.n > 1 ? ` (${r.rssMB.min.toFixed(0)}–${r.rssMB.max.toFixed(0)})` : ''}`);
    if (r.note) parts.push(r.note);
  }
  return parts.join('; ');
}

function runsOf(r: Result): string {
  if (!r.ns) return '';
  return r.method === 'benchmark.js' && r.samples !== undefined ? `${r.ns.n}×${Math.round(r.samples / Math.max(1, r.ns.n))}` : String(r.ns.n);
}

interface Row {
  name: string;
  ns: string;
  spread: string;
  rate: string;
  mbps: string;
  runs: string;
  notes: string;
}

function rowOf(r: Result): Row {
  const ok = r.status === 'ok' && r.ns !== undefined;
  return {
    name: r.name,
    ns: ok ? fmtNs(r.ns!.median) : '–',
    spread: ok ? `${fmtNs(r.ns!.min)}–${fmtNs(r.ns!.max)}` : '',
    rate: ok && r.fps !== undefined ? fmtRate(r.fps.median) : '–',
    mbps: ok && r.mbps !== undefined ? r.mbps.toFixed(0) : '',
    runs: runsOf(r),
    notes: notesOf(r),
  };
}

export function header(info: RunInfo): string {
  const m = info.machine;
  return (
    `dpemu benchmarks — ${info.mode} run, ${int(info.frames)}-frame captures of 60–100 B; ` +
    `each figure the median of ${info.rounds.micro} (micro) / ${info.rounds.wall} (whole runs) interleaved rounds, spread = min–max\n` +
    `${machineLine(m)}; commit ${m.commit}; load average ${m.loadAvgStart.join(' ')} at start, ${m.loadAvgEnd.join(' ')} at end\n`
  );
}

export function table(info: RunInfo): string {
  const rows = ORDER.flatMap((s) => info.results.filter((r) => r.section === s).map((r) => ({ s, row: rowOf(r) })));
  const NAME_MAX = 84;
  const w = {
    name: Math.min(NAME_MAX, Math.max(4, ...rows.map((r) => r.row.name.length))),
    ns: Math.max(8, ...rows.map((r) => r.row.ns.length)),
    spread: Math.max(7, ...rows.map((r) => r.row.spread.length)),
    rate: 9,
    mbps: 6,
    runs: 5,
  };
  const cut = (s: string, n: number): string => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  const line = (r: Row): string =>
    `${cut(r.name, w.name).padEnd(w.name)}  ${r.ns.padStart(w.ns)}  ${r.spread.padStart(w.spread)}  ${r.rate.padStart(w.rate)}  ${r.mbps.padStart(w.mbps)}  ${r.runs.padStart(w.runs)}  ${r.notes}`.trimEnd();
  let out = header(info) + '\n';
  out += line({ name: 'case', ns: 'ns/frame', spread: 'min–max', rate: 'Mframes/s', mbps: 'MB/s', runs: 'runs', notes: 'notes' }) + '\n';
  let cur: Section | null = null;
  for (const { s, row } of rows) {
    if (s !== cur) {
      cur = s;
      out += `── ${SECTION_TITLES[s]} ${'─'.repeat(Math.max(0, w.name + 40 - SECTION_TITLES[s].length))}\n`;
    }
    out += line(row) + '\n';
  }
  out += '\nTargets\n';
  for (const t of info.targets) out += `  ${t.met === null ? '  n/a' : t.met ? '  met' : 'NOT met'}  ${t.name}: ${t.value} (goal ${t.goal})\n`;
  if (info.breakdown.length) {
    out += '\nWhere the time goes in the full node pipeline (ns/frame, from the rows above)\n';
    for (const b of info.breakdown) out += `  ${b.name.padEnd(70)} ${fmtNs(b.ns).padStart(8)}\n`;
  }
  for (const n of info.notes) out += `\n${n}`;
  return out + '\n';
}

// ---- charts ------------------------------------------------------------------------------

const mfps = (r: Result): number => (r.fps ? r.fps.median / 1e6 : NaN);

function bar(r: Result, color?: string, group?: string): Bar {
  const ok = r.status === 'ok' && r.fps !== undefined;
  return {
    label: r.name.length > 66 ? r.name.slice(0, 65) + '…' : r.name,
    value: ok ? mfps(r) : NaN,
    min: ok ? r.fps!.min / 1e6 : undefined,
    max: ok ? r.fps!.max / 1e6 : undefined,
    color,
    note: ok ? undefined : r.status,
    group,
  };
}

export function charts(info: RunInfo): { file: string; chart: Chart }[] {
  const out: { file: string; chart: Chart }[] = [];
  const R = info.results;
  const by = (s: Section): Result[] => R.filter((r) => r.section === s);
  const sub = `${info.machine.cpu}, ${info.machine.cores} cores, Node ${info.machine.node}, ${info.machine.date.slice(0, 10)}; median of interleaved rounds, whiskers min–max`;

  // Stages.
  {
    const bars: Bar[] = [];
    const groups: [string, Result[], string][] = [
      ['Capture I/O (whole files)', by('e2e').filter((r) => /^e2e-pcap/.test(r.id)), COLORS[1]!],
      ['Per stage (in memory)', by('stage'), COLORS[0]!],
      ['Linux node, per frame (no file I/O)', by('node'), COLORS[2]!],
      ['Rule match, indexed', by('rules').filter((r) => r.series === 'indexed'), COLORS[3]!],
      ['Conntrack, 10k live connections', by('conntrack').filter((r) => r.x === 10_000), COLORS[4]!],
    ];
    for (const [g, rows, c] of groups) rows.forEach((r, i) => bars.push(bar(r, c, i === 0 ? g : undefined)));
    if (bars.length) out.push({ file: 'stages.svg', chart: barChart({ title: 'dpemu: frames per second per stage (millions, one thread)', subtitle: sub, unit: 'Mframes/s', bars, log: true }) });
  }
  // End to end.
  {
    const rows = [...by('e2e').filter((r) => !/^e2e-pcap/.test(r.id) && !r.perRun), ...by('compare')];
    const bars = rows.filter((r) => r.status !== 'pending').map((r) => bar(r, r.id.startsWith('tcprewrite') ? COLORS[1] : r.method === 'process' ? COLORS[5] : COLORS[0]));
    if (bars.length) {
      out.push({
        file: 'e2e.svg',
        chart: barChart({
          title: 'dpemu end to end: whole captures, frames per second (millions)',
          subtitle: sub,
          unit: 'Mframes/s',
          bars,
          log: false,
          refs: [
            { value: 0.7, label: 'OVS+DPDK pcap, ct+nat: 0.70', color: '#d62728' },
            { value: 2.1, label: 'target 3× OVS', color: '#2ca02c' },
          ],
        }),
      });
    }
  }
  // Rules.
  {
    const rows = by('rules').filter((r) => r.status === 'ok' && r.series !== undefined && r.x !== undefined);
    if (rows.length) {
      const flavours = [...new Set(rows.map((r) => r.series).filter((x): x is string => x !== undefined))];
      out.push({
        file: 'scaling-rules.svg',
        chart: lineChart({
          title: 'Cost of a packet versus rules in the rule set (one thread)',
          subtitle: sub,
          xLabel: 'rules in the rule set',
          yLabel: 'ns per packet',
          logX: true,
          logY: true,
          series: flavours.map((f) => ({ name: FLAVOUR_NAMES[f] ?? f, points: rows.filter((r) => r.series === f).map((r) => ({ x: r.x!, y: r.ns!.median, min: r.ns!.min, max: r.ns!.max })) })),
        }),
      });
    }
  }
  // Conntrack.
  {
    const rows = by('conntrack').filter((r) => r.status === 'ok');
    if (rows.length) {
      const keys = [...new Set(rows.map((r) => r.series!))];
      out.push({
        file: 'scaling-conntrack.svg',
        chart: lineChart({
          title: 'Conntrack cost versus live connections (one thread)',
          subtitle: sub,
          xLabel: 'live connections',
          yLabel: 'ns per packet',
          logX: true,
          logY: false,
          series: keys.map((k) => ({ name: CT_SERIES[k as keyof typeof CT_SERIES] ?? k, points: rows.filter((r) => r.series === k).map((r) => ({ x: r.x!, y: r.ns!.median, min: r.ns!.min, max: r.ns!.max })) })),
        }),
      });
    }
  }
  // Workers.
  {
    const rows = R.filter((r) => r.series?.startsWith('workers:'));
    if (rows.length) {
      const names = [...new Set(rows.map((r) => r.series!))];
      out.push({
        file: 'scaling-workers.svg',
        chart: lineChart({
          title: 'Frames per second versus worker threads',
          subtitle: sub,
          xLabel: 'worker threads',
          yLabel: 'Mframes/s (replay function)',
          series: names.map((n) => ({
            name: n.slice('workers:'.length),
            points: rows.filter((r) => r.series === n).map((r) => (r.status === 'ok' && r.fps !== undefined ? { x: r.workers!, y: mfps(r), min: r.fps!.min / 1e6, max: r.fps!.max / 1e6 } : { x: r.workers!, pending: r.status })),
          })),
          xTickLabel: (x) => String(x),
        }),
      });
    }
  }
  // Memory.
  {
    const rows = by('memory').filter((r) => r.rssMB);
    if (rows.length) {
      out.push({
        file: 'memory.svg',
        chart: barChart({
          title: 'Peak RSS of a dpemu replay process (MB)',
          subtitle: sub,
          unit: 'MB',
          bars: rows.map((r) => ({ label: r.name, value: r.rssMB!.median, min: r.rssMB!.min, max: r.rssMB!.max, color: COLORS[4] })),
          labelWidth: 430,
        }),
      });
    }
  }
  return out;
}

// ---- BENCHMARKS.md -------------------------------------------------------------------------

const mdEsc = (s: string): string => s.replace(/\|/g, '\\|');

export function markdown(info: RunInfo, chartFiles: string[]): string {
  const m = info.machine;
  const L: string[] = [];
  L.push('# dpemu benchmarks');
  L.push('');
  L.push('<!-- Generated by `npm run bench -- --write-md`; edits are overwritten. -->');
  L.push('');
  L.push(`Latest figures, produced by \`${m.command}\` on ${m.date.replace('T', ' ').slice(0, 19)} UTC (${info.mode} run, ${Math.round(info.durationSec)} s).`);
  L.push('');
  L.push(`- Machine: ${machineLine(m)}, V8 ${m.v8}`);
  L.push(`- Code: commit ${m.commit}`);
  L.push(`- Load average (1/5/15 min): ${m.loadAvgStart.join(' / ')} at start, ${m.loadAvgEnd.join(' / ')} at end. The machine is shared: every figure is the median of interleaved rounds with its spread (min–max).`);
  L.push(`- Captures: generated, ${int(info.frames)} frames of 60–100 B, pcap (cached in the OS temp directory between runs).`);
  L.push(`- tcprewrite: ${info.tcprewrite.available ? `${info.tcprewrite.version} (${info.tcprewrite.path})` : '**not installed**: the side-by-side comparison was skipped (Debian: `apt-get install tcpreplay`)'}`);
  L.push('');
  L.push('Run it yourself: `npm run bench` (quick, under two minutes after the build), `npm run bench -- --full` (more rounds, 3M- and 10M-frame runs), `dpemu bench --help` for the options (`--json FILE`, `--svg DIR`, `--write-md`, ...); `dpemu bench` runs the same suite without building first.');
  L.push('');
  L.push('## Targets');
  L.push('');
  L.push('| target | goal | measured | |');
  L.push('|---|---|---|---|');
  for (const t of info.targets) L.push(`| ${mdEsc(t.name)} | ${mdEsc(t.goal)} | ${mdEsc(t.value)} | ${t.met === null ? 'n/a' : t.met ? 'met' : '**not met**'} |`);
  L.push('');
  if (chartFiles.length) {
    L.push('## Charts');
    L.push('');
    for (const f of chartFiles) L.push(`![${f.replace(/\.svg$/, '').replace(/-/g, ' ')}](bench/${f})`);
    L.push('');
  }
  if (info.breakdown.length) {
    L.push('## Where the time goes');
    L.push('');
    L.push('The full node pipeline (replay function, one thread) split with the per-stage figures below; the node parts are measured separately, so the split is approximate.');
    L.push('');
    L.push('| part | ns/frame |');
    L.push('|---|---:|');
    for (const b of info.breakdown) L.push(`| ${mdEsc(b.name).replace(/^ {2}/, '&emsp;')} | ${fmtNs(b.ns)} |`);
    L.push('');
  }
  L.push('## Results');
  for (const s of ORDER) {
    const rows = info.results.filter((r) => r.section === s);
    if (!rows.length) continue;
    L.push('');
    L.push(`### ${SECTION_TITLES[s]}`);
    L.push('');
    L.push('| case | ns/frame | min–max | Mframes/s | MB/s | rounds | notes |');
    L.push('|---|---:|---:|---:|---:|---:|---|');
    for (const r of rows) {
      const row = rowOf(r);
      L.push(`| ${mdEsc(row.name)} | ${row.ns} | ${row.spread} | ${row.rate} | ${row.mbps} | ${row.runs} | ${mdEsc(row.notes)} |`);
    }
  }
  L.push('');
  L.push('## Method');
  L.push('');
  for (const n of METHOD) L.push(`- ${n}`);
  if (info.notes.length) {
    L.push('');
    L.push('## Notes of this run');
    L.push('');
    for (const n of info.notes) L.push(`- ${n}`);
  }
  L.push('');
  return L.join('\n');
}

export const METHOD = [
  'Micro-benchmarks (per stage, node, rules, conntrack) use benchmark.js; one operation is a loop over a few thousand frames held in one buffer, so figures are ns per frame. A round is one benchmark.js run (its mean over its samples); the table gives the median over rounds and the min–max; "rounds" reads rounds×samples per round.',
  'Whole-file runs are timed with process.hrtime around the whole run (capture I/O in the bench process; the replay function inside the dpemu child, as the CLI reports it with --stats) and, for child processes, by the wall clock of the whole process (Node startup included). The child is the command users run: the bundled dist/cli/main.js of `npm run build`.',
  'Cases compared with each other run interleaved: one round runs every case once, the next round in reverse order, so load from other users of the machine hits all of them alike.',
  'The side-by-side comparison runs tcprewrite and `dpemu replay` on the same generated capture, both writing pcap to the same directory of the same filesystem. tcprewrite maps addresses with `--dstipmap/--srcipmap --fixcsum`; dpemu runs a router node that does the same mapping with NETMAP in PREROUTING (DNAT) and POSTROUTING (SNAT), plus what a router does that tcprewrite does not: conntrack (with TCP checksum verification), routing, TTL decrement and new MAC addresses. The rewritten addresses and ports of the two outputs are compared frame by frame.',
  'Peak RSS is VmHWM of the dpemu process (/proc/self/status), read at exit by a module preloaded with `node --import` that also reads its CPU time; not getrusage\'s ru_maxrss, which on Linux survives fork and exec and so reports the RSS of the large benchmark process that started the child. tcprewrite\'s CPU time and peak RSS come from GNU time when installed.',
  'Worker threads: the whole-file runs pass `--workers N` (1, 2, 4 by default; `--workers LIST`) when `dpemu replay --help` lists the option, else their rows say "pending". The one-thread figures and the targets use `--workers 1`.',
  'On a shared machine the wall clock of a run includes the time other processes had the CPU; the CPU time of whole processes (notes column) is less sensitive to that, and the load average at start and end is recorded.',
];

export { human };
