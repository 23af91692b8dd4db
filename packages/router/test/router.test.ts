import {
  KvEventBuilder,
  KvRouter,
  NoWorkersError,
  RouterError,
  RouterInvalidArgumentError,
  compileRouterOptions,
  createStrategy,
  sequenceHashes,
  type RouteDecision,
  type RoutingStrategy,
} from '@dynamo-ts/router';
import { prng } from './model';

/** A router plus simulated workers publishing KV events like the hello-world DummyWorker. */
function cluster(options: ConstructorParameters<typeof KvRouter>[0] = {}, workers = ['w0', 'w1']) {
  let t = 0;
  const warnings: [string, Record<string, unknown>][] = [];
  const router = new KvRouter({
    blockSize: 2,
    now: () => t,
    random: prng(1),
    onWarning: (m, f) => warnings.push([m, f]),
    ...options,
  });
  const kv = new Map(workers.map((w) => [w, new KvEventBuilder(w, options.blockSize ?? 2)]));
  for (const w of workers) router.addWorker(w);
  return {
    router,
    warnings,
    advance: (ms: number) => (t += ms),
    /** The worker computed the prompt's KV: it announces the new blocks. */
    store(d: RouteDecision, tokens: number[]) {
      const ev = kv.get(d.worker_id)!.stored(tokens, d.overlap_blocks);
      return router.applyEvent(JSON.parse(JSON.stringify(ev)));
    },
    /** Serve a request to the end: route, store, first token, finish. */
    serve(tokens: number[]): RouteDecision {
      const d = router.route(tokens);
      this.store(d, tokens);
      router.onFirstToken(d.request_id);
      router.onFinished(d.request_id);
      return d;
    },
  };
}

const A = [101, 102, 103, 104, 105];
const B = [201, 202, 203, 204];
const C = [101, 102, 901, 902]; // shares A's first block

describe('KvRouter: the hello-world behaviour (block size 2, two empty workers)', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i: B goes to the other worker, C follows A (KV events)', (seed) => {
    const c = cluster({ random: prng(seed) });
    const a = c.serve(A);
    const other = a.worker_id === 'w0' ? 'w1' : 'w0';
    expect(a.overlap_blocks).toBe(0);
    // A's stream has finished: both workers idle, but A's worker caches A's blocks.
    const b = c.serve(B);
    expect(b.worker_id).toBe(other);
    expect(b.overlap_blocks).toBe(0);
    const d = c.router.route(C);
    expect(d.worker_id).toBe(a.worker_id);
    expect(d.overlap_blocks).toBe(1);
    expect(d.uncached_tokens).toBe(2);
  });

  it.each([1, 2, 3, 4])('seed %i: the same without KV events (approximate index)', (seed) => {
    const c = cluster({ random: prng(seed), useKvEvents: false });
    const a = c.router.route(A);
    c.router.onFirstToken(a.request_id);
    c.router.onFinished(a.request_id);
    const b = c.router.route(B);
    expect(b.worker_id).not.toBe(a.worker_id);
    c.router.onFinished(b.request_id);
    const d = c.router.route(C);
    expect(d.worker_id).toBe(a.worker_id);
    expect(d.overlap_blocks).toBe(1);
    // the approximation expires
    c.advance(120_000);
    expect(c.router.route({ tokenIds: C, record: false }).overlap_blocks).toBe(0);
  });
});

describe('KvRouter', () => {
  it('routes to the longest cached prefix and records the decision as load', () => {
    const c = cluster();
    const long = [1, 2, 3, 4, 5, 6, 7, 8];
    const first = c.serve(long);
    const d = c.router.route({ tokenIds: long, requestId: 'req-x' });
    expect(d).toEqual({
      worker_id: first.worker_id,
      request_id: 'req-x',
      overlap_blocks: 4,
      isl_tokens: 8,
      uncached_tokens: 0,
      block_size: 2,
      strategy: 'kv',
      // The predicted TTFT (mocker profile): nothing cached to prefill but the last token, one step;
      // plus the work term: both requests arrived at the same instant (an unbounded rate), but none
      // is queued now, so that prefill's compute (not its fixed cost) counts as delaying one request.
      cost: expect.closeTo(26.2 + 2 * (0.0741 + 2.5e-6 * (8 + 0.5)) + 19.44, 9) as unknown as number,
      recorded: true,
    });
    const w = c.router.stats().workers.find((x) => x.workerId === first.worker_id)!;
    expect(w).toMatchObject({ activeBlocks: 4, activePrefillTokens: 0, inflightRequests: 1, cachedBlocks: 4 });
    expect(c.router.onFinished('req-x')).toBe(true);
    expect(c.router.onFinished('req-x')).toBe(false);
  });

  it('keeps sending a closed-loop client to the idle worker caching its prefix, however fast it asks', () => {
    // Each request finishes before the next arrives (a sequential client): the arrival rate looks
    // high, but nothing is queued, so the work term counts at most one delayed request and the
    // cached worker's shorter prefill wins though it drew every recent decision.
    for (const gap of [1, 5, 40]) {
      const c = cluster({ blockSize: 4 }, ['cold', 'home']);
      const prefix = Array.from({ length: 44 }, (_, i) => 1000 + i);
      const seed = c.router.route({ tokenIds: prefix, excludeWorkers: new Set(['cold']) });
      c.store(seed, prefix);
      c.router.onFinished(seed.request_id);
      for (let q = 0; q < 8; q++) {
        c.advance(gap);
        const tokens = [...prefix, 5000 + q, 6000 + q, 7000 + q];
        const d = c.router.route(tokens);
        expect([gap, q, d.worker_id]).toEqual([gap, q, 'home']);
        c.router.onFirstToken(d.request_id);
        c.router.onFinished(d.request_id);
      }
    }
  });

  it('gives the cost the requests queued on the whole fleet, with and without the bounded search', () => {
    for (const bounded of [true, false]) {
      const kv = createStrategy('kv');
      const seen: (number | undefined)[] = [];
      const strategy: RoutingStrategy = {
        name: 'kv',
        select: (ctx) => {
          seen.push(ctx.queuedRequests);
          return kv.select(ctx);
        },
        ...(bounded ? { costBound: kv.costBound! } : {}),
      };
      const c = cluster({ strategy }, ['w0', 'w1', 'w2']);
      const ids = [0, 1, 2, 3].map((i) => c.router.route([i * 10 + 1, i * 10 + 2, i * 10 + 3]).request_id);
      expect(seen).toEqual([0, 1, 2, 3]);
      c.router.onFirstToken(ids[0]!);
      c.router.onFinished(ids[1]!);
      c.router.route([77, 78]);
      expect(seen[4]).toBe(2);
    }
  });

  it('accepts number[], Uint32Array and requests; generates request ids; record: false records nothing', () => {
    const c = cluster({ requestIdPrefix: 'r' });
    expect(c.router.route([1, 2, 3]).request_id).toBe('r-1');
    expect(c.router.route(Uint32Array.from([1, 2, 3])).request_id).toBe('r-2');
    const dry = c.router.route({ tokenIds: [1, 2, 3], record: false });
    expect(dry.recorded).toBe(false);
    expect(c.router.stats().inflightRequests).toBe(2);
    expect(c.router.stats().decisions).toBe(3);
    expect(() => c.router.route({ tokenIds: [1, -2] })).toThrow(RouterInvalidArgumentError);
    expect(() => c.router.route({ tokenIds: 5 as unknown as number[] })).toThrow(/tokenIds/);
  });

  it('keeps a hot prefix on its worker: running requests share their blocks (Dynamo)', () => {
    const c = cluster({ blockSize: 16 }, ['w0', 'w1', 'w2']);
    const prompt = Array.from({ length: 512 }, (_, i) => i);
    const first = c.serve(prompt); // cached on one worker
    // Running (past their first token): the ttft cost charges queued requests a fixed prefill
    // cost each, so 30 requests still queued would rightly spill to another worker.
    for (let i = 0; i < 30; i++) {
      const d = c.router.route(prompt);
      expect(d.worker_id).toBe(first.worker_id);
      c.router.onFirstToken(d.request_id);
    }
    const w = c.router.stats().workers.find((x) => x.workerId === first.worker_id)!;
    expect(w).toMatchObject({ inflightRequests: 30, activeBlocks: 32, activePrefillTokens: 0 });
  });

  it('spreads distinct concurrent prompts evenly (fair under load)', () => {
    const c = cluster({ blockSize: 16 }, ['w0', 'w1', 'w2']);
    const counts = new Map<string, number>();
    const firstWorker: string[] = [];
    for (let i = 0; i < 30; i++) {
      const prompt = Array.from({ length: 512 }, (_, k) => i * 1000 + k);
      const d = c.router.route(prompt); // never finished: load piles up
      firstWorker.push(d.worker_id);
      counts.set(d.worker_id, (counts.get(d.worker_id) ?? 0) + 1);
    }
    expect([...counts.values()]).toEqual([10, 10, 10]);
    // A prompt sharing half of a running request's blocks (nothing cached yet: no events) is
    // charged only its 16 new blocks on that request's worker, and goes there.
    const shared = Array.from({ length: 512 }, (_, k) => (k < 256 ? k : 99_000 + k));
    const d = c.router.route({ tokenIds: shared, record: false });
    expect(d.overlap_blocks).toBe(0);
    expect(d.worker_id).toBe(firstWorker[0]);
  });

  it('balances equal requests by load when caches do not help', () => {
    const c = cluster({}, ['w0', 'w1', 'w2']);
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) seen.add(c.router.route([i * 10, i * 10 + 1, i * 10 + 2, i * 10 + 3]).worker_id);
    expect(seen.size).toBe(3);
  });

  it('uses reported load metrics', () => {
    const c = cluster();
    c.router.applyLoad({ worker_id: 'w0', active_blocks: 1000 });
    expect(c.router.route([1, 2, 3, 4]).worker_id).toBe('w1');
    expect(c.router.applyLoad({ worker_id: 'ghost', active_blocks: 1 })).toBe(false);
    expect(c.router.applyLoad({ worker_id: 'w0', active_blocks: 'x' })).toBe(false);
    c.advance(10_001); // the report is stale now
    c.router.onFinished('req-1');
    expect(c.router.stats().workers.map((w) => w.activeBlocks)).toEqual([0, 0]);
  });

  it('skips excluded workers for one decision without forgetting them', () => {
    const c = cluster();
    const long = [1, 2, 3, 4, 5, 6, 7, 8];
    const first = c.serve(long);
    const other = first.worker_id === 'w0' ? 'w1' : 'w0';
    const d = c.router.route({ tokenIds: long, excludeWorkers: new Set([first.worker_id]) });
    expect(d.worker_id).toBe(other);
    expect(d.overlap_blocks).toBe(0);
    // Next decision without exclusion: the cache of the excluded worker is still known.
    expect(c.router.route({ tokenIds: long, record: false })).toMatchObject({
      worker_id: first.worker_id,
      overlap_blocks: 4,
    });
    expect(c.router.workers().sort()).toEqual(['w0', 'w1']);
    expect(() => c.router.route({ tokenIds: long, excludeWorkers: new Set(['w0', 'w1']) })).toThrow(NoWorkersError);
  });

  it('throws NoWorkersError (UNAVAILABLE, retryable) with no worker', () => {
    const r = new KvRouter();
    expect(() => r.route([1])).toThrow(NoWorkersError);
    try {
      r.route([1]);
    } catch (e) {
      expect((e as RouterError).code).toBe('UNAVAILABLE');
      expect((e as RouterError).retryable).toBe(true);
    }
  });

  it('ignores events from unregistered workers (warning once), and all events without KV events', () => {
    const c = cluster();
    const ghost = new KvEventBuilder('ghost', 2);
    expect(c.router.applyEvent(ghost.stored(A))).toEqual({ status: 'ignored', reason: 'unknown_worker', blocks: 0 });
    c.router.applyEvent(ghost.stored(B));
    expect(c.warnings).toEqual([['kv event ignored: unknown worker', { worker_id: 'ghost' }]]);
    expect(c.router.stats().events.ignored).toBe(2);
    // registered later: its events count from then on
    c.router.addWorker('ghost');
    expect(c.router.applyEvent(ghost.stored(A)).status).toBe('applied');
    const approx = cluster({ useKvEvents: false });
    expect(approx.router.applyEvent(ghost.stored(A))).toEqual({ status: 'ignored', reason: 'no_kv_events', blocks: 0 });
    // malformed input is rejected, not thrown
    expect(c.router.applyEvent('garbage')).toMatchObject({ status: 'rejected', reason: 'invalid' });
  });

  it('removeWorker forgets the worker everywhere; setWorkers reconciles with discovery', () => {
    const c = cluster({}, ['w0', 'w1', 'w2']);
    const a = c.serve(A);
    const pending = c.router.route({ tokenIds: A, requestId: 'p' });
    expect(pending.worker_id).toBe(a.worker_id);
    expect(c.router.removeWorker(a.worker_id)).toBe(true);
    expect(c.router.removeWorker(a.worker_id)).toBe(false);
    expect(c.router.hasWorker(a.worker_id)).toBe(false);
    expect(c.router.onFinished('p')).toBe(false);
    expect(c.router.stats().indexedBlocks).toBe(0);
    expect(c.router.route(A).worker_id).not.toBe(a.worker_id);
    const { added, removed } = c.router.setWorkers(['w9', ...c.router.workers().slice(0, 1)]);
    expect(added).toEqual(['w9']);
    expect(removed).toHaveLength(1);
    expect(c.router.workers()).toHaveLength(2);
    expect(c.router.addWorker('w9')).toBe(false);
    expect(() => c.router.addWorker('')).toThrow(RouterInvalidArgumentError);
  });

  it('resyncWorker drops a worker\u2019s blocks', () => {
    const c = cluster();
    const a = c.serve(A);
    expect(c.router.resyncWorker(a.worker_id)).toBe(true);
    expect(c.router.route({ tokenIds: A, record: false }).overlap_blocks).toBe(0);
    expect(c.router.resyncWorker('nobody')).toBe(false);
  });

  it('reports stats for metrics', () => {
    const c = cluster();
    const a = c.serve(A);
    c.router.route({ tokenIds: A, requestId: 'r' });
    const s = c.router.stats();
    expect(s).toMatchObject({
      strategy: 'kv',
      blockSize: 2,
      mode: 'kv_events',
      indexedBlocks: 2,
      indexEntries: 2,
      decisions: 2,
      inflightRequests: 1,
      predictedHitRate: 0.5, // 0 of 2 blocks, then 2 of 2
      events: { applied: 1, rejected: 0, ignored: 0, gaps: 0 },
    });
    const w = s.workers.find((x) => x.workerId === a.worker_id)!;
    expect(w).toMatchObject({ cachedBlocks: 2, lastEventId: 0, eventGaps: 0, inflightRequests: 1, routedTotal: 2 });
  });

  it('releases forgotten requests after requestTimeoutMs', () => {
    const c = cluster({ requestTimeoutMs: 1000 });
    c.router.route({ tokenIds: A, requestId: 'lost' });
    c.advance(1000);
    c.router.route({ tokenIds: B, requestId: 'next' });
    expect(c.router.stats().inflightRequests).toBe(1);
    expect(c.warnings.map((w) => w[0])).toContain('request released after timeout without onFinished');
  });

  it('is deterministic for a seeded random source, also with a temperature', () => {
    const run = (): string[] => {
      const c = cluster({ temperature: 0.5, random: prng(42) }, ['a', 'b', 'c', 'd']);
      return Array.from({ length: 40 }, (_, i) => c.serve([i % 5, 1, 2, 3, i % 3, 9]).worker_id);
    };
    expect(run()).toEqual(run());
  });

  it('takes any strategy by name or object', () => {
    const c = cluster({ strategy: 'round-robin' }, ['a', 'b', 'c']);
    expect([1, 2, 3, 4].map(() => c.router.route(A).worker_id)).toEqual(['a', 'b', 'c', 'a']);
    expect(c.router.route(A).cost).toBeUndefined();
    const last: RoutingStrategy = { name: 'last', select: (ctx) => ({ index: ctx.count - 1 }) };
    expect(cluster({ strategy: last }, ['a', 'b']).router.route(A)).toMatchObject({ worker_id: 'b', strategy: 'last' });
    const broken: RoutingStrategy = { name: 'broken', select: () => ({ index: 7 }) };
    expect(() => cluster({ strategy: broken }).router.route(A)).toThrow(RouterError);
  });

  it('validates options, naming the key', () => {
    expect(() => compileRouterOptions({ blockSize: 0 })).toThrow(/blockSize/);
    expect(() => compileRouterOptions({ strategy: 'fastest' as 'kv' })).toThrow(
      /strategy must be one of kv, round-robin/,
    );
    expect(() => compileRouterOptions({ strategy: {} as RoutingStrategy })).toThrow(/strategy/);
    expect(() => compileRouterOptions({ temperature: -1 })).toThrow(/temperature/);
    expect(() => compileRouterOptions({ overlapWeight: Number.NaN })).toThrow(/overlapWeight/);
    expect(() => compileRouterOptions({ approxTtlMs: 0 })).toThrow(/approxTtlMs/);
    expect(() => compileRouterOptions({ loadMetricsTtlMs: -1 })).toThrow(/loadMetricsTtlMs/);
    expect(() => compileRouterOptions({ gapPolicy: 'drop' as 'keep' })).toThrow(/gapPolicy/);
    expect(() => compileRouterOptions({ now: 5 as unknown as () => number })).toThrow(/now must be a function/);
    const o = compileRouterOptions();
    expect(o).toMatchObject({
      blockSize: 64,
      useKvEvents: true,
      approxTtlMs: 120_000,
      gapPolicy: 'clear',
      loadMetricsTtlMs: 10_000,
      requestTimeoutMs: 600_000,
      requestIdPrefix: 'req',
    });
    expect(o.strategy.name).toBe('kv');
  });

  it('agrees with sequenceHashes on what is cached', () => {
    const c = cluster({ blockSize: 4 });
    const tokens = Array.from({ length: 40 }, (_, i) => i * 7);
    c.serve(tokens);
    expect(sequenceHashes(tokens, 4)).toHaveLength(10);
    expect(c.router.route({ tokenIds: tokens.slice(0, 23), record: false }).overlap_blocks).toBe(5);
  });
});
