import fc from 'fast-check';
import { LoadTracker } from '@dynamo-ts/router';

/**
 * Active-block accounting against a brute-force model: a worker's active blocks are the distinct
 * blocks of its running requests (plus unshared ones), and a request's active overlap on a worker
 * is its longest common prefix with a request running there.
 */
type Op =
  | { kind: 'route'; worker: number; chain: number[]; extra: number }
  | { kind: 'finish'; pick: number }
  | { kind: 'removeWorker'; worker: number };

// Chains over a tiny alphabet, so that they share prefixes often; block i of a chain is keyed by
// the whole prefix (like a sequence hash): key = hash of chain[0..i]. `firsts` first blocks: with
// one, every request is in the same group, which grows past the small-group limit
// (LoadTracker.SMALL_GROUP running requests compared chain to chain) into the active-block index
// and shrinks again.
function chainOf(firsts: number): fc.Arbitrary<number[]> {
  return fc
    .tuple(fc.integer({ min: 1, max: firsts }), fc.array(fc.constantFrom(1, 2, 3), { maxLength: 4 }))
    .map(([f, rest]) => [f, ...rest]);
}

function opOf(firsts: number, workers: number, finishWeight: number): fc.Arbitrary<Op> {
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant('route' as const),
        worker: fc.nat(workers - 1),
        chain: chainOf(firsts),
        extra: fc.nat(1),
      }),
    },
    { weight: finishWeight, arbitrary: fc.record({ kind: fc.constant('finish' as const), pick: fc.nat(50) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeWorker' as const), worker: fc.nat(workers - 1) }) },
  );
}

function keys(c: number[]): bigint[] {
  // Distinct per prefix: the prefix read as base-4 digits, offset by its length.
  let v = 0n;
  return c.map((x, i) => (v = v * 4n + BigInt(x)) + (BigInt(i) << 40n));
}

function checkAgainstModel(
  firsts: number,
  workers: number,
  minOps: number,
  maxOps: number,
  finishWeight: number,
  runs: number,
  growFirst = 0,
): number {
  const op = opOf(firsts, workers, finishWeight);
  const chain = chainOf(firsts);
  // `growFirst` routes before the mixed operations (so a group can pass the small-group limit).
  const grow = opOf(firsts, workers, 0).filter((o) => o.kind === 'route');
  let mostRunning = 0;
  fc.assert(
    fc.property(
      fc
        .tuple(
          fc.array(grow, { minLength: growFirst, maxLength: growFirst }),
          fc.array(op, { minLength: minOps, maxLength: maxOps }),
        )
        .map(([a, b]) => [...a, ...b]),
      fc.array(chain, { minLength: 1, maxLength: 5 }),
      (ops, queries) => {
        const lt = new LoadTracker({ now: () => 0 });
        const running = new Map<string, { worker: number; chain: number[]; extra: number }>();
        let n = 0;
        for (const o of ops) {
          if (o.kind === 'route') {
            const id = `r${n++}`;
            lt.addWorker(`w${o.worker}`);
            const ks = keys(o.chain);
            lt.onRouted(id, `w${o.worker}`, { prefillTokens: 0, sequenceHashes: ks, blocks: ks.length + o.extra });
            running.set(id, { worker: o.worker, chain: o.chain, extra: o.extra });
            mostRunning = Math.max(mostRunning, running.size);
          } else if (o.kind === 'finish') {
            const ids = [...running.keys()];
            if (ids.length === 0) continue;
            const id = ids[o.pick % ids.length]!;
            expect(lt.onFinished(id)).toBe(true);
            running.delete(id);
          } else {
            lt.removeWorker(`w${o.worker}`);
            for (const [id, r] of running) if (r.worker === o.worker) running.delete(id);
          }
          for (let w = 0; w < workers; w++) {
            const st = lt.stateOf(`w${w}`);
            if (st === undefined) continue;
            const distinct = new Set<bigint>();
            let extra = 0;
            for (const r of running.values()) {
              if (r.worker !== w) continue;
              for (const k of keys(r.chain)) distinct.add(k);
              extra += r.extra;
            }
            expect([w, st.trackedBlocks]).toEqual([w, distinct.size + extra]);
          }
        }
        for (const q of queries) {
          const qk = keys(q);
          const words = Uint32Array.from(qk.flatMap((k) => [Number(k & 0xffffffffn), Number(k >> 32n)]));
          lt.scoreActive(words, 0, 2, qk.length);
          for (let w = 0; w < workers; w++) {
            const st = lt.stateOf(`w${w}`);
            if (st === undefined) continue;
            let best = 0;
            for (const r of running.values()) {
              if (r.worker !== w) continue;
              let k = 0;
              while (k < q.length && k < r.chain.length && q[k] === r.chain[k]) k++;
              best = Math.max(best, k);
            }
            expect([q, w, lt.activeOverlap(st)]).toEqual([q, w, best]);
          }
        }
        expect(lt.inflightRequests).toBe(running.size);
      },
    ),
    { numRuns: runs },
  );
  return mostRunning;
}

describe('LoadTracker active blocks agree with a brute-force model', () => {
  it('under random routing, finishing and worker removal', () => {
    checkAgainstModel(3, 3, 0, 60, 3, 300);
  });

  it('when one group grows past the small-group limit and shrinks (20 workers)', () => {
    const limit = LoadTracker.SMALL_GROUP;
    const most = checkAgainstModel(1, 20, 60, 120, 6, 25, limit + 16);
    expect(most).toBeGreaterThan(limit);
  });
});
