import { KvRouter, sequenceHashes, type KvEvent } from '@dynamo-ts/router';
import { SlotTable } from '../src/slots';

const BS = 4;
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe('SlotTable', () => {
  it('gives a request the free slot with the longest common prefix, then the least recently used', async () => {
    const t = new SlotTable(3, BS, 'w', () => undefined);
    const a = await t.acquire(range(0, 10));
    t.update(a, range(0, 10));
    t.release(a);
    const b = await t.acquire(range(100, 10));
    t.update(b, range(100, 10));
    t.release(b);
    // Shares 8 tokens with slot a.
    expect((await t.acquire([...range(0, 8), 55, 56])).index).toBe(a.index);
    // No prefix anywhere: the slot never used (slot 2) before b.
    const c = await t.acquire([7, 7, 7]);
    expect(c.index).toBe(2);
    // Only b is free now.
    expect(t.choose([1])?.index).toBe(b.index);
  });

  it('waits for a slot when all are busy and hands it over on release', async () => {
    const t = new SlotTable(1, BS, 'w', () => undefined);
    const s = await t.acquire([1]);
    let got = false;
    const next = t.acquire([2]).then(() => (got = true));
    await new Promise((r) => setImmediate(r));
    expect(got).toBe(false);
    expect(t.waiting).toBe(1);
    t.release(s);
    await next;
    expect(t.waiting).toBe(0);
    const ac = new AbortController();
    const gaveUp = t.acquire([3], ac.signal);
    ac.abort(new Error('gone'));
    await expect(gaveUp).rejects.toThrow('gone');
    expect(t.waiting).toBe(0);
  });

  it("announces blocks with the router's own hashes, once per block while any slot holds it", async () => {
    const events: KvEvent[] = [];
    const router = new KvRouter({ blockSize: BS });
    router.addWorker('w');
    router.addWorker('other');
    const t = new SlotTable(2, BS, 'w', (e) => {
      events.push(e);
      expect(router.applyEvent(e).status).toBe('applied');
    });
    const shared = range(0, 12);
    const s0 = await t.acquire(shared);
    const s1 = await t.acquire(shared);
    t.update(s0, [...shared, 1, 2, 3, 4]);
    t.update(s1, [...shared, 9, 9, 9, 9]);
    // The second slot adds only its last block: the shared three were announced once.
    expect(events.map((e) => e.type)).toEqual(['stored', 'stored']);
    expect(events[1]!.type === 'stored' && events[1]!.blocks.length).toBe(1);
    expect(t.cachedBlocks([...shared, 1, 2, 3, 4])).toBe(4);
    expect(router.route({ tokenIds: [...shared, 1, 2, 3, 4, 5], record: false })).toMatchObject({
      worker_id: 'w',
      overlap_blocks: 4,
    });
    // s0 moves elsewhere: only its private block goes; the shared prefix is still held by s1.
    t.update(s0, range(500, 4));
    const removed = events.find((e) => e.type === 'removed');
    expect(removed?.type === 'removed' && removed.block_hashes.length).toBe(1);
    expect(t.cachedBlocks(shared)).toBe(3);
    expect(t.heldBlocks).toBe(5);
    expect(sequenceHashes(shared, BS)).toHaveLength(3);
    t.clear();
    expect(events.at(-1)?.type).toBe('cleared');
    expect(t.cachedBlocks(shared)).toBe(0);
  });
});
