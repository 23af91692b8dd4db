import { KvIndexer, sequenceHashes, hashToWire, type KvEvent } from '@dynamo-ts/router';
import {
  decodeStepTimeMs,
  PagedKvCache,
  prefillChunkTimeMs,
  prefillTimeMs,
  RealTimeEngine,
  SimEngine,
  VirtualEventLoop,
  seededRandom,
  type EngineScheduler,
  type SimStep,
  type TokenBatch,
} from '@dynamo-ts/mocker';

const seq = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/** Runs the engine to completion on a virtual loop; returns every step. */
function drain(e: SimEngine, start = 0): SimStep[] {
  const steps: SimStep[] = [];
  let now = start;
  for (let s = e.step(now); s !== null; s = e.step(now)) {
    steps.push(s);
    now = s.endsAt;
  }
  return steps;
}

describe('timing (Dynamo mocker formulas)', () => {
  it('prefill is 1.25e-6 t^2 + 0.0741 t + 26.2 ms for t uncached tokens', () => {
    expect(prefillTimeMs(0)).toBe(0);
    expect(prefillTimeMs(1000)).toBeCloseTo(1.25 + 74.1 + 26.2, 10);
    expect(prefillTimeMs(8192)).toBeCloseTo(1.25e-6 * 8192 ** 2 + 0.0741 * 8192 + 26.2, 10);
  });

  it('chunks add up to the whole prefill', () => {
    const whole = prefillTimeMs(20000);
    const chunks = prefillChunkTimeMs(0, 8192) + prefillChunkTimeMs(8192, 8192) + prefillChunkTimeMs(16384, 3616);
    expect(chunks).toBeCloseTo(whole, 9);
    expect(prefillChunkTimeMs(5, 0)).toBe(0);
  });

  it('decode step takes -5.47 p^2 + 43.88 p + 19.44 ms with p the active fraction in [0, 1]', () => {
    expect(decodeStepTimeMs(0)).toBeCloseTo(19.44, 10);
    expect(decodeStepTimeMs(1)).toBeCloseTo(57.85, 10);
    expect(decodeStepTimeMs(0.5)).toBeCloseTo(-5.47 * 0.25 + 43.88 * 0.5 + 19.44, 10);
    expect(decodeStepTimeMs(7)).toBeCloseTo(57.85, 10); // clamped
  });
});

describe('PagedKvCache', () => {
  it('reuses prefixes, keeps idle blocks cached and evicts the least recently used first', () => {
    const c = new PagedKvCache(4, 2);
    const ev: string[] = [];
    expect(c.allocate(3, ev)).toBe(true);
    expect(['a', 'b', 'c'].map((h) => c.commit(h))).toEqual([true, true, true]);
    c.release(['a', 'b', 'c']); // c idle first, then b, then a
    expect(c.activeBlocks).toBe(0);
    expect(c.matchPrefix(['a', 'b', 'x'])).toBe(2);
    expect(c.allocate(3, ev)).toBe(true); // 1 free + 2 evicted: c, then b
    expect(ev).toEqual(['c', 'b']);
    expect(c.has('a')).toBe(true);
    expect(c.allocate(2, ev)).toBe(false); // only 'a' is evictable
    c.acquire(['a']);
    expect(c.refCount('a')).toBe(1);
    expect(c.allocatableBlocks).toBe(0);
  });

  it('a block computed twice is shared, not duplicated', () => {
    const c = new PagedKvCache(8, 2);
    c.allocate(2, []);
    expect(c.commit('a')).toBe(true);
    expect(c.commit('a')).toBe(false);
    expect(c.refCount('a')).toBe(2);
    expect(c.usedBlocks).toBe(1);
  });
});

describe('SimEngine', () => {
  it('charges a prefill its formula time and the decode steps theirs, divided by the speedup', () => {
    const e = new SimEngine({ workerId: 'w', numBlocks: 100, blockSize: 4, speedupRatio: 2 });
    e.submit({ requestId: 'a', tokenIds: seq(0, 10), maxTokens: 3 });
    const steps = drain(e);
    expect(steps).toHaveLength(3);
    // step 1: prefill of 10 tokens; 4 blocks (10 prompt + 3 output tokens) active out of 100
    expect(steps[0]!.durationMs).toBeCloseTo((decodeStepTimeMs(4 / 100) + prefillTimeMs(10)) / 2, 10);
    expect(steps[0]!.tokens).toEqual([{ requestId: 'a', index: 0, done: false }]);
    expect(steps[1]!.durationMs).toBeCloseTo(decodeStepTimeMs(4 / 100) / 2, 10);
    expect(steps[2]!.tokens).toEqual([{ requestId: 'a', index: 2, done: true }]);
    expect(e.hasWork).toBe(false);
    expect(e.cache.activeBlocks).toBe(0);
    expect(e.busyTimeMs).toBeCloseTo(
      steps.reduce((a, s) => a + s.durationMs, 0),
      10,
    );
  });

  it('respects max_num_seqs and max_batched_tokens (chunked prefill)', () => {
    const e = new SimEngine({ workerId: 'w', numBlocks: 1000, blockSize: 4, maxNumSeqs: 2, maxBatchedTokens: 16 });
    e.submit({ requestId: 'a', tokenIds: seq(0, 40), maxTokens: 2 });
    e.submit({ requestId: 'b', tokenIds: seq(100, 4), maxTokens: 2 });
    e.submit({ requestId: 'c', tokenIds: seq(200, 4), maxTokens: 2 });
    const s1 = e.step(0)!;
    expect(s1.prefillTokens).toBe(16);
    expect(s1.admitted.map((a) => a.requestId)).toEqual(['a']); // budget used up by a's first chunk
    const s2 = e.step(s1.endsAt)!;
    expect(s2.prefillTokens).toBe(16);
    const s3 = e.step(s2.endsAt)!; // a's last 8 tokens, then b (4); c waits: 2 sequences max
    expect(s3.admitted.map((a) => a.requestId)).toEqual(['b']);
    expect(s3.prefillTokens).toBe(12);
    expect(e.runningCount).toBe(2);
    expect(e.waitingCount).toBe(1);
    expect(e.loadMetrics()).toMatchObject({ worker_id: 'w', waiting: 1, total_blocks: 1000 });
    for (const s of drain(e, s3.endsAt)) expect(s.prefillTokens + s.decodeSeqs).toBeLessThanOrEqual(16);
  });

  it('reuses a cached prefix and announces only new blocks, chained to the cached ones', () => {
    const e = new SimEngine({ workerId: 'w', numBlocks: 100, blockSize: 4 });
    const shared = seq(0, 8);
    e.submit({ requestId: 'a', tokenIds: [...shared, 50, 51, 52, 53], maxTokens: 1 });
    const a = drain(e);
    const storedA = a.flatMap((s) => s.kvEvents);
    expect(storedA).toHaveLength(1);
    expect(storedA[0]).toMatchObject({ type: 'stored', parent_hash: null, event_id: 0 });
    e.submit({ requestId: 'b', tokenIds: [...shared, 60, 61, 62, 63, 64], maxTokens: 1 });
    const b = drain(e);
    expect(b[0]!.admitted).toEqual([{ requestId: 'b', promptTokens: 13, cachedTokens: 8 }]);
    const h = sequenceHashes([...shared, 60, 61, 62, 63], 4).map(hashToWire);
    expect(b.flatMap((s) => s.kvEvents)).toEqual([
      {
        type: 'stored',
        worker_id: 'w',
        event_id: 1,
        parent_hash: h[1],
        blocks: [expect.objectContaining({ block_hash: h[2] })],
      },
    ]);
    // the router's indexer accepts the stream and sees the shared prefix
    const idx = new KvIndexer();
    idx.addWorker('w');
    for (const ev of [...storedA, ...b.flatMap((s) => s.kvEvents)]) expect(idx.applyEvent(ev).status).toBe('applied');
  });

  it('evicts unreferenced blocks (LRU) with removed events when the cache is full', () => {
    const e = new SimEngine({ workerId: 'w', numBlocks: 6, blockSize: 2 });
    e.submit({ requestId: 'a', tokenIds: seq(0, 8), maxTokens: 1 }); // 4 full blocks + 1 output block
    drain(e);
    expect(e.cache.cachedIdleBlocks).toBe(4);
    e.submit({ requestId: 'b', tokenIds: seq(100, 8), maxTokens: 1 }); // needs 5: evicts 3 of a's
    const events = drain(e).flatMap((s) => s.kvEvents);
    const removed = events.filter((x): x is Extract<KvEvent, { type: 'removed' }> => x.type === 'removed');
    const aHashes = sequenceHashes(seq(0, 8), 2).map(hashToWire);
    // a's tail was released first, so it goes first; its first block survives
    expect(removed.flatMap((r) => r.block_hashes)).toEqual([aHashes[3], aHashes[2], aHashes[1]]);
    expect(events.map((x) => x.event_id)).toEqual([1, 2]);
    expect(e.cache.has(aHashes[0]!)).toBe(true);
  });

  it('clearCache drops idle blocks: cleared when empty, removed while sequences run', () => {
    const e = new SimEngine({ workerId: 'w', numBlocks: 50, blockSize: 2 });
    e.submit({ requestId: 'a', tokenIds: seq(0, 4), maxTokens: 1 });
    const stored = drain(e).flatMap((s) => s.kvEvents);
    expect(e.clearCache()).toEqual([{ type: 'cleared', worker_id: 'w', event_id: stored.length }]);
    expect(e.cache.usedBlocks).toBe(0);
    e.submit({ requestId: 'b', tokenIds: seq(10, 4), maxTokens: 1 });
    drain(e);
    e.submit({ requestId: 'c', tokenIds: seq(20, 4), maxTokens: 5 });
    e.step(0); // c runs and holds its blocks; b's are idle
    const [removed] = e.clearCache();
    expect(removed).toMatchObject({
      type: 'removed',
      block_hashes: sequenceHashes(seq(10, 4), 2).map(hashToWire).reverse(),
    });
    expect(e.cancel('c')).toBe(true);
    expect(e.cancel('c')).toBe(false);
    expect(e.cache.activeBlocks).toBe(0);
  });

  it('refuses requests that can never fit, naming the request', () => {
    const e = new SimEngine({ workerId: 'w', numBlocks: 2, blockSize: 2 });
    expect(() => e.submit({ requestId: 'big', tokenIds: seq(0, 4), maxTokens: 1 })).toThrow(/big needs 3 KV blocks/);
    expect(() => e.submit({ requestId: 'x', tokenIds: [], maxTokens: 1 })).toThrow(/tokenIds/);
    expect(() => e.submit({ requestId: 'x', tokenIds: [1], maxTokens: 0 })).toThrow(/maxTokens/);
    expect(() => new SimEngine({ workerId: 'w', speedupRatio: 0 })).toThrow(/speedupRatio/);
  });

  it('is deterministic on the virtual loop', () => {
    const run = (): string => {
      const loop = new VirtualEventLoop();
      const e = new SimEngine({ workerId: 'w', numBlocks: 64, blockSize: 4, maxBatchedTokens: 32 });
      const rnd = seededRandom(7);
      const log: string[] = [];
      let busy = false;
      const kick = (): void => {
        if (busy) return;
        const s = e.step(loop.now);
        if (s === null) return;
        busy = true;
        loop.schedule(s.endsAt, () => {
          busy = false;
          for (const t of s.tokens) log.push(`${loop.now.toFixed(6)}:${t.requestId}:${t.index}`);
          kick();
        });
      };
      for (let i = 0; i < 20; i++) {
        const at = rnd() * 500;
        const n = 1 + Math.floor(rnd() * 30);
        loop.schedule(at, () => {
          e.submit({ requestId: `r${i}`, tokenIds: seq(Math.floor(rnd() * 3) * 100, n), maxTokens: 3 });
          kick();
        });
      }
      loop.run();
      return log.join(',');
    };
    const a = run();
    expect(a.split(',')).toHaveLength(60);
    expect(run()).toBe(a);
  });
});

describe('RealTimeEngine', () => {
  /** A hand-driven scheduler: timers fire when the test advances time. */
  function manualScheduler(): EngineScheduler & { advance(): boolean; t: number } {
    const timers: Array<{ at: number; fn: () => void; id: number }> = [];
    let id = 0;
    const s = {
      t: 0,
      now: () => s.t,
      setTimer: (fn: () => void, ms: number) => {
        timers.push({ at: s.t + ms, fn, id: ++id });
        return id;
      },
      cancel: (h: unknown) => {
        const i = timers.findIndex((x) => x.id === h);
        if (i >= 0) timers.splice(i, 1);
      },
      advance: () => {
        timers.sort((a, b) => a.at - b.at);
        const next = timers.shift();
        if (next === undefined) return false;
        s.t = next.at;
        next.fn();
        return true;
      },
    };
    return s;
  }

  it('streams token batches and publishes KV events and load', async () => {
    const sched = manualScheduler();
    const events: KvEvent[] = [];
    const loads: number[] = [];
    const rt = new RealTimeEngine({ workerId: 'w', numBlocks: 100, blockSize: 4, speedupRatio: 10 }, sched, {
      onKvEvent: (e) => events.push(e),
      onLoadMetrics: (m) => loads.push(m.active_blocks ?? -1),
    });
    const it = rt.submit({ requestId: 'a', tokenIds: seq(0, 9), maxTokens: 3 })[Symbol.asyncIterator]();
    const got: TokenBatch[] = [];
    while (got.length < 3) {
      const p = it.next();
      while (sched.advance()) await Promise.resolve();
      const r = await p;
      if (r.done) break;
      got.push(r.value);
    }
    expect(got.map((b) => [b.index, b.first, b.done])).toEqual([
      [0, true, false],
      [1, false, false],
      [2, false, true],
    ]);
    expect(got[0]!.cachedTokens).toBe(0);
    expect(sched.t).toBeGreaterThan(0);
    expect(events.map((e) => e.type)).toEqual(['stored']);
    expect(loads.at(-1)).toBe(0);
    expect((await it.next()).done).toBe(true);
    rt.close();
  });

  it('cancels a request whose consumer stops or aborts', async () => {
    const sched = manualScheduler();
    const rt = new RealTimeEngine({ workerId: 'w', numBlocks: 100, blockSize: 4 }, sched);
    const ac = new AbortController();
    const it = rt
      .submit({ requestId: 'a', tokenIds: seq(0, 9), maxTokens: 100 }, { signal: ac.signal })
      [Symbol.asyncIterator]();
    sched.advance();
    expect((await it.next()).value.first).toBe(true);
    ac.abort(new Error('client went away'));
    await expect(it.next()).rejects.toThrow('client went away');
    expect(rt.inflight).toBe(0);
    expect(rt.engine.cache.activeBlocks).toBe(0);
    rt.close();
  });
});
