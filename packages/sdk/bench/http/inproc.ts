/**
 * The hello-world graph's own cost without HTTP: serves the embedded graph in this process and
 * calls the Processor's `generate` directly (16 concurrent callers, each letting the event loop
 * turn between its requests), printing requests/s and CPU microseconds per request for three passes.
 *
 *   npm run build && N=20000 node --import tsx packages/sdk/bench/http/inproc.ts 2>/dev/null
 *   (LVL=warn to change the log level; add --cpu-prof to profile)
 */
import path from 'node:path';
import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, loadConfigFile, mergeConfig, serveGraph } from '@dynamo-ts/sdk';
import { Frontend } from '../../../../examples/hello-world/components/graph';

async function main() {
  const logger = createLogger({ level: (process.env.LVL ?? 'info') as 'info', format: 'json' });
  const config = mergeConfig(
    loadConfigFile(path.resolve(__dirname, '../../../../examples/hello-world/configs/agg.yaml')),
    {
      Frontend: { port: 0, host: '127.0.0.1' },
    },
  );
  const graph = await serveGraph(Frontend, {
    platform: embeddedPlatform(),
    config,
    settings: { namespace: 'x', port: 0, workerName: 'w', leaseTtlMs: 10000 },
    logger,
  });
  const rt = graph.get('Frontend')[0]!.runtime;
  const client = await rt.namespace('x').component('Processor').endpoint('generate').client();
  const N = Number(process.env.N ?? 20000);
  const C = 16;
  for (let pass = 0; pass < 3; pass++) {
    let i = 0;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (i < N) {
          const id = `r${pass}-${i++}`;
          let out = '';
          for await (const ev of client.generate<{ worker_output: string }>(
            { prompt: 'Tell me a joke', request_id: id },
            { requestId: id },
          ))
            out += ev.worker_output;
          if (!out.startsWith('Tell me a joke')) throw new Error(out);
          // Let the event loop turn, as it does between HTTP requests: without it the whole pass
          // runs as one chain of microtasks and what waits for a turn (log lines, the Processor's
          // first_token events, timers) piles up until the end of the pass.
          await new Promise((r) => setImmediate(r));
        }
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    const dt = performance.now() - t0;
    process.stdout.write(
      `pass ${pass}: ${((N / dt) * 1000).toFixed(0)} req/s, cpu ${((cpu.user + cpu.system) / N).toFixed(1)} us/req\n`,
    );
  }
  await graph.close({ timeoutMs: 1000 });
}
void main();
