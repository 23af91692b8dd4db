/**
 * The compliance suite of {@link RequestPlane}: every implementation (memory, NATS) must pass it.
 * Subjects are unique per test, so the suite can share a server with other suites. Each test uses
 * one plane to serve and another to call, as two processes would.
 */
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import type { RequestContext, RequestPlane } from '../transport/request-plane';
import { InvalidArgumentError, NotFoundError } from '../errors';
import { collect, delay, eventually, Reader, rejection, uid } from './helpers';

/** What the suite needs from an implementation. */
export interface RequestPlaneHarness {
  /** A new plane (a new "process") on the same server. */
  connect(): Promise<RequestPlane>;
  /** Stop everything the harness started. */
  teardown(): Promise<void>;
}

type CancelSourceLike = { cancelled: boolean; onCancel(l: (r: Error) => void): () => void };

/** Resolves when `signal` fires. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

/** A promise with its resolver, to hold a handler until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** Registers the request-plane compliance tests under `describe(name)`. */
export function describeRequestPlaneCompliance(name: string, setup: () => Promise<RequestPlaneHarness>): void {
  describe(name, () => {
    jest.setTimeout(20_000);
    let h: RequestPlaneHarness;
    let server: RequestPlane;
    let client: RequestPlane;
    let base: string;

    beforeEach(async () => {
      h = await setup();
      server = await h.connect();
      client = await h.connect();
      base = `compliance.${uid()}`;
    });
    afterEach(async () => {
      await client.close();
      await server.close();
      await h.teardown();
    });

    test('streams N items in order', async () => {
      const subject = `${base}.count`;
      await server.serve(subject, async function* (req) {
        const { n } = req as { n: number };
        for (let i = 0; i < n; i++) yield { i };
      });
      const items = await collect(client.request<{ i: number }>(subject, { n: 100 }));
      expect(items.map((x) => x.i)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    });

    test('an empty stream ends without items', async () => {
      const subject = `${base}.empty`;
      await server.serve(subject, async function* () {
        return;
      });
      expect(await collect(client.request(subject, {}))).toEqual([]);
    });

    test('the handler gets the payload, request id, headers, deadline and subject', async () => {
      const subject = `${base}.ctx`;
      let seen:
        { request: unknown; ctx: Pick<RequestContext, 'requestId' | 'headers' | 'deadline' | 'subject'> } | undefined;
      await server.serve(subject, async function* (request, ctx) {
        seen = {
          request,
          ctx: { requestId: ctx.requestId, headers: { ...ctx.headers }, deadline: ctx.deadline, subject: ctx.subject },
        };
        yield 'ok';
      });
      const deadline = Date.now() + 10_000;
      const stream = client.request(
        subject,
        { a: 1, nested: { b: [1, 2, 'x'] }, s: 'é✓' },
        {
          requestId: 'req-123',
          headers: { 'x-one': '1', 'x-two': 'two' },
          deadline,
        },
      );
      expect(stream.requestId).toBe('req-123');
      expect(await collect(stream)).toEqual(['ok']);
      expect(seen!.request).toEqual({ a: 1, nested: { b: [1, 2, 'x'] }, s: 'é✓' });
      expect(seen!.ctx.requestId).toBe('req-123');
      expect(seen!.ctx.headers).toMatchObject({ 'x-one': '1', 'x-two': 'two' });
      expect(seen!.ctx.deadline).toBe(deadline);
      expect(seen!.ctx.subject).toBe(subject);
    });

    test('a request id is generated when absent and reaches the handler', async () => {
      const subject = `${base}.rid`;
      await server.serve(subject, async function* (_req, ctx) {
        yield ctx.requestId;
      });
      const stream = client.request<string>(subject, null);
      expect(typeof stream.requestId).toBe('string');
      expect(stream.requestId.length).toBeGreaterThan(0);
      expect(await collect(stream)).toEqual([stream.requestId]);
    });

    test('payloads and items are copied as JSON', async () => {
      const subject = `${base}.copy`;
      await server.serve(subject, async function* (req) {
        const r = req as { x: string };
        r.x = 'changed by handler';
        yield r;
        const item = { n: 1, when: new Date(0), gone: undefined as unknown };
        yield item;
        item.n = 2;
        yield item;
      });
      const payload = { x: 'original' };
      const items = await collect(client.request<Record<string, unknown>>(subject, payload));
      expect(payload).toEqual({ x: 'original' });
      expect(items[0]).toEqual({ x: 'changed by handler' });
      expect(items[1]).toEqual({ n: 1, when: '1970-01-01T00:00:00.000Z' });
      expect('gone' in items[1]!).toBe(false);
      expect(items[2]).toEqual({ n: 2, when: '1970-01-01T00:00:00.000Z' });
      expect(items[1]).not.toBe(items[2]);
    });

    test('a handler error reaches the caller with its code and message, after the items before it', async () => {
      const subject = `${base}.err`;
      await server.serve(subject, async function* (req) {
        const { kind } = req as { kind: string };
        yield 1;
        if (kind === 'invalid') throw new InvalidArgumentError('bad thing');
        if (kind === 'notfound') throw new NotFoundError('no such model');
        throw new Error('boom');
      });
      const items: unknown[] = [];
      const err = await rejection(
        (async () => {
          for await (const x of client.request(subject, { kind: 'invalid' })) items.push(x);
        })(),
      );
      expect(items).toEqual([1]);
      expect(err.code).toBe('INVALID_ARGUMENT');
      expect(err.message).toBe('bad thing');
      const nf = await rejection(collect(client.request(subject, { kind: 'notfound' })));
      expect(nf).toMatchObject({ code: 'NOT_FOUND', message: 'no such model' });
      const internal = await rejection(collect(client.request(subject, { kind: 'plain' })));
      expect(internal).toMatchObject({ code: 'INTERNAL', message: 'boom' });
    });

    test('an error before any item keeps its code', async () => {
      const subject = `${base}.err0`;
      await server.serve(subject, async function* () {
        throw new NotFoundError('nothing here');
      });
      const it = client.request(subject, {})[Symbol.asyncIterator]();
      expect(await rejection(it.next())).toMatchObject({ code: 'NOT_FOUND', message: 'nothing here' });
    });

    test('a request to a subject nobody serves fails with UNAVAILABLE before any item', async () => {
      const it = client.request(`${base}.nobody`, { q: 1 })[Symbol.asyncIterator]();
      const err = await rejection(it.next());
      expect(err.code).toBe('UNAVAILABLE');
    });

    test('a request larger than maxPayload fails with PAYLOAD_TOO_LARGE and never reaches the handler', async () => {
      const subject = `${base}.big`;
      let calls = 0;
      await server.serve(subject, async function* () {
        calls += 1;
        yield 'ok';
      });
      expect(client.maxPayload).toBeGreaterThan(0);
      const big = 'x'.repeat(client.maxPayload + 16);
      const err = await rejection(collect(client.request(subject, { big })));
      expect(err.code).toBe('PAYLOAD_TOO_LARGE');
      expect(err.message).toContain(String(client.maxPayload));
      // A request under the limit still works.
      expect(await collect(client.request(subject, { small: 'x'.repeat(1000) }))).toEqual(['ok']);
      expect(calls).toBe(1);
    });

    test('a 3 MiB request and a 3 MiB response item travel whole (larger than one NATS message)', async () => {
      const subject = `${base}.large`;
      const MiB = 1024 * 1024;
      // Not one repeated character: a wrong join of chunks shows. Multi-byte text too.
      const text = (n: number, seed: number): string =>
        Array.from({ length: n / 16 }, (_, i) => `${(i * 7919 + seed) % 1000000}`.padStart(14, '.') + 'é').join('');
      const request = { prompt: text(3 * MiB, 1), tail: 'end' };
      const item = { answer: text(3 * MiB, 2) };
      let seen: unknown;
      await server.serve(subject, async function* (req) {
        seen = req;
        yield 'small first';
        yield item;
        yield 'small last';
      });
      expect(client.maxPayload).toBeGreaterThanOrEqual(4 * MiB);
      const got = await collect(client.request(subject, request));
      expect(seen).toEqual(request);
      expect(got).toEqual(['small first', item, 'small last']);
      // Answered at once, as a single final item, too.
      await server.serve(`${subject}.once`, async function* () {
        yield item;
      });
      expect(await collect(client.request(`${subject}.once`, request))).toEqual([item]);
    });

    test('aborting the signal cancels the stream and fires the handler signal', async () => {
      const subject = `${base}.abort`;
      let handlerSignal: AbortSignal | undefined;
      await server.serve(subject, async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        for (let i = 0; !ctx.signal.aborted; i++) {
          yield i;
          await delay(20);
        }
      });
      const ac = new AbortController();
      const it = client.request<number>(subject, {}, { signal: ac.signal })[Symbol.asyncIterator]();
      expect((await it.next()).value).toBe(0);
      ac.abort();
      const err = await rejection(
        (async () => {
          for (;;) if ((await it.next()).done) return;
        })(),
      );
      expect(err.code).toBe('CANCELLED');
      await eventually('the handler signal to fire', () => handlerSignal?.aborted === true);
    });

    test('cancel() cancels the stream and fires the handler signal', async () => {
      const subject = `${base}.cancel`;
      let handlerSignal: AbortSignal | undefined;
      await server.serve(subject, async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        yield 'first';
        await aborted(ctx.signal);
      });
      const stream = client.request<string>(subject, {});
      const it = stream[Symbol.asyncIterator]();
      expect((await it.next()).value).toBe('first');
      const pending = it.next();
      stream.cancel();
      expect((await rejection(pending)).code).toBe('CANCELLED');
      await eventually('the handler signal to fire', () => handlerSignal?.aborted === true);
    });

    test('breaking out of the iteration fires the handler signal', async () => {
      const subject = `${base}.break`;
      let handlerSignal: AbortSignal | undefined;
      let produced = 0;
      await server.serve(subject, async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        for (;;) {
          produced += 1;
          yield produced;
          await delay(10);
        }
      });
      const got: number[] = [];
      for await (const x of client.request<number>(subject, {})) {
        got.push(x);
        if (got.length === 2) break;
      }
      expect(got).toEqual([1, 2]);
      await eventually('the handler signal to fire', () => handlerSignal?.aborted === true);
      const after = produced;
      await delay(100);
      expect(produced - after).toBeLessThanOrEqual(1);
    });

    test('ctx.cancelled tells a handler that never reads its signal; a signal read late is already aborted', async () => {
      const subject = `${base}.cancelled-flag`;
      const flags: boolean[] = [];
      let late: AbortSignal | undefined;
      let stopped = false;
      await server.serve(subject, async function* (_req, ctx) {
        try {
          for (let i = 0; ; i++) {
            flags.push(ctx.cancelled);
            yield i;
            await delay(5);
          }
        } finally {
          stopped = true;
          flags.push(ctx.cancelled);
          late = ctx.signal;
        }
      });
      const got: number[] = [];
      for await (const x of client.request<number>(subject, {})) {
        got.push(x);
        if (got.length === 3) break;
      }
      await eventually('the handler to stop', () => stopped);
      expect(flags.slice(0, 3)).toEqual([false, false, false]);
      expect(flags[flags.length - 1]).toBe(true);
      expect(late?.aborted).toBe(true);
      expect((late?.reason as { code?: string } | undefined)?.code).toBe('CANCELLED');
    });

    test('a request sent with parent: ctx is cancelled with the request it serves', async () => {
      const child = `${base}.child`;
      const front = `${base}.front`;
      let childCancelled = false;
      let childStarted = false;
      await server.serve(child, async function* (_req, ctx) {
        childStarted = true;
        try {
          for (let i = 0; ; i++) {
            yield i;
            await delay(5);
          }
        } finally {
          childCancelled = ctx.cancelled;
        }
      });
      await server.serve(front, async function* (_req, ctx) {
        // Relays the child's items; cancelling this request must reach the child through `parent`.
        for await (const x of server.request<number>(child, {}, { parent: ctx })) yield x;
      });
      const ac = new AbortController();
      const got: number[] = [];
      const run = (async () => {
        for await (const x of client.request<number>(front, {}, { signal: ac.signal })) got.push(x);
      })();
      await eventually('items to flow', () => childStarted && got.length >= 2);
      ac.abort();
      expect((await rejection(run)).code).toBe('CANCELLED');
      await eventually('the child request to be cancelled', () => childCancelled);
      // A parent already cancelled: nothing is sent.
      const done: CancelSourceLike = { cancelled: true, onCancel: () => () => undefined };
      expect((await rejection(collect(client.request(child, {}, { parent: done })))).code).toBe('CANCELLED');
    });

    test('timeoutMs fails the stream with TIMEOUT and fires the handler signal', async () => {
      const subject = `${base}.timeout`;
      let handlerSignal: AbortSignal | undefined;
      await server.serve(subject, async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        yield 'started';
        await aborted(ctx.signal);
      });
      const items: unknown[] = [];
      const err = await rejection(
        (async () => {
          for await (const x of client.request(subject, {}, { timeoutMs: 300 })) items.push(x);
        })(),
      );
      expect(items).toEqual(['started']);
      expect(err.code).toBe('TIMEOUT');
      await eventually('the handler signal to fire', () => handlerSignal?.aborted === true);
    });

    test('a deadline fails the stream with TIMEOUT; a past deadline fails before the handler', async () => {
      const subject = `${base}.deadline`;
      let calls = 0;
      await server.serve(subject, async function* (_req, ctx) {
        calls += 1;
        await aborted(ctx.signal);
        yield 'never';
      });
      const err = await rejection(collect(client.request(subject, {}, { deadline: Date.now() + 300 })));
      expect(err.code).toBe('TIMEOUT');
      const past = await rejection(collect(client.request(subject, {}, { deadline: Date.now() - 1000 })));
      expect(past.code).toBe('TIMEOUT');
      expect(calls).toBe(1);
    });

    test('an already-aborted signal fails with CANCELLED without calling the handler', async () => {
      const subject = `${base}.preaborted`;
      let calls = 0;
      await server.serve(subject, async function* () {
        calls += 1;
        yield 1;
      });
      const ac = new AbortController();
      ac.abort();
      const err = await rejection(collect(client.request(subject, {}, { signal: ac.signal })));
      expect(err.code).toBe('CANCELLED');
      expect(calls).toBe(0);
    });

    test('concurrent streams interleave independently', async () => {
      const subject = `${base}.interleave`;
      await server.serve(subject, async function* (req) {
        const { tag, n } = req as { tag: string; n: number };
        for (let i = 0; i < n; i++) {
          yield `${tag}${i}`;
          await delay(1);
        }
      });
      const a = client.request<string>(subject, { tag: 'a', n: 5 })[Symbol.asyncIterator]();
      const b = client.request<string>(subject, { tag: 'b', n: 5 })[Symbol.asyncIterator]();
      const got: string[] = [];
      for (let i = 0; i < 5; i++) {
        got.push((await a.next()).value as string);
        got.push((await b.next()).value as string);
      }
      expect(got).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2', 'a3', 'b3', 'a4', 'b4']);
      expect((await a.next()).done).toBe(true);
      expect((await b.next()).done).toBe(true);
    });

    test('200 concurrent requests all complete with their own items', async () => {
      const subject = `${base}.many`;
      await server.serve(subject, async function* (req) {
        const { i } = req as { i: number };
        yield i;
        await delay(Math.random() * 5);
        yield i * 2;
        yield i * 3;
      });
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => collect(client.request<number>(subject, { i }))),
      );
      results.forEach((r, i) => expect(r).toEqual([i, i * 2, i * 3]));
    });

    test('several planes serving one subject share the requests', async () => {
      const subject = `${base}.group`;
      const other = await h.connect();
      const seen = { a: 0, b: 0 };
      await server.serve(subject, async function* () {
        seen.a += 1;
        yield 'a';
      });
      await other.serve(subject, async function* () {
        seen.b += 1;
        yield 'b';
      });
      const results = await Promise.all(Array.from({ length: 60 }, () => collect(client.request<string>(subject, {}))));
      expect(results.every((r) => r.length === 1)).toBe(true);
      expect(seen.a + seen.b).toBe(60);
      expect(seen.a).toBeGreaterThan(0);
      expect(seen.b).toBeGreaterThan(0);
      await other.close();
    });

    test('drain: in-flight streams finish, new requests get UNAVAILABLE', async () => {
      const subject = `${base}.drain`;
      const hold = gate();
      const endpoint = await server.serve(subject, async function* (req) {
        if ((req as { probe?: boolean }).probe) {
          yield 'probe';
          return;
        }
        yield 'first';
        await hold.promise;
        yield 'second';
      });
      const reader = new Reader<string>(client.request<string>(subject, {}));
      expect(await reader.take(1)).toEqual(['first']);
      expect(endpoint.inflight).toBe(1);
      let drained = false;
      const draining = endpoint.drain({ timeoutMs: 10_000 }).then(() => (drained = true));
      // While draining, new requests are refused (allowing the server a moment to see the unsubscribe).
      await eventually('new requests to be refused while draining', async () => {
        try {
          await collect(client.request(subject, { probe: true }));
          return false;
        } catch (e) {
          return (e as { code?: string }).code === 'UNAVAILABLE';
        }
      });
      expect(drained).toBe(false);
      hold.open();
      expect(await reader.take(1)).toEqual(['second']);
      await reader.end();
      expect(reader.error).toBeUndefined();
      await draining;
      expect(endpoint.inflight).toBe(0);
      expect((await rejection(collect(client.request(subject, { probe: true })))).code).toBe('UNAVAILABLE');
    });

    test('drain cancels the streams still in flight after its timeout', async () => {
      const subject = `${base}.draintimeout`;
      let handlerSignal: AbortSignal | undefined;
      const endpoint = await server.serve(subject, async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        yield 'first';
        await aborted(ctx.signal);
      });
      const reader = new Reader(client.request(subject, {}));
      await reader.take(1);
      await endpoint.drain({ timeoutMs: 200 });
      expect(handlerSignal?.aborted).toBe(true);
      expect(endpoint.inflight).toBe(0);
    });

    test('closing the serving endpoint fires the handler signal', async () => {
      const subject = `${base}.closeep`;
      let handlerSignal: AbortSignal | undefined;
      const endpoint = await server.serve(subject, async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        yield 'first';
        await aborted(ctx.signal);
      });
      const stream = client.request(subject, {});
      const it = stream[Symbol.asyncIterator]();
      expect((await it.next()).value).toBe('first');
      await endpoint.close();
      await endpoint.close();
      await eventually('the handler signal to fire', () => handlerSignal?.aborted === true);
      stream.cancel();
      await it.next().catch(() => undefined);
    });
  });
}
