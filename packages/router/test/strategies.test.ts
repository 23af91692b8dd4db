import {
  createStrategy,
  isStrategyName,
  LeastLoadedStrategy,
  PowerOfTwoStrategy,
  RandomStrategy,
  RoundRobinStrategy,
  RouterInvalidArgumentError,
  routingContext,
  STRATEGY_NAMES,
  type CandidateWorker,
  type StrategyName,
} from '@dynamo-ts/router';
import { prng } from './model';

const req = { islTokens: 64, blockSize: 16 };

describe('strategies', () => {
  it('createStrategy builds every built-in by name', () => {
    expect(STRATEGY_NAMES).toEqual(['kv', 'round-robin', 'random', 'least-loaded', 'power-of-two']);
    for (const name of STRATEGY_NAMES) expect(createStrategy(name).name).toBe(name);
    expect(() => createStrategy('fastest' as StrategyName)).toThrow(RouterInvalidArgumentError);
    expect(() => createStrategy('fastest' as StrategyName)).toThrow(
      /kv, round-robin, random, least-loaded, power-of-two/,
    );
    expect(isStrategyName('kv')).toBe(true);
    expect(isStrategyName('KV')).toBe(false);
  });

  it('createStrategy passes every kv option through to the scheduler', () => {
    const kv = createStrategy('kv', { workWeight: 2.5, maxDelayed: 7, overlapWeight: 3 }) as unknown as {
      workWeight: number;
      maxDelayed: number;
      overlapWeight: number;
    };
    expect(kv.workWeight).toBe(2.5);
    expect(kv.maxDelayed).toBe(7);
    expect(kv.overlapWeight).toBe(3);
    expect(() => createStrategy('kv', { maxDelayed: -1 })).toThrow(/maxDelayed/);
  });

  it('round-robin cycles, and wraps when workers change', () => {
    const s = new RoundRobinStrategy();
    const three = routingContext([{ workerId: 'a' }, { workerId: 'b' }, { workerId: 'c' }], req);
    expect([0, 1, 2, 3].map(() => s.select(three).index)).toEqual([0, 1, 2, 0]);
    const two = routingContext([{ workerId: 'a' }, { workerId: 'b' }], req);
    expect([0, 1, 2].map(() => s.select(two).index)).toEqual([1, 0, 1]);
  });

  it('random picks uniformly with the injected source', () => {
    const s = new RandomStrategy();
    const ws: CandidateWorker[] = [{ workerId: 'a' }, { workerId: 'b' }, { workerId: 'c' }, { workerId: 'd' }];
    expect(s.select(routingContext(ws, { ...req, random: () => 0 })).index).toBe(0);
    expect(s.select(routingContext(ws, { ...req, random: () => 0.74 })).index).toBe(2);
    expect(s.select(routingContext(ws, { ...req, random: () => 1 })).index).toBe(3); // clamped
    const r = prng(5);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[s.select(routingContext(ws, { ...req, random: r })).index]!++;
    counts.forEach((n) => expect(Math.abs(n - 1000)).toBeLessThan(150));
  });

  it('least-loaded takes the fewest blocks (prefill counted in blocks), then fewest waiting, then random', () => {
    const s = new LeastLoadedStrategy();
    const pick = (ws: CandidateWorker[], random = (): number => 0): number =>
      s.select(routingContext(ws, { ...req, random })).index;
    expect(
      pick([
        { workerId: 'a', activeBlocks: 3 },
        { workerId: 'b', activeBlocks: 1, activePrefillTokens: 16 },
      ]),
    ).toBe(1);
    expect(
      pick([
        { workerId: 'a', activeBlocks: 3 },
        { workerId: 'b', activeBlocks: 1, activePrefillTokens: 48 },
      ]),
    ).toBe(0);
    expect(
      pick([
        { workerId: 'a', waiting: 2 },
        { workerId: 'b', waiting: 1 },
      ]),
    ).toBe(1);
    expect(pick([{ workerId: 'a' }, { workerId: 'b' }, { workerId: 'c' }], () => 0.9)).toBe(2);
  });

  it('power-of-two compares two distinct random workers', () => {
    const s = new PowerOfTwoStrategy();
    const ws: CandidateWorker[] = [
      { workerId: 'a', activeBlocks: 9 },
      { workerId: 'b', activeBlocks: 1 },
      { workerId: 'c', activeBlocks: 5 },
    ];
    const seq = (xs: number[]): (() => number) => {
      let i = 0;
      return () => xs[i++ % xs.length]!;
    };
    // samples a (0) then, among the other two, c: c is less loaded
    expect(s.select(routingContext(ws, { ...req, random: seq([0, 0.9]) })).index).toBe(2);
    // samples c then a: c
    expect(s.select(routingContext(ws, { ...req, random: seq([0.9, 0]) })).index).toBe(2);
    // samples b then a: b
    expect(s.select(routingContext(ws, { ...req, random: seq([0.5, 0]) })).index).toBe(1);
    expect(s.select(routingContext([{ workerId: 'solo' }], req)).index).toBe(0);
    // never the most loaded of three
    const r = prng(9);
    for (let i = 0; i < 200; i++) expect(s.select(routingContext(ws, { ...req, random: r })).index).not.toBe(0);
  });

  it('routingContext needs a candidate', () => {
    expect(() => routingContext([], req)).toThrow(RouterInvalidArgumentError);
  });
});
