import { LoadTracker, RouterInvalidArgumentError } from '@dynamo-ts/router';

describe('LoadTracker', () => {
  let t = 0;
  const now = (): number => t;
  beforeEach(() => {
    t = 0;
  });

  it('adds prefill tokens and blocks on routing; releases prefill at first token, blocks at the end', () => {
    const lt = new LoadTracker({ now });
    lt.addWorker('w');
    lt.onRouted('r1', 'w', { prefillTokens: 100, blocks: 4 });
    lt.onRouted('r2', 'w', { prefillTokens: 50, blocks: 2 });
    expect(lt.load('w')).toMatchObject({
      activeBlocks: 6,
      activePrefillTokens: 150,
      inflightRequests: 2,
      routedTotal: 2,
    });
    expect(lt.onFirstToken('r1')).toBe(true);
    expect(lt.onFirstToken('r1')).toBe(false); // once
    expect(lt.load('w')).toMatchObject({ activeBlocks: 6, activePrefillTokens: 50 });
    expect(lt.onFinished('r1')).toBe(true);
    expect(lt.load('w')).toMatchObject({ activeBlocks: 2, activePrefillTokens: 50, inflightRequests: 1 });
    // finishing without a first token (failed, cancelled) releases both
    expect(lt.onFinished('r2')).toBe(true);
    expect(lt.load('w')).toMatchObject({ activeBlocks: 0, activePrefillTokens: 0, inflightRequests: 0 });
    expect(lt.onFinished('r2')).toBe(false);
    expect(lt.onFinished('unknown')).toBe(false);
    expect(lt.inflightRequests).toBe(0);
  });

  it('counts blocks shared by running requests once per worker (Dynamo ActiveSequences)', () => {
    const lt = new LoadTracker({ now });
    const w = lt.addWorker('w');
    const v = lt.addWorker('v');
    lt.onRouted('r1', 'w', { prefillTokens: 10, sequenceHashes: [1n, 2n, 3n], blocks: 4 }); // + a partial block
    lt.onRouted('r2', 'w', { prefillTokens: 10, sequenceHashes: [1n, 2n, 7n], blocks: 3 });
    lt.onRouted('r3', 'v', { prefillTokens: 10, sequenceHashes: [1n, 2n] });
    expect(lt.load('w')!.tracked.activeBlocks).toBe(4 + 1); // 1, 2, 3, 7 + r1's partial block
    expect(lt.load('v')!.activeBlocks).toBe(2);
    // the leading blocks of a request already active, per worker
    lt.scoreActive(Uint32Array.from([1, 0, 2, 0, 3, 0, 9, 0]), 0, 2, 4);
    expect([lt.activeOverlap(w), lt.activeOverlap(v)]).toEqual([3, 2]);
    lt.onFinished('r1');
    expect(lt.load('w')!.activeBlocks).toBe(3); // 1, 2, 7
    lt.onFinished('r2');
    expect(lt.load('w')!.activeBlocks).toBe(0);
    expect(lt.activeReferences('w')).toBe(0);
    expect(lt.activeReferences('v')).toBe(2);
    lt.removeWorker('v');
    expect(lt.activeReferences('v')).toBe(0);
  });

  it('re-routing a tracked request id releases the first routing', () => {
    const lt = new LoadTracker({ now });
    lt.addWorker('a');
    lt.addWorker('b');
    lt.onRouted('r', 'a', { prefillTokens: 10, blocks: 1 });
    lt.onRouted('r', 'b', { prefillTokens: 10, blocks: 1 });
    expect(lt.load('a')).toMatchObject({ activeBlocks: 0, inflightRequests: 0 });
    expect(lt.load('b')).toMatchObject({ activeBlocks: 1, inflightRequests: 1 });
    expect(lt.workerOf('r')).toBe('b');
  });

  it('uses the larger of tracked and reported figures while the report is fresh', () => {
    const lt = new LoadTracker({ now, metricsTtlMs: 1000 });
    lt.addWorker('w');
    lt.onRouted('r', 'w', { prefillTokens: 64, blocks: 10 });
    expect(
      lt.applyMetrics({ worker_id: 'w', active_blocks: 30, total_blocks: 100, active_prefill_tokens: 5, waiting: 2 }),
    ).toBe(true);
    expect(lt.load('w')).toEqual({
      activeBlocks: 30,
      activePrefillTokens: 64,
      inflightRequests: 1,
      waiting: 2,
      totalBlocks: 100,
      routedTotal: 1,
      tracked: { activeBlocks: 10, activePrefillTokens: 64 },
      reported: { at: 0, active_blocks: 30, active_prefill_tokens: 5, waiting: 2, total_blocks: 100 },
    });
    t = 1001; // stale: tracked only (capacity stays known)
    expect(lt.load('w')).toMatchObject({ activeBlocks: 10, activePrefillTokens: 64, waiting: 0, totalBlocks: 100 });
    expect(lt.load('w')!.reported).toBeUndefined();
  });

  it('ignores metrics for unknown workers and rejects invalid ones with a warning', () => {
    const warnings: string[] = [];
    const lt = new LoadTracker({ now, onWarning: (m) => warnings.push(m) });
    expect(lt.applyMetrics({ worker_id: 'ghost', active_blocks: 1 })).toBe(false);
    expect(lt.applyMetrics({ worker_id: 'w', active_blocks: -1 })).toBe(false);
    expect(lt.applyMetrics('nope')).toBe(false);
    expect(warnings).toEqual(['load metrics rejected: invalid', 'load metrics rejected: invalid']);
    expect(lt.load('ghost')).toBeUndefined();
  });

  it('releases requests never finished after requestTimeoutMs, with a warning (no timer)', () => {
    const warnings: [string, Record<string, unknown>][] = [];
    const lt = new LoadTracker({ now, requestTimeoutMs: 1000, onWarning: (m, f) => warnings.push([m, f]) });
    lt.addWorker('w');
    lt.onRouted('old', 'w', { prefillTokens: 1, blocks: 1 });
    t = 500;
    lt.onRouted('young', 'w', { prefillTokens: 1, blocks: 1 });
    t = 1000;
    expect(lt.load('w')).toMatchObject({ activeBlocks: 1, inflightRequests: 1 });
    expect(warnings).toEqual([
      ['request released after timeout without onFinished', { request_id: 'old', worker_id: 'w', age_ms: 1000 }],
    ]);
    expect(lt.onFinished('old')).toBe(false);
  });

  it('removeWorker drops its state and requests', () => {
    const lt = new LoadTracker({ now });
    lt.addWorker('w');
    lt.addWorker('v');
    lt.onRouted('r1', 'w', { prefillTokens: 1, blocks: 1 });
    lt.onRouted('r2', 'v', { prefillTokens: 1, blocks: 1 });
    expect(lt.removeWorker('w')).toBe(true);
    expect(lt.removeWorker('w')).toBe(false);
    expect(lt.stateOf('w')).toBeUndefined();
    expect(lt.inflightRequests).toBe(1);
    expect(lt.onFinished('r1')).toBe(false);
  });

  it('validates its input', () => {
    const lt = new LoadTracker({ now });
    expect(() => lt.onRouted('r', 'nobody', { prefillTokens: 1, blocks: 1 })).toThrow(RouterInvalidArgumentError);
    lt.addWorker('w');
    expect(() => lt.onRouted('r', 'w', { prefillTokens: -1, blocks: 1 })).toThrow(/prefillTokens must be >= 0/);
    expect(() => lt.onRouted('r', 'w', { prefillTokens: 1, blocks: 1, sequenceHashes: [1n, 2n] })).toThrow(
      /blocks a number >= sequenceHashes.length/,
    );
    expect(() => lt.onRouted('r', 'w', { prefillTokens: 1, sequenceHashes: [-1n] })).toThrow(/sequenceHashes\[0\]/);
    expect(() => new LoadTracker({ metricsTtlMs: 0 })).toThrow(/metricsTtlMs/);
    expect(() => new LoadTracker({ requestTimeoutMs: -5 })).toThrow(/requestTimeoutMs/);
  });
});
