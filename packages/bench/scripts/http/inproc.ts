/**
 * The hello-world graph's own cost without HTTP: serves the embedded graph in this process and
 * calls the Processor's `generate` directly (16 concurrent callers, each letting the event loop
 * turn between its requests), printing requests/s and CPU microseconds per request for three passes.
 *
 *   npm run build && N=20000 node --import tsx packages/bench/scripts/http/inproc.ts 2>/dev/null
 *   (LVL=warn to change the log level; add --cpu-prof to profile)
 */
import type { LogLevel } from '@dynamo-ts/runtime';
import { loadProcessor, serveHelloWorld } from './processor-load';

async function main(): Promise<void> {
  const { graph, processor } = await serveHelloWorld('inproc', (process.env.LVL ?? 'info') as LogLevel);
  const N = Number(process.env.N ?? 20000);
  for (let pass = 0; pass < 3; pass++) {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await loadProcessor(processor, N, `r${pass}`);
    const cpu = process.cpuUsage(cpu0);
    const dt = performance.now() - t0;
    process.stdout.write(
      `pass ${pass}: ${((N / dt) * 1000).toFixed(0)} req/s, cpu ${((cpu.user + cpu.system) / N).toFixed(1)} us/req\n`,
    );
  }
  await graph.close({ timeoutMs: 1000 });
}

main().catch((e: Error) => {
  process.stderr.write(`inproc: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
