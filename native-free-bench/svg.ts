/**
 * Hand-written SVG charts (no browser, no dependency): horizontal bar charts with min–max
 * whiskers and line charts on log or linear axes. Each function returns a chart of a known
 * size; `document()` wraps one chart, or stacks several, into a standalone SVG file.
 */

export interface Chart {
  width: number;
  height: number;
  /** Inner markup (no <svg> element). */
  body: string;
  title: string;
}

const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';
export const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const f1 = (x: number): string => (Math.round(x * 10) / 10).toString();

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${f1(x)}" y="${f1(y)}" ${attrs}>${esc(s)}</text>`;
}

/** Human number: 1.23k, 4.5M; small values with 2–3 significant digits. */
export function human(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 100 || (Number.isInteger(v) && a >= 1)) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

interface Scale {
  map: (v: number) => number;
  ticks: number[];
}

function logScale(lo: number, hi: number, p0: number, p1: number): Scale {
  const a = Math.floor(Math.log10(lo));
  let b = Math.ceil(Math.log10(hi));
  if (b === a) b = a + 1;
  const ticks: number[] = [];
  for (let e = a; e <= b; e++) ticks.push(10 ** e);
  return { map: (v) => p0 + ((Math.log10(Math.max(v, 10 ** a)) - a) / (b - a)) * (p1 - p0), ticks };
}

function linScale(lo: number, hi: number, p0: number, p1: number): Scale {
  const lo0 = Math.min(0, lo);
  const span = hi - lo0 || 1;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const top = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let t = lo0; t <= top + step / 1e6; t += step) ticks.push(Math.round(t / step) * step);
  return { map: (v) => p0 + ((v - lo0) / (top - lo0 || 1)) * (p1 - p0), ticks };
}

export interface Bar {
  label: string;
  value: number;
  min?: number;
  max?: number;
  color?: string;
  /** Text after the value label, e.g. "pending". */
  note?: string;
  /** A group heading row above this bar. */
  group?: string;
}

export interface BarChartSpec {
  title: string;
  subtitle?: string;
  unit: string;
  bars: Bar[];
  log?: boolean;
  refs?: { value: number; label: string; color?: string }[];
  width?: number;
  labelWidth?: number;
}

export function barChart(s: BarChartSpec): Chart {
  const W = s.width ?? 960;
  const LW = s.labelWidth ?? 430;
  const x0 = LW + 10;
  const x1 = W - 110;
  const top = (s.subtitle ? 62 : 44) + 13 * (s.refs?.length ?? 0);
  const rowH = 20;
  let rows = 0;
  for (const b of s.bars) rows += b.group ? 2 : 1;
  const plotH = Math.max(rows, 1) * rowH + 8;
  const H = top + plotH + 44;
  const vals = s.bars.flatMap((b) => [b.value, b.max ?? b.value, b.min ?? b.value]).filter((v) => Number.isFinite(v) && v > 0);
  for (const r of s.refs ?? []) vals.push(r.value);
  const lo = vals.length ? Math.min(...vals) : 1;
  const hi = vals.length ? Math.max(...vals) : 10;
  const sc = s.log ? logScale(lo, hi, x0, x1) : linScale(0, hi, x0, x1);
  const out: string[] = [];
  out.push(text(10, 22, s.title, `font-size="16" font-weight="bold"`));
  if (s.subtitle) out.push(text(10, 42, s.subtitle, `font-size="12" fill="#555"`));
  const yAxis = top + plotH;
  for (const t of sc.ticks) {
    const x = sc.map(t);
    out.push(`<line x1="${f1(x)}" y1="${top}" x2="${f1(x)}" y2="${yAxis}" stroke="#ddd" stroke-width="1"/>`);
    out.push(text(x, yAxis + 16, human(t), `font-size="11" text-anchor="middle" fill="#333"`));
  }
  out.push(`<line x1="${x0}" y1="${yAxis}" x2="${x1}" y2="${yAxis}" stroke="#333" stroke-width="1"/>`);
  out.push(text((x0 + x1) / 2, yAxis + 34, `${s.unit}${s.log ? ' (log scale)' : ''}`, `font-size="12" text-anchor="middle" fill="#333"`));
  let y = top + 4;
  s.bars.forEach((b) => {
    if (b.group) {
      out.push(text(10, y + 14, b.group, `font-size="12" font-weight="bold" fill="#222"`));
      y += rowH;
    }
    const color = b.color ?? COLORS[0]!;
    out.push(text(LW, y + 14, b.label, `font-size="11" text-anchor="end" fill="#222"`));
    if (Number.isFinite(b.value) && b.value > 0) {
      const xv = sc.map(b.value);
      out.push(`<rect x="${x0}" y="${y + 3}" width="${f1(Math.max(1, xv - x0))}" height="${rowH - 6}" fill="${color}" fill-opacity="0.85"><title>${esc(`${b.label}: ${human(b.value)} ${s.unit}`)}</title></rect>`);
      if (b.min !== undefined && b.max !== undefined && b.max > b.min) {
        const a = sc.map(b.min);
        const c = sc.map(b.max);
        const ym = y + rowH / 2;
        out.push(`<path d="M${f1(a)} ${f1(ym)}H${f1(c)}M${f1(a)} ${f1(ym - 4)}V${f1(ym + 4)}M${f1(c)} ${f1(ym - 4)}V${f1(ym + 4)}" stroke="#222" stroke-width="1" fill="none"/>`);
      }
      out.push(text(Math.max(xv, b.max !== undefined ? sc.map(b.max) : xv) + 4, y + 14, `${human(b.value)}${b.note ? ` ${b.note}` : ''}`, `font-size="11" fill="#222"`));
    } else {
      out.push(text(x0 + 4, y + 14, b.note ?? 'n/a', `font-size="11" font-style="italic" fill="#888"`));
    }
    y += rowH;
  });
  (s.refs ?? []).forEach((r, k) => {
    const x = sc.map(r.value);
    const c = r.color ?? '#d62728';
    const ly = top - 6 - 13 * ((s.refs!.length - 1 - k) as number);
    out.push(`<line x1="${f1(x)}" y1="${ly - 4}" x2="${f1(x)}" y2="${yAxis}" stroke="${c}" stroke-width="1.5" stroke-dasharray="5,3"/>`);
    out.push(text(x + 4, ly, r.label, `font-size="10" fill="${c}"`));
  });
  return { width: W, height: H, body: out.join('\n'), title: s.title };
}

export interface Point {
  x: number;
  y?: number;
  min?: number;
  max?: number;
  /** Not measured (yet): drawn as a hollow marker on the x axis with this text. */
  pending?: string;
}

export interface LineChartSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  series: { name: string; points: Point[]; color?: string }[];
  refs?: { value: number; label: string; color?: string }[];
  width?: number;
  height?: number;
  xTickLabel?: (x: number) => string;
}

export function lineChart(s: LineChartSpec): Chart {
  const W = s.width ?? 960;
  const H = s.height ?? 420;
  const legendW = 330;
  const x0 = 80;
  const x1 = W - legendW - 20;
  const y0 = s.subtitle ? 66 : 48;
  const y1 = H - 56;
  const xs = s.series.flatMap((se) => se.points.map((p) => p.x)).filter((v) => Number.isFinite(v) && (!s.logX || v > 0));
  const ys = s.series.flatMap((se) => se.points.flatMap((p) => [p.y, p.min, p.max])).filter((v): v is number => v !== undefined && Number.isFinite(v) && (!s.logY || v > 0));
  for (const r of s.refs ?? []) ys.push(r.value);
  const xlo = xs.length ? Math.min(...xs) : 1;
  const xhi = xs.length ? Math.max(...xs) : 10;
  const ylo = ys.length ? Math.min(...ys) : 1;
  const yhi = ys.length ? Math.max(...ys) : 10;
  let sx: Scale;
  if (s.logX) sx = logScale(xlo, xhi, x0, x1);
  else {
    // Categorical-looking linear x (workers): pad half a step on both sides.
    const pad = (xhi - xlo || 1) * 0.08;
    const lo = xlo - pad;
    const hi = xhi + pad;
    sx = { map: (v) => x0 + ((v - lo) / (hi - lo)) * (x1 - x0), ticks: [...new Set(xs)].sort((a, b) => a - b) };
  }
  const sy = s.logY ? logScale(ylo, yhi, y1, y0) : linScale(0, yhi * 1.05, y1, y0);
  const out: string[] = [];
  out.push(text(10, 22, s.title, `font-size="16" font-weight="bold"`));
  if (s.subtitle) out.push(text(10, 42, s.subtitle, `font-size="12" fill="#555"`));
  for (const t of sy.ticks) {
    const y = sy.map(t);
    out.push(`<line x1="${x0}" y1="${f1(y)}" x2="${x1}" y2="${f1(y)}" stroke="#ddd" stroke-width="1"/>`);
    out.push(text(x0 - 6, y + 4, human(t), `font-size="11" text-anchor="end" fill="#333"`));
  }
  for (const t of sx.ticks) {
    const x = sx.map(t);
    out.push(`<line x1="${f1(x)}" y1="${y0}" x2="${f1(x)}" y2="${y1}" stroke="#eee" stroke-width="1"/>`);
    out.push(text(x, y1 + 16, s.xTickLabel ? s.xTickLabel(t) : human(t), `font-size="11" text-anchor="middle" fill="#333"`));
  }
  out.push(`<path d="M${x0} ${y0}V${y1}H${x1}" stroke="#333" stroke-width="1" fill="none"/>`);
  out.push(text((x0 + x1) / 2, H - 18, `${s.xLabel}${s.logX ? ' (log scale)' : ''}`, `font-size="12" text-anchor="middle" fill="#333"`));
  out.push(text(18, (y0 + y1) / 2, `${s.yLabel}${s.logY ? ' (log scale)' : ''}`, `font-size="12" text-anchor="middle" fill="#333" transform="rotate(-90 18 ${f1((y0 + y1) / 2)})"`));
  for (const r of s.refs ?? []) {
    const y = sy.map(r.value);
    const c = r.color ?? '#d62728';
    out.push(`<line x1="${x0}" y1="${f1(y)}" x2="${x1}" y2="${f1(y)}" stroke="${c}" stroke-width="1.5" stroke-dasharray="5,3"/>`);
    out.push(text(x0 + 4, y - 4, r.label, `font-size="10" fill="${c}"`));
  }
  s.series.forEach((se, k) => {
    const c = se.color ?? COLORS[k % COLORS.length]!;
    const measured = se.points.filter((p) => p.y !== undefined && Number.isFinite(p.y) && (!s.logY || p.y > 0));
    if (measured.length > 1) {
      out.push(`<polyline points="${measured.map((p) => `${f1(sx.map(p.x))},${f1(sy.map(p.y!))}`).join(' ')}" fill="none" stroke="${c}" stroke-width="2"/>`);
    }
    for (const p of measured) {
      const x = sx.map(p.x);
      const y = sy.map(p.y!);
      if (p.min !== undefined && p.max !== undefined && p.max > p.min) {
        out.push(`<path d="M${f1(x)} ${f1(sy.map(p.min))}V${f1(sy.map(p.max))}M${f1(x - 3)} ${f1(sy.map(p.min))}H${f1(x + 3)}M${f1(x - 3)} ${f1(sy.map(p.max))}H${f1(x + 3)}" stroke="${c}" stroke-width="1" fill="none"/>`);
      }
      out.push(`<circle cx="${f1(x)}" cy="${f1(y)}" r="3.5" fill="${c}"><title>${esc(`${se.name}: ${human(p.x)} → ${human(p.y!)}`)}</title></circle>`);
    }
    for (const p of se.points.filter((q) => q.pending)) {
      const x = sx.map(p.x);
      out.push(`<circle cx="${f1(x)}" cy="${f1(y1 - 10 - 12 * k)}" r="4" fill="#fff" stroke="${c}" stroke-width="1.5"/>`);
      out.push(text(x + 7, y1 - 6 - 12 * k, p.pending!, `font-size="10" font-style="italic" fill="${c}"`));
    }
    const ly = y0 + 8 + k * 20;
    out.push(`<line x1="${x1 + 20}" y1="${ly}" x2="${x1 + 44}" y2="${ly}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<circle cx="${x1 + 32}" cy="${ly}" r="3.5" fill="${c}"/>`);
    out.push(text(x1 + 50, ly + 4, se.name, `font-size="11" fill="#222"`));
  });
  return { width: W, height: H, body: out.join('\n'), title: s.title };
}

/** One chart, or several stacked, as a standalone SVG document. */
export function document(charts: Chart[], footer?: string): string {
  const W = Math.max(...charts.map((c) => c.width));
  let y = 0;
  const parts: string[] = [];
  for (const c of charts) {
    parts.push(`<g transform="translate(0 ${y})">\n${c.body}\n</g>`);
    y += c.height + 10;
  }
  if (footer) {
    parts.push(text(10, y + 4, footer, `font-size="10" fill="#777"`));
    y += 14;
  }
  const H = y;
  const title = charts.map((c) => c.title).join('; ');
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT}>
<title>${esc(title)}</title>
<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>
${parts.join('\n')}
</svg>
`;
}
