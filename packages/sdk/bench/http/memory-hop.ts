/**
 * Cost of one in-memory request-plane hop: 16 callers send requests to an endpoint whose handler
 * yields one item and never reads its signal; prints CPU microseconds per request for three passes.
 *
 *   npm run build && npx tsx packages/sdk/bench/http/memory-hop.ts
 */
import { MemoryBus, MemoryRequestPlane } from '@dynamo-ts/runtime';

async function main(): Promise<void> {
  const bus = new MemoryBus();
  const plane = new MemoryRequestPlane(bus);
  await plane.serve('bench.hop.generate', async function* (req) {
    yield { worker_output: 'hello', request_id: (req as { request_id: string }).request_id };
  });
  const N = Number(process.env.N ?? 200_000);
  for (let pass = 0; pass < 3; pass++) {
    let i = 0;
    const cpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (i++ < N) {
          const id = `r${i}`;
          for await (const _ of plane.request(
            'bench.hop.generate',
            { prompt: 'Tell me a joke', request_id: id },
            { requestId: id },
          )) {
            // drain
          }
        }
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    process.stdout.write(`pass ${pass}: ${((cpu.user + cpu.system) / N).toFixed(2)} us/request (one hop, one item)\n`);
  }
  await bus.close();
}
void main();
