import { KvRouter, routingContext, type CandidateWorker } from '@dynamo-ts/router';
import {
  ApproxRadixTree,
  ChunkHashTrie,
  LlmdScorersPolicy,
  SglangCacheAwarePolicy,
  VllmPrefixAwarePolicy,
} from '../../src/policies/index';
import { ALL_STRATEGY_NAMES, createStrategy, isStrategyName, PEER_POLICY_NAMES } from '../../src/strategies';

const seq = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
const ctxFor = (tokens: number[], cands: CandidateWorker[], random = () => 0) =>
  routingContext(cands, { islTokens: tokens.length, blockSize: 4, tokenIds: tokens, random });
const workers = (n: number, extra: Partial<CandidateWorker>[] = []): CandidateWorker[] =>
  Array.from({ length: n }, (_, i) => ({ workerId: `w${i}`, ...extra[i] }));

describe('peer policy registry', () => {
  it('createStrategy and isStrategyName know the peer policies', () => {
    expect(PEER_POLICY_NAMES).toEqual(['sglang-cache-aware', 'vllm-prefix-aware', 'llm-d-scorers']);
    for (const name of PEER_POLICY_NAMES) {
      expect(isStrategyName(name)).toBe(true);
      expect(createStrategy(name).name).toBe(name);
    }
    expect(ALL_STRATEGY_NAMES).toHaveLength(8);
    expect(() => createStrategy('sglang' as never)).toThrow(/sglang-cache-aware, vllm-prefix-aware, llm-d-scorers/);
  });

  it('policies need the token ids, which KvRouter passes', () => {
    const ctx = routingContext([{ workerId: 'a' }], { islTokens: 4, blockSize: 4 });
    expect(() => new VllmPrefixAwarePolicy().select(ctx)).toThrow(/token ids/);
    const r = new KvRouter({ blockSize: 4, strategy: createStrategy('sglang-cache-aware'), random: () => 0 });
    r.addWorker('a');
    r.addWorker('b');
    expect(r.route(seq(0, 8)).strategy).toBe('sglang-cache-aware');
  });
});

describe('sglang-cache-aware', () => {
  it('radix tree: longest prefix per worker, splits edges, tracks sizes', () => {
    const t = new ApproxRadixTree();
    t.insert([1, 2, 3, 4, 5], 'a');
    t.insert([1, 2, 3, 9], 'b');
    t.insert([1, 2], 'c');
    expect(Object.fromEntries(t.match([1, 2, 3, 4, 7]))).toEqual({ a: 4, b: 3, c: 2 });
    expect(Object.fromEntries(t.match([7]))).toEqual({});
    expect([t.size('a'), t.size('b'), t.size('c')]).toEqual([5, 4, 2]);
  });

  it('evicts the least recently used leaves of a worker over max_tree_size', () => {
    const t = new ApproxRadixTree();
    t.insert(seq(0, 10), 'a');
    t.insert(seq(100, 10), 'a');
    t.insert(seq(0, 10), 'a'); // touch the first
    t.insert(seq(200, 10), 'a', 25); // 30 > 25: evict the LRU leaf (100..109)
    expect(t.size('a')).toBe(20);
    expect(t.match(seq(100, 10)).get('a')).toBeUndefined();
    expect(t.match(seq(0, 10)).get('a')).toBe(10);
  });

  it('follows the cache above cache_threshold, else the smallest tree', () => {
    const p = new SglangCacheAwarePolicy(); // threshold 0.5
    const ws = workers(3);
    expect(p.select(ctxFor(seq(0, 100), ws)).index).toBe(0); // all trees empty: the first smallest
    expect(p.select(ctxFor(seq(1000, 10), ws)).index).toBe(1); // w0 is now bigger
    // 60% of this prompt is on w0 -> w0
    expect(p.select(ctxFor([...seq(0, 60), ...seq(5000, 40)], ws)).index).toBe(0);
    // 40% only -> smallest tree: w2 (empty)
    expect(p.select(ctxFor([...seq(0, 40), ...seq(7000, 60)], ws)).index).toBe(2);
  });

  it('goes to the least loaded worker when load is imbalanced by both thresholds', () => {
    const p = new SglangCacheAwarePolicy({ balanceAbsThreshold: 2, balanceRelThreshold: 1.5 });
    p.select(ctxFor(seq(0, 100), workers(2)));
    // w0 has the prompt cached, but runs 10 requests against w1's 3: 10-3 > 2 and 10 > 1.5*3
    expect(p.select(ctxFor(seq(0, 100), workers(2, [{ inflight: 10 }, { inflight: 3 }]))).index).toBe(1);
    // 10 vs 8: gap 2, not > 2 -> balanced -> cache wins
    expect(p.select(ctxFor(seq(0, 100), workers(2, [{ inflight: 10 }, { inflight: 8 }]))).index).toBe(0);
    // both trees now hold the prompt (w1 got it while imbalanced): the first longest match wins
    expect(p.tree.match(seq(0, 100)).get('w1')).toBe(100);
  });

  it('rejects bad options, naming them', () => {
    expect(() => new SglangCacheAwarePolicy({ cacheThreshold: 2 })).toThrow(/cacheThreshold/);
    expect(() => new SglangCacheAwarePolicy({ balanceAbsThreshold: -1 })).toThrow(/balanceAbsThreshold/);
  });
});

describe('vllm-prefix-aware', () => {
  it('trie over fixed chunks: longest match narrowed to the endpoints present', () => {
    const t = new ChunkHashTrie(2);
    const a = t.chunks([1, 2, 3, 4, 5]);
    expect(a).toHaveLength(3); // last chunk partial
    t.insert(a, 'x');
    t.insert(t.chunks([1, 2, 3, 4, 9, 9]), 'y');
    expect(t.longestMatch(t.chunks([1, 2, 3, 4, 5]), ['x', 'y', 'z'])).toEqual({ chunks: 3, endpoints: ['x'] });
    expect(t.longestMatch(t.chunks([1, 2, 3, 4]), ['x', 'y', 'z'])).toEqual({ chunks: 2, endpoints: ['x', 'y'] });
    expect(t.longestMatch(t.chunks([7, 7]), ['x', 'y', 'z'])).toEqual({ chunks: 0, endpoints: ['x', 'y', 'z'] });
    // an endpoint that left is not returned
    expect(t.longestMatch(t.chunks([1, 2, 3, 4, 5]), ['y', 'z'])).toEqual({ chunks: 2, endpoints: ['y'] });
  });

  it('picks at random among the longest matches, ignoring load', () => {
    const p = new VllmPrefixAwarePolicy({ chunkSize: 4 });
    const ws = workers(4, [{}, {}, {}, { activeBlocks: 1000 }]);
    expect(p.select(ctxFor(seq(0, 8), ws, () => 0.99)).index).toBe(3); // no match: random over all
    expect(p.select(ctxFor(seq(0, 8), ws, () => 0)).index).toBe(3); // the only match, however busy
    expect(p.select(ctxFor(seq(0, 4), ws, () => 0.3)).index).toBe(3); // a prefix of w3's
    p.trie.insert(p.trie.chunks(seq(0, 4)), 'w1'); // w1 was sent the first chunk only
    expect(p.select(ctxFor([...seq(0, 4), 99], ws, () => 0)).index).toBe(1); // ties w1/w3 -> random
    expect(p.select(ctxFor([...seq(0, 4), 98], ws, () => 0.99)).index).toBe(3);
    expect(p.select(ctxFor([...seq(0, 4), 99], ws, () => 0.99)).index).toBe(1); // now only w1 has both chunks
  });
});

describe('llm-d-scorers', () => {
  it('weights prefix (3), kv utilization (2) and queue (2) scores and takes the max', () => {
    const p = new LlmdScorersPolicy({ hashBlockSize: 4 });
    const prompt = seq(0, 16); // 4 blocks
    const idle = workers(2, [{ totalBlocks: 100 }, { totalBlocks: 100 }]);
    expect(p.select(ctxFor(prompt, idle, () => 0.9)).index).toBe(1); // all equal: random
    // w1 now has the 4 blocks (prefix 1.0); w0 is emptier and has a shorter queue
    const ws = workers(2, [
      { totalBlocks: 100, activeBlocks: 0, waiting: 0 },
      { totalBlocks: 100, activeBlocks: 50, waiting: 4 },
    ]);
    // w0: 3*0 + 2*1 + 2*1 = 4; w1: 3*1 + 2*0.5 + 2*0 = 4 -> tie; random picks
    expect(p.select(ctxFor(prompt, ws, () => 0)).index).toBe(0);
    expect(p.lastScores.map((s) => s[3])).toEqual([4, 4]);
    // a less busy w1 wins on its prefix score
    const ws2 = workers(2, [
      { totalBlocks: 100, activeBlocks: 0, waiting: 0 },
      { totalBlocks: 100, activeBlocks: 20, waiting: 2 },
    ]);
    const hit = new LlmdScorersPolicy({ hashBlockSize: 4 });
    hit.select(ctxFor(prompt, workers(2, [{ totalBlocks: 100 }, { totalBlocks: 100 }]), () => 0.9)); // w1 learns it
    expect(hit.select(ctxFor(prompt, ws2)).index).toBe(1); // w1: 3 + 1.6 + 0 = 4.6 > w0: 0 + 2 + 2
    expect(hit.lastScores[1]![0]).toBe(1);
  });

  it('prefix score is the leading matched fraction; the LRU keeps at most its capacity', () => {
    const p = new LlmdScorersPolicy({ hashBlockSize: 4, lruCapacityPerServer: 3 });
    const one = workers(1, [{ totalBlocks: 10 }]);
    p.select(ctxFor(seq(0, 8), one)); // 2 blocks
    p.select(ctxFor([...seq(0, 4), ...seq(50, 4)], one)); // shares block 0, adds 1
    expect(p.rememberedBlocks('w0')).toBe(3);
    p.select(ctxFor(seq(0, 16), one)); // 4 blocks: capacity 3 keeps the newest
    expect(p.rememberedBlocks('w0')).toBe(3);
    p.select(ctxFor(seq(0, 16), one));
    expect(p.lastScores[0]![0]).toBe(0); // block 0 was evicted, so no leading match
    expect(() => new LlmdScorersPolicy({ hashBlockSize: 0 })).toThrow(/hashBlockSize/);
  });
});

describe('peer policies behind KvRouter', () => {
  it('see the ids of the candidates left after excludeWorkers', () => {
    const p = new VllmPrefixAwarePolicy({ chunkSize: 4 });
    const r = new KvRouter({ blockSize: 4, strategy: p, random: () => 0 });
    for (const w of ['a', 'b', 'c']) r.addWorker(w);
    const prompt = seq(0, 8);
    expect(r.route({ tokenIds: prompt, record: false }).worker_id).toBe('a'); // no match: random -> first
    const d = r.route({ tokenIds: prompt, excludeWorkers: new Set(['a']), record: false });
    expect(d.worker_id).toBe('b');
    // the policy recorded the prompt for 'b', the worker it was actually sent to
    expect(p.trie.longestMatch(p.trie.chunks(prompt), ['b', 'c'])).toEqual({ chunks: 2, endpoints: ['b'] });
    expect(r.workers()).toEqual(['a', 'b', 'c']);
  });
});
