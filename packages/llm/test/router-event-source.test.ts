import { createLogger, type InstanceChange, type InstanceInfo, type Logger } from '@dynamo-ts/runtime';
import { blockHashes, hashToWire, sequenceHashes, type KvEvent } from '@dynamo-ts/router';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { KvRouterService, workerService, type KvEventSource, type WorkerSet } from '@dynamo-ts/llm';

const BS = 2;
const Idle = workerService({
  name: 'Idle',
  embeddedReplicas: 1,
  createEngine: () => ({
    async *generate() {
      yield { tokenIds: [1], finishReason: 'stop' };
    },
  }),
});

const info = (id: string, metadata: Record<string, unknown>): InstanceInfo => ({
  namespace: 'n',
  component: 'Idle',
  endpoint: 'generate',
  instanceId: id,
  name: id,
  hostname: 'h',
  pid: 1,
  subject: `s.${id}`,
  startedAt: new Date(0).toISOString(),
  metadata,
});

/** The router's `stored` event for the full blocks of `tokens`. */
let eventId = 0;
const stored = (worker: string, tokens: number[]): KvEvent => {
  const locals = blockHashes(tokens, BS);
  return {
    type: 'stored',
    worker_id: worker,
    event_id: ++eventId,
    parent_hash: null,
    blocks: sequenceHashes(tokens, BS).map((h, i) => ({
      block_hash: hashToWire(h),
      tokens_hash: hashToWire(locals[i]!),
    })),
  } as KvEvent;
};

/** A worker set the test changes by hand. */
class FakeWorkers implements WorkerSet {
  private listeners: ((c: InstanceChange) => void)[] = [];
  constructor(private list: InstanceInfo[]) {}
  instances() {
    return this.list;
  }
  instanceIds() {
    return this.list.map((i) => i.instanceId);
  }
  onChange(l: (c: InstanceChange) => void) {
    this.listeners.push(l);
    return () => (this.listeners = this.listeners.filter((x) => x !== l));
  }
  remove(id: string) {
    const i = this.list.find((x) => x.instanceId === id)!;
    this.list = this.list.filter((x) => x !== i);
    for (const l of this.listeners) l({ type: 'removed', instance: i });
  }
}

describe('a KV router with an external event source (engines read directly)', () => {
  let graph: GraphHandle;
  const ns = `src-${process.pid}`;
  beforeAll(async () => {
    graph = await serveGraph(Idle, {
      platform: embeddedPlatform(),
      settings: { namespace: ns, port: 0, workerName: 'w', leaseTtlMs: 10000 },
      config: {},
      logger: createLogger({ silent: true }),
    });
  });
  afterAll(() => graph.close({ timeoutMs: 1000 }));

  it('follows the workers that registered an endpoint, ignores their event-plane events, and stops when they leave', async () => {
    const rt = graph.get('Idle')[0]!.runtime;
    const component = rt.namespace(ns).component('Idle');
    const followed: { id: string; emit: (e: KvEvent) => void; closed: boolean }[] = [];
    const source: KvEventSource = {
      follow(worker, emit) {
        if (worker.metadata.kv_events === 'bad') throw new Error('metadata.kv_events is not an endpoint');
        if (worker.metadata.kv_events === undefined) return undefined;
        const f = { id: worker.instanceId, emit, closed: false };
        followed.push(f);
        return { close: () => (f.closed = true) };
      },
    };
    const warnings: string[] = [];
    const logger = createLogger({ silent: true });
    const spy: Logger = Object.assign(Object.create(logger) as Logger, {
      warn: (m: string) => void warnings.push(m),
    });
    const workers = new FakeWorkers([
      info('w1', { kv_events: 'tcp://127.0.0.1:1' }),
      info('w2', {}),
      info('w3', { kv_events: 'bad' }),
    ]);
    const service = await KvRouterService.start({
      runtime: rt,
      workerComponent: component,
      workers,
      config: { block_size: BS, strategy: 'kv', kv_preset: 'tuned', temperature: 0, replica_sync_ms: 0 },
      logger: spy,
      kvEventSource: source,
    });
    try {
      expect(followed.map((f) => f.id)).toEqual(['w1']);
      expect(warnings).toContain('cannot read KV events from the engine; following the event plane');
      const w1 = followed[0]!;
      const route = (tokens: number[]) => service.route({ token_ids: tokens, request_id: `r${++eventId}` });

      // The source's events count for w1.
      w1.emit(stored('w1', [1, 2, 3, 4]));
      expect(route([1, 2, 3, 4])).toMatchObject({ worker_id: 'w1', overlap_blocks: 2 });
      // An event the source attributes to another worker is dropped.
      w1.emit(stored('w2', [5, 6, 7, 8]));
      expect(route([5, 6, 7, 8]).overlap_blocks).toBe(0);
      // Over the event plane: w2's events count, w1's do not (they come from the source).
      await component.publish('kv_events', stored('w2', [9, 10, 11, 12]));
      await component.publish('kv_events', stored('w1', [13, 14, 15, 16]));
      await rt.eventPlane.flush();
      await new Promise((r) => setTimeout(r, 50));
      expect(route([9, 10, 11, 12])).toMatchObject({ worker_id: 'w2', overlap_blocks: 2 });
      expect(route([13, 14, 15, 16]).overlap_blocks).toBe(0);

      // w1 leaves: its subscription is closed and a late event from it is dropped.
      workers.remove('w1');
      expect(w1.closed).toBe(true);
      w1.emit(stored('w1', [17, 18, 19, 20]));
      expect(route([17, 18, 19, 20]).overlap_blocks).toBe(0);
    } finally {
      service.close();
    }
  });

  it('closes every subscription when the router closes', async () => {
    const rt = graph.get('Idle')[0]!.runtime;
    const subs: { closed: boolean }[] = [];
    const service = await KvRouterService.start({
      runtime: rt,
      workerComponent: rt.namespace(ns).component('Idle'),
      workers: new FakeWorkers([info('a', { kv_events: 'x' }), info('b', { kv_events: 'y' })]),
      config: { block_size: BS, strategy: 'kv', kv_preset: 'tuned', temperature: 0, replica_sync_ms: 0 },
      logger: createLogger({ silent: true }),
      kvEventSource: {
        follow: () => {
          const s = { closed: false, close: () => (s.closed = true) };
          subs.push(s);
          return s;
        },
      },
    });
    service.close();
    expect(subs.map((s) => s.closed)).toEqual([true, true]);
  });
});
