import { KvIndexer, type KvEvent } from '@dynamo-ts/router';
import { VllmSimEngine, type SimStep } from '@dynamo-ts/mocker';

const tokens = (n: number, base = 0): number[] => Array.from({ length: n }, (_, i) => base + i);

/** Runs the engine until idle; returns the steps. */
function drain(e: VllmSimEngine, limit = 100_000): SimStep[] {
  const steps: SimStep[] = [];
  let now = 0;
  for (let i = 0; i < limit && e.hasWork; i++) {
    const s = e.step(now)!;
    steps.push(s);
    now = s.endsAt;
  }
  return steps;
}

describe('VllmSimEngine', () => {
  it('allocates blocks on demand and preempts (recompute) when memory runs out; every request completes', () => {
    // 40 blocks of 4 tokens; 4 requests of 16 prompt + 20 output tokens each need 9 blocks at the end:
    // admitted together (prompts fit), they outgrow the cache while decoding.
    const e = new VllmSimEngine({ workerId: 'w', numBlocks: 40, blockSize: 4, maxBatchedTokens: 256 });
    for (let r = 0; r < 5; r++) e.submit({ requestId: `r${r}`, tokenIds: tokens(16, 1000 * r), maxTokens: 20 });
    const steps = drain(e);
    expect(e.preemptions).toBeGreaterThan(0);
    const byReq = new Map<string, number[]>();
    for (const s of steps)
      for (const t of s.tokens) byReq.set(t.requestId, [...(byReq.get(t.requestId) ?? []), t.index]);
    for (let r = 0; r < 5; r++) expect(byReq.get(`r${r}`)).toEqual(tokens(20));
    expect(e.cache.activeBlocks).toBe(0);
    // The KV events stay consistent for a router's index (no unknown parents, no rejections).
    const idx = new KvIndexer();
    idx.addWorker('w');
    for (const s of steps) for (const ev of s.kvEvents) expect(idx.applyEvent(ev as KvEvent).status).toBe('applied');
  });

  it('a short prompt overtakes a long one when the long-prefill slot is taken', () => {
    const e = new VllmSimEngine({
      workerId: 'w',
      blockSize: 16,
      maxBatchedTokens: 2048,
      longPrefillTokens: 1000,
      maxLongPartialPrefills: 1,
    });
    e.submit({ requestId: 'long1', tokenIds: tokens(8000, 0), maxTokens: 2 });
    e.submit({ requestId: 'long2', tokenIds: tokens(8000, 100_000), maxTokens: 2 });
    e.submit({ requestId: 'short', tokenIds: tokens(100, 200_000), maxTokens: 2 });
    const steps = drain(e);
    const first = (id: string): number =>
      steps.findIndex((s) => s.tokens.some((t) => t.requestId === id && t.index === 0));
    expect(first('short')).toBeLessThan(first('long1'));
    expect(first('long1')).toBeLessThan(first('long2'));
  });

  it('prefill time includes attention over the cached prefix; decode time grows with batch and context', () => {
    const timing = {
      prefillFixedMs: 0,
      prefillPerTokenMs: 1,
      prefillAttentionMs: 0.01,
      decodeBaseMs: 0,
      decodePerSeqMs: 0,
      decodePerContextTokenMs: 0,
    };
    const e = new VllmSimEngine({ workerId: 'w', blockSize: 10, maxBatchedTokens: 10_000, timing });
    e.submit({ requestId: 'a', tokenIds: tokens(100), maxTokens: 1 });
    expect(drain(e)[0]!.durationMs).toBeCloseTo(100 + 0.01 * 100 * 50, 9);
    // 90 cached tokens (9 blocks): 10 new tokens attend over 90 + 5.
    e.submit({ requestId: 'b', tokenIds: [...tokens(90), ...tokens(10, 5000)], maxTokens: 1 });
    expect(drain(e)[0]!.durationMs).toBeCloseTo(10 + 0.01 * 10 * 95, 9);
    const d = new VllmSimEngine({
      workerId: 'd',
      blockSize: 10,
      timing: {
        ...timing,
        prefillPerTokenMs: 0,
        prefillAttentionMs: 0,
        decodePerSeqMs: 2,
        decodePerContextTokenMs: 0.5,
      },
    });
    d.submit({ requestId: 'x', tokenIds: tokens(20), maxTokens: 3 });
    d.submit({ requestId: 'y', tokenIds: tokens(40, 900), maxTokens: 3 });
    const steps = drain(d);
    // Step 2 decodes both: 2 sequences, 20 + 40 tokens of context.
    expect(steps[1]!.decodeSeqs).toBe(2);
    expect(steps[1]!.durationMs).toBeCloseTo(2 * 2 + 0.5 * 60, 9);
  });

  it('rejects bad options and requests, naming them', () => {
    expect(() => new VllmSimEngine({ workerId: '' })).toThrow(/workerId/);
    expect(() => new VllmSimEngine({ workerId: 'w', maxPartialPrefills: 0 })).toThrow(/maxPartialPrefills/);
    expect(() => new VllmSimEngine({ workerId: 'w', timing: { decodeBaseMs: -1 } })).toThrow(/timing.decodeBaseMs/);
    const e = new VllmSimEngine({ workerId: 'w', numBlocks: 2, blockSize: 4 });
    expect(() => e.submit({ requestId: 'big', tokenIds: tokens(10), maxTokens: 5 })).toThrow(/needs 4 KV blocks/);
    expect(() => e.submit({ requestId: 'z', tokenIds: [], maxTokens: 1 })).toThrow(/tokenIds/);
  });
});
