import {
  KvEventBuilder,
  KvRouter,
  sequenceHashes,
  type RoutingChoice,
  type RoutingContext,
  type RoutingStrategy,
} from '@dynamo-ts/router';
import { prng } from './model';

/**
 * The per-worker figures `route()` hands a strategy, checked against the router's public views
 * (`load.load()`, `stats()`) and a direct longest-common-prefix count: the hot loop reads them
 * from per-slot arrays, with shortcuts for "nobody caches / runs any of the prompt".
 */
interface Seen {
  ids: string[];
  overlap: number[];
  active: number[];
  fresh: number[];
  prefill: number[];
  cached: number[];
  waiting: number[];
  inflight: number[];
  total: number[];
  sharers: number;
}

class Recorder implements RoutingStrategy {
  readonly name = 'recorder';
  last: Seen | undefined;
  constructor(private readonly pick: (ctx: RoutingContext) => number) {}
  select(ctx: RoutingContext): RoutingChoice {
    const n = ctx.count;
    const take = (a: ArrayLike<number> | undefined): number[] => Array.from({ length: n }, (_, i) => a![i]!);
    this.last = {
      ids: ctx.workerIds.slice(0, n),
      overlap: take(ctx.overlapBlocks),
      active: take(ctx.activeBlocks),
      fresh: take(ctx.newBlocks).map((x) => ctx.requestBlocks - x),
      prefill: take(ctx.activePrefillTokens),
      cached: take(ctx.cachedBlocks),
      waiting: take(ctx.waiting),
      inflight: take(ctx.inflight),
      total: take(ctx.totalBlocks),
      sharers: ctx.prefixSharers ?? -1,
    };
    return { index: this.pick(ctx) };
  }
}

const BS = 2;

/** A prompt from a small alphabet of prefixes, so prompts share leading blocks often. */
function prompt(rnd: () => number): number[] {
  const fam = Math.floor(rnd() * 3);
  const keep = Math.floor(rnd() * 4);
  const out: number[] = [];
  for (let b = 0; b < keep; b++) out.push(1000 * fam + 2 * b, 1000 * fam + 2 * b + 1);
  const tail = 1 + Math.floor(rnd() * 3);
  for (let b = 0; b < tail; b++) out.push(Math.floor(rnd() * 50), Math.floor(rnd() * 50));
  if (rnd() < 0.3) out.push(7); // a partial block
  return out;
}

function lcp(a: bigint[], b: bigint[]): number {
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  return k;
}

describe('KvRouter: the figures a strategy sees', () => {
  it.each([1, 2, 3])('seed %i: match the load views, the index and the running prompts (20 workers)', (seed) => {
    const rnd = prng(seed);
    let t = 0;
    const rec = new Recorder((ctx) => Math.floor(rnd() * ctx.count));
    const router = new KvRouter({ blockSize: BS, strategy: rec, now: () => t, random: prng(seed + 10) });
    // More than 16 workers (the per-slot arrays grow), one removed and re-added (its slot is reused).
    const ids = Array.from({ length: 20 }, (_, i) => `w${i}`);
    router.setWorkers(ids);
    router.removeWorker('w3');
    router.addWorker('w3');
    const order = router.workers(); // w3 last now
    expect(order[19]).toBe('w3');
    const kv = new Map(ids.map((w) => [w, new KvEventBuilder(w, BS)]));
    const running = new Map<string, { worker: string; seq: bigint[] }>();
    for (let step = 0; step < 150; step++) {
      t += 1;
      const r = rnd();
      if (r < 0.1) {
        // A load report: fresh for 10 s by default, stale after.
        const w = ids[Math.floor(rnd() * ids.length)]!;
        router.applyLoad({
          worker_id: w,
          active_blocks: Math.floor(rnd() * 20),
          active_prefill_tokens: Math.floor(rnd() * 40),
          waiting: Math.floor(rnd() * 3),
          total_blocks: 100,
        });
        continue;
      }
      if (r < 0.15) t += 20_000;
      const tokens = prompt(rnd);
      const exclude = rnd() < 0.2 ? new Set([ids[Math.floor(rnd() * ids.length)]!]) : undefined;
      const d = router.route({ tokenIds: tokens, excludeWorkers: exclude });
      const seen = rec.last!;
      const seq = sequenceHashes(tokens, BS);
      expect(seen.ids).toEqual(order.filter((w) => exclude === undefined || !exclude.has(w)));
      const stats = new Map(router.stats().workers.map((w) => [w.workerId, w]));
      seen.ids.forEach((w, i) => {
        // Figures before this decision was recorded: undo it for the chosen worker.
        const mine = w === d.worker_id;
        const l = router.load.load(w)!;
        const st = stats.get(w)!;
        const blocksOfThis = Math.ceil(tokens.length / BS);
        const runningHere = [...running.values()].filter((x) => x.worker === w);
        const activeLcp = Math.max(0, ...runningHere.map((x) => lcp(x.seq, seq)));
        expect([w, 'fresh', seen.fresh[i]]).toEqual([w, 'fresh', activeLcp]);
        expect([w, 'inflight', seen.inflight[i]]).toEqual([w, 'inflight', l.inflightRequests - (mine ? 1 : 0)]);
        expect([w, 'cached', seen.cached[i]]).toEqual([w, 'cached', st.cachedBlocks]);
        expect([w, 'total', seen.total[i]]).toEqual([w, 'total', l.totalBlocks ?? 0]);
        expect([w, 'waiting', seen.waiting[i]]).toEqual([w, 'waiting', l.waiting]);
        // The decision added its prefill and its blocks not already running there to its worker.
        const trackedBlocks = l.tracked.activeBlocks - (mine ? blocksOfThis - activeLcp : 0);
        const trackedPrefill = l.tracked.activePrefillTokens - (mine ? d.uncached_tokens : 0);
        const repBlocks = l.reported?.active_blocks ?? -1;
        const repPrefill = l.reported?.active_prefill_tokens ?? -1;
        expect([w, 'active', seen.active[i]]).toEqual([w, 'active', Math.max(trackedBlocks, repBlocks)]);
        expect([w, 'prefill', seen.prefill[i]]).toEqual([w, 'prefill', Math.max(trackedPrefill, repPrefill)]);
      });
      expect(seen.overlap[seen.ids.indexOf(d.worker_id)]).toBe(d.overlap_blocks);
      // Running requests anywhere whose first block is this prompt's (before this one was recorded).
      const sharers = [...running.values()].filter((x) => x.seq.length > 0 && x.seq[0] === seq[0]).length;
      expect(seen.sharers).toBe(seq.length === 0 ? 0 : sharers);
      running.set(d.request_id, { worker: d.worker_id, seq });
      // The worker caches the prompt; some requests end.
      const ev = kv.get(d.worker_id)!.stored(tokens, d.overlap_blocks);
      router.applyEvent(JSON.parse(JSON.stringify(ev)));
      if (rnd() < 0.4 && running.size > 0) {
        const ks = [...running.keys()];
        const done = ks[Math.floor(rnd() * ks.length)]!;
        router.onFinished(done);
        running.delete(done);
      }
    }
  });

  it('overlap is the leading blocks each worker caches, and 0 for all when none does', () => {
    const rec = new Recorder(() => 0);
    const router = new KvRouter({ blockSize: BS, strategy: rec });
    router.setWorkers(['a', 'b', 'c']);
    const kv = new KvEventBuilder('b', BS);
    router.applyEvent(JSON.parse(JSON.stringify(kv.stored([1, 2, 3, 4, 5, 6], 0))));
    router.route({ tokenIds: [1, 2, 3, 4, 9, 9], record: false });
    expect(rec.last!.overlap).toEqual([0, 2, 0]);
    router.route({ tokenIds: [8, 8, 3, 4], record: false });
    expect(rec.last!.overlap).toEqual([0, 0, 0]);
    expect(rec.last!.fresh).toEqual([0, 0, 0]);
  });
});
