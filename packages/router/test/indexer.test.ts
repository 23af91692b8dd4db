import {
  clearedEvent,
  hashToWire,
  KvEventBuilder,
  KvIndexer,
  removedEvent,
  RouterInvalidArgumentError,
  sequenceHashes,
  storedEventForBlocks,
  storedEventFromTokens,
} from '@dynamo-ts/router';

const BS = 2;
const A = [1, 2, 3, 4, 5, 6, 7, 8];
const seqA = sequenceHashes(A, BS);

function collect(): {
  warnings: [string, Record<string, unknown>][];
  onWarning: (m: string, f: Record<string, unknown>) => void;
} {
  const warnings: [string, Record<string, unknown>][] = [];
  return { warnings, onWarning: (m, f) => warnings.push([m, f]) };
}

describe('KvIndexer', () => {
  it('answers per-worker overlap: leading blocks held', () => {
    const ix = new KvIndexer();
    ix.applyEvent(storedEventFromTokens('w1', 0, A, BS)); // 4 blocks
    ix.applyEvent(storedEventFromTokens('w2', 0, A.slice(0, 4), BS)); // 2 blocks
    expect(ix.findMatches(seqA)).toEqual(
      new Map([
        ['w1', 4],
        ['w2', 2],
      ]),
    );
    expect(ix.overlap('w2', seqA)).toBe(2);
    expect(ix.overlap('nobody', seqA)).toBe(0);
    // a request diverging after block 1
    const other = sequenceHashes([1, 2, 3, 4, 9, 9, 7, 8], BS);
    expect(ix.findMatches(other)).toEqual(
      new Map([
        ['w1', 2],
        ['w2', 2],
      ]),
    );
    // nothing in common
    expect(ix.findMatches(sequenceHashes([9, 9], BS))).toEqual(new Map());
    expect(ix.findMatches([])).toEqual(new Map());
    expect(ix.size).toBe(4);
    expect(ix.totalEntries).toBe(6);
    expect(ix.cachedBlocks('w1')).toBe(4);
    expect(ix.workers().sort()).toEqual(['w1', 'w2']);
  });

  it('counts only contiguous leading blocks', () => {
    const ix = new KvIndexer();
    ix.applyEvent(storedEventFromTokens('w', 0, A, BS));
    ix.applyEvent(removedEvent('w', 1, [seqA[1]!])); // a hole at block 1
    expect(ix.findMatches(seqA)).toEqual(new Map([['w', 1]]));
    expect(ix.cachedBlocks('w')).toBe(3);
  });

  it('chains a store onto a known parent', () => {
    const ix = new KvIndexer();
    const kv = new KvEventBuilder('w', BS);
    expect(ix.applyEvent(kv.stored(A, 0, 2))).toEqual({ status: 'applied', blocks: 2 });
    expect(ix.applyEvent(kv.stored(A, 2))).toEqual({ status: 'applied', blocks: 2 });
    expect(ix.overlap('w', seqA)).toBe(4);
  });

  it('rejects a store whose parent the worker does not hold, changing nothing', () => {
    const { warnings, onWarning } = collect();
    const ix = new KvIndexer({ onWarning });
    // w2 never stored the parent (w1 did): its continuation must not be indexed under a guess.
    ix.applyEvent(storedEventForBlocks('w1', 0, A, BS, { toBlock: 2 }));
    const orphan = storedEventForBlocks('w2', 0, A, BS, { fromBlock: 2 });
    expect(ix.applyEvent(orphan)).toEqual({ status: 'rejected', reason: 'unknown_parent', blocks: 0 });
    expect(ix.cachedBlocks('w2')).toBe(0);
    expect(ix.findMatches(seqA)).toEqual(new Map([['w1', 2]]));
    expect(warnings).toEqual([
      [
        'kv store rejected: unknown parent block',
        { worker_id: 'w2', event_id: 0, parent_hash: hashToWire(seqA[1]!), blocks: 2 },
      ],
    ]);
    // A parent removed earlier is unknown too.
    ix.applyEvent(removedEvent('w1', 1, [seqA[1]!]));
    expect(ix.applyEvent(storedEventForBlocks('w1', 2, A, BS, { fromBlock: 2 })).reason).toBe('unknown_parent');
    expect(ix.counters).toEqual({ applied: 2, rejected: 2, ignored: 0, gaps: 0 });
  });

  it('removes blocks by id, counting unknown ones', () => {
    const ix = new KvIndexer();
    ix.applyEvent(storedEventFromTokens('w', 0, A, BS));
    expect(ix.applyEvent(removedEvent('w', 1, [seqA[3]!, 12345n]))).toEqual({
      status: 'applied',
      blocks: 1,
      missing: 1,
    });
    expect(ix.overlap('w', seqA)).toBe(3);
    expect(ix.applyEvent(removedEvent('w', 2, []))).toEqual({ status: 'applied', blocks: 0 });
  });

  it('clears a worker on a cleared event, other workers untouched', () => {
    const ix = new KvIndexer();
    ix.applyEvent(storedEventFromTokens('w1', 0, A, BS));
    ix.applyEvent(storedEventFromTokens('w2', 0, A, BS));
    expect(ix.applyEvent(clearedEvent('w1', 1))).toEqual({ status: 'applied', blocks: 4 });
    expect(ix.findMatches(seqA)).toEqual(new Map([['w2', 4]]));
    expect(ix.size).toBe(4);
  });

  describe('event ids', () => {
    it('takes the first id as the baseline, then expects +1', () => {
      const ix = new KvIndexer();
      expect(ix.applyEvent(clearedEvent('w', 41)).status).toBe('applied');
      expect(ix.applyEvent(clearedEvent('w', 42))).toEqual({ status: 'applied', blocks: 0 });
      expect(ix.lastEventId('w')).toBe(42);
    });

    it('ignores a repeated or older id', () => {
      const { warnings, onWarning } = collect();
      const ix = new KvIndexer({ onWarning });
      ix.applyEvent(storedEventFromTokens('w', 5, A, BS));
      expect(ix.applyEvent(clearedEvent('w', 5))).toEqual({ status: 'ignored', reason: 'stale_event', blocks: 0 });
      expect(ix.applyEvent(clearedEvent('w', 2)).reason).toBe('stale_event');
      expect(ix.cachedBlocks('w')).toBe(4);
      expect(warnings[0]).toEqual([
        'kv event ignored: stale event id',
        { worker_id: 'w', event_id: 5, last_event_id: 5 },
      ]);
    });

    it('detects a gap, warns, and resyncs the worker (default policy: clear)', () => {
      const { warnings, onWarning } = collect();
      const ix = new KvIndexer({ onWarning });
      ix.applyEvent(storedEventFromTokens('w', 0, A, BS));
      ix.applyEvent(storedEventFromTokens('other', 0, A, BS));
      const r = ix.applyEvent(storedEventFromTokens('w', 3, [7, 7], BS));
      expect(r).toEqual({ status: 'applied', blocks: 1, gap: { expected: 1, received: 3 }, resynced: true });
      expect(warnings).toEqual([
        ['kv event gap', { worker_id: 'w', expected: 1, received: 3, missed: 2, action: 'cleared worker blocks' }],
      ]);
      expect(ix.cachedBlocks('w')).toBe(1); // only the block of the event that revealed the gap
      expect(ix.overlap('w', seqA)).toBe(0);
      expect(ix.overlap('other', seqA)).toBe(4);
      expect(ix.eventGaps('w')).toBe(1);
      expect(ix.counters.gaps).toBe(1);
    });

    it("keeps the worker's blocks on a gap with gapPolicy 'keep'", () => {
      const { warnings, onWarning } = collect();
      const ix = new KvIndexer({ onWarning, gapPolicy: 'keep' });
      ix.applyEvent(storedEventFromTokens('w', 0, A, BS));
      const r = ix.applyEvent(clearedEvent('w', 2));
      expect(r.gap).toEqual({ expected: 1, received: 2 });
      expect(r.resynced).toBe(false);
      expect(warnings[0]![1].action).toBe('kept worker blocks');
      expect(() => new KvIndexer({ gapPolicy: 'nope' as 'keep' })).toThrow(RouterInvalidArgumentError);
    });

    it('clearWorker resyncs: no blocks, next id is a new baseline', () => {
      const ix = new KvIndexer();
      ix.applyEvent(storedEventFromTokens('w', 7, A, BS));
      expect(ix.clearWorker('w')).toBe(true);
      expect(ix.cachedBlocks('w')).toBe(0);
      expect(ix.lastEventId('w')).toBeUndefined();
      expect(ix.applyEvent(clearedEvent('w', 0)).gap).toBeUndefined();
      expect(ix.clearWorker('nobody')).toBe(false);
    });
  });

  it('rejects malformed events without changing anything, and says why', () => {
    const { warnings, onWarning } = collect();
    const ix = new KvIndexer({ onWarning });
    ix.applyEvent(storedEventFromTokens('w', 0, A, BS));
    const bad = [
      null,
      {
        type: 'stored',
        worker_id: 'w',
        event_id: 1,
        parent_hash: null,
        blocks: [{ block_hash: 'zz', tokens_hash: '1' }],
      },
      { type: 'removed', worker_id: 'w', event_id: 1, block_hashes: [hashToWire(seqA[0]!), 'nope'] },
      { type: 'bogus', worker_id: 'w', event_id: 1 },
      { type: 'cleared', worker_id: 'w', event_id: -1 },
    ];
    for (const b of bad) expect(ix.applyEvent(b)).toMatchObject({ status: 'rejected', reason: 'invalid' });
    expect(ix.cachedBlocks('w')).toBe(4);
    expect(ix.lastEventId('w')).toBe(0);
    expect(warnings).toHaveLength(bad.length);
    expect(ix.applyEvent(bad[2])).toMatchObject({ errors: ['block_hashes[1] must be a hex hash'] });
  });

  describe('engine-specific block ids (block_hash is not the sequence hash)', () => {
    // An engine names blocks its own way; the indexer keys by the sequence hash it computes.
    const ids = [0xa1n, 0xa2n, 0xa3n, 0xa4n];
    function engineStored(worker: string, eventId: number, from: number, to: number): unknown {
      const ev = storedEventForBlocks(worker, eventId, A, BS, { fromBlock: from, toBlock: to });
      return {
        ...ev,
        parent_hash: from === 0 ? null : hashToWire(ids[from - 1]!),
        blocks: ev.blocks.map((b, i) => ({ ...b, block_hash: hashToWire(ids[from + i]!) })),
      };
    }

    it('matches requests, resolves parents and removals by the engine ids', () => {
      const ix = new KvIndexer();
      expect(ix.applyEvent(engineStored('e', 0, 0, 2)).status).toBe('applied');
      expect(ix.applyEvent(engineStored('e', 1, 2, 4)).status).toBe('applied');
      expect(ix.overlap('e', seqA)).toBe(4);
      ix.applyEvent(removedEvent('e', 2, [ids[2]!]));
      expect(ix.overlap('e', seqA)).toBe(2);
      // removing by the sequence hash does nothing: that is not this worker's id for it
      expect(ix.applyEvent(removedEvent('e', 3, [seqA[0]!]))).toEqual({ status: 'applied', blocks: 0, missing: 1 });
      expect(ix.overlap('e', seqA)).toBe(2);
      expect(ix.slotFootprint(ix.core.slotOf('e')).aliases).toBe(3);
      ix.removeWorker('e');
      expect(ix.size).toBe(0);
    });

    it('holds a block as long as one of its ids does', () => {
      const ix = new KvIndexer();
      ix.applyEvent(storedEventFromTokens('w', 0, A.slice(0, 2), BS)); // id = sequence hash
      ix.applyEvent(engineStored('w', 1, 0, 1)); // same block, another id
      expect(ix.cachedBlocks('w')).toBe(1);
      ix.applyEvent(removedEvent('w', 2, [seqA[0]!]));
      expect(ix.overlap('w', seqA)).toBe(1);
      ix.applyEvent(removedEvent('w', 3, [ids[0]!]));
      expect(ix.overlap('w', seqA)).toBe(0);
      expect(ix.size).toBe(0);
    });
  });

  it('removeWorker forgets blocks, event id and slot; unknown workers are a no-op', () => {
    const ix = new KvIndexer();
    ix.applyEvent(storedEventFromTokens('w1', 3, A, BS));
    ix.applyEvent(storedEventFromTokens('w2', 0, A, BS));
    const slot = ix.core.slotOf('w1');
    expect(ix.removeWorker('w1')).toBe(true);
    expect(ix.removeWorker('w1')).toBe(false);
    expect(ix.slotFootprint(slot)).toEqual({ workerId: undefined, references: 0, aliases: 0, aliasTargets: 0 });
    expect(ix.findMatches(seqA)).toEqual(new Map([['w2', 4]]));
    expect(ix.lastEventId('w1')).toBeUndefined();
    // back again: a fresh worker, any first id accepted
    expect(ix.applyEvent(clearedEvent('w1', 0)).gap).toBeUndefined();
    expect(ix.core.slotOf('w1')).toBe(slot);
  });

  it('indexes long chains in one event (scratch growth)', () => {
    const ix = new KvIndexer();
    const long = Array.from({ length: 20_000 }, (_, i) => i);
    expect(ix.applyEvent(storedEventFromTokens('w', 0, long, 16)).blocks).toBe(1250);
    expect(ix.overlap('w', sequenceHashes(long, 16))).toBe(1250);
  });
});
