/**
 * SVG chart of `dynamo-ts bench routing`: TTFT at several percentiles per strategy, one polyline
 * per strategy on a logarithmic time axis. Self-contained SVG, no script.
 * @packageDocumentation
 */
import type { RoutingBenchResult } from '../routing-bench';

const COLORS = [
  '#d62728',
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#17becf',
  '#bcbd22',
];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function label(ms: number): string {
  return ms >= 1000 ? `${+(ms / 1000).toPrecision(3)} s` : `${+ms.toPrecision(3)} ms`;
}

/** The chart as an SVG document. */
export function routingChartSvg(result: RoutingBenchResult, title = 'TTFT percentiles per routing strategy'): string {
  const W = 840;
  const H = 420;
  const left = 84;
  const right = 250;
  const top = 40;
  const bottom = 50;
  const pw = W - left - right;
  const ph = H - top - bottom;
  const positive = result.details.flatMap((d) => d.ttftCurve.map((c) => c.ms)).filter((x) => x > 0);
  const all = positive.length > 0 ? positive : [1, 10];
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(1e-3, Math.min(...all)))));
  const hi = Math.max(lo * 10, Math.pow(10, Math.ceil(Math.log10(Math.max(...all)))));
  const y = (ms: number): number =>
    top + ph - ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
  const ps = result.details[0]?.ttftCurve.map((c) => c.p) ?? [];
  const x = (i: number): number => left + (ps.length <= 1 ? pw / 2 : (i / (ps.length - 1)) * pw);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const yy = y(d).toFixed(1);
    out.push(`<line x1="${left}" x2="${left + pw}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${esc(label(d))}</text>`);
  }
  ps.forEach((p, i) => {
    out.push(`<line x1="${x(i).toFixed(1)}" x2="${x(i).toFixed(1)}" y1="${top}" y2="${top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x(i).toFixed(1)}" y="${top + ph + 18}" text-anchor="middle">p${p}</text>`);
  });
  out.push(`<text x="${left + pw / 2}" y="${H - 10}" text-anchor="middle">percentile of the requests</text>`);
  out.push(
    `<text x="16" y="${top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + ph / 2})">time to first token (log scale)</text>`,
  );
  out.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  result.details.forEach((d, k) => {
    const color = COLORS[k % COLORS.length]!;
    const pts = d.ttftCurve.map((c, i) => `${x(i).toFixed(1)},${y(c.ms).toFixed(1)}`).join(' ');
    const width = d.strategy === 'kv' ? 3 : 1.5;
    out.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="${width}"/>`);
    for (const c of d.ttftCurve) {
      const i = d.ttftCurve.indexOf(c);
      out.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(c.ms).toFixed(1)}" r="2.5" fill="${color}"/>`);
    }
    const ly = top + 10 + k * 20;
    const run = result.runs[k];
    out.push(
      `<line x1="${left + pw + 15}" x2="${left + pw + 35}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="${width}"/>`,
    );
    out.push(
      `<text x="${left + pw + 40}" y="${ly}" dominant-baseline="middle">${esc(d.strategy)}${run ? ` (p50 ${esc(label(run.ttft_ms.p50))})` : ''}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
