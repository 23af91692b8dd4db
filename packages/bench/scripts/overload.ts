/**
 * Load shedding under 10x overload: a frontend with admission (MAX_CONCURRENT requests answered
 * at once, MAX_QUEUED waiting) in front of an upstream that takes SERVICE_MS a request, so its
 * capacity is MAX_CONCURRENT / SERVICE_MS. Offers, open loop, 0.5x capacity (baseline), then
 * 10x for OVERLOAD_S seconds, then 0.5x again (recovery), and prints per phase the admitted and
 * rejected counts, their latency percentiles, the process's peak RSS, and the ratios of the
 * overload and recovery figures to the baseline measured in the same run.
 *
 *   npm run build && node --expose-gc --import tsx packages/bench/scripts/overload.ts
 *   (OVERLOAD_S=10 for a short run; MAX_CONCURRENT, MAX_QUEUED, SERVICE_MS to change the setup)
 */
import http from 'node:http';
import { Registry } from 'prom-client';
import { startFrontend, type GenerateEvent } from '@dynamo-ts/frontend';

const MAX_CONCURRENT = Number(process.env.MAX_CONCURRENT ?? 8);
const MAX_QUEUED = Number(process.env.MAX_QUEUED ?? 8);
const SERVICE_MS = Number(process.env.SERVICE_MS ?? 50);
const OVERLOAD_S = Number(process.env.OVERLOAD_S ?? 60);
const CAPACITY = (MAX_CONCURRENT * 1000) / SERVICE_MS; // requests/s

interface Phase {
  name: string;
  seconds: number;
  rate: number;
  ok: number[];
  shed: number[];
  other: number;
  peakRss: number;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function main(): Promise<void> {
  const server = await startFrontend({
    port: 0,
    host: '127.0.0.1',
    registry: new Registry(),
    admission: { maxConcurrentRequests: MAX_CONCURRENT, maxQueuedRequests: MAX_QUEUED, queueTimeoutMs: 1000 },
    generate: () =>
      (async function* () {
        await new Promise((r) => setTimeout(r, SERVICE_MS));
        yield { worker_output: 'done', completion_tokens: 1, finish_reason: 'stop' } as GenerateEvent;
      })(),
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const body = JSON.stringify({ prompt: 'hi' });
  const send = (phase: Phase): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = http.request(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/generate',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const ms = performance.now() - t0;
            if (res.statusCode === 200) phase.ok.push(ms);
            else if (res.statusCode === 529) phase.shed.push(ms);
            else phase.other++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        phase.other++;
        resolve();
      });
      req.end(body);
    });

  const run = async (phase: Phase): Promise<void> => {
    const inflight = new Set<Promise<void>>();
    const tickMs = 10;
    const perTick = (phase.rate * tickMs) / 1000;
    let credit = 0;
    const end = performance.now() + phase.seconds * 1000;
    while (performance.now() < end) {
      credit += perTick;
      for (; credit >= 1; credit--) {
        const p = send(phase).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      phase.peakRss = Math.max(phase.peakRss, process.memoryUsage().rss);
      await new Promise((r) => setTimeout(r, tickMs));
    }
    await Promise.all(inflight);
  };

  const mk = (name: string, seconds: number, factor: number): Phase => ({
    name,
    seconds,
    rate: CAPACITY * factor,
    ok: [],
    shed: [],
    other: 0,
    peakRss: 0,
  });
  const phases = [mk('baseline 0.5x', 5, 0.5), mk('overload 10x', OVERLOAD_S, 10), mk('recovery 0.5x', 5, 0.5)];
  for (const p of phases) await run(p);
  await server.close();
  agent.destroy();

  const base = phases[0]!;
  const mb = (b: number): string => (b / 1024 / 1024).toFixed(0);
  process.stdout.write(
    `capacity ${CAPACITY.toFixed(0)} req/s (max_concurrent ${MAX_CONCURRENT}, max_queued ${MAX_QUEUED}, ${SERVICE_MS} ms a request)\n`,
  );
  const rows = [
    [
      'phase',
      'offered/s',
      'admitted',
      'ok p50 ms',
      'ok p99 ms',
      'p99 x base',
      'shed',
      'shed p50 ms',
      'shed p99 ms',
      'other',
      'peak RSS MB',
    ],
  ];
  for (const p of phases) {
    rows.push([
      p.name,
      p.rate.toFixed(0),
      String(p.ok.length),
      pct(p.ok, 50).toFixed(1),
      pct(p.ok, 99).toFixed(1),
      (pct(p.ok, 99) / pct(base.ok, 99)).toFixed(2),
      String(p.shed.length),
      pct(p.shed, 50).toFixed(1),
      pct(p.shed, 99).toFixed(1),
      String(p.other),
      mb(p.peakRss),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) process.stdout.write(r.map((x, c) => x.padEnd(widths[c]!)).join('  ') + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`overload: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
