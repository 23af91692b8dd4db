import { KvCache, MAX_EVENT_BLOCKS } from '@dynamo-ts/llm';
import { KvEventBuilder, KvRouter, type KvEvent } from '@dynamo-ts/router';

const tokens = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => (i * 31 + seed) % 50_000);

describe('KvCache', () => {
  it("announces a huge prompt in events of at most MAX_EVENT_BLOCKS blocks, which a router's index follows as one", () => {
    const events: KvEvent[] = [];
    const cache = new KvCache({
      workerId: 'w1',
      blockSize: 2,
      capacityBlocks: 100_000,
      publish: (e) => events.push(e),
    });
    const prompt = tokens(2 * (2 * MAX_EVENT_BLOCKS + 300) + 1, 7); // 2348 full blocks and one token
    cache.store(prompt);
    expect(events.map((e) => e.type)).toEqual(['stored', 'stored', 'stored']);
    expect(events.map((e) => (e.type === 'stored' ? e.blocks.length : 0))).toEqual([
      MAX_EVENT_BLOCKS,
      MAX_EVENT_BLOCKS,
      300,
    ]);
    expect(events.map((e) => e.event_id)).toEqual([0, 1, 2]);
    // The chunks say exactly what one event for the whole prompt says.
    const whole = new KvEventBuilder('w1', 2).stored(prompt);
    const chunks = events.flatMap((e) => (e.type === 'stored' ? e.blocks : []));
    expect(chunks).toEqual(whole.blocks);
    expect(events.map((e) => (e.type === 'stored' ? e.parent_hash : undefined))).toEqual([
      null,
      whole.blocks[MAX_EVENT_BLOCKS - 1]!.block_hash,
      whole.blocks[2 * MAX_EVENT_BLOCKS - 1]!.block_hash,
    ]);
    const router = new KvRouter({ blockSize: 2 });
    router.addWorker('w1');
    router.addWorker('w2');
    for (const e of events) router.applyEvent(e);
    expect(router.route({ tokenIds: prompt, requestId: 'r' })).toMatchObject({ worker_id: 'w1', overlap_blocks: 2348 });

    // A second store of the same prompt announces nothing; a longer one only its new blocks.
    events.length = 0;
    cache.store(prompt);
    expect(events).toEqual([]);
    expect(cache.matchPrefix(prompt)).toBe(2348);
  });

  it('evicts beyond its capacity in removed events of at most MAX_EVENT_BLOCKS blocks', () => {
    const events: KvEvent[] = [];
    const cache = new KvCache({ workerId: 'w1', blockSize: 2, capacityBlocks: 100, publish: (e) => events.push(e) });
    const prompt = tokens(2 * (MAX_EVENT_BLOCKS + 200), 3);
    cache.store(prompt);
    const removed = events.filter((e) => e.type === 'removed');
    expect(removed.map((e) => (e.type === 'removed' ? e.block_hashes.length : 0))).toEqual([MAX_EVENT_BLOCKS, 100]);
    expect(cache.size).toBe(100);
    // The deepest blocks go first: what stays is the prompt's first 100 blocks, still a prefix.
    expect(cache.matchPrefix(prompt)).toBe(100);
    expect(events.map((e) => e.event_id)).toEqual(events.map((_, i) => i));
  });

  it('storeAsync announces the same events as store and lets the event loop turn during a huge store', async () => {
    const prompt = tokens(2 * 24_000, 11);
    const sync: KvEvent[] = [];
    new KvCache({ workerId: 'w1', blockSize: 2, capacityBlocks: 8192, publish: (e) => sync.push(e) }).store(prompt);
    const async: KvEvent[] = [];
    const cache = new KvCache({ workerId: 'w1', blockSize: 2, capacityBlocks: 8192, publish: (e) => async.push(e) });
    let turns = 0;
    let spinning = true;
    const spin = (): void => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    await cache.storeAsync(prompt);
    spinning = false;
    expect(async).toEqual(sync);
    expect(cache.size).toBe(8192);
    // A store of 24k blocks runs tens of ms at least: the loop turned meanwhile.
    expect(turns).toBeGreaterThan(0);
  });
});
