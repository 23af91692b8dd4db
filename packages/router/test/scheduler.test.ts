import {
  checkEngineProfile,
  KvScheduler,
  kvCost,
  MOCKER_ENGINE_PROFILE,
  predictTtftMs,
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
    // cached: queue 500 + 400 new over 600 cached; 1 step; 2 running, 1000 context tokens.
    expect(predictTtftMs(ctx, 0, 6, profile)).toBeCloseTo(10 + 0.1 * 900 + 1e-4 * 400 * (600 + 200) + (5 + 1 + 10), 9);
    // idle: 1000 new, 1 step of an empty batch.
    expect(predictTtftMs(ctx, 1, 0, profile)).toBeCloseTo(10 + 100 + 1e-4 * 1000 * 500 + 5, 9);
    // full: 95 + 10 blocks > 100: 5 blocks priced as recomputed; 95 blocks of context decode.
    expect(predictTtftMs(ctx, 2, 0, profile)).toBeCloseTo(10 + 100 + 50 + 5 + 0.01 * 9500 + 0.1 * 100 * 5, 9);
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
    // Counting the compute a miss adds (workWeight) keeps the prefix longer: cold costs 165 + 165w,
    // the hit 263 + 28w at a 2,000-token queue.
    const heavy = new KvScheduler({ preset: 'ttft', engineProfile: profile, workWeight: 1 });
    const ctx = routingContext(
      [{ workerId: 'hit', overlapBlocks: 8, activePrefillTokens: 2000 }, { workerId: 'cold' }],
      { islTokens: 1000, blockSize: 100, random: () => 0 },
    );
    expect(ctx.workerIds[heavy.select(ctx).index]).toBe('hit');
    expect(new KvScheduler({ preset: 'ttft' }).workWeight).toBe(6);
  });

  it('counts the work a miss adds only as far as it delays others: a hot prefix is replicated on an idle worker', () => {
    const s = new KvScheduler({ preset: 'ttft', engineProfile: profile, workWeight: 6 });
    const pick = (sharers: number, coldAhead: number): string => {
      const ctx = routingContext(
        [
          { workerId: 'hit', overlapBlocks: 8, activePrefillTokens: 2000, prefillRequests: 4 },
          { workerId: 'cold', prefillRequests: coldAhead },
        ],
        { islTokens: 1000, blockSize: 100, random: () => 0, prefixSharers: sharers },
      );
      return ctx.workerIds[s.select(ctx).index]!;
    };
    const ttft = (ctx: ReturnType<typeof routingContext>, i: number, o: number): number =>
      predictTtftMs(ctx, i, o, profile, 0);
    // No other request shares the prefix (a private history): the full work term keeps it cached.
    expect(pick(0, 0)).toBe('hit');
    // Hot prefix (9 running sharers) and an idle cold worker: the term fades to 1/10 there.
    expect(pick(9, 0)).toBe('cold');
    // Hot prefix but the cold worker is busy too (4 ahead): 4/5 of the term stays, the hit wins.
    expect(pick(9, 4)).toBe('hit');
    // The figures: the share is max(ahead / (ahead + 1), 1 / (1 + sharers)).
    const ctx = routingContext([{ workerId: 'a', prefillRequests: 1 }], {
      islTokens: 1000,
      blockSize: 100,
      prefixSharers: 3,
    });
    const own = 10 + 0.1 * 1000 + 1e-4 * 1000 * 500;
    expect(predictTtftMs(ctx, 0, 0, profile, 6)).toBeCloseTo(ttft(ctx, 0, 0) + 6 * 0.5 * own, 9);
    const lone = routingContext([{ workerId: 'a' }], { islTokens: 1000, blockSize: 100 });
    expect(predictTtftMs(lone, 0, 0, profile, 6)).toBeCloseTo(ttft(lone, 0, 0) + 6 * own, 9);
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
