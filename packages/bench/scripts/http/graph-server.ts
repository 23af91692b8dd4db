/**
 * Case (b) of the request-path benchmark, and the heap check: the hello-world graph served
 * embedded in this process with `serveGraph`, exactly as `dynamo-ts serve` does (configs/agg.yaml,
 * a JSON logger at info level on standard error), the Frontend on a free loopback port.
 * `BENCH_ROUTER_MODE=local` serves it with the Processor's in-process router.
 *
 * IPC: sends `{url}` once serving; answers `{type: "heap"}` with `{heap_used}` measured after
 * forced garbage collections (run node with --expose-gc); `{type: "stop"}` drains and exits 0.
 */
import path from 'node:path';
import { createLogger, type LogLevel } from '@dynamo-ts/runtime';
import { embeddedPlatform, loadConfigFile, loadService, mergeConfig, serveGraph } from '@dynamo-ts/sdk';

// The example is loaded by path, as `dynamo-ts serve` loads it, not imported.
const Frontend = loadService(
  path.resolve(__dirname, '../../../../examples/hello-world/components/graph.ts') + ':Frontend',
);

async function main(): Promise<void> {
  const replicas = Number(process.env.BENCH_WORKERS ?? 2);
  const level = (process.env.DYNAMO_LOG_LEVEL ?? 'info') as LogLevel;
  const logger = createLogger({ level, format: 'json' });
  const config = mergeConfig(
    loadConfigFile(path.resolve(__dirname, '../../../../examples/hello-world/configs/agg.yaml')),
    {
      Frontend: { port: 0, host: '127.0.0.1' },
      DummyWorker: { replicas, token_delay_ms: 0 },
      // `local`: the Processor holds the KV router (no Router hop).
      ...(process.env.BENCH_ROUTER_MODE ? { Processor: { router_mode: process.env.BENCH_ROUTER_MODE } } : {}),
    },
  );
  const graph = await serveGraph(Frontend, {
    platform: embeddedPlatform(),
    config,
    configSource: 'bench',
    settings: { namespace: `bench-${process.pid}`, port: 0, workerName: 'bench', leaseTtlMs: 10000 },
    logger,
  });
  const url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
  process.send?.({ url });
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'heap') {
      if (!gc) {
        process.send?.({ error: 'run with --expose-gc' });
        return;
      }
      gc();
      gc();
      process.send?.({ heap_used: process.memoryUsage().heapUsed });
    } else if (m?.type === 'stop') {
      void graph.close({ timeoutMs: 2000 }).then(() => process.exit(0));
    }
  });
}

main().catch((e: Error) => {
  process.stderr.write(`graph-server: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
