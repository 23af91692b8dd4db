/**
 * The dashboard page: one HTML shell, one stylesheet, one script, shipped as strings so the
 * package needs no build step or bundler and the page no framework. The shell holds no data;
 * the script polls `<base>/data` and renders with `textContent`/`setAttribute` only (never
 * `innerHTML`: worker names come from discovery and are untrusted), under a CSP that allows
 * no inline script or style.
 */

/** The HTML shell; `basePath` is where the dashboard is mounted (e.g. `/dashboard`). */
export function dashboardHtml(basePath: string, pollMs: number): string {
  const base = escapeAttr(basePath);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dynamo-ts dashboard</title>
<link rel="stylesheet" href="${base}/style.css">
<script src="${base}/app.js" defer></script>
</head>
<body data-base="${base}" data-poll-ms="${Math.max(250, Math.floor(pollMs))}">
<header>
  <div class="brand"><span class="logo"></span><h1>dynamo-ts</h1><span class="sub">live cluster</span></div>
  <div class="status"><span id="status-dot" class="dot"></span><span id="status-text">connecting</span></div>
</header>
<form id="key-form" hidden>
  <label for="key-input">This frontend needs its API key to show the dashboard.</label>
  <input id="key-input" type="password" autocomplete="off" placeholder="API key">
  <button type="submit">Show</button>
</form>
<main>
  <section class="cards">
    <div class="card"><h2>Requests / s</h2><div class="big" data-stat="rate">–</div><div class="small" data-stat="total">–</div></div>
    <div class="card"><h2>In flight</h2><div class="big" data-stat="inflight">–</div><div class="small" data-stat="errors">–</div></div>
    <div class="card"><h2>Time to first token</h2><div class="big" data-stat="ttft-p50">–</div><div class="small"><span data-stat="ttft-p90">–</span> · <span data-stat="ttft-p99">–</span></div></div>
    <div class="card"><h2>Inter-token latency</h2><div class="big" data-stat="itl-p50">–</div><div class="small"><span data-stat="itl-p90">–</span> · <span data-stat="itl-p99">–</span></div></div>
    <div class="card"><h2>Prefill queue</h2><div class="big" data-stat="queue-depth">–</div><div class="small" data-stat="prefill">–</div></div>
    <div class="card"><h2>Routing decisions</h2><div class="big" data-stat="decisions">–</div><div class="small" data-stat="overlap">–</div></div>
  </section>
  <section class="charts">
    <figure class="chart"><figcaption>Request rate <span class="unit">req/s</span></figcaption><svg id="chart-rate" viewBox="0 0 600 180" preserveAspectRatio="none" role="img" aria-label="request rate"></svg></figure>
    <figure class="chart"><figcaption>TTFT <span class="legend"><i class="l50"></i>p50 <i class="l99"></i>p99</span> <span class="unit">ms</span></figcaption><svg id="chart-ttft" viewBox="0 0 600 180" preserveAspectRatio="none" role="img" aria-label="time to first token"></svg></figure>
  </section>
  <section class="workers">
    <h2>Workers <span class="count" data-stat="worker-count">0</span></h2>
    <table>
      <thead><tr><th>worker</th><th>decisions</th><th>KV usage</th><th>active / total blocks</th><th>cache hit</th><th>cached blocks</th><th>in flight</th><th>waiting</th></tr></thead>
      <tbody id="workers"><tr class="empty"><td colspan="8">no worker yet</td></tr></tbody>
    </table>
  </section>
</main>
<footer><span data-stat="window">–</span> · updated <span data-stat="updated">never</span></footer>
</body>
</html>
`;
}

function escapeAttr(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The stylesheet. */
export const DASHBOARD_CSS = String.raw`
:root { --bg:#0f1420; --panel:#171e2e; --line:#263049; --text:#e6ebf5; --muted:#8b97b0; --accent:#76b900; --accent2:#4cc3ff; --warn:#ffb547; --bad:#ff5d73; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
header { display:flex; justify-content:space-between; align-items:center; padding:14px 24px; border-bottom:1px solid var(--line); background:linear-gradient(180deg,#141b2b,#0f1420); }
.brand { display:flex; align-items:baseline; gap:10px; }
.logo { width:14px; height:14px; border-radius:3px; background:var(--accent); align-self:center; box-shadow:0 0 12px rgba(118,185,0,.6); }
h1 { font-size:18px; margin:0; letter-spacing:.3px; }
.sub { color:var(--muted); font-size:13px; }
.status { display:flex; align-items:center; gap:8px; color:var(--muted); }
.dot { width:9px; height:9px; border-radius:50%; background:var(--muted); }
.dot.live { background:var(--accent); box-shadow:0 0 8px var(--accent); }
.dot.stale { background:var(--warn); }
.dot.down { background:var(--bad); }
main { padding:18px 24px; display:flex; flex-direction:column; gap:18px; }
.cards { display:grid; grid-template-columns:repeat(6,minmax(0,1fr)); gap:12px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:12px 14px; min-width:0; }
.card h2, .workers h2 { margin:0 0 6px; font-size:12px; font-weight:600; text-transform:uppercase; letter-spacing:.6px; color:var(--muted); }
.big { font-size:26px; font-weight:650; font-variant-numeric:tabular-nums; white-space:nowrap; }
.small { color:var(--muted); font-size:12px; margin-top:2px; font-variant-numeric:tabular-nums; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.charts { display:grid; grid-template-columns:1fr 1fr; gap:12px; }
.chart { margin:0; background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:10px 12px; }
figcaption { font-size:12px; font-weight:600; text-transform:uppercase; letter-spacing:.6px; color:var(--muted); margin-bottom:6px; }
.unit { float:right; text-transform:none; font-weight:400; }
.legend { text-transform:none; font-weight:400; margin-left:10px; }
.legend i { display:inline-block; width:10px; height:3px; vertical-align:middle; margin:0 3px 0 8px; }
.legend .l50 { background:var(--accent2); } .legend .l99 { background:var(--warn); }
svg { width:100%; height:180px; display:block; }
svg .grid { stroke:var(--line); stroke-width:1; }
svg .axis { fill:var(--muted); font-size:11px; }
svg .rate { fill:none; stroke:var(--accent); stroke-width:2; vector-effect:non-scaling-stroke; }
svg .area { fill:rgba(118,185,0,.12); stroke:none; }
svg .p50 { fill:none; stroke:var(--accent2); stroke-width:2; vector-effect:non-scaling-stroke; }
svg .p99 { fill:none; stroke:var(--warn); stroke-width:2; vector-effect:non-scaling-stroke; }
svg .nodata { fill:var(--muted); font-size:13px; }
.workers { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.count { display:inline-block; background:var(--line); color:var(--text); border-radius:8px; padding:0 7px; margin-left:6px; font-size:11px; }
table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
th { text-align:left; color:var(--muted); font-weight:500; font-size:12px; padding:6px 8px; border-bottom:1px solid var(--line); }
td { padding:8px; border-bottom:1px solid rgba(38,48,73,.6); white-space:nowrap; }
tr:last-child td { border-bottom:none; }
td.name { font-weight:600; max-width:260px; overflow:hidden; text-overflow:ellipsis; }
td.name .id { display:block; font-weight:400; color:var(--muted); font-size:11px; font-family:ui-monospace,Menlo,monospace; }
tr.empty td { color:var(--muted); text-align:center; padding:18px; }
.bar { display:inline-block; width:90px; height:8px; border-radius:4px; background:var(--line); vertical-align:middle; margin-right:8px; overflow:hidden; }
.bar span { display:block; height:100%; background:var(--accent2); }
.bar.kv span { background:var(--accent); }
.bar.kv.high span { background:var(--warn); }
.na { color:var(--muted); }
.small.warn { color:var(--warn); }
form#key-form { margin:18px 24px 0; padding:12px 14px; background:var(--panel); border:1px solid var(--warn); border-radius:10px; display:flex; gap:10px; align-items:center; flex-wrap:wrap; }
form#key-form[hidden] { display:none; }
input, button { font:inherit; padding:6px 10px; border-radius:6px; border:1px solid var(--line); background:#0c111b; color:var(--text); }
button { background:var(--accent); color:#0b1200; border:none; font-weight:600; cursor:pointer; }
footer { color:var(--muted); font-size:12px; padding:0 24px 18px; }
@media (max-width: 1100px) { .cards { grid-template-columns:repeat(3,minmax(0,1fr)); } .charts { grid-template-columns:1fr; } }
`;

/** The script: polls the data endpoint and renders it (no innerHTML anywhere). */
export const DASHBOARD_JS = String.raw`'use strict';
(function () {
  var body = document.body;
  var base = body.getAttribute('data-base') || '/dashboard';
  var pollMs = Number(body.getAttribute('data-poll-ms')) || 2000;
  var KEY = 'dynamo-ts-dashboard-key';
  var SVGNS = 'http://www.w3.org/2000/svg';
  var lastOk = 0;

  function $(sel) { return document.querySelector(sel); }
  function setStat(name, text) { var el = $('[data-stat="' + name + '"]'); if (el) el.textContent = text; }
  function num(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    var d = digits === undefined ? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2) : digits;
    return Number(v).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 });
  }
  function ms(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (v >= 1000) return num(v / 1000, 2) + ' s';
    return num(v, v < 1 ? 3 : undefined) + ' ms';
  }
  function pct(v) { return v === null || v === undefined || !isFinite(v) ? '–' : num(v * 100, 1) + ' %'; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function status(kind, text) {
    $('#status-dot').className = 'dot ' + kind;
    $('#status-text').textContent = text;
  }

  function bar(share, cls) {
    var b = el('span', 'bar' + (cls ? ' ' + cls : ''));
    var f = el('span');
    var w = Math.max(0, Math.min(1, share || 0));
    f.style.width = (w * 100).toFixed(1) + '%';
    b.appendChild(f);
    return b;
  }

  function renderWorkers(workers) {
    var tbody = $('#workers');
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    setStat('worker-count', String(workers.length));
    if (!workers.length) {
      var tr0 = el('tr', 'empty'); var td0 = el('td', '', 'no worker yet'); td0.colSpan = 8; tr0.appendChild(td0); tbody.appendChild(tr0);
      return;
    }
    workers.forEach(function (w) {
      var tr = el('tr');
      tr.setAttribute('data-worker', String(w.name));
      var name = el('td', 'name', String(w.name));
      name.title = String(w.name);
      if (w.id && w.id !== w.name) name.appendChild(el('span', 'id', String(w.id)));
      tr.appendChild(name);
      var dec = el('td'); dec.setAttribute('data-col', 'decisions');
      dec.appendChild(bar(w.decision_share));
      dec.appendChild(el('span', 'v', num(w.decisions, 0)));
      if (w.decision_share !== null) dec.appendChild(el('span', 'na', ' (' + pct(w.decision_share) + ')'));
      tr.appendChild(dec);
      var kv = el('td'); kv.setAttribute('data-col', 'kv-usage');
      if (w.kv_usage === null) kv.appendChild(el('span', 'na', '–'));
      else { kv.appendChild(bar(w.kv_usage, 'kv' + (w.kv_usage > 0.85 ? ' high' : ''))); kv.appendChild(el('span', 'v', pct(w.kv_usage))); }
      tr.appendChild(kv);
      var blocks = w.active_blocks === null ? '–' : num(w.active_blocks, 0) + (w.total_blocks === null ? '' : ' / ' + num(w.total_blocks, 0));
      [['blocks', blocks], ['hit-rate', pct(w.hit_rate)], ['cached-blocks', num(w.cached_blocks, 0)],
       ['inflight', num(w.inflight, 0)], ['waiting', num(w.waiting, 0)]].forEach(function (c) {
        var td = el('td', c[1] === '–' ? 'na' : '', c[1]); td.setAttribute('data-col', c[0]); tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
  }

  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A line chart of series (arrays of [t, v|null]) over the same time axis; nulls break lines.
  function chart(id, history, series, fmt) {
    var s = document.getElementById(id);
    while (s.firstChild) s.removeChild(s.firstChild);
    var W = 600, H = 180, L = 46, R = 8, T = 10, B = 22;
    var pts = [];
    series.forEach(function (sr) { history.forEach(function (p) { var v = p[sr.key]; if (v !== null && isFinite(v)) pts.push(v); }); });
    if (history.length < 2 || !pts.length) {
      s.appendChild(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'nodata' }, 'waiting for data'));
      return;
    }
    var t0 = history[0].t, t1 = history[history.length - 1].t;
    var vmax = Math.max.apply(null, pts); if (!(vmax > 0)) vmax = 1;
    vmax = niceMax(vmax);
    var x = function (t) { return L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R); };
    var y = function (v) { return T + (1 - v / vmax) * (H - T - B); };
    for (var i = 0; i <= 4; i++) {
      var gv = (vmax * i) / 4, gy = y(gv);
      s.appendChild(svg('line', { x1: L, x2: W - R, y1: gy, y2: gy, class: 'grid' }));
      s.appendChild(svg('text', { x: L - 6, y: gy + 4, 'text-anchor': 'end', class: 'axis' }, fmt(gv)));
    }
    var span = Math.round((t1 - t0) / 1000);
    s.appendChild(svg('text', { x: L, y: H - 5, class: 'axis' }, '-' + (span >= 120 ? Math.round(span / 60) + ' min' : span + ' s')));
    s.appendChild(svg('text', { x: W - R, y: H - 5, 'text-anchor': 'end', class: 'axis' }, 'now'));
    series.forEach(function (sr) {
      var d = '', open = false, first = null, last = null;
      history.forEach(function (p) {
        var v = p[sr.key];
        if (v === null || !isFinite(v)) { open = false; return; }
        var px = x(p.t).toFixed(1), py = y(v).toFixed(1);
        d += (open ? 'L' : 'M') + px + ' ' + py + ' ';
        if (first === null) first = px; last = px;
        open = true;
      });
      if (!d) return;
      if (sr.area && first !== null) {
        s.appendChild(svg('path', { d: d + 'L' + last + ' ' + y(0) + ' L' + first + ' ' + y(0) + ' Z', class: 'area' }));
      }
      s.appendChild(svg('path', { d: d, class: sr.cls }));
    });
  }
  function niceMax(v) {
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var m = [1, 2, 4, 6, 8, 10].find(function (k) { return k * p >= v; });
    return m * p;
  }

  function render(d) {
    setStat('rate', d.requests.rate_per_s === null ? '–' : num(d.requests.rate_per_s));
    setStat('total', num(d.requests.total, 0) + ' answered');
    setStat('inflight', num(d.requests.inflight, 0));
    var bad = (d.requests.by_status.error || 0) + (d.requests.by_status.cancelled || 0);
    setStat('errors', num(d.requests.by_status.error || 0, 0) + ' errors · ' + num(d.requests.by_status.cancelled || 0, 0) + ' cancelled');
    $('[data-stat="errors"]').className = 'small' + (bad ? ' warn' : '');
    setStat('ttft-p50', ms(d.ttft_ms.p50));
    setStat('ttft-p90', 'p90 ' + ms(d.ttft_ms.p90));
    setStat('ttft-p99', 'p99 ' + ms(d.ttft_ms.p99));
    setStat('itl-p50', ms(d.itl_ms.p50));
    setStat('itl-p90', 'p90 ' + ms(d.itl_ms.p90));
    setStat('itl-p99', 'p99 ' + ms(d.itl_ms.p99));
    setStat('queue-depth', d.prefill.queue_depth === null ? '–' : num(d.prefill.queue_depth, 0));
    setStat('prefill', num(d.prefill.remote, 0) + ' remote · ' + num(d.prefill.local, 0) + ' local prefills');
    setStat('decisions', num(d.router.decisions, 0));
    setStat('overlap', d.router.overlap_blocks_mean === null ? 'no decision yet' : 'mean overlap ' + num(d.router.overlap_blocks_mean) + ' blocks');
    setStat('window', d.window_s > 0 ? 'rates and percentiles over the last ' + Math.round(d.window_s) + ' s' : 'percentiles since start');
    setStat('updated', new Date(d.time).toLocaleTimeString());
    renderWorkers(d.workers);
    chart('chart-rate', d.history, [{ key: 'rate', cls: 'rate', area: true }], function (v) { return num(v); });
    chart('chart-ttft', d.history, [{ key: 'ttft_p50_ms', cls: 'p50' }, { key: 'ttft_p99_ms', cls: 'p99' }], function (v) { return num(v); });
    body.setAttribute('data-updated', String(d.time));
  }

  function poll() {
    var headers = { accept: 'application/json' };
    var key = sessionStorage.getItem(KEY);
    if (key) headers.authorization = 'Bearer ' + key;
    fetch(base + '/data', { headers: headers, cache: 'no-store' }).then(function (res) {
      if (res.status === 401) {
        $('#key-form').hidden = false;
        status('down', key ? 'API key refused' : 'API key needed');
        return null;
      }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      return res.json();
    }).then(function (d) {
      if (!d) return;
      $('#key-form').hidden = true;
      lastOk = Date.now();
      render(d);
      status('live', 'live');
    }).catch(function (e) {
      status(Date.now() - lastOk < pollMs * 5 ? 'stale' : 'down', 'unreachable: ' + String(e && e.message || e));
    }).then(function () { setTimeout(poll, pollMs); });
  }

  $('#key-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var v = $('#key-input').value.trim();
    if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY);
    $('#key-input').value = '';
  });
  poll();
})();
`;
