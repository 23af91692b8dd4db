import {
  DEFAULT_MAX_LOCAL_PREFILL_LENGTH,
  DEFAULT_MAX_PREFILL_QUEUE_SIZE,
  RouterInvalidArgumentError,
  shouldPrefillRemotely,
} from '@dynamo-ts/router';

describe('shouldPrefillRemotely', () => {
  it('has the defaults 1000 tokens and 2 queued jobs', () => {
    expect([DEFAULT_MAX_LOCAL_PREFILL_LENGTH, DEFAULT_MAX_PREFILL_QUEUE_SIZE]).toEqual([1000, 2]);
  });

  it('prefills remotely a long uncached prompt while the queue has room', () => {
    expect(shouldPrefillRemotely({ uncachedPrefillTokens: 1001, queueDepth: 1 })).toEqual({
      remote: true,
      reason: 'long_prefill',
      uncachedPrefillTokens: 1001,
      queueDepth: 1,
      maxLocalPrefillLength: 1000,
      maxPrefillQueueSize: 2,
    });
  });

  it('keeps a short prefill local (the limit itself is short)', () => {
    expect(shouldPrefillRemotely({ uncachedPrefillTokens: 1000, queueDepth: 0 })).toMatchObject({
      remote: false,
      reason: 'short_prefill',
    });
  });

  it('keeps a long prefill local while the queue is full', () => {
    expect(shouldPrefillRemotely({ uncachedPrefillTokens: 5000, queueDepth: 2 })).toMatchObject({
      remote: false,
      reason: 'prefill_queue_full',
    });
  });

  it('takes thresholds (e.g. every request remote, as in the hello-world config)', () => {
    const opts = { maxLocalPrefillLength: -1, maxPrefillQueueSize: 1_000_000 };
    expect(shouldPrefillRemotely({ uncachedPrefillTokens: 0, queueDepth: 10 }, opts).remote).toBe(true);
    expect(
      shouldPrefillRemotely(
        { uncachedPrefillTokens: 10, queueDepth: 0 },
        { maxLocalPrefillLength: 5, maxPrefillQueueSize: 0 },
      ).reason,
    ).toBe('prefill_queue_full');
  });

  it('rejects non-numbers', () => {
    expect(() => shouldPrefillRemotely({ uncachedPrefillTokens: Number.NaN, queueDepth: 0 })).toThrow(
      RouterInvalidArgumentError,
    );
    expect(() => shouldPrefillRemotely({ uncachedPrefillTokens: 1, queueDepth: '1' as unknown as number })).toThrow(
      /queueDepth/,
    );
  });
});
