import { setTimeout as sleep } from 'node:timers/promises';
/**
 * NatsRequestPlane against a real nats-server (started once for the file): the request-plane
 * compliance suite, then what only a real server shows: no responders, heartbeats keeping a
 * silent handler alive, a serving process that dies mid-stream, cancellation, the server's
 * max_payload, and a nats-server restart.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';
import { chunkMessages } from '../../src/transport/frames';
import { NatsRequestPlane, type NatsRequestPlaneOptions } from '../../src/transport/nats';
import type { RequestContext } from '../../src/transport/request-plane';
import { connectNats } from '../../src/nats-connection';
import { startNatsServer, type NatsServer } from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import {
  describeRequestPlaneCompliance,
  collect,
  delay,
  eventually,
  Reader,
  rejection,
  uid,
} from '@dynamo-ts/runtime/compliance';

function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

/** Planes, each on its own connection; close() closes the planes, then the connections. */
class Planes {
  private readonly all: Array<{ plane: NatsRequestPlane; nc: NatsConnection }> = [];
  constructor(private readonly url: () => string) {}
  async open(options: NatsRequestPlaneOptions = {}): Promise<{ plane: NatsRequestPlane; nc: NatsConnection }> {
    const nc = await connectNats({ servers: this.url(), reconnectTimeWaitMs: 100, reconnectJitterMs: 50 });
    const x = { plane: new NatsRequestPlane(nc, options), nc };
    this.all.push(x);
    return x;
  }
  async close(): Promise<void> {
    const all = this.all.splice(0);
    for (const { plane } of all) await plane.close();
    for (const { nc } of all) if (!nc.isClosed()) await nc.close();
  }
}

describeWithBinaries(['nats-server'], 'NatsRequestPlane', () => {
  jest.setTimeout(30_000);
  let server: NatsServer;

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: false });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  describeRequestPlaneCompliance('compliance', async () => {
    const planes = new Planes(() => server.url);
    return { connect: async () => (await planes.open()).plane, teardown: () => planes.close() };
  });

  describe('with a real server', () => {
    const planes = new Planes(() => server.url);
    afterEach(() => planes.close());

    test('no responders fails fast with NoRespondersError naming the subject', async () => {
      const { plane } = await planes.open();
      const subject = `nobody.${uid()}`;
      const started = Date.now();
      const err = await rejection(collect(plane.request(subject, {})));
      expect(err).toMatchObject({ code: 'UNAVAILABLE', name: 'NoRespondersError' });
      expect(err.message).toContain(subject);
      expect(Date.now() - started).toBeLessThan(1000);
    });

    test('a handler silent for longer than the heartbeat timeout stays alive (heartbeats)', async () => {
      const { plane: server } = await planes.open({ heartbeatIntervalMs: 100 });
      const { plane: client } = await planes.open({ heartbeatTimeoutMs: 600 });
      const subject = `silent.${uid()}`;
      await server.serve(subject, async function* () {
        await delay(800); // before the first item
        yield 'first';
        await delay(800); // between items
        yield 'second';
      });
      expect(await collect(client.request(subject, {}))).toEqual(['first', 'second']);
    });

    test('a serving connection that dies mid-stream fails the caller with TIMEOUT naming the subject', async () => {
      const { plane: server, nc: serverNc } = await planes.open({ heartbeatIntervalMs: 100 });
      const { plane: client } = await planes.open({ heartbeatTimeoutMs: 600 });
      const subject = `dies.${uid()}`;
      let handlerSignal: AbortSignal | undefined;
      await server.serve(subject, async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        yield 'first';
        await aborted(ctx.signal);
      });
      const r = new Reader(client.request(subject, {}));
      expect(await r.take(1)).toEqual(['first']);
      const killedAt = Date.now();
      await serverNc.close(); // no end frame, no error frame: the process is gone
      await r.end(5000);
      expect(r.error).toMatchObject({ code: 'TIMEOUT' });
      expect((r.error as Error).message).toContain(subject);
      expect(Date.now() - killedAt).toBeLessThan(2000);
      // The dead side's handler was cancelled when its connection closed.
      expect(handlerSignal?.aborted).toBe(true);
    });

    test('closing the serving plane mid-stream fails the caller with UNAVAILABLE at once', async () => {
      const { plane: server } = await planes.open();
      const { plane: client } = await planes.open();
      const subject = `closes.${uid()}`;
      await server.serve(subject, async function* (_req, ctx) {
        yield 'first';
        await aborted(ctx.signal);
      });
      const r = new Reader(client.request(subject, {}));
      expect(await r.take(1)).toEqual(['first']);
      await server.close();
      await r.end(2000);
      expect(r.error).toMatchObject({ code: 'UNAVAILABLE' });
    });

    test('a caller that dies mid-stream gets its handler cancelled (the next frame bounces)', async () => {
      const { plane: server } = await planes.open({ heartbeatIntervalMs: 100 });
      const { plane: client, nc: clientNc } = await planes.open();
      const subject = `callerdies.${uid()}`;
      let handlerSignal: AbortSignal | undefined;
      const endpoint = await server.serve(subject, async function* (_req, ctx) {
        handlerSignal = ctx.signal;
        yield 'first';
        await aborted(ctx.signal);
      });
      const r = new Reader(client.request(subject, {}));
      await r.take(1);
      await clientNc.close();
      await eventually('the handler to be cancelled', () => handlerSignal?.aborted === true, 3000);
      expect(endpoint.inflight).toBe(0);
      await r.end();
    });

    test('cancel reaches the handler with its reason', async () => {
      const { plane: server } = await planes.open();
      const { plane: client } = await planes.open();
      const subject = `cancel.${uid()}`;
      let reason: unknown;
      await server.serve(subject, async function* (_req, ctx: RequestContext) {
        yield 'first';
        reason = await aborted(ctx.signal);
      });
      const stream = client.request(subject, {});
      const it = stream[Symbol.asyncIterator]();
      expect((await it.next()).value).toBe('first');
      stream.cancel();
      await eventually('the handler to see the cancellation', () => reason !== undefined);
      expect(reason).toMatchObject({ code: 'CANCELLED' });
    });

    test('a cancel sent before the ack arrives still reaches the handler', async () => {
      const { plane: server } = await planes.open();
      const { plane: client } = await planes.open();
      const subject = `earlycancel.${uid()}`;
      let started = false;
      let handlerSignal: AbortSignal | undefined;
      await server.serve(subject, async function* (_req, ctx) {
        started = true;
        handlerSignal = ctx.signal;
        await aborted(ctx.signal);
        yield 'never';
      });
      const stream = client.request(subject, {});
      const pending = stream[Symbol.asyncIterator]().next();
      stream.cancel(); // the request is on the wire; its ack is not back yet
      expect((await rejection(pending)).code).toBe('CANCELLED');
      await eventually('the handler to be cancelled', () => started && handlerSignal?.aborted === true);
    });

    test('wire protocol: a gap in the data sequence fails the stream after the items before it', async () => {
      // A hand-written server speaking the frames of transport/frames.ts, skipping data frame 2.
      const { nc: raw } = await planes.open();
      const { plane: client } = await planes.open();
      const subject = `gap.${uid()}`;
      raw.subscribe(subject, {
        queue: 'dynamo',
        callback: (_err, msg) => {
          expect(new TextDecoder().decode(msg.data)).toMatch(/^~3\["/);
          const reply = msg.reply!;
          raw.publish(reply, 'a_INBOX.fake.1');
          raw.publish(reply, 'd1 "one"');
          raw.publish(reply, 'd3 "three"');
          raw.publish(reply, 'e3');
        },
      });
      await raw.flush();
      const r = new Reader(client.request(subject, {}));
      await r.end();
      expect(r.items).toEqual(['one']);
      expect(r.error).toMatchObject({ code: 'UNAVAILABLE' });
      expect((r.error as Error).message).toContain('expected sequence 2, got 3');
    });

    test('wire protocol: a request never acknowledged fails with UNAVAILABLE (safe to retry) naming the subject', async () => {
      const { nc: raw } = await planes.open();
      const { plane: client } = await planes.open({ heartbeatTimeoutMs: 300 });
      const subject = `mute.${uid()}`;
      raw.subscribe(subject, { callback: () => undefined });
      await raw.flush();
      const err = await rejection(collect(client.request(subject, {})));
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toContain(subject);
    });

    test('backpressure: a fast handler stays at most a window ahead of a slow consumer', async () => {
      const { plane: server } = await planes.open();
      const { plane: client } = await planes.open({ streamWindow: 8 });
      const subject = `window.${uid()}`;
      let produced = 0;
      await server.serve(subject, async function* () {
        for (let i = 0; i < 100; i++) {
          produced += 1;
          yield i;
        }
      });
      const it = client.request<number>(subject, {})[Symbol.asyncIterator]();
      expect((await it.next()).value).toBe(0);
      await delay(300);
      // 8 sent and unconsumed at most, plus the one the handler has yielded and waits to send.
      expect(produced).toBeLessThanOrEqual(8 + 1);
      const rest: number[] = [];
      for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
      expect(rest).toEqual(Array.from({ length: 99 }, (_, i) => i + 1));
    });

    test('plane drain: new requests see no responders, in-flight ones finish and may still call out', async () => {
      const { plane: worker } = await planes.open();
      const { plane: processor } = await planes.open();
      const { plane: client } = await planes.open();
      const workerSubject = `worker.${uid()}`;
      const processorSubject = `processor.${uid()}`;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      await worker.serve(workerSubject, async function* () {
        yield 'from-worker';
      });
      await processor.serve(processorSubject, async function* () {
        yield 'accepted';
        await held;
        // The processor is draining by now: calling the worker must still work.
        for await (const x of processor.request(workerSubject, {})) yield x;
      });
      const r = new Reader(client.request(processorSubject, {}));
      expect(await r.take(1)).toEqual(['accepted']);
      const draining = processor.drain({ timeoutMs: 10_000 });
      await eventually('new requests to be refused', async () => {
        const e = await rejection(collect(client.request(processorSubject, {}))).catch(() => undefined);
        return e?.code === 'UNAVAILABLE';
      });
      release();
      expect(await r.take(1)).toEqual(['from-worker']);
      await r.end();
      expect(r.error).toBeUndefined();
      await draining;
    });

    test('items arrive in order across a long fast stream', async () => {
      const { plane: server } = await planes.open();
      const { plane: client } = await planes.open();
      const subject = `long.${uid()}`;
      await server.serve(subject, async function* (req) {
        for (let i = 0; i < (req as { n: number }).n; i++) yield i;
      });
      const n = 2000;
      const items = await collect(client.request<number>(subject, { n }));
      expect(items.length).toBe(n);
      expect(items.every((x, i) => x === i)).toBe(true);
    });

    test('an item larger than the plane maxPayload fails the stream with PAYLOAD_TOO_LARGE', async () => {
      const { plane: server, nc } = await planes.open({ maxPayload: 2 * 1024 * 1024 });
      const { plane: client } = await planes.open();
      const subject = `bigitem.${uid()}`;
      await server.serve(subject, async function* () {
        yield 'small';
        yield 'x'.repeat(nc.info!.max_payload); // larger than one message: chunked, fine
        yield 'x'.repeat(2 * 1024 * 1024);
      });
      const items: unknown[] = [];
      const err = await rejection(
        (async () => {
          for await (const x of client.request(subject, {})) items.push(x);
        })(),
      );
      expect(items).toEqual(['small', 'x'.repeat(nc.info!.max_payload)]);
      expect(err.code).toBe('PAYLOAD_TOO_LARGE');
    });

    test('serving survives a nats-server restart (subscriptions re-established)', async () => {
      const { plane: server } = await planes.open();
      const { plane: client } = await planes.open();
      const subject = `restart.${uid()}`;
      await server.serve(subject, async function* (req) {
        yield req;
      });
      expect(await collect(client.request(subject, 'before'))).toEqual(['before']);
      await natsServerRestart();
      await eventually(
        'a request to succeed after the restart',
        async () => {
          try {
            return (await collect(client.request(subject, 'after', { timeoutMs: 2000 })))[0] === 'after';
          } catch {
            return false;
          }
        },
        15_000,
      );
    });

    test('a stream with no answer yet fails at once with UNAVAILABLE when the connection drops', async () => {
      const { plane: serving } = await planes.open();
      const { plane: client } = await planes.open();
      const subject = `drop.${uid()}`;
      await serving.serve(subject, async function* (_req, ctx) {
        await sleep(60_000, undefined, { signal: ctx.signal }).catch(() => undefined);
        yield 'late';
      });
      const stream = client.request(subject, 'x');
      const failure = rejection(collect(stream));
      await delay(100);
      await server.stop();
      const e = await failure;
      await server.start();
      // Not the heartbeat timeout's TIMEOUT seconds later: the disconnect itself fails it, retryable.
      expect(e).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/connection lost/) });
    });

    async function natsServerRestart(): Promise<void> {
      await server.stop();
      await server.start();
    }
  });

  describe('with a small max_payload', () => {
    let small: NatsServer;
    const planes = new Planes(() => small.url);
    beforeAll(async () => {
      small = await startNatsServer({ jetstream: false, maxPayload: 4096 });
    });
    afterAll(async () => {
      await planes.close();
      await small?.dispose();
    });

    test('requests and items larger than max_payload travel in chunks; maxPayload bounds them, naming it', async () => {
      const { plane: server } = await planes.open({ maxPayload: 64 * 1024 });
      const { plane: client } = await planes.open({ maxPayload: 64 * 1024 });
      expect(client.maxPayload).toBe(64 * 1024);
      const subject = `limit.${uid()}`;
      let calls = 0;
      await server.serve(subject, async function* (req) {
        calls += 1;
        const s = req as string;
        yield s.length;
        yield s.split('').reverse().join(''); // a 50 KB item: 13 chunks
      });
      const big = Array.from({ length: 5000 }, (_, i) => String(i % 10))
        .join('')
        .repeat(10);
      expect(await collect(client.request(subject, big))).toEqual([50_000, big.split('').reverse().join('')]);
      const err = await rejection(collect(client.request(subject, 'x'.repeat(70_000))));
      expect(err).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 64 * 1024 });
      expect(err.message).toContain(String(64 * 1024));
      expect(await collect(client.request(subject, 'x'.repeat(3000)))).toEqual([3000, 'x'.repeat(3000)]);
      expect(calls).toBe(2);
    });

    test('forged and partial chunks are skipped or time out; the plane keeps serving and calling', async () => {
      const { plane: server } = await planes.open({ maxPayload: 64 * 1024, heartbeatTimeoutMs: 400 });
      const { plane: client, nc: clientNc } = await planes.open({ maxPayload: 64 * 1024 });
      const { nc: raw } = await planes.open();
      const subject = `forged.${uid()}`;
      let calls = 0;
      await server.serve(subject, async function* (req) {
        calls += 1;
        yield req;
      });
      const ask = async (body: string): Promise<{ first: string; got: string[] }> => {
        const inbox = `_INBOX.fz${uid()}`;
        const got: string[] = [];
        raw.subscribe(inbox, { max: 2, callback: (_e, m) => void got.push(new TextDecoder().decode(m.data)) });
        raw.publish(subject, body, { reply: inbox });
        await eventually('an answer', () => got.length > 0);
        return { first: got[0]!, got };
      };
      const code = (frame: string): unknown => (JSON.parse(frame.slice(3)) as { code: unknown }).code;
      // Announcements over the limit, or malformed, are refused at once.
      expect(code((await ask('~3*["f1",0,0,null,70000]')).first)).toBe('PAYLOAD_TOO_LARGE');
      expect(code((await ask('~3*["f2",0,0,null,-5]')).first)).toBe('INVALID_ARGUMENT');
      // An upload pulled, then fed garbage, replays, a wrong total and half its chunks: dropped
      // after the heartbeat timeout with UNAVAILABLE, its budget back.
      const payload = Buffer.from(JSON.stringify('y'.repeat(10_000)));
      const { first: pull, got } = await ask(`~3*["f3",0,0,null,${payload.length}]`);
      expect(pull).toMatch(/^p_INBOX\./);
      const upload = pull.slice(1);
      const chunks = chunkMessages(payload, 4096);
      const rng = fc.sample(fc.uint8Array({ maxLength: 80 }), { numRuns: 200, seed: 7 });
      for (const g of rng) raw.publish(upload, g);
      for (const forged of ['k', 'k0,', 'k9,10 a', `k0,${payload.length + 1} abc`, 'kx,1 a', 'c', 'w5'])
        raw.publish(upload, forged);
      raw.publish(upload, chunks[0]!);
      raw.publish(upload, chunks[0]!);
      expect(chunks.length).toBeGreaterThan(2);
      await eventually('the upload to time out', () => got.length === 2);
      expect(got[1]).toMatch(/^x0 /);
      expect(code(got[1]!)).toBe('UNAVAILABLE');
      expect(calls).toBe(0);
      // Chunks sent after it was dropped reach nobody.
      for (const c of chunks) raw.publish(upload, c);
      // Forged chunks to the caller's inbox, to tokens live or not: skipped.
      const prefix = (client as unknown as { prefix: string }).prefix;
      for (let t = 1; t < 40; t++) {
        clientNc.publish(`${prefix}.${t.toString(36)}`, `k0,${1 << 30} x`);
        clientNc.publish(`${prefix}.${t.toString(36)}`, 'k0,5 ab');
      }
      await clientNc.flush();
      await delay(50);
      // Everything still works: small, chunked both ways, and concurrent with forged traffic.
      const text = 'z'.repeat(30_000);
      const calling = Promise.all([collect(client.request(subject, text)), collect(client.request(subject, 'small'))]);
      for (let t = 1; t < 40; t++) raw.publish(`${prefix}.${t.toString(36)}`, 'k1,30003 zz');
      expect(await calling).toEqual([[text], ['small']]);
      expect(calls).toBe(2);
    });

    test('a caller of wire version 2 gets PAYLOAD_TOO_LARGE for an item that needs chunks', async () => {
      const { plane: server } = await planes.open();
      const { nc: raw } = await planes.open();
      const subject = `v2caller.${uid()}`;
      await server.serve(subject, async function* () {
        yield 'x'.repeat(5000);
      });
      const inbox = `_INBOX.v2${uid()}`;
      const got: string[] = [];
      raw.subscribe(inbox, { callback: (_e, m) => void got.push(new TextDecoder().decode(m.data)) });
      raw.publish(subject, '~2["old",0,0,null,{}]', { reply: inbox });
      await eventually('the answer', () => got.some((f) => f.startsWith('x')));
      const err = got.find((f) => f.startsWith('x'))!;
      expect(JSON.parse(err.slice(err.indexOf(' ') + 1))).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
      expect(got.some((f) => f.startsWith('k'))).toBe(false);
    });
  });
});
