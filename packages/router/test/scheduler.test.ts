import { KvScheduler, kvCost, RouterInvalidArgumentError, routingContext, softmaxSample } from '@dynamo-ts/router';
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
