/**
 * Streaming throughput of the NATS request plane against bare NATS publish/subscribe, over a
 * real nats-server on a free loopback port, serving and calling in one process:
 *
 *   npm run build && npx tsx packages/bench/scripts/http/nats-stream.ts [items 2000] [rounds 5]
 *
 * Prints items/s per round for the bare publish loop and for a NatsRequestPlane stream of
 * `{token_ids: [t]}` items (ack, data frames, credits, end).
 */
import { connect } from '@nats-io/transport-node';
import { NatsRequestPlane } from '@dynamo-ts/runtime/nats';
import { startNatsServer } from '@dynamo-ts/runtime/testing';

async function main(): Promise<void> {
  const items = Number(process.argv[2] ?? 2000);
  const rounds = Number(process.argv[3] ?? 5);
  const server = await startNatsServer({ jetstream: false });
  const a = await connect({ servers: server.url });
  const b = await connect({ servers: server.url });
  try {
    const serving = new NatsRequestPlane(a);
    const calling = new NatsRequestPlane(b, { streamWindow: Number(process.env.WINDOW ?? 64) });
    await serving.serve('bench.stream', async function* () {
      for (let i = 0; i < items; i++) yield { token_ids: [i] };
    });
    for (let r = 0; r < rounds; r++) {
      // Bare: one publisher, one subscriber, the same small JSON bodies.
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        let n = 0;
        const sub = b.subscribe('bench.bare', {
          callback: () => {
            if (++n === items) {
              sub.unsubscribe();
              resolve();
            }
          },
        });
        void b.flush().then(async () => {
          for (let i = 0; i < items; i++) {
            a.publish('bench.bare', `d${i + 1} {"token_ids":[${i}]}`);
            // Yield like an async generator does between items.
            await Promise.resolve();
          }
        });
      });
      const bare = performance.now() - t0;
      const t1 = performance.now();
      let n = 0;
      for await (const _ of calling.request('bench.stream', {})) n++;
      const plane = performance.now() - t1;
      if (n !== items) throw new Error(`got ${n} items`);
      process.stdout.write(
        `round ${r}: bare ${Math.round((items / bare) * 1000)} msgs/s, request plane ${Math.round((items / plane) * 1000)} items/s\n`,
      );
    }
    await calling.close();
    await serving.close();
  } finally {
    await a.close();
    await b.close();
    await server.dispose();
  }
}

void main();
