/** Memory-only request-plane behaviour: backpressure, prompt cancellation, limits and validation. */
import { MemoryBus, MemoryRequestPlane } from '../../src/transport/memory';
import { collect, delay, eventually, Reader, rejection } from '@dynamo-ts/runtime/compliance';
import { TURN_SLICE_MS } from '../../src/util/turn';

describe('MemoryRequestPlane', () => {
  let bus: MemoryBus;
  let server: MemoryRequestPlane;
  let client: MemoryRequestPlane;

  beforeEach(() => {
    bus = new MemoryBus();
    server = new MemoryRequestPlane(bus);
    client = new MemoryRequestPlane(bus);
  });
  afterEach(async () => {
    await bus.close();
  });

  test('the handler does not run far ahead of a slow consumer', async () => {
    let produced = 0;
    await server.serve('bp', async function* () {
      for (;;) yield ++produced;
    });
    const it = client.request<number>('bp', {})[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe(1);
    await delay(50);
    expect(produced).toBeLessThanOrEqual(server.streamBuffer + 2);
    for (let i = 2; i <= 100; i++) expect((await it.next()).value).toBe(i);
    await it.return!();
  });

  test('a handler that answers at once still lets the event loop turn during a long stream', async () => {
    const N = 50_000;
    await server.serve('long', async function* () {
      for (let i = 0; i < N; i++) yield i;
    });
    // Counts turns of the event loop while the stream runs (promise jobs alone never run this).
    let turns = 0;
    let spinning = true;
    const spin = (): void => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const started = performance.now();
    let n = 0;
    let sum = 0;
    for await (const v of client.request<number>('long', {})) {
      n++;
      sum += v;
    }
    const elapsed = performance.now() - started;
    spinning = false;
    expect(n).toBe(N);
    expect(sum).toBe((N * (N - 1)) / 2);
    // Items in order and complete; and the loop turned about once per slice of work.
    expect(turns).toBeGreaterThanOrEqual(Math.max(1, Math.floor(elapsed / (TURN_SLICE_MS * 4))));
  });

  test('cancellation fires the handler signal in the same tick', async () => {
    let signal: AbortSignal | undefined;
    await server.serve('tick', async function* (_req, ctx) {
      signal = ctx.signal;
      yield 1;
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
    });
    const ac = new AbortController();
    const stream = client.request('tick', {}, { signal: ac.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    ac.abort();
    expect(signal!.aborted).toBe(true);
    expect((signal!.reason as { code: string }).code).toBe('CANCELLED');

    const s2 = client.request('tick', {});
    const it2 = s2[Symbol.asyncIterator]();
    await it2.next();
    s2.cancel('user left');
    expect(signal!.aborted).toBe(true);
    expect((await rejection(it2.next())).message).toBe('user left');
  });

  test('a timeout reaches the handler as TIMEOUT', async () => {
    let reason: unknown;
    await server.serve('to', async function* (_req, ctx) {
      yield 1;
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
      reason = ctx.signal.reason;
    });
    expect((await rejection(collect(client.request('to', {}, { timeoutMs: 50 })))).code).toBe('TIMEOUT');
    await eventually('the handler to see the reason', () => reason !== undefined);
    expect((reason as { code: string }).code).toBe('TIMEOUT');
  });

  test('timeoutMs is carried to the handler as a deadline', async () => {
    let deadline: number | undefined;
    await server.serve('dl', async function* (_req, ctx) {
      deadline = ctx.deadline;
      yield 1;
    });
    const before = Date.now();
    await collect(client.request('dl', {}, { timeoutMs: 5000 }));
    expect(deadline).toBeGreaterThanOrEqual(before + 5000);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 5000);
  });

  test('closing a serving endpoint fails its streams with UNAVAILABLE after the items sent', async () => {
    const ep = await server.serve('ep', async function* (_req, ctx) {
      yield 'a';
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
    });
    const r = new Reader(client.request('ep', {}));
    await r.take(1);
    await ep.close();
    await r.end();
    expect((r.error as { code: string }).code).toBe('UNAVAILABLE');
    expect(bus.responderCount('ep')).toBe(0);
  });

  test('closing the calling plane fails its streams with CLOSED and cancels the handlers', async () => {
    let signal: AbortSignal | undefined;
    await server.serve('pc', async function* (_req, ctx) {
      signal = ctx.signal;
      yield 'a';
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
    });
    const r = new Reader(client.request('pc', {}));
    await r.take(1);
    await client.close();
    await r.end();
    expect((r.error as { code: string }).code).toBe('CLOSED');
    expect(signal!.aborted).toBe(true);
    expect((await rejection(collect(client.request('pc', {})))).code).toBe('CLOSED');
    await expect(client.serve('x', async function* () {})).rejects.toMatchObject({ code: 'CLOSED' });
  });

  test('plane drain drains every endpoint then closes', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await server.serve('d1', async function* () {
      yield 1;
      await held;
      yield 2;
    });
    const r = new Reader(client.request('d1', {}));
    await r.take(1);
    const draining = server.drain({ timeoutMs: 5000 });
    expect((await rejection(collect(client.request('d1', {})))).code).toBe('UNAVAILABLE');
    release();
    await draining;
    await r.end();
    expect(r.items).toEqual([1, 2]);
    expect(r.error).toBeUndefined();
  });

  test('invalid input fails with INVALID_ARGUMENT or PAYLOAD_TOO_LARGE', async () => {
    await expect(server.serve('a.*', async function* () {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(server.serve('a..b', async function* () {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await server.serve('dup', async function* () {
      yield { big: 'x'.repeat(2000) };
    });
    await expect(server.serve('dup', async function* () {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await rejection(collect(client.request('dup', { n: 1n })))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(collect(client.request('a.>', {})))).code).toBe('INVALID_ARGUMENT');
    const small = new MemoryRequestPlane(bus, { maxPayload: 1000 });
    await small.serve('small', async function* () {
      yield 'x'.repeat(2000);
    });
    expect((await rejection(collect(client.request('small', {})))).code).toBe('PAYLOAD_TOO_LARGE');
    expect(() => new MemoryRequestPlane(bus, { maxPayload: 0 })).toThrow(/maxPayload/);
  });

  test('a handler that is not a generator, or throws synchronously, fails the stream', async () => {
    await server.serve('sync', () => {
      throw new Error('sync boom');
    });
    expect(await rejection(collect(client.request('sync', {})))).toMatchObject({
      code: 'INTERNAL',
      message: 'sync boom',
    });
    await server.serve('arr', () => ({
      async *[Symbol.asyncIterator]() {
        yield 'from iterable';
      },
    }));
    expect(await collect(client.request('arr', {}))).toEqual(['from iterable']);
  });

  test('cancel before iterating ends without calling the handler', async () => {
    let calls = 0;
    await server.serve('early', async function* () {
      calls += 1;
      yield 1;
    });
    const s = client.request('early', {});
    s.cancel();
    expect((await rejection(collect(s))).code).toBe('CANCELLED');
    expect(calls).toBe(0);
  });
});
