/**
 * Cost of one in-memory request-plane hop: 16 callers send requests to an endpoint whose handler
 * yields one item and never reads its signal; prints CPU microseconds per request for three
 * passes, next to the floor measured in the same pass: the same handler called directly, its
 * item copied with `copyJson` as the plane copies it.
 *
 *   npm run build && npx tsx packages/bench/scripts/http/memory-hop.ts
 */
import path from 'node:path';
import { MemoryBus, MemoryRequestPlane, type RequestContext } from '@dynamo-ts/runtime';
// The plane's own copy, from the built runtime (it is not part of the package's API).
const { copyJson } = require(path.join(path.dirname(require.resolve('@dynamo-ts/runtime')), 'util/json.js')) as {
  copyJson(value: unknown, what: string, limit: number): unknown;
};

async function* handler(req: unknown, _ctx?: RequestContext): AsyncGenerator<unknown> {
  yield { worker_output: 'hello', request_id: (req as { request_id: string }).request_id };
}

/** CPU microseconds per call of `call`, made `n` times by 16 concurrent callers. */
async function cpuPerCall(n: number, call: (id: string) => AsyncIterable<unknown>): Promise<number> {
  let i = 0;
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (i++ < n) {
        for await (const _ of call(`r${i}`)) {
          // drain
        }
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / n;
}

async function main(): Promise<void> {
  const bus = new MemoryBus();
  const plane = new MemoryRequestPlane(bus);
  await plane.serve('bench.hop.generate', handler);
  const N = Number(process.env.N ?? 200_000);
  const direct = async function* (id: string): AsyncGenerator<unknown> {
    for await (const item of handler({ prompt: 'Tell me a joke', request_id: id }, {} as RequestContext)) {
      yield copyJson(item, 'response item', plane.maxPayload);
    }
  };
  for (let pass = 0; pass < 3; pass++) {
    const hop = await cpuPerCall(N, (id) =>
      plane.request('bench.hop.generate', { prompt: 'Tell me a joke', request_id: id }, { requestId: id }),
    );
    const floor = await cpuPerCall(N, direct);
    process.stdout.write(
      `pass ${pass}: ${hop.toFixed(2)} us/request (one hop, one item); direct call ${floor.toFixed(2)} us (${(hop / floor).toFixed(2)}x)\n`,
    );
  }
  await bus.close();
}
void main();
