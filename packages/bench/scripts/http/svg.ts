/** A small dependency-free SVG bar chart for the request-path benchmark. */

/** One panel: labelled bars, with an optional dashed target line. */
export interface BarPanel {
  title: string;
  unit: string;
  bars: Array<{ label: string; value: number; color?: string }>;
  /** A horizontal reference line (e.g. a target), labelled. */
  reference?: { value: number; label: string };
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function num(v: number): string {
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toPrecision(3);
}

/** Panels side by side in one SVG document. */
export function barChartSvg(panels: BarPanel[], caption: string): string {
  const pw = 360;
  const ph = 300;
  const top = 40;
  const bottom = 70;
  const left = 50;
  const width = pw * panels.length + 20;
  const height = ph + 40;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="${height - 8}" fill="#555">${esc(caption)}</text>`,
  ];
  panels.forEach((p, k) => {
    const x0 = 10 + k * pw;
    const plotH = ph - top - bottom;
    const max = Math.max(...p.bars.map((b) => b.value), p.reference?.value ?? 0) * 1.15 || 1;
    const slot = (pw - left - 20) / p.bars.length;
    parts.push(
      `<text x="${x0 + pw / 2}" y="20" text-anchor="middle" font-size="13" font-weight="bold">${esc(p.title)}</text>`,
    );
    parts.push(`<line x1="${x0 + left}" y1="${top}" x2="${x0 + left}" y2="${top + plotH}" stroke="#333"/>`);
    parts.push(`<line x1="${x0 + left}" y1="${top + plotH}" x2="${x0 + pw - 20}" y2="${top + plotH}" stroke="#333"/>`);
    parts.push(
      `<text x="${x0 + 12}" y="${top + plotH / 2}" transform="rotate(-90 ${x0 + 12} ${top + plotH / 2})" text-anchor="middle">${esc(p.unit)}</text>`,
    );
    p.bars.forEach((b, i) => {
      const h = (b.value / max) * plotH;
      const x = x0 + left + i * slot + slot * 0.15;
      const w = slot * 0.7;
      const y = top + plotH - h;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h.toFixed(1)}" fill="${b.color ?? '#4878a8'}"/>`,
      );
      parts.push(
        `<text x="${(x + w / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle">${num(b.value)}</text>`,
      );
      const lx = x + w / 2;
      const ly = top + plotH + 12;
      parts.push(
        `<text x="${lx.toFixed(1)}" y="${ly}" text-anchor="end" transform="rotate(-30 ${lx.toFixed(1)} ${ly})">${esc(b.label)}</text>`,
      );
    });
    if (p.reference) {
      const y = top + plotH - (p.reference.value / max) * plotH;
      parts.push(
        `<line x1="${x0 + left}" y1="${y.toFixed(1)}" x2="${x0 + pw - 20}" y2="${y.toFixed(1)}" stroke="#c0392b" stroke-dasharray="5,4"/>`,
      );
      parts.push(
        `<text x="${x0 + pw - 22}" y="${(y - 4).toFixed(1)}" text-anchor="end" fill="#c0392b">${esc(p.reference.label)}</text>`,
      );
    }
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
