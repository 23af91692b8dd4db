import { Cancellation, CancelledError, RetryPolicy } from '@dynamo-ts/runtime';

describe('RetryPolicy', () => {
  it('counts attempts and migrations and grows the pause up to its cap', () => {
    const p = new RetryPolicy({ attempts: 3, migrations: 1, backoffMs: 100, maxBackoffMs: 250 });
    expect([1, 2, 3].map((n) => p.mayRetry(n))).toEqual([true, true, false]);
    expect([0, 1].map((n) => p.mayMigrate(n))).toEqual([true, false]);
    expect([0, 1, 2, 3].map((n) => p.delayMs(n))).toEqual([0, 100, 200, 250]);
  });

  it('rejects limits it cannot honour, naming the option', () => {
    expect(() => new RetryPolicy({ attempts: 0 })).toThrow(/attempts/);
    expect(() => new RetryPolicy({ backoffMs: 2 ** 31 })).toThrow(/backoffMs/);
    expect(() => new RetryPolicy({ migrations: 1.5 })).toThrow(/migrations/);
  });

  it('ends its pause at once when the request is cancelled (CancelSource or AbortSignal)', async () => {
    const p = new RetryPolicy({ backoffMs: 60_000, maxBackoffMs: 60_000 });
    const c = new Cancellation();
    const paused = p.pause(1, c);
    setTimeout(() => c.cancel(new CancelledError()), 10);
    await expect(paused).rejects.toMatchObject({ code: 'CANCELLED' });
    const ac = new AbortController();
    const paused2 = p.pause(1, ac.signal);
    setTimeout(() => ac.abort(), 10);
    await expect(paused2).rejects.toMatchObject({ code: 'CANCELLED' });
    // Already cancelled: rejects without waiting.
    await expect(p.pause(1, c)).rejects.toMatchObject({ code: 'CANCELLED' });
  });

  it('waits its pause when nothing cancels', async () => {
    const t0 = Date.now();
    await new RetryPolicy({ backoffMs: 20 }).pause(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(15);
  });
});
