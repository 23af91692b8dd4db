import type { InstanceInfo, Logger } from '@dynamo-ts/runtime';
import { createLogger } from '@dynamo-ts/runtime';
import { KvRouter, type KvEvent } from '@dynamo-ts/router';
import { directKvEventSource, routerKvEventSource } from '../src/router-ingest';
import { EngineDouble, batchBytes } from './support/engine-double';
import { until } from './support/util';

const BS = 4;
const logger: Logger = createLogger({ silent: true });
const worker = (metadata: Record<string, unknown>): InstanceInfo => ({
  namespace: 'n',
  component: 'VllmWorker',
  endpoint: 'generate',
  instanceId: 'w1',
  name: 'w1',
  hostname: 'h',
  pid: 1,
  subject: 's',
  startedAt: new Date(0).toISOString(),
  metadata,
});

describe("the Router's direct KV-event source", () => {
  const source = directKvEventSource({ blockSize: BS, logger });

  it('follows nothing for a worker that registered no kv_events, and refuses bad metadata naming the key', () => {
    expect(source.follow(worker({}), () => undefined)).toBeUndefined();
    expect(source.follow(worker({ kv_events: null }), () => undefined)).toBeUndefined();
    expect(() => source.follow(worker({ kv_events: 5557 }), () => undefined)).toThrow(
      /metadata.kv_events is not a string/,
    );
    expect(() => source.follow(worker({ kv_events: 'localhost:5557' }), () => undefined)).toThrow(
      /kv_events must be tcp:\/\/HOST:PORT/,
    );
    expect(() => source.follow(worker({ kv_events: 'tcp://127.0.0.1:1', dp_size: 0 }), () => undefined)).toThrow(
      /metadata.dp_size must be an integer in 1..1024/,
    );
  });

  it("subscribes to the registered endpoint and emits the router's events for that worker until closed", async () => {
    const d = await new EngineDouble({ blockSize: BS }).start();
    const router = new KvRouter({ blockSize: BS, strategy: 'kv', temperature: 0 });
    router.addWorker('w1');
    router.addWorker('w2');
    const events: KvEvent[] = [];
    const sub = source.follow(
      worker({ kv_events: d.kv.endpoint, kv_replay: d.kv.replayEndpoint, kv_topic: '', dp_size: 1, total_blocks: 100 }),
      (e) => {
        events.push(e);
        router.applyEvent(e);
      },
    )!;
    try {
      const tokens = Array.from({ length: 2 * BS }, (_, i) => 100 + i);
      // Empty batches until the subscriber is connected, then the prefix.
      while (events.length === 0) {
        await d.kv.publish(batchBytes('array', []));
        await d.store(tokens);
        await new Promise((r) => setTimeout(r, 10));
      }
      // The prefix's blocks may arrive in more than one event (a batch missed while connecting is
      // replayed): wait for both.
      const storedBlocks = () => events.reduce((n, e) => n + (e.type === 'stored' ? e.blocks.length : 0), 0);
      await until(() => storedBlocks() >= 2, 2000, 'the stored blocks');
      expect(events.every((e) => e.worker_id === 'w1')).toBe(true);
      expect(router.route({ tokenIds: tokens, requestId: 'q' })).toMatchObject({ worker_id: 'w1', overlap_blocks: 2 });
    } finally {
      sub.close();
      await d.close();
    }
  });

  it('is configured by --Router.ingest: direct gives a source, events none', () => {
    expect(routerKvEventSource({ config: { block_size: BS, ingest: 'direct' }, logger })).toBeDefined();
    expect(routerKvEventSource({ config: { block_size: BS, ingest: 'events' }, logger })).toBeUndefined();
    expect(routerKvEventSource({ config: { block_size: BS }, logger })).toBeUndefined();
  });
});
