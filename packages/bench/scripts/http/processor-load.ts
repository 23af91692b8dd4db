/**
 * The embedded hello-world graph served in this process, and a closed-loop load on its
 * Processor without HTTP: what `inproc.ts` (CPU per request) and `alloc.ts` (bytes per request)
 * measure.
 */
import path from 'node:path';
import { createLogger, type EndpointClient, type LogLevel } from '@dynamo-ts/runtime';
import {
  embeddedPlatform,
  loadConfigFile,
  loadService,
  mergeConfig,
  serveGraph,
  type GraphHandle,
} from '@dynamo-ts/sdk';

// The example is loaded by path, as `dynamo-ts serve` loads it, not imported.
const Frontend = loadService(
  path.resolve(__dirname, '../../../../examples/hello-world/components/graph.ts') + ':Frontend',
);

/** The graph (configs/agg.yaml, JSON logs at `level` on standard error) and a client of its Processor. */
export async function serveHelloWorld(
  namespace: string,
  level: LogLevel,
): Promise<{ graph: GraphHandle; processor: EndpointClient }> {
  const config = mergeConfig(
    loadConfigFile(path.resolve(__dirname, '../../../../examples/hello-world/configs/agg.yaml')),
    { Frontend: { port: 0, host: '127.0.0.1' } },
  );
  const graph = await serveGraph(Frontend, {
    platform: embeddedPlatform(),
    config,
    settings: { namespace, port: 0, workerName: 'w', leaseTtlMs: 10000 },
    logger: createLogger({ level, format: 'json' }),
  });
  const processor = await graph
    .get('Frontend')[0]!
    .runtime.namespace(namespace)
    .component('Processor')
    .endpoint('generate')
    .client();
  return { graph, processor };
}

/**
 * Sends `n` requests (`Tell me a joke`, a new request id each) from `concurrency` callers, each
 * reading its whole answer and checking it, then letting the event loop turn, as it does between
 * HTTP requests: without the turn a pass runs as one chain of microtasks and what waits for a
 * turn (log lines, the Processor's first_token events, timers) piles up until the pass ends.
 */
export async function loadProcessor(
  processor: EndpointClient,
  n: number,
  tag: string,
  concurrency = 16,
): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (i < n) {
        const id = `${tag}-${i++}`;
        let out = '';
        for await (const ev of processor.generate<{ worker_output: string }>(
          { prompt: 'Tell me a joke', request_id: id },
          { requestId: id },
        ))
          out += ev.worker_output;
        if (!out.startsWith('Tell me a joke')) throw new Error(`unexpected answer: ${out}`);
        await new Promise((r) => setImmediate(r));
      }
    }),
  );
}
