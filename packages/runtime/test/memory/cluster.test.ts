/** MemoryCluster: one close stops every client, stream, subscription, consumer and timer. */
import { MemoryCluster } from '../../src/memory';
import type { EventMessage } from '../../src/events/event-plane';
import type { DiscoveryEvent } from '../../src/discovery/discovery';
import { Reader, rejection } from '@dynamo-ts/runtime/compliance';

describe('MemoryCluster', () => {
  test('close ends everything connected to it', async () => {
    const cluster = new MemoryCluster();
    const d = await cluster.connectDiscovery({ leaseTtlMs: 60_000 });
    await d.put('k', 'v');
    const watch = new Reader<DiscoveryEvent>(d.watchPrefix(''));
    await watch.take(2);

    const server = cluster.requestPlane();
    const client = cluster.requestPlane();
    let handlerSignal: AbortSignal | undefined;
    await server.serve('svc', async function* (_req, ctx) {
      handlerSignal = ctx.signal;
      yield 1;
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
    });
    const stream = new Reader(client.request('svc', {}, { timeoutMs: 60_000 }));
    await stream.take(1);

    const events = cluster.eventPlane();
    const sub = new Reader<EventMessage>(events.subscribe('a.>'));

    const q = cluster.workQueue<string>({ namespace: 'ns', name: 'q', ackWaitMs: 60_000 });
    await q.push('held');
    await q.push('waiting');
    const consumer = new Reader(q.consume());
    await consumer.take(1);
    const job = consumer.items[0]!;
    await job.nak(60_000);

    await cluster.close();
    await cluster.close();

    await watch.end();
    await stream.end();
    await sub.end();
    await consumer.end();
    expect(handlerSignal!.aborted).toBe(true);
    expect(d.status).toBe('closed');
    expect((await rejection(d.get('k'))).code).toBe('CLOSED');
    expect((await rejection(events.publish('a.b', 1))).code).toBe('CLOSED');
    expect((await rejection(q.push('x'))).code).toBe('CLOSED');
    expect(cluster.kv.closed && cluster.bus.closed && cluster.queues.closed).toBe(true);
  });
});
