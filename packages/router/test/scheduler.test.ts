import {
  checkEngineProfile,
  delayedRequests,
  idleWorkShare,
  KvScheduler,
  kvCost,
  MAX_BUSY_SHARE,
  MAX_DELAYED_REQUESTS,
  MOCKER_ENGINE_PROFILE,
  predictTtftMs,
  type RoutingContext,
  RouterInvalidArgumentError,
  routingContext,
  softmaxSample,
} from '@dynamo-ts/router';
import { prng } from './model';

describe('kv cost (Dynamo)', () => {
  it('is overlap_weight * prefill_blocks + decode_blocks', () => {
    // isl 256 tokens, block size 64: 4 request blocks
    const ctx = routingContext(
      [
        // a: 3 blocks cached, 3 of the request's 4 blocks already active (a running request shares them)
        { workerId: 'a', overlapBlocks: 3, activeBlocks: 10, newBlocks: 1, activePrefillTokens: 128 },
        { workerId: 'b', overlapBlocks: 0, activeBlocks: 0, activePrefillTokens: 0 },
      ],
      { islTokens: 256, blockSize: 64 },
    );
    // a: prefill (256 - 192 + 128) / 64 = 3; decode 10 + 1 = 11
    expect(kvCost(ctx, 0)).toBe(3 + 11);
    expect(kvCost(ctx, 0, 2)).toBe(2 * 3 + 11);
    // b: prefill 256 / 64 = 4; decode 0 + 4 (new blocks default to all of the request's) = 4
    expect(kvCost(ctx, 1)).toBe(8);
    expect(ctx.newBlocks).toEqual([1, 4]);
    expect(ctx.requestBlocks).toBe(4);
    // a partial block still occupies a block
    expect(routingContext([{ workerId: 'x' }], { islTokens: 65, blockSize: 64 }).requestBlocks).toBe(2);
  });
});

describe('KvScheduler', () => {
  it('picks the lowest cost and reports it', () => {
    const s = new KvScheduler();
    const ctx = routingContext(
      [
        { workerId: 'a', overlapBlocks: 0, activeBlocks: 5 },
        { workerId: 'b', overlapBlocks: 2 },
        { workerId: 'c', overlapBlocks: 1 },
      ],
      { islTokens: 128, blockSize: 32 },
    );
    // prefill (4 - overlap) + decode (active + 4 new)
    expect(s.select(ctx)).toEqual({ index: 1, cost: 2 + 4 });
    expect(Array.from(s.lastCosts.subarray(0, 3))).toEqual([4 + 9, 6, 3 + 4]);
  });

  it('with overlap weight 0, balances load only', () => {
    const s = new KvScheduler({ overlapWeight: 0 });
    const ctx = routingContext(
      [
        { workerId: 'hit-but-busy', overlapBlocks: 4, activeBlocks: 20 },
        { workerId: 'idle', overlapBlocks: 0, activeBlocks: 0 },
      ],
      { islTokens: 128, blockSize: 32 },
    );
    expect(s.select(ctx).index).toBe(1);
  });

  it('breaks cost ties toward the emptier cache, then at random', () => {
    const s = new KvScheduler();
    const tie = (cached: number[], random: () => number): number =>
      s.select(
        routingContext(
          cached.map((c, i) => ({ workerId: `w${i}`, cachedBlocks: c })),
          { islTokens: 64, blockSize: 16, random },
        ),
      ).index;
    expect(tie([5, 0, 3], () => 0.99)).toBe(1);
    // among equally empty caches: random() picks
    expect(tie([0, 7, 0, 0], () => 0)).toBe(0);
    expect(tie([0, 7, 0, 0], () => 0.5)).toBe(2);
    expect(tie([0, 7, 0, 0], () => 0.99)).toBe(3);
    // random() is not called without a tie
    const never = (): number => {
      throw new Error('random() called');
    };
    expect(tie([2, 1], never)).toBe(1);
  });

  it('treats costs equal within rounding as tied', () => {
    const s = new KvScheduler({ overlapWeight: 0.1 });
    const ctx = routingContext(
      [
        { workerId: 'a', activePrefillTokens: 0.1 + 0.2, cachedBlocks: 1 },
        { workerId: 'b', activePrefillTokens: 0.3, cachedBlocks: 0 },
      ],
      { islTokens: 1, blockSize: 1 },
    );
    expect(s.select(ctx).index).toBe(1);
  });

  it('samples softmax(-cost/T) deterministically for a seeded random source', () => {
    const ctx = (random: () => number) =>
      routingContext(
        [
          { workerId: 'a', overlapBlocks: 4 },
          { workerId: 'b', overlapBlocks: 2 },
          { workerId: 'c', overlapBlocks: 0 },
        ],
        { islTokens: 256, blockSize: 64, random },
      );
    const run = (seed: number, temperature: number): number[] => {
      const s = new KvScheduler({ temperature });
      const r = prng(seed);
      return Array.from({ length: 2000 }, () => s.select(ctx(r)).index);
    };
    expect(run(1, 0.5)).toEqual(run(1, 0.5));
    const counts = (xs: number[]): number[] => [0, 1, 2].map((i) => xs.filter((x) => x === i).length);
    // normalised costs 0, 0.5, 1: weights 1, e^-1, e^-2 at T = 0.5
    const c = counts(run(2, 0.5));
    const w = [1, Math.exp(-1), Math.exp(-2)];
    const total = w[0]! + w[1]! + w[2]!;
    c.forEach((n, i) => expect(Math.abs(n / 2000 - w[i]! / total)).toBeLessThan(0.04));
    // a very low temperature is (almost) argmin; a very high one (almost) uniform
    expect(counts(run(3, 0.01))[0]).toBe(2000);
    counts(run(4, 1000)).forEach((n) => expect(Math.abs(n / 2000 - 1 / 3)).toBeLessThan(0.05));
  });

  it('softmaxSample is uniform over equal costs and handles one worker', () => {
    expect(softmaxSample([5, 5, 5], 3, 1, () => 0.7)).toBe(2);
    expect(softmaxSample([5], 1, 1, () => 0.5)).toBe(0);
    // a random source returning (almost) 1 stays in range
    expect(softmaxSample([1, 2], 2, 1, () => 0.9999999999)).toBe(1);
  });

  it('validates its options', () => {
    expect(() => new KvScheduler({ overlapWeight: -1 })).toThrow(RouterInvalidArgumentError);
    expect(() => new KvScheduler({ temperature: Number.NaN })).toThrow(/temperature must be a finite number >= 0/);
  });
});

describe('the ttft cost (default of the kv strategy)', () => {
  const profile = {
    prefillFixedMs: 10,
    prefillPerTokenMs: 0.1,
    prefillAttentionMs: 1e-4,
    maxBatchedTokens: 1000,
    decodeBaseMs: 5,
    decodePerSeqMs: 0.5,
    decodePerContextTokenMs: 0.01,
  };

  it('predicts each term from the context and the profile', () => {
    const ctx = routingContext(
      [
        { workerId: 'cached', overlapBlocks: 6, activePrefillTokens: 500, activeBlocks: 10, inflight: 2 },
        { workerId: 'idle' },
        { workerId: 'full', activeBlocks: 95, totalBlocks: 100 },
      ],
      { islTokens: 1000, blockSize: 100 },
    );
    // cached: queue 500 + 400 new over 600 cached; 1 step; 2 running, 10 active blocks of which the
    // queued 500 tokens (5 blocks) are not held yet: 500 context tokens.
    expect(predictTtftMs(ctx, 0, 6, profile)).toBeCloseTo(10 + 0.1 * 900 + 1e-4 * 400 * (600 + 200) + (5 + 1 + 5), 9);
    // idle: 1000 new, 1 step of an empty batch.
    expect(predictTtftMs(ctx, 1, 0, profile)).toBeCloseTo(10 + 100 + 1e-4 * 1000 * 500 + 5, 9);
    // full: 95 + 10 blocks > 100: 5 blocks priced as recomputed; 95 blocks of context decode.
    expect(predictTtftMs(ctx, 2, 0, profile)).toBeCloseTo(10 + 100 + 50 + 5 + 0.01 * 9500 + 0.1 * 100 * 5, 9);
    // backlog: 95 active blocks, but 50 of them are prompts still queued (5,000 tokens): 45 held,
    // so no memory term and 45 blocks of context; 6,000 tokens to compute: 6 steps.
    const backlog = routingContext([{ workerId: 'b', activeBlocks: 95, activePrefillTokens: 5000, totalBlocks: 100 }], {
      islTokens: 1000,
      blockSize: 100,
    });
    expect(predictTtftMs(backlog, 0, 0, profile)).toBeCloseTo(10 + 600 + 50 + 6 * (5 + 0.01 * 4500), 9);
    // 2,500 tokens to compute at 1,000 a step: 3 decode steps.
    const queued = routingContext([{ workerId: 'q', activePrefillTokens: 1500 }], { islTokens: 1000, blockSize: 100 });
    expect(predictTtftMs(queued, 0, 0, profile)).toBeCloseTo(10 + 250 + 50 + 3 * 5, 9);
  });

  it('prefers a cache hit until the queue ahead costs more than the prefill it saves', () => {
    const s = new KvScheduler({ preset: 'ttft', engineProfile: profile, workWeight: 0 });
    const pick = (queue: number): string => {
      const ctx = routingContext(
        [{ workerId: 'hit', overlapBlocks: 8, activePrefillTokens: queue }, { workerId: 'cold' }],
        { islTokens: 1000, blockSize: 100, random: () => 0 },
      );
      return ctx.workerIds[s.select(ctx).index]!;
    };
    expect(pick(0)).toBe('hit');
    expect(pick(500)).toBe('hit');
    expect(pick(2000)).toBe('cold');
    // With traffic known, the work term (the compute a miss adds, times the requests it delays)
    // keeps the prefix longer: at 10 requests/s over 2 workers, half of them busy, the cold worker
    // costs 165 + 1.65 * 150 = 413, the hit 263 + 2.63 * 38 = 363.
    const heavy = new KvScheduler({ preset: 'ttft', engineProfile: profile });
    const ctx = routingContext(
      [{ workerId: 'hit', overlapBlocks: 8, activePrefillTokens: 2000 }, { workerId: 'cold' }],
      { islTokens: 1000, blockSize: 100, random: () => 0, arrivalRate: 0.01, busyShare: 0.5 },
    );
    expect(ctx.workerIds[heavy.select(ctx).index]).toBe('hit');
    expect(heavy.lastCosts[0]).toBeCloseTo(263 + 2.63 * 38, 9);
    expect(heavy.lastCosts[1]).toBeCloseTo(165 + 1.65 * 150, 9);
    // Without a rate (nothing known of the traffic yet) the term is 0.
    const unknown = routingContext(
      [{ workerId: 'hit', overlapBlocks: 8, activePrefillTokens: 2000 }, { workerId: 'cold' }],
      { islTokens: 1000, blockSize: 100, random: () => 0, busyShare: 0.5 },
    );
    expect(unknown.workerIds[heavy.select(unknown).index]).toBe('cold');
    expect(heavy.workWeight).toBe(1);
    expect(heavy.maxDelayed).toBe(MAX_DELAYED_REQUESTS);
  });

  it('counts the work a miss adds by the requests it delays; a hot prefix is replicated on an idle worker', () => {
    const s = new KvScheduler({ preset: 'ttft', engineProfile: profile });
    // 'hit' is the prefix's home (90% of the recent decisions) with 2 requests and 1,000 tokens
    // ahead; 'cold' has nothing cached.
    const pick = (sharers: number, coldAhead: number): string => {
      const ctx = routingContext(
        [
          { workerId: 'hit', overlapBlocks: 8, activePrefillTokens: 1000, prefillRequests: 2, routedShare: 0.9 },
          { workerId: 'cold', prefillRequests: coldAhead, routedShare: 0.1 },
        ],
        { islTokens: 1000, blockSize: 100, random: () => 0, prefixSharers: sharers, arrivalRate: 0.01, busyShare: 0.5 },
      );
      return ctx.workerIds[s.select(ctx).index]!;
    };
    // No other request shares the prefix (a private history): the full work term keeps it cached
    // (hit 178 + 3.2 * 38 = 300, cold 165 + 1.65 * 150 = 413).
    expect(pick(0, 0)).toBe('hit');
    // Hot prefix (9 running sharers) and an idle cold worker, half the fleet busy: the term is
    // 1 / (1 + 9 * 0.5) there (165 + 247.5 / 5.5 = 210).
    expect(pick(9, 0)).toBe('cold');
    // Hot prefix but the cold worker has requests ahead: the whole term counts (205 + 2.05 * 150).
    expect(pick(9, 4)).toBe('hit');

    // The figures: delayed = weight * rate * max(1 / fleet, share) * ttft / (1 - busy), at most
    // maxDelayed; the term is delayed * (1 or 1 / (1 + sharers)) * (own + memory).
    const ttft = (c: RoutingContext, i: number): number => predictTtftMs(c, i, 0, profile, 0);
    // The work is the prefill's compute, not its fixed cost (paid wherever the request goes).
    const own = 0.1 * 1000 + 1e-4 * 1000 * 500;
    const one = (o: {
      ahead?: number;
      routed?: number;
      sharers?: number;
      rate?: number;
      busy?: number;
      fleet?: number;
    }) =>
      routingContext([{ workerId: 'a', prefillRequests: o.ahead ?? 0, routedShare: o.routed ?? 0 }], {
        islTokens: 1000,
        blockSize: 100,
        prefixSharers: o.sharers ?? 0,
        arrivalRate: o.rate ?? 0.002,
        busyShare: o.busy ?? 0.5,
        fleetSize: o.fleet ?? 4,
      });
    let c = one({ ahead: 1, routed: 0.5, sharers: 3 });
    expect(predictTtftMs(c, 0, 0, profile, 1)).toBeCloseTo(ttft(c, 0) + ((0.002 * 0.5 * ttft(c, 0)) / 0.5) * own, 9);
    expect(delayedRequests(c, 0.5, 100, 1, 12)).toBeCloseTo(0.2, 12);
    // Idle: the share is 1 / (1 + sharers * (1 - busy)); an unpicked worker counts an even share
    // (1 / fleet).
    c = one({ sharers: 3 });
    expect(predictTtftMs(c, 0, 0, profile, 1)).toBeCloseTo(
      ttft(c, 0) + ((0.002 * 0.25 * ttft(c, 0)) / 0.5) * (1 / (1 + 3 * 0.5)) * own,
      9,
    );
    expect(idleWorkShare(one({ sharers: 3, busy: 0 }))).toBeCloseTo(0.25, 12);
    // The busy share counts at most MAX_BUSY_SHARE: a fully busy fleet still discounts a hot prefix.
    expect(idleWorkShare(one({ sharers: 3, busy: 1 }))).toBeCloseTo(1 / (1 + 3 * (1 - MAX_BUSY_SHARE)), 12);
    expect(idleWorkShare(one({ sharers: 0, busy: 0.3 }))).toBe(1);
    // The weight scales the count; the busy share is capped at MAX_BUSY_SHARE; the count at maxDelayed.
    c = one({ busy: 1 });
    expect(delayedRequests(c, 0, 100, 2, 12)).toBeCloseTo((2 * 0.002 * 0.25 * 100) / (1 - MAX_BUSY_SHARE), 12);
    expect(delayedRequests(one({ rate: Infinity }), 0, 100, 1, 12)).toBe(12);
    expect(delayedRequests(one({ rate: 1 }), 1, 1e6, 1, 5)).toBe(5);
    expect(delayedRequests(one({ rate: 0 }), 1, 1e6, 1, 5)).toBe(0);
    // No more than one beyond the requests the fleet has queued (Little's law check).
    const queued = (q: number): RoutingContext => ({ ...one({ rate: 1 }), queuedRequests: q });
    expect(delayedRequests(queued(0), 1, 1e6, 1, 12)).toBe(1);
    expect(delayedRequests(queued(3), 1, 1e6, 1, 12)).toBe(4);
    expect(delayedRequests(queued(30), 1, 1e6, 1, 12)).toBe(12);
    expect(delayedRequests(queued(0), 0, 0.5, 1, 12)).toBeCloseTo((1 * 0.25 * 0.5) / 0.5, 12);
    expect(predictTtftMs(one({ rate: 0 }), 0, 0, profile, 1)).toBe(ttft(one({ rate: 0 }), 0));
    // A worker over its capacity adds the recompute it forces to its own work.
    const full = routingContext([{ workerId: 'f', activeBlocks: 95, totalBlocks: 100, prefillRequests: 1 }], {
      islTokens: 1000,
      blockSize: 100,
      arrivalRate: 0.002,
      busyShare: 0,
      fleetSize: 1,
    });
    const mem = 0.1 * 100 * 5;
    expect(predictTtftMs(full, 0, 0, profile, 1)).toBeCloseTo(ttft(full, 0) + 0.002 * ttft(full, 0) * (own + mem), 9);
  });

  it('uses a worker profile from the context over its own, and rejects bad profiles naming the field', () => {
    const s = new KvScheduler({ preset: 'ttft', engineProfile: profile });
    const slow = { ...profile, prefillPerTokenMs: 10 };
    const ctx = {
      ...routingContext([{ workerId: 'slow' }, { workerId: 'fast' }], { islTokens: 100, blockSize: 10 }),
      profiles: [slow, undefined],
    };
    expect(ctx.workerIds[s.select(ctx).index]).toBe('fast');
    expect(() => new KvScheduler({ preset: 'ttft', engineProfile: { ...profile, decodeBaseMs: -1 } })).toThrow(
      /engineProfile.decodeBaseMs/,
    );
    expect(() => checkEngineProfile({ ...profile, maxBatchedTokens: 0 })).toThrow(/maxBatchedTokens/);
    expect(new KvScheduler({ preset: 'ttft' }).engineProfile).toEqual(MOCKER_ENGINE_PROFILE);
  });
});
