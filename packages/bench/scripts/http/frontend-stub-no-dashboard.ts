/**
 * The frontend in front of a stub `generate`, as `packages/bench/scripts/http/frontend-stub.ts`, with
 * the dashboard turned off (`dashboard: false`): the B side of an A/B that prices what the
 * dashboard's routes cost requests that are not for it.
 *   npx tsx packages/bench/scripts/http/ab-servers.ts packages/bench/scripts/http/frontend-stub.ts \
 *     packages/bench/scripts/http/frontend-stub-no-dashboard.ts
 *
 * IPC: sends `{url}` once listening; `{type: "stop"}` closes and exits 0.
 */
import { startFrontend } from '@dynamo-ts/frontend';
import { createLogger, type LogLevel } from '@dynamo-ts/runtime';

async function main(): Promise<void> {
  const logger = createLogger({ level: (process.env.DYNAMO_LOG_LEVEL ?? 'info') as LogLevel, format: 'json' });
  const server = await startFrontend({
    port: 0,
    host: '127.0.0.1',
    logger,
    dashboard: false,
    generate: async function* (req) {
      yield { worker_output: `${req.prompt}_GeneratedBy_stub`, request_id: req.request_id };
    },
  });
  process.send?.({ url: server.url });
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') void server.close().then(() => process.exit(0));
  });
}

main().catch((e: Error) => {
  process.stderr.write(`frontend-stub-no-dashboard: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
