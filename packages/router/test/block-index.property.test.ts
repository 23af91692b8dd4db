import fc from 'fast-check';
import { BlockIndex } from '@dynamo-ts/router';

/**
 * The block table on its own, against a brute-force model, with holdings that need not be
 * prefix-closed (a worker may hold block 3 of a request but not block 2) and up to 70 workers (so
 * shared-owner bitmasks span several words).
 */
type Op =
  { kind: 'acquire' | 'release' | 'acquireOnce'; worker: number; key: number } | { kind: 'drop'; worker: number };

const KEYS = 8; // key k is the hash (k, k * 7) - also the k-th block of every query below
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('acquire' as const), worker: fc.nat(69), key: fc.nat(KEYS - 1) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('acquireOnce' as const), worker: fc.nat(69), key: fc.nat(KEYS - 1) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('release' as const), worker: fc.nat(69), key: fc.nat(KEYS - 1) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), worker: fc.nat(69) }) },
);
const workerSet = fc.constantFrom(3, 40, 70);

describe('BlockIndex agrees with a brute-force model', () => {
  it('for references, distinct counts and overlaps of arbitrary queries', () => {
    fc.assert(
      fc.property(
        workerSet,
        fc.array(op, { maxLength: 120 }),
        fc.array(fc.array(fc.nat(KEYS - 1), { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 }),
        (workers, ops, queries) => {
          const ix = new BlockIndex();
          const refs = new Map<string, number>(); // `${worker}:${key}` -> references
          const slot = (w: number): number => ix.ensureWorker(`w${w}`);
          for (const o of ops) {
            const w = o.worker % workers;
            if (o.kind === 'drop') {
              const s = ix.slotOf(`w${w}`);
              if (s >= 0) {
                ix.releaseAllOf(s);
                ix.dropWorker(s);
              }
              for (const k of [...refs.keys()]) if (k.startsWith(`${w}:`)) refs.delete(k);
              continue;
            }
            const id = `${w}:${o.key}`;
            const n = refs.get(id) ?? 0;
            if (o.kind === 'acquire') {
              ix.acquire(slot(w), o.key, o.key * 7);
              refs.set(id, n + 1);
            } else if (o.kind === 'acquireOnce') {
              expect(ix.acquireOnce(slot(w), o.key, o.key * 7)).toBe(n === 0);
              if (n === 0) refs.set(id, 1);
            } else {
              ix.release(slot(w), o.key, o.key * 7);
              if (n > 1) refs.set(id, n - 1);
              else refs.delete(id);
            }
          }
          const holds = (w: number, k: number): boolean => (refs.get(`${w}:${k}`) ?? 0) > 0;
          for (let w = 0; w < workers; w++) {
            const s = ix.slotOf(`w${w}`);
            let distinct = 0;
            for (let k = 0; k < KEYS; k++) {
              if (holds(w, k)) distinct++;
              if (s >= 0) expect(ix.refCount(s, k, k * 7)).toBe(refs.get(`${w}:${k}`) ?? 0);
            }
            if (s >= 0) expect(ix.cachedBlocks(s)).toBe(distinct);
          }
          expect(ix.totalEntries).toBe(refs.size);
          for (const q of queries) {
            const words = Uint32Array.from(q.flatMap((k) => [k, k * 7]));
            const max = ix.score(words, 0, 2, q.length);
            let best = 0;
            for (let w = 0; w < workers; w++) {
              let depth = 0;
              while (depth < q.length && holds(w, q[depth]!)) depth++;
              best = Math.max(best, depth);
              const s = ix.slotOf(`w${w}`);
              expect([q, w, s < 0 ? 0 : ix.overlap(s)]).toEqual([q, w, depth]);
            }
            // the return value is the deepest match (or, with nobody matching, at most 1 probe)
            if (best > 0) expect(max).toBe(best);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
