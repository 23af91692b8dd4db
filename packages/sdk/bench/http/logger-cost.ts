/**
 * Cost of the logger on the request path at the default level (info): a per-request child
 * logger (`request_id`) and two debug lines, as the graph's endpoints do.
 *
 *   npm run build && npx tsx packages/sdk/bench/http/logger-cost.ts
 */
import { Writable } from 'node:stream';
import { createLogger } from '@dynamo-ts/runtime';

const sink = new Writable({ write: (_c, _e, cb) => cb() });
const root = createLogger({ level: 'info', format: 'json', stream: sink }).child({ component: 'Processor' });
const N = 200_000;
for (let pass = 0; pass < 3; pass++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const log = root.child({ request_id: `r${i}` });
    log.debug('routed', { worker_id: 'abc', overlap_blocks: 3, attempt: 1 });
    log.debug('route decision', { worker_id: 'abc' });
  }
  const ns = Number(process.hrtime.bigint() - t0) / N;
  process.stdout.write(`pass ${pass}: ${(ns / 1000).toFixed(2)} us per request (child + 2 debug lines at info)\n`);
}
