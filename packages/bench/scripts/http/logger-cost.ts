/**
 * Cost of the logger on the request path at the default level (info):
 * 1. a per-request child logger (`request_id`) and two debug lines, as the graph's endpoints do;
 * 2. one access-log line at info, the runtime's JSON logger against winston's `timestamp()` +
 *    `json()` formats and stream transport (what the JSON logger replaced), both to a stream that
 *    discards the text, so only the logger's own work is counted.
 *
 *   npm run build && npx tsx packages/bench/scripts/http/logger-cost.ts
 */
import { Writable } from 'node:stream';
import winston from 'winston';
import { createLogger, flushLogs } from '@dynamo-ts/runtime';

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
const N = 200_000;

function time(label: string, body: (i: number) => void): void {
  for (let pass = 0; pass < 3; pass++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      body(i);
      // The JSON logger writes a turn's lines at the end of the turn: every 100 lines here.
      if (i % 100 === 99) flushLogs();
    }
    flushLogs();
    const ns = Number(process.hrtime.bigint() - t0) / N;
    process.stdout.write(`pass ${pass}: ${(ns / 1000).toFixed(2)} us per ${label}\n`);
  }
}

const root = createLogger({ level: 'info', format: 'json', stream: sink() }).child({ component: 'Processor' });
time('request (child + 2 debug lines at info)', (i) => {
  const log = root.child({ request_id: `r${i}` });
  log.debug('routed', { worker_id: 'abc', overlap_blocks: 3, attempt: 1 });
  log.debug('route decision', { worker_id: 'abc' });
});

const fields = (i: number): Record<string, unknown> => ({
  method: 'POST',
  path: '/generate',
  status: 200,
  latency_ms: 0.7123,
  request_id: `bench-${i}`,
});
const json = createLogger({ level: 'info', format: 'json', stream: sink() }).child({ component: 'Frontend' });
time('info line (JSON logger)', (i) => json.info('http request', fields(i)));
const w = winston
  .createLogger({
    level: 'info',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream: sink() })],
  })
  .child({ component: 'Frontend' });
time('info line (winston timestamp + json, baseline)', (i) => w.info('http request', fields(i)));
