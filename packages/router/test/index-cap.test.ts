import {
  KvIndexer,
  KvRouter,
  RouterInvalidArgumentError,
  sequenceHashes,
  storedEventFromTokens,
  type KvStoredEvent,
} from '@dynamo-ts/router';

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/** A forged `stored` event: a new chain of `n` one-token blocks (Dynamo-style ids). */
function forged(worker: string, eventId: number, from: number, n: number): KvStoredEvent {
  return storedEventFromTokens(worker, eventId, range(from, n), 1);
}

/** The chain's sequence hashes. */
const chain = (from: number, n: number): bigint[] => sequenceHashes(range(from, n), 1);

describe('bounded KV index under hostile events', () => {
  it('forged events for 2 M blocks keep a worker that holds 16,384 at its cap, memory flat', () => {
    const warnings: string[] = [];
    const r = new KvRouter({ blockSize: 16, onWarning: (m) => warnings.push(m) });
    r.addWorker('w');
    r.applyLoad({ worker_id: 'w', total_blocks: 16_384 });
    const cap = r.indexer!.capOf('w')!;
    expect(cap).toBe(16_384 + 1_024);
    let bytesAfterFirstMillion = 0;
    for (let e = 0; e < 2_000; e++) {
      const ev = forged('w', e, e * 1_000, 1_000);
      expect(r.applyEvent(ev).status).toBe('applied');
      expect(r.indexer!.cachedBlocks('w')).toBeLessThanOrEqual(cap);
      if (e === 999) bytesAfterFirstMillion = r.indexer!.core.byteLength;
    }
    expect(r.stats().indexedBlocks).toBeLessThanOrEqual(cap);
    expect(r.indexer!.evictedOverCap).toBeGreaterThanOrEqual(2_000_000 - cap);
    // The second million did not grow the index.
    expect(r.indexer!.core.byteLength).toBeLessThanOrEqual(bytesAfterFirstMillion * 1.05);
    expect(warnings).toContain('kv index over cap: evicted oldest blocks');
  });

  it('evicts the oldest stored blocks first; without a report, maxBlocksPerWorker caps', () => {
    const idx = new KvIndexer({ maxBlocksPerWorker: 100 });
    idx.addWorker('w');
    idx.applyEvent(forged('w', 0, 0, 80));
    idx.applyEvent(forged('w', 1, 1_000, 80));
    expect(idx.cachedBlocks('w')).toBe(100);
    // The first event's first 60 blocks went; its last 20 and all of the second stay.
    const first = chain(0, 80);
    const second = chain(1_000, 80);
    expect(idx.overlap('w', [first[59]!])).toBe(0);
    expect(idx.overlap('w', [first[60]!])).toBe(1);
    expect(idx.overlap('w', [second[0]!])).toBe(1);
    // A lower reported capacity shrinks the index at once.
    idx.setWorkerCapacity('w', 10);
    expect(idx.cachedBlocks('w')).toBe(74);
    expect(() => new KvIndexer({ maxBlocksPerWorker: 0 })).toThrow(RouterInvalidArgumentError);
  });

  it('store/remove churn under the cap does not grow the store order without bound', () => {
    const idx = new KvIndexer({ maxBlocksPerWorker: 1_000 });
    idx.addWorker('w');
    let id = 0;
    for (let round = 0; round < 200; round++) {
      const ev = forged('w', id++, round * 100, 100);
      idx.applyEvent(ev);
      idx.applyEvent({
        type: 'removed',
        worker_id: 'w',
        event_id: id++,
        block_hashes: ev.blocks.map((b) => b.block_hash),
      });
    }
    expect(idx.cachedBlocks('w')).toBe(0);
    expect((idx as unknown as { orders: { length: number }[] }).orders[0]!.length).toBeLessThanOrEqual(1_200);
  });
});
