import { setTimeout as sleep } from 'node:timers/promises';
/**
 * NatsRequestPlane against a real nats-server (started once for the file): the request-plane
 * compliance suite, then what only a real server shows: no responders, heartbeats keeping a
 * silent handler alive, a serving process that dies mid-stream, cancellation, the server's
 * max_payload, and a nats-server restart.
 */
import type { NatsConnection } from '@nats-io/transport-node';
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
          expect(new TextDecoder().decode(msg.data)).toMatch(/^~2\["/);
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

    test('an item larger than max_payload fails the stream with PAYLOAD_TOO_LARGE', async () => {
      const { plane: server, nc } = await planes.open();
      const { plane: client } = await planes.open();
      const subject = `bigitem.${uid()}`;
      await server.serve(subject, async function* () {
        yield 'small';
        yield 'x'.repeat(nc.info!.max_payload);
      });
      const items: unknown[] = [];
      const err = await rejection(
        (async () => {
          for await (const x of client.request(subject, {})) items.push(x);
        })(),
      );
      expect(items).toEqual(['small']);
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

    test('maxPayload is the server limit; a larger request fails before sending, naming it', async () => {
      const { plane: server } = await planes.open();
      const { plane: client } = await planes.open();
      expect(client.maxPayload).toBe(4096);
      const subject = `limit.${uid()}`;
      let calls = 0;
      await server.serve(subject, async function* (req) {
        calls += 1;
        yield (req as string).length;
      });
      const err = await rejection(collect(client.request(subject, 'x'.repeat(5000))));
      expect(err).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 4096 });
      expect(err.message).toContain('4096');
      // Headers count against the limit too: a body just under it, plus headers, is refused.
      const err2 = await rejection(collect(client.request(subject, 'x'.repeat(4090))));
      expect(err2.code).toBe('PAYLOAD_TOO_LARGE');
      expect(await collect(client.request(subject, 'x'.repeat(3000)))).toEqual([3000]);
      expect(calls).toBe(1);
    });
  });
});
