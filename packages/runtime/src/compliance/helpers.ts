/** Helpers shared by the compliance suites (not a test file). */
import { randomBytes } from 'node:crypto';

/** A short random suffix, so tests sharing a server never collide. */
export function uid(): string {
  return randomBytes(5).toString('hex');
}

/** Resolves after `ms`. */
/** Reads a stream to its end. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true, failing with `what` after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await delay(20);
  }
}

/** The error a promise rejects with (fails when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('expected a rejection, got a value');
}

/**
 * Reads an async iterable in the background into a buffer, so a test can wait for items with a
 * timeout without losing any (racing `next()` against a timer would drop the item it later yields).
 */
export class Reader<T> {
  readonly items: T[] = [];
  error: unknown;
  ended = false;
  private readonly done: Promise<void>;
  private taken = 0;

  constructor(iterable: AsyncIterable<T>) {
    this.done = (async () => {
      try {
        for await (const x of iterable) this.items.push(x);
      } catch (e) {
        this.error = e;
      } finally {
        this.ended = true;
      }
    })();
  }

  /** Waits for `n` more items than taken so far and returns them. */
  async take(n: number, timeoutMs = 5000): Promise<T[]> {
    await eventually(
      `${n} more items (have ${this.items.length - this.taken})`,
      () => this.items.length - this.taken >= n || this.ended,
      timeoutMs,
    );
    if (this.items.length - this.taken < n) {
      throw new Error(
        `iteration ended after ${this.items.length - this.taken} of ${n} items (error: ${String(this.error)})`,
      );
    }
    const out = this.items.slice(this.taken, this.taken + n);
    this.taken += n;
    return out;
  }

  /** Waits for the iteration to end. */
  async end(timeoutMs = 5000): Promise<void> {
    await eventually('the iteration to end', () => this.ended, timeoutMs);
    await this.done;
  }
}
