/**
 * Bytes the embedded hello-world graph allocates per request (without HTTP), by function: the
 * sampling heap profiler, counting the objects GC already collected, over N requests through
 * the Processor (16 callers, the event loop turning between a caller's requests) after N of
 * warm-up. Allocation is steadier than CPU time on a shared VM.
 *
 *   npm run build && N=20000 TOP=25 npx tsx packages/bench/scripts/http/alloc.ts 2>/dev/null
 */
import { HeapSampling, printBytesPerRequest } from './heap-sampling';
import { loadProcessor, serveHelloWorld } from './processor-load';

async function main(): Promise<void> {
  const { graph, processor } = await serveHelloWorld('alloc', 'info');
  const N = Number(process.env.N ?? 20000);
  await loadProcessor(processor, N, 'warm');
  const sampling = await HeapSampling.start(128);
  await loadProcessor(processor, N, 'measured');
  printBytesPerRequest('embedded graph, no HTTP', await sampling.stop(), N, Number(process.env.TOP ?? 25));
  await graph.close({ timeoutMs: 1000 });
}

main().catch((e: Error) => {
  process.stderr.write(`alloc: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
