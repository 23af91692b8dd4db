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

/**
 * Chains, as KV `stored` events lay them out: blocks indexed in prompt order sit next to each
 * other in the run store, and a walk follows them without table probes until the chain it follows
 * diverges, ends, or has holes (removed blocks, compacted away once the store fills).
 */
type ChainOp = { kind: 'store'; worker: number; chain: number; from: number; to: number } | Op;
const CHAINS = 6;
const LEN = 24;
// Block j of chain c is the key c * LEN + j, except that chains 0 and 1 share their first 5 blocks
// (a system prompt), so a walk jumps from one run to another.
const chainKey = (c: number, j: number): number => (c === 1 && j < 5 ? j : c * LEN + j);
const chainOp: fc.Arbitrary<ChainOp> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .record({ worker: fc.nat(69), chain: fc.nat(CHAINS - 1), from: fc.nat(LEN - 1), n: fc.nat(LEN) })
      .map(({ worker, chain, from, n }) => ({
        kind: 'store' as const,
        worker,
        chain,
        from,
        to: Math.min(LEN, from + n),
      })),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('release' as const),
      worker: fc.nat(69),
      key: fc.nat(CHAINS * LEN - 1),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), worker: fc.nat(69) }) },
);

describe('BlockIndex walks stored chains', () => {
  it('agrees with a brute-force model through removals and compactions of the run store', () => {
    fc.assert(
      fc.property(
        workerSet,
        fc.array(chainOp, { minLength: 50, maxLength: 400 }),
        fc.array(fc.record({ chain: fc.nat(CHAINS - 1), len: fc.integer({ min: 1, max: LEN }) }), {
          minLength: 1,
          maxLength: 6,
        }),
        (workers, ops, queries) => {
          const ix = new BlockIndex();
          const held = new Set<string>(); // `${worker}:${key}`
          for (const o of ops) {
            const w = o.worker % workers;
            if (o.kind === 'store') {
              const s = ix.ensureWorker(`w${w}`);
              for (let j = o.from; j < o.to; j++) {
                const k = chainKey(o.chain, j);
                ix.acquireOnce(s, k, k * 7);
                held.add(`${w}:${k}`);
              }
            } else if (o.kind === 'release') {
              const s = ix.slotOf(`w${w}`);
              if (s >= 0) ix.release(s, o.key, o.key * 7);
              held.delete(`${w}:${o.key}`);
            } else if (o.kind === 'drop') {
              const s = ix.slotOf(`w${w}`);
              if (s >= 0) {
                ix.releaseAllOf(s);
                ix.dropWorker(s);
              }
              for (const k of [...held]) if (k.startsWith(`${w}:`)) held.delete(k);
            }
          }
          expect(ix.totalEntries).toBe(held.size);
          for (const q of queries) {
            const keys = Array.from({ length: q.len }, (_, j) => chainKey(q.chain, j));
            const words = Uint32Array.from(keys.flatMap((k) => [k, k * 7]));
            ix.score(words, 0, 2, keys.length);
            for (let w = 0; w < workers; w++) {
              let depth = 0;
              while (depth < keys.length && held.has(`${w}:${keys[depth]!}`)) depth++;
              const s = ix.slotOf(`w${w}`);
              expect([q, w, s < 0 ? 0 : ix.overlap(s)]).toEqual([q, w, depth]);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps overlaps exact when most blocks are removed and the store is compacted', () => {
    const ix = new BlockIndex();
    const a = ix.ensureWorker('a');
    const b = ix.ensureWorker('b');
    const chain = (c: number, n: number): Uint32Array => {
      const words = new Uint32Array(2 * n);
      for (let j = 0; j < n; j++) words.set([c * 1000 + j, c], 2 * j);
      return words;
    };
    // 200 chains of 50 blocks on `a`: 10,000 records.
    for (let c = 0; c < 200; c++) for (let j = 0; j < 50; j++) ix.acquire(a, c * 1000 + j, c);
    const full = ix.byteLength;
    // `a` loses all but the first 5 blocks of every chain; `b` stores new chains, which fills the
    // store (16,384 records) while 9,000 are dead, so it is compacted (the dead records go, the
    // live keep their order) instead of growing.
    for (let c = 0; c < 200; c++) for (let j = 5; j < 50; j++) ix.release(a, c * 1000 + j, c);
    for (let c = 200; c < 330; c++) for (let j = 0; j < 50; j++) ix.acquire(b, c * 1000 + j, c);
    expect(ix.cachedBlocks(a)).toBe(200 * 5);
    expect(ix.byteLength).toBe(full);
    expect(ix.cachedBlocks(b)).toBe(130 * 50);
    for (const c of [0, 57, 199]) {
      expect(ix.score(chain(c, 50), 0, 2, 50)).toBe(5);
      expect([ix.overlap(a), ix.overlap(b)]).toEqual([5, 0]);
    }
    for (const c of [200, 329]) {
      expect(ix.score(chain(c, 50), 0, 2, 50)).toBe(50);
      expect([ix.overlap(a), ix.overlap(b)]).toEqual([0, 50]);
    }
    // `b` stores `a`'s chain 3 from block 2 on (both own blocks 2..4, `a` alone 0..1); then `a`
    // stores the rest again, after `b`'s records.
    for (let j = 2; j < 40; j++) ix.acquire(b, 3000 + j, 3);
    expect(ix.score(chain(3, 50), 0, 2, 50)).toBe(5);
    expect([ix.overlap(a), ix.overlap(b)]).toEqual([5, 0]);
    for (let j = 5; j < 50; j++) ix.acquire(a, 3000 + j, 3);
    expect(ix.score(chain(3, 50), 0, 2, 50)).toBe(50);
    expect([ix.overlap(a), ix.overlap(b)]).toEqual([50, 0]);
    // Everything gone: the store starts over and gives its memory back.
    ix.releaseAllOf(a);
    ix.releaseAllOf(b);
    expect(ix.size).toBe(0);
    expect(ix.score(chain(0, 50), 0, 2, 50)).toBe(0);
    for (let j = 0; j < 50; j++) ix.acquire(b, j, 0);
    expect(ix.score(chain(0, 50), 0, 2, 50)).toBe(50);
    expect(ix.byteLength).toBeLessThanOrEqual(full * 2);
  });
});
