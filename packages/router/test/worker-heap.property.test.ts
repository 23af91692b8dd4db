import fc from 'fast-check';
import { WorkerHeap } from '@dynamo-ts/router';

/**
 * The load-ordered heap against a plain map: after any sequence of inserts, key changes, rotations
 * and deletes, the walk gives every slot once in ascending key order, equal keys first in, first out
 * (by their last set or rotate), and stopping early gives the smallest keys.
 */
type Op =
  { kind: 'set'; slot: number; key: number } | { kind: 'delete'; slot: number } | { kind: 'rotate'; slot: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      slot: fc.nat({ max: 70 }),
      key: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.double({ min: -1e6, max: 1e6, noNaN: true })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), slot: fc.nat({ max: 70 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rotate' as const), slot: fc.nat({ max: 70 }) }) },
);

describe('WorkerHeap', () => {
  it('walks every slot once, in ascending key order, after random updates', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.nat({ max: 80 }), (ops, stopAfter) => {
        const heap = new WorkerHeap();
        const model = new Map<number, number>();
        const tick = new Map<number, number>();
        let t = 0;
        for (const o of ops) {
          if (o.kind === 'set') {
            heap.set(o.slot, o.key);
            model.set(o.slot, o.key);
            tick.set(o.slot, ++t);
          } else if (o.kind === 'rotate') {
            heap.rotate(o.slot);
            if (model.has(o.slot)) tick.set(o.slot, ++t);
          } else {
            expect(heap.delete(o.slot)).toBe(model.delete(o.slot));
          }
        }
        expect(heap.size).toBe(model.size);
        const sorted = [...model.values()].sort((a, b) => a - b);
        expect(heap.peek() === -1 ? undefined : heap.keyOf(heap.peek())).toBe(sorted[0]);
        heap.begin();
        const seen: number[] = [];
        for (let s = heap.upcoming(), n = heap.next(); n >= 0; s = heap.upcoming(), n = heap.next()) {
          expect(n).toBe(s);
          seen.push(n);
        }
        expect(heap.upcoming()).toBe(-1);
        const order = [...model.keys()].sort((a, b) => model.get(a)! - model.get(b)! || tick.get(a)! - tick.get(b)!);
        expect(seen).toEqual(order);
        // An early stop: the first k of the walk have the k smallest keys, in order.
        heap.begin();
        const firstKeys: number[] = [];
        for (let s = heap.next(); s >= 0 && firstKeys.length < stopAfter; s = heap.next())
          firstKeys.push(heap.keyOf(s));
        expect(firstKeys).toEqual(sorted.slice(0, stopAfter));
      }),
      { numRuns: 300 },
    );
  });

  it('rejects bad slots and NaN keys, and reports absent slots', () => {
    const heap = new WorkerHeap();
    expect(() => heap.set(-1, 0)).toThrow(RangeError);
    expect(() => heap.set(1.5, 0)).toThrow(RangeError);
    expect(() => heap.set(0, NaN)).toThrow(/NaN/);
    expect(heap.has(3)).toBe(false);
    expect(heap.keyOf(3)).toBeNaN();
    expect(heap.delete(3)).toBe(false);
    heap.begin();
    expect(heap.next()).toBe(-1);
    heap.set(1000, Infinity);
    heap.set(2, -Infinity);
    heap.begin();
    expect([heap.next(), heap.next(), heap.next()]).toEqual([2, 1000, -1]);
  });
});
