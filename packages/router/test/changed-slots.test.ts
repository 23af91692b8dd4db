import { BlockIndex } from '@dynamo-ts/router';
import { ChangedSlots } from '../src/changed-slots';

describe('ChangedSlots', () => {
  it('lists each marked slot once, in first-marked order, across growth, until cleared', () => {
    const c = new ChangedSlots();
    for (const s of [3, 1, 3, 500, 1, 0]) c.mark(s);
    expect(Array.from(c.slots.subarray(0, c.count))).toEqual([3, 1, 500, 0]);
    c.clear();
    expect(c.count).toBe(0);
    c.mark(500);
    c.mark(3);
    expect(Array.from(c.slots.subarray(0, c.count))).toEqual([500, 3]);
  });
});

describe('BlockIndex count changes', () => {
  it('reports the slots whose cached-block count changed, once each, only when tracking', () => {
    const idx = new BlockIndex();
    const a = idx.ensureWorker('a');
    const b = idx.ensureWorker('b');
    const seen: number[] = [];
    idx.acquire(a, 1, 1);
    idx.takeCountChanges((s) => seen.push(s));
    expect(seen).toEqual([]); // not tracking yet
    idx.trackCountChanges();
    idx.acquire(a, 2, 2);
    idx.acquire(a, 3, 3);
    idx.acquire(b, 2, 2); // a shared block: b's count changes, a's does not
    idx.takeCountChanges((s) => seen.push(s));
    expect(seen).toEqual([a, b]);
    seen.length = 0;
    idx.acquire(a, 2, 2); // a second reference: the count stays
    idx.takeCountChanges((s) => seen.push(s));
    expect(seen).toEqual([]);
    idx.release(b, 2, 2);
    idx.takeCountChanges((s) => seen.push(s));
    expect(seen).toEqual([b]);
    expect(idx.cachedBlocks(a)).toBe(3);
    expect(idx.cachedBlocks(b)).toBe(0);
  });
});
