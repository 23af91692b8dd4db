/**
 * The request plane's wire version 2 against a real nats-server (see transport/frames.ts): what a
 * unary call costs on the wire, what a longer stream still gets (ack, batching), mixed versions
 * (a version 1 caller is served; a version 1 server's refusal is named), malformed and future
 * requests, and what the serving side allocates for a call answered at once.
 */
import { headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { NatsRequestPlane } from '../../src/transport/nats/index';
import { connectNats } from '../../src/nats-connection';
import { startNatsServer, type NatsServer } from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import { collect, delay, eventually, rejection, uid } from '../../src/compliance/helpers';

const text = (m: Msg): string => new TextDecoder().decode(m.data);

describeWithBinaries(['nats-server'], 'NatsRequestPlane wire version 2', () => {
  jest.setTimeout(30_000);
  let server: NatsServer;
  const open: Array<{ nc: NatsConnection; plane?: NatsRequestPlane }> = [];

  async function connection(): Promise<NatsConnection> {
    const nc = await connectNats({ servers: server.url });
    open.push({ nc });
    return nc;
  }
  async function plane(): Promise<NatsRequestPlane> {
    const nc = await connectNats({ servers: server.url });
    const p = new NatsRequestPlane(nc);
    open.push({ nc, plane: p });
    return p;
  }
  /** Every message through the server on `subject` or under `prefix` (a caller plane's inbox). */
  async function spy(subject: string, prefix: string): Promise<Msg[]> {
    const nc = await connection();
    const seen: Msg[] = [];
    nc.subscribe('>', {
      callback: (_e, m) => {
        if (m.subject === subject || m.subject.startsWith(prefix + '.')) seen.push(m);
      },
    });
    await nc.flush();
    return seen;
  }

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: false });
  });
  afterEach(async () => {
    for (const { plane: p } of open) await p?.close();
    for (const { nc } of open.splice(0)) if (!nc.isClosed()) await nc.close();
  });
  afterAll(async () => {
    await server?.dispose();
  });

  test('a unary call answered at once is two messages, neither with NATS headers', async () => {
    const serving = await plane();
    const calling = await plane();
    const subject = `unary.${uid()}`;
    await serving.serve(subject, async function* (request) {
      yield { echo: request };
    });
    const seen = await spy(subject, calling.prefix);
    expect(await collect(calling.request(subject, { n: 1 }, { timeoutMs: 5000, headers: { 'x-a': 'b' } }))).toEqual([
      { echo: { n: 1 } },
    ]);
    await delay(100); // anything more the server would send has arrived by now
    expect(seen.map((m) => text(m)[0])).toEqual(['~', 'f']);
    expect(seen.map((m) => m.headers)).toEqual([undefined, undefined]);
    expect(text(seen[1]!)).toBe('f1 [{"echo":{"n":1}}]');
    expect(seen[1]!.reply).toBeFalsy(); // nothing to cancel: no control subject
  });

  test('a handler that answers later gets an ack first, and its later frames carry the control subject', async () => {
    const serving = await plane();
    const calling = await plane();
    const subject = `later.${uid()}`;
    await serving.serve(subject, async function* () {
      await delay(30);
      for (let i = 0; i < 100; i++) yield i; // one turn: one frame
    });
    const seen = await spy(subject, calling.prefix);
    const items = await collect(calling.request(subject, {}));
    expect(items).toEqual(Array.from({ length: 100 }, (_, i) => i));
    await delay(100);
    const frames = seen.slice(1).map((m) => text(m)[0]);
    expect(frames[0]).toBe('a');
    expect(frames.length).toBeLessThanOrEqual(4); // ack, the first 16 items early, the rest batched, the end
    expect(frames[frames.length - 1]).toMatch(/[fe]/);
    const control = text(seen[1]!).slice(1);
    for (const m of seen.slice(2)) expect(m.reply).toBe(control);
  });

  test('a version 1 caller (NATS headers, JSON body) is served the version 1 way', async () => {
    const serving = await plane();
    const raw = await connection();
    const subject = `v1.${uid()}`;
    let seenId = '';
    let seenHeaders: Record<string, string> = {};
    await serving.serve(subject, async function* (request, ctx) {
      seenId = ctx.requestId;
      seenHeaders = { ...ctx.headers };
      yield request;
    });
    const inbox = `_INBOX.v1test${uid()}`;
    const frames: Msg[] = [];
    raw.subscribe(inbox, { callback: (_e, m) => void frames.push(m) });
    const h = natsHeaders();
    h.set('Dynamo-Request-Id', 'old-caller-1');
    h.set('Dynamo-Window', '64');
    h.set('Dynamo-Headers', JSON.stringify({ 'x-old': 'yes' }));
    raw.publish(subject, JSON.stringify({ hello: 'v1' }), { reply: inbox, headers: h });
    await eventually('the final frame', () => frames.some((m) => text(m).startsWith('f')));
    expect(frames.map(text)).toEqual([expect.stringMatching(/^a_INBOX\./), 'f1 [{"hello":"v1"}]']);
    expect(seenId).toBe('old-caller-1');
    expect(seenHeaders).toEqual({ 'x-old': 'yes' });
  });

  test('against a version 1 server, a version 2 call fails loudly naming the mismatch', async () => {
    const raw = await connection();
    const calling = await plane();
    const subject = `oldserver.${uid()}`;
    // What a version 1 server does with a body it cannot parse as JSON.
    raw.subscribe(subject, {
      queue: 'dynamo',
      callback: (_e, m) => {
        let message = '';
        try {
          JSON.parse(text(m));
        } catch (e) {
          message = `request payload is not JSON: ${(e as Error).message}`;
        }
        raw.publish(m.reply!, 'x0 ' + JSON.stringify({ code: 'INVALID_ARGUMENT', message }));
      },
    });
    await raw.flush();
    const err = await rejection(collect(calling.request(subject, { q: 1 })));
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toContain('wire version 1');
    expect(err.message).toContain(subject);
  });

  test('against a version 2 server, a version 3 call fails loudly naming the mismatch', async () => {
    const raw = await connection();
    const calling = await plane();
    const subject = `v2server.${uid()}`;
    // What a version 2 server answers to a body of a later version.
    raw.subscribe(subject, {
      queue: 'dynamo',
      callback: (_e, m) => {
        const message = 'request uses request-plane wire version 3; this server speaks versions 1 and 2';
        raw.publish(m.reply!, 'x0 ' + JSON.stringify({ code: 'INVALID_ARGUMENT', message }));
      },
    });
    await raw.flush();
    const err = await rejection(collect(calling.request(subject, { q: 1 })));
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toContain('wire version 2');
    expect(err.message).toContain(subject);
  });

  test('a request of a later wire version, or a malformed version 2 one, is refused naming the problem', async () => {
    const serving = await plane();
    const raw = await connection();
    const subject = `versions.${uid()}`;
    let calls = 0;
    await serving.serve(subject, async function* () {
      calls++;
      yield 1;
    });
    const ask = async (body: string): Promise<string> => {
      const inbox = `_INBOX.vt${uid()}`;
      const got: string[] = [];
      raw.subscribe(inbox, { max: 1, callback: (_e, m) => void got.push(text(m)) });
      raw.publish(subject, body, { reply: inbox });
      await eventually('the answer', () => got.length > 0);
      return got[0]!;
    };
    const future = await ask('~4["id",0,0,null,{}]');
    expect(future).toMatch(/^x0 /);
    expect(JSON.parse(future.slice(3))).toEqual({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('wire version 4') as unknown,
    });
    for (const bad of ['~2[1,2]', '~2["id",-1,0,null,{}]', '~2["id",0,0,{"h":1},{}]', '~2[nope', '~']) {
      const answer = await ask(bad);
      expect(answer).toMatch(/^x0 /);
      expect(JSON.parse(answer.slice(3))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(calls).toBe(0);
  });

  test('serving calls answered at once makes no AbortController, deadline timer or immediate per request', async () => {
    const serving = await plane();
    const calling = await plane();
    const subject = `alloc.${uid()}`;
    await serving.serve(subject, async function* (request, ctx) {
      yield { request, cancelled: ctx.cancelled };
    });
    await collect(calling.request(subject, 0)); // warm
    const n = 64;
    const RealAbortController = globalThis.AbortController;
    let controllers = 0;
    globalThis.AbortController = class extends RealAbortController {
      constructor() {
        super();
        controllers++;
      }
    };
    const timeouts = jest.spyOn(global, 'setTimeout');
    const immediates = jest.spyOn(global, 'setImmediate');
    try {
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => collect(calling.request(subject, i, { timeoutMs: 10_000 }))),
      );
      expect(results.map((r) => r[0])).toEqual(Array.from({ length: n }, (_, i) => ({ request: i, cancelled: false })));
    } finally {
      globalThis.AbortController = RealAbortController;
      timeouts.mockRestore();
      immediates.mockRestore();
    }
    expect(controllers).toBe(0);
    // The callers' own deadline timers are the only per-request timers; the server adds none.
    expect(timeouts.mock.calls.length).toBeLessThanOrEqual(n + 4);
    // One end-of-turn immediate per plane and turn, not one per request.
    expect(immediates.mock.calls.length).toBeLessThan(n / 4);
  });

  test('a handler that reads its signal late still sees a cancel from the caller', async () => {
    const serving = await plane();
    const calling = await plane();
    const subject = `late-signal.${uid()}`;
    let reason: unknown;
    await serving.serve(subject, async function* (_request, ctx) {
      yield 'first';
      await delay(20);
      const signal = ctx.signal; // made now, after the first turn
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      reason = signal.reason;
    });
    const stream = calling.request(subject, {});
    const it = stream[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe('first');
    await delay(50);
    stream.cancel(new Error('enough'));
    await eventually('the handler to see the cancel', () => reason !== undefined);
    expect(reason).toMatchObject({ code: 'CANCELLED', message: 'enough' });
  });
});
