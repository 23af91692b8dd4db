import fc from 'fast-check';
import {
  type EngineProfile,
  KvEventBuilder,
  KvRouter,
  KvScheduler,
  type KvSchedulerOptions,
  MOCKER_ENGINE_PROFILE,
  type RoutingChoice,
  SEARCH_TIES,
  type RoutingContext,
  type RoutingStrategy,
  routingContext,
} from '@dynamo-ts/router';
import { prng } from './model';

/**
 * The bounded search (`bounded-search.ts`: score the workers sharing the prompt plus the least
 * loaded others, from load-ordered heaps) against the exhaustive scan: two routers fed the same
 * random history, one with a `KvScheduler` (which has a `costBound`, so the router searches), one
 * with the same scheduler behind a strategy without one (so the router scores every worker). Every
 * pick of the search must have the exhaustive scan's minimum cost; with at most {@link SEARCH_TIES}
 * workers tied at that cost, it must be one the exhaustive scan could have drawn (same tie set);
 * the exhaustive router then follows the search's pick, so both histories stay the same.
 */

/** The fast router's scheduler: counts the workers it is handed and remembers its pick. */
class Counting extends KvScheduler {
  scored = 0;
  lastPick: string | undefined;
  override select(ctx: RoutingContext): RoutingChoice {
    this.scored += ctx.count;
    const c = super.select(ctx);
    this.lastPick = ctx.workerIds[c.index];
    return c;
  }
}

/** The same scheduler without its bound: the router then scores every worker. */
class Exhaustive implements RoutingStrategy {
  readonly name = 'kv';
  scored = 0;
  /** Decisions where the search sampled its ties (more than SEARCH_TIES could tie). */
  sampled = 0;
  /** The search's router, to read whether it sampled. */
  fastRouter: KvRouter | undefined;
  constructor(
    private readonly inner: KvScheduler,
    private readonly fast: Counting,
  ) {}
  select(ctx: RoutingContext): RoutingChoice {
    this.scored += ctx.count;
    this.inner.select(ctx);
    const costs = this.inner.lastCosts;
    let min = Infinity;
    for (let i = 0; i < ctx.count; i++) min = Math.min(min, costs[i]!);
    const eps = 1e-9 * Math.max(1, Math.abs(min));
    const tied: number[] = [];
    for (let i = 0; i < ctx.count; i++) if (costs[i]! - min <= eps) tied.push(i);
    const i = ctx.workerIds.indexOf(this.fast.lastPick!);
    expect(i).toBeGreaterThanOrEqual(0);
    // The search's pick has the minimum cost (within the search's slack)...
    expect(costs[i]! - min).toBeLessThanOrEqual(1e-8 * Math.max(1, Math.abs(min)));
    const sampled = this.fastRouter!.stats().search.sampledTies;
    // ... with the scan's tiebreak: the fewest cached blocks among the ties (the search's heaps
    // order equal loads by it, so a sample of ties holds the emptiest caches) ...
    const fewest = Math.min(...tied.map((t) => ctx.cachedBlocks[t]!));
    if (tied.includes(i)) expect(ctx.cachedBlocks[i]).toBe(fewest);
    if (sampled === this.sampled) {
      // ... and unless it sampled ties, it is one the scan draws from.
      expect(tied).toContain(i);
    } else {
      // It samples only when more could tie than it scores.
      expect(sampled).toBe(this.sampled + 1);
      expect(ctx.count).toBeGreaterThan(SEARCH_TIES);
    }
    this.sampled = sampled;
    return { index: i, cost: costs[i]! };
  }
}

const PROFILES: EngineProfile[] = [
  MOCKER_ENGINE_PROFILE,
  { ...MOCKER_ENGINE_PROFILE, prefillFixedMs: 5, maxBatchedTokens: 16 },
  { ...MOCKER_ENGINE_PROFILE, prefillPerTokenMs: 0.5, decodePerSeqMs: 3, maxBatchedTokens: 8 },
];

interface Config {
  seed: number;
  workers: number;
  blockSize: number;
  options: KvSchedulerOptions;
  steps: number;
}

const config: fc.Arbitrary<Config> = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
  workers: fc.integer({ min: 1, max: 48 }),
  blockSize: fc.constantFrom(2, 4),
  options: fc.record({
    preset: fc.constantFrom('ttft' as const, 'dynamo' as const, 'tuned' as const),
    inflightOverlap: fc.boolean(),
    overlapWeight: fc.constantFrom(0, 1, 16),
    queueWeight: fc.constantFrom(0, 0.1, 1),
    workWeight: fc.constantFrom(0, 1, 6),
  }),
  steps: fc.integer({ min: 20, max: 160 }),
});

/** A prompt: one of 4 shared prefixes (some of it), then a random tail, sometimes a partial block. */
function prompt(rnd: () => number, bs: number): number[] {
  const fam = Math.floor(rnd() * 4);
  const keep = Math.floor(rnd() * 6);
  const out: number[] = [];
  for (let i = 0; i < keep * bs; i++) out.push(10_000 * (fam + 1) + i);
  const tail = Math.floor(rnd() * 3);
  for (let i = 0; i < tail * bs; i++) out.push(Math.floor(rnd() * 20));
  if (rnd() < 0.3) out.push(7);
  return out;
}

/** Replays one random history on both routers; @returns workers scored by each. */
function replay(c: Config): { fast: number; slow: number; sampled: number } {
  const rnd = prng(c.seed);
  let t = 0;
  const fastS = new Counting(c.options);
  const slowS = new Exhaustive(new KvScheduler(c.options), fastS);
  const make = (strategy: RoutingStrategy): KvRouter =>
    new KvRouter({ blockSize: c.blockSize, strategy, now: () => t, random: prng(c.seed ^ 0x5bd1e995) });
  const routers = [make(fastS), make(slowS)];
  slowS.fastRouter = routers[0];
  const both = (f: (r: KvRouter) => unknown): void => {
    const [a, b] = routers.map(f);
    expect(b).toEqual(a);
  };
  const ids = Array.from({ length: c.workers }, (_, i) => `w${i}`);
  both((r) => r.setWorkers(ids));
  const builders = new Map(
    ids.map((w) => [w, [new KvEventBuilder(w, c.blockSize), new KvEventBuilder(w, c.blockSize)]]),
  );
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  // Shared prefixes cached on many workers, so that more than 32 may share a prompt.
  for (const w of ids) {
    if (rnd() < 0.8) {
      const ev = prompt(rnd, c.blockSize);
      both((r) => r.applyEvent(JSON.parse(JSON.stringify(builders.get(w)![routers.indexOf(r)]!.stored(ev)))));
    }
  }
  const running: string[] = [];
  let n = 0;
  for (let step = 0; step < c.steps; step++) {
    const r = rnd();
    t += rnd() < 0.1 ? 12_000 : Math.floor(rnd() * 50);
    if (r < 0.1) {
      const w = pick(ids);
      const report = {
        worker_id: w,
        active_blocks: Math.floor(rnd() * 30),
        active_prefill_tokens: Math.floor(rnd() * 60),
        waiting: Math.floor(rnd() * 3),
        ...(rnd() < 0.5 ? { total_blocks: 5 + Math.floor(rnd() * 40) } : {}),
      };
      both((x) => x.applyLoad(report));
    } else if (r < 0.13) {
      const w = pick(ids);
      const p = rnd() < 0.3 ? undefined : pick(PROFILES);
      both((x) => x.setWorkerProfile(w, p));
    } else if (r < 0.15) {
      const w = pick(ids);
      if (rnd() < 0.5) both((x) => x.fence(w));
      else both((x) => x.unfence(w));
    } else if (r < 0.17) {
      // A worker leaves and comes back (its slot may be reused).
      const w = pick(ids);
      both((x) => x.removeWorker(w));
      both((x) => x.addWorker(w));
      builders.set(w, [new KvEventBuilder(w, c.blockSize), new KvEventBuilder(w, c.blockSize)]);
    } else if (r < 0.35 && running.length > 0) {
      const id = running.splice(Math.floor(rnd() * running.length), 1)[0]!;
      if (rnd() < 0.5) both((x) => x.onFirstToken(id));
      else both((x) => x.onFinished(id));
    } else {
      const tokens = prompt(rnd, c.blockSize);
      const exclude = rnd() < 0.1 ? new Set([pick(ids)]) : undefined;
      const record = rnd() < 0.9;
      const requestId = `r${n++}`;
      const out = routers.map((x) => {
        try {
          return x.route({ tokenIds: tokens, requestId, record, ...(exclude ? { excludeWorkers: exclude } : {}) });
        } catch (e) {
          return (e as { code?: string }).code;
        }
      });
      expect(out[1]).toEqual(out[0]);
      const d = out[0];
      if (typeof d === 'object' && d !== undefined) {
        if (record) running.push(requestId);
        if (rnd() < 0.6) {
          both((x) =>
            x.applyEvent(JSON.parse(JSON.stringify(builders.get(d.worker_id)![routers.indexOf(x)]!.stored(tokens)))),
          );
        }
      }
    }
  }
  return { fast: fastS.scored, slow: slowS.scored, sampled: slowS.sampled };
}

describe('KvRouter bounded search', () => {
  it("picks a worker of the exhaustive scan's minimum cost, the same tie set unless it sampled", () => {
    let sampled = 0;
    let fast = 0;
    let slow = 0;
    fc.assert(
      fc.property(config, (c) => {
        const r = replay(c);
        sampled += r.sampled;
        fast += r.fast;
        slow += r.slow;
      }),
      { numRuns: 60 },
    );
    // Both paths ran: decisions with few ties (exact) and with many (sampled).
    expect(sampled).toBeGreaterThan(0);
    expect(fast).toBeLessThan(slow);
  });

  it('spreads exact ties over all the tied workers (a rotating sample, not the same few)', () => {
    // 256 idle workers, nothing cached, requests not recorded: every decision ties all of them.
    const router = new KvRouter({ blockSize: 4, now: () => 0, random: prng(9) });
    router.setWorkers(Array.from({ length: 256 }, (_, i) => `w${i}`));
    const hits = new Map<string, number>();
    for (let i = 0; i < 4096; i++) {
      const d = router.route({ tokenIds: [i, i + 1, i + 2, i + 3, i + 4], requestId: `r${i}`, record: false });
      hits.set(d.worker_id, (hits.get(d.worker_id) ?? 0) + 1);
    }
    const st = router.stats().search;
    expect(st.scoredPerDecision).toBeLessThanOrEqual(SEARCH_TIES + 1);
    expect(st.sampledTies).toBe(4096);
    // 16 per worker expected; every worker picked, none more than 4x its share.
    expect(hits.size).toBe(256);
    expect(Math.max(...hits.values())).toBeLessThan(64);
  });

  it('scores a few of 512 workers per decision when their loads tie exactly (equal prompts)', () => {
    const router = new KvRouter({ blockSize: 16, now: () => 0, random: prng(5) });
    router.setWorkers(Array.from({ length: 512 }, (_, i) => `w${i}`));
    const rnd = prng(6);
    const inflight: string[] = [];
    for (let i = 0; i < 3000; i++) {
      // Unique prompts of one length: workers with as many requests have equal loads.
      const tokens = Array.from({ length: 256 }, () => Math.floor(rnd() * 50_000));
      inflight.push(router.route({ tokenIds: tokens, requestId: `r${i}` }).request_id);
      if (inflight.length > 1024) router.onFinished(inflight.shift()!);
    }
    const st = router.stats().search;
    expect(st.sampledTies).toBeGreaterThan(0);
    expect(st.scoredPerDecision).toBeLessThan(2 * SEARCH_TIES);
  });

  it('scores a few of 128 busy workers per decision, not all of them', () => {
    const rnd = prng(3);
    const s = new Counting({ preset: 'ttft' });
    const router = new KvRouter({ blockSize: 16, strategy: s, now: () => 0, random: prng(4) });
    router.setWorkers(Array.from({ length: 128 }, (_, i) => `w${i}`));
    const inflight: string[] = [];
    let measured = 0;
    for (let i = 0; i < 800; i++) {
      // Unique prompts of varied lengths: workers end up with different queues.
      const tokens = Array.from({ length: 16 + Math.floor(rnd() * 500) }, () => Math.floor(rnd() * 50_000));
      if (i === 500) s.scored = 0;
      if (i >= 500) measured++;
      inflight.push(router.route({ tokenIds: tokens, requestId: `r${i}` }).request_id);
      if (inflight.length > 256) router.onFinished(inflight.shift()!);
    }
    expect(s.scored / measured).toBeLessThan(8);
  });

  it('has no bound with a temperature or a routing memory (those need every worker)', () => {
    expect(new KvScheduler({ temperature: 0.5 }).costBound).toBeUndefined();
    expect(new KvScheduler({ memoryWeight: 0.5 }).costBound).toBeUndefined();
    expect(new KvScheduler({}).costBound).toBeDefined();
  });
});

describe('cost bounds', () => {
  it('cost >= bound(requestFloor(level), loadKey) for every worker sharing at most `level` blocks, and the bound is monotone', () => {
    fc.assert(
      fc.property(
        fc.record({
          options: config.map((c) => c.options),
          bs: fc.constantFrom(1, 2, 16, 64),
          isl: fc.integer({ min: 0, max: 3000 }),
          overlapFrac: fc.double({ min: 0, max: 1, noNaN: true }),
          activeFrac: fc.double({ min: 0, max: 1, noNaN: true }),
          slack: fc.nat({ max: 5 }),
          active: fc.nat({ max: 5000 }),
          prefill: fc.nat({ max: 50_000 }),
          inflight: fc.nat({ max: 40 }),
          prefillRequests: fc.nat({ max: 40 }),
          total: fc.nat({ max: 5000 }),
          profile: fc.constantFrom(undefined, ...PROFILES),
          sharers: fc.nat({ max: 20 }),
          rate: fc.constantFrom(undefined, 0, 1e-4, 0.01, 1, Infinity),
          busy: fc.double({ min: 0, max: 1, noNaN: true }),
          fleet: fc.integer({ min: 1, max: 64 }),
          routed: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
        (x) => {
          const s = new KvScheduler(x.options);
          const b = s.costBound!;
          const full = Math.floor(x.isl / x.bs);
          const overlap = Math.floor(x.overlapFrac * full);
          const activeOverlap = Math.floor(x.activeFrac * full);
          const level = Math.min(full, Math.max(overlap, activeOverlap) + x.slack);
          const ctx = routingContext(
            [
              {
                workerId: 'w',
                overlapBlocks: overlap,
                activeBlocks: x.active,
                newBlocks: Math.ceil(x.isl / x.bs) - activeOverlap,
                activePrefillTokens: x.prefill,
                inflight: x.inflight,
                prefillRequests: x.prefillRequests,
                totalBlocks: x.total,
                routedShare: x.routed,
              },
            ],
            {
              islTokens: x.isl,
              blockSize: x.bs,
              prefixSharers: x.sharers,
              busyShare: x.busy,
              fleetSize: x.fleet,
              ...(x.rate !== undefined ? { arrivalRate: x.rate } : {}),
            },
          );
          const withProfile = { ...ctx, profiles: [x.profile] };
          const cost = b.cost(withProfile, 0);
          const fig = {
            activeBlocks: x.active,
            activePrefillTokens: x.prefill,
            inflight: x.inflight,
            prefillRequests: x.prefillRequests,
          };
          const cls = b.loadClass(fig);
          expect(Number.isInteger(cls) && cls >= 0 && cls < b.classes).toBe(true);
          const floor = b.requestFloor(ctx, level, x.profile, cls);
          const key = b.loadKey(fig, x.profile, x.bs);
          const lb = b.bound(ctx, cls, floor, key);
          expect(lb).toBeGreaterThanOrEqual(floor + key - 1e-9 * Math.max(1, floor + key));
          expect(lb).toBeLessThanOrEqual(cost + 1e-9 * Math.max(1, cost));
          // The walk stops at the first bound above the best cost, and merges profiles' floors by
          // their minimum: the bound must not decrease in either.
          for (const d of [0.5, 10, 1000]) {
            expect(b.bound(ctx, cls, floor, key + d)).toBeGreaterThanOrEqual(lb);
            expect(b.bound(ctx, cls, floor + d, key)).toBeGreaterThanOrEqual(lb);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
