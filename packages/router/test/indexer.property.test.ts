import fc from 'fast-check';
import {
  type ApplyResult,
  type GapPolicy,
  hashToWire,
  joinHash,
  type KvEvent,
  KvIndexer,
  sequenceHash,
} from '@dynamo-ts/router';
import { ModelIndexer, normalizeReferences } from './model';

// Small pools so that blocks are shared, ids collide with sequence hashes, parents are (un)known...
const TOK = [0n, 1n, 1n << 32n, 3n, (1n << 64n) - 1n, 0x123456789abcdefn];
const EXT = [0n, 1n, (1n << 32n) | 1n, 7n, 1n << 63n, 99n];
const WORKERS = ['a', 'b', 'c'];

type Cmd =
  | {
      kind: 'stored';
      worker: string;
      idDelta: number;
      parent: number | null;
      knownParent: boolean;
      blocks: { tok: number; ext: number | null }[];
    }
  | { kind: 'removed'; worker: string; idDelta: number; picks: { known: boolean; n: number }[] }
  | { kind: 'cleared'; worker: string; idDelta: number }
  | { kind: 'removeWorker'; worker: string };

const worker = fc.constantFrom(...WORKERS);
const idDelta = fc.constantFrom(1, 1, 1, 1, 1, 1, 1, 2, 3, 0, -1);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('stored' as const),
      worker,
      idDelta,
      parent: fc.option(fc.nat(30), { nil: null, freq: 3 }),
      knownParent: fc.boolean(),
      blocks: fc.array(
        fc.record({
          tok: fc.constantFrom(0, 1, 2, 3, 4, 5),
          ext: fc.option(fc.constantFrom(0, 1, 2, 3, 4, 5), { nil: null, freq: 3 }),
        }),
        { maxLength: 4 },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('removed' as const),
      worker,
      idDelta,
      picks: fc.array(fc.record({ known: fc.boolean(), n: fc.nat(30) }), { maxLength: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cleared' as const), worker, idDelta }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeWorker' as const), worker }) },
);

/** Builds the concrete event for a command from the model's state (so parents can be known). */
function buildEvent(model: ModelIndexer, c: Exclude<Cmd, { kind: 'removeWorker' }>): KvEvent {
  const w = model.workers.get(c.worker);
  const event_id = Math.max(0, (w?.last ?? -1) + c.idDelta);
  const known = [...(w?.ids.keys() ?? [])].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  if (c.kind === 'cleared') return { type: 'cleared', worker_id: c.worker, event_id };
  if (c.kind === 'removed') {
    const hs = c.picks.map((p) => (p.known && known.length > 0 ? known[p.n % known.length]! : EXT[p.n % EXT.length]!));
    return { type: 'removed', worker_id: c.worker, event_id, block_hashes: hs.map(hashToWire) };
  }
  let parentExt: bigint | null = null;
  if (c.parent !== null) {
    parentExt = c.knownParent && known.length > 0 ? known[c.parent % known.length]! : EXT[c.parent % EXT.length]!;
  }
  let prev = parentExt === null ? undefined : w?.ids.get(parentExt);
  const blocks = c.blocks.map((b) => {
    const tok = TOK[b.tok]!;
    prev = sequenceHash(prev, tok);
    // null ext: Dynamo-style, block_hash = the sequence hash (when computable)
    const ext = b.ext === null ? prev : EXT[b.ext]!;
    return { block_hash: hashToWire(ext), tokens_hash: hashToWire(tok) };
  });
  return {
    type: 'stored',
    worker_id: c.worker,
    event_id,
    parent_hash: parentExt === null ? null : hashToWire(parentExt),
    blocks,
  };
}

/** The indexer's references in the model's form. */
function indexerReferences(ix: KvIndexer): Map<bigint, Map<string, number>> {
  const out = new Map<bigint, Map<string, number>>();
  for (const [lo, hi, slots] of ix.core.allBlocks()) {
    const m = new Map<string, number>();
    for (const s of slots) {
      const id = ix.core.workerAt(s)!;
      m.set(id, (m.get(id) ?? 0) + 1);
    }
    out.set(joinHash(lo, hi), m);
  }
  return out;
}

/** Every chain of up to 3 of the first 3 tokens: the queries checked. */
const QUERIES: bigint[][] = [];
for (const a of TOK.slice(0, 3)) {
  const s1 = sequenceHash(null, a);
  QUERIES.push([s1]);
  for (const b of TOK.slice(0, 3)) {
    const s2 = sequenceHash(s1, b);
    QUERIES.push([s1, s2]);
    for (const c of TOK.slice(0, 3)) QUERIES.push([s1, s2, sequenceHash(s2, c)]);
  }
}

function strip(r: ApplyResult): ApplyResult {
  const { errors: _e, ...rest } = r;
  return rest;
}

describe.each([
  ['clear', true],
  ['keep', true],
  ['clear', false],
] as [GapPolicy, boolean][])(
  'KvIndexer agrees with a brute-force model (gapPolicy %s, WebAssembly %s)',
  (gapPolicy, webAssembly) => {
    it('under random event sequences', () => {
      fc.assert(
        fc.property(fc.array(cmd, { minLength: 1, maxLength: 40 }), (cmds) => {
          const model = new ModelIndexer(gapPolicy);
          const ix = new KvIndexer({ gapPolicy, webAssembly });
          cmds.forEach((c, step) => {
            if (c.kind === 'removeWorker') {
              const slot = ix.core.slotOf(c.worker);
              expect(ix.removeWorker(c.worker)).toBe(model.workers.has(c.worker));
              model.removeWorker(c.worker);
              if (slot >= 0) {
                // No trace: nothing in the shared table, no alias tables, no id, no slot.
                expect(ix.slotFootprint(slot)).toEqual({
                  workerId: undefined,
                  references: 0,
                  aliases: 0,
                  aliasTargets: 0,
                });
                expect(ix.workers()).not.toContain(c.worker);
                expect(ix.lastEventId(c.worker)).toBeUndefined();
                expect(ix.cachedBlocks(c.worker)).toBe(0);
              }
            } else {
              const ev = buildEvent(model, c);
              const expected = model.apply(ev);
              expect([step, strip(ix.applyEvent(JSON.parse(JSON.stringify(ev))))]).toEqual([step, expected]);
            }
            expect(normalizeReferences(indexerReferences(ix))).toEqual(normalizeReferences(model.references()));
            for (const id of WORKERS) expect([id, ix.cachedBlocks(id)]).toEqual([id, model.holds(id).size]);
            if (step % 8 === 7) for (const q of QUERIES) expect(ix.findMatches(q)).toEqual(model.findMatches(q));
            expect(ix.totalEntries).toBe(WORKERS.reduce((n, id) => n + model.holds(id).size, 0));
          });
          for (const q of QUERIES) expect(ix.findMatches(q)).toEqual(model.findMatches(q));
        }),
        { numRuns: 150 },
      );
    });
  },
);

describe('removing a worker leaves no trace', () => {
  it('after any history, its slot holds nothing and a new worker reusing the slot starts empty', () => {
    fc.assert(
      fc.property(fc.array(cmd, { minLength: 1, maxLength: 30 }), fc.constantFrom(...WORKERS), (cmds, victim) => {
        const model = new ModelIndexer('clear');
        const ix = new KvIndexer();
        for (const c of cmds) {
          if (c.kind === 'removeWorker') {
            ix.removeWorker(c.worker);
            model.removeWorker(c.worker);
          } else {
            const ev = buildEvent(model, c);
            model.apply(ev);
            ix.applyEvent(ev);
          }
        }
        ix.addWorker(victim);
        const slot = ix.core.slotOf(victim);
        ix.removeWorker(victim);
        expect(ix.slotFootprint(slot)).toEqual({ workerId: undefined, references: 0, aliases: 0, aliasTargets: 0 });
        for (const [, , slots] of ix.core.allBlocks()) expect(slots).not.toContain(slot);
        // The slot is reused by the next new worker, which must start empty.
        const fresh = ix.addWorker('fresh');
        expect(fresh).toBe(slot);
        expect(ix.cachedBlocks('fresh')).toBe(0);
        for (const q of QUERIES) expect(ix.findMatches(q).has('fresh')).toBe(false);
        expect(ix.lastEventId('fresh')).toBeUndefined();
      }),
      { numRuns: 100 },
    );
  });
});
