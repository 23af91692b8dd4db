/**
 * Case (f) of the request-path benchmark: the dynamo-ts frontend (`@dynamo-ts/frontend`, the same
 * express app, middleware, validation, metrics and access log at info level as the graph's) in
 * front of a stub `generate` that answers at once, without the graph. Between (a) and (b) it
 * splits the graph's cost into the HTTP layer's and the services'.
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
  process.stderr.write(`frontend-stub: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
