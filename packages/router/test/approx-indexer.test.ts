import { ApproxKvIndexer, DEFAULT_APPROX_TTL_MS, RouterInvalidArgumentError, sequenceHashes } from '@dynamo-ts/router';

const seqA = sequenceHashes([1, 2, 3, 4, 5, 6], 2);
const seqB = sequenceHashes([9, 9, 8, 8], 2);

describe('ApproxKvIndexer', () => {
  let t = 0;
  const now = (): number => t;
  beforeEach(() => {
    t = 1_000;
  });

  it('records routed blocks and expires them after the TTL (default 120 s)', () => {
    expect(DEFAULT_APPROX_TTL_MS).toBe(120_000);
    const ix = new ApproxKvIndexer({ now });
    ix.record('w1', seqA);
    expect(ix.findMatches(seqA)).toEqual(new Map([['w1', 3]]));
    expect(ix.cachedBlocks('w1')).toBe(3);
    t += 119_999;
    expect(ix.findMatches(seqA)).toEqual(new Map([['w1', 3]]));
    t += 1;
    expect(ix.findMatches(seqA)).toEqual(new Map());
    expect(ix.cachedBlocks('w1')).toBe(0);
    expect(ix.size).toBe(0);
    expect(ix.entryCount).toBe(0);
  });

  it('a new decision refreshes the blocks it covers, only those', () => {
    const ix = new ApproxKvIndexer({ now, ttlMs: 100 });
    ix.record('w1', seqA); // 3 blocks at t=1000
    t = 1_050;
    ix.record('w1', seqA.slice(0, 1)); // refresh block 0 only
    t = 1_100;
    expect(ix.findMatches(seqA)).toEqual(new Map([['w1', 1]]));
    expect(ix.cachedBlocks('w1')).toBe(1);
    t = 1_150;
    expect(ix.expire()).toBe(1);
    expect(ix.findMatches(seqA)).toEqual(new Map());
  });

  it('keeps workers apart and shares common blocks', () => {
    const ix = new ApproxKvIndexer({ now, ttlMs: 100 });
    ix.record('w1', seqA);
    t += 10;
    ix.record('w2', seqA.slice(0, 2));
    ix.record('w2', seqB);
    expect(ix.findMatches(seqA)).toEqual(
      new Map([
        ['w1', 3],
        ['w2', 2],
      ]),
    );
    expect(ix.findMatches(seqB)).toEqual(new Map([['w2', 2]]));
    t += 91; // w1's records expire, w2's do not
    expect(ix.findMatches(seqA)).toEqual(new Map([['w2', 2]]));
  });

  it('removeWorker leaves no trace', () => {
    const ix = new ApproxKvIndexer({ now });
    ix.record('w1', seqA);
    ix.record('w2', seqA);
    const slot = ix.core.slotOf('w1');
    expect(ix.removeWorker('w1')).toBe(true);
    expect(ix.removeWorker('w1')).toBe(false);
    expect(ix.footprint('w1')).toEqual({ blockIds: 0, references: 0, expiryEntries: 0 });
    expect(ix.core.scanReferences(slot)).toBe(0);
    expect(ix.entryCount).toBe(3);
    expect(ix.findMatches(seqA)).toEqual(new Map([['w2', 3]]));
    expect(ix.workers()).toEqual(['w2']);
  });

  it('grows past its initial capacity and still expires in order', () => {
    const ix = new ApproxKvIndexer({ now, ttlMs: 10 });
    for (let i = 0; i < 300; i++) {
      ix.record(`w${i % 3}`, sequenceHashes([i, i + 1, i + 2, i + 3], 2));
      t += 1;
    }
    expect(ix.entryCount).toBe(20); // 10 ms worth of decisions, 2 blocks each
    t += 10;
    expect(ix.expire()).toBe(20);
    expect(ix.entryCount).toBe(0);
  });

  it('validates its options', () => {
    expect(() => new ApproxKvIndexer({ ttlMs: 0 })).toThrow(RouterInvalidArgumentError);
    expect(() => new ApproxKvIndexer({ ttlMs: Number.POSITIVE_INFINITY })).toThrow(/ttlMs/);
  });
});
