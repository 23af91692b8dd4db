import { EventEmitter } from 'node:events';
import type { Response } from 'express';
import { RequestScope } from '@dynamo-ts/frontend';
import { CancelledError } from '@dynamo-ts/runtime';

/** Enough of a response for a scope: 'close' events and writableFinished. */
function fakeResponse(): Response & EventEmitter {
  const res = new EventEmitter() as Response & EventEmitter;
  Object.assign(res, { writableFinished: false });
  return res;
}

describe('RequestScope', () => {
  it('is a cancel source: cancelled, onCancel listeners, a signal made on first read', async () => {
    const res = fakeResponse();
    const scope = new RequestScope(res, 0);
    const seen: Error[] = [];
    const off = scope.onCancel((r) => seen.push(r));
    const removed = scope.onCancel(() => seen.push(new Error('removed listener called')));
    removed();
    expect(scope.cancelled).toBe(false);
    res.emit('close');
    expect(scope.cancelled).toBe(true);
    expect(scope.cause).toBe('client_gone');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(CancelledError);
    off();
    // The signal, read only now, is already aborted with the same reason.
    expect(scope.signal.aborted).toBe(true);
    expect(scope.signal.reason).toBe(seen[0]);
    // A listener added after the fact hears about it on the next microtask.
    const late = await new Promise<Error>((resolve) => scope.onCancel(resolve));
    expect(late).toBe(seen[0]);
  });

  it('fires a signal read before the abort, and rejects a pending read at once', async () => {
    const scope = new RequestScope(fakeResponse(), 0);
    // The scope is its upstream's options: `parent` is itself, `signal` its own.
    expect(scope.parent).toBe(scope);
    const signal = scope.signal;
    expect(signal.aborted).toBe(false);
    const stalled: AsyncIterator<number> = { next: () => new Promise(() => undefined) };
    const read = scope.next(stalled);
    scope.abort('stopped', new CancelledError('stop sequence reached'));
    await expect(read).rejects.toThrow('stop sequence reached');
    expect(signal.aborted).toBe(true);
    await expect(scope.next(stalled)).rejects.toThrow('stop sequence reached');
    // The first cause wins.
    scope.abort('timeout', new Error('later'));
    expect(scope.cause).toBe('stopped');
  });

  it('aborts on its timeout', async () => {
    const scope = new RequestScope(fakeResponse(), 20);
    await new Promise<void>((resolve) => scope.onCancel(() => resolve()));
    expect(scope.cause).toBe('timeout');
    expect(scope.reason?.message).toMatch(/timed out after 20 ms/);
  });
});
