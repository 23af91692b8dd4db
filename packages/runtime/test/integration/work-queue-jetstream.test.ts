/**
 * JetStreamWorkQueue against a real nats-server (started once for the file): the work-queue
 * compliance suite, then what only a real server shows (connections dying, a server restart,
 * namespaces, the dead-letter stream, the monitoring endpoint, delivery latency).
 */
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Job, WorkQueueOptions } from '../../src/queue/work-queue';
import {
  JETSTREAM_QUEUE_CONSUMER,
  JetStreamWorkQueue,
  deadLetterStreamName,
  type JetStreamDeadLetter,
  type JetStreamWorkQueueOptions,
} from '../../src/queue/jetstream';
import { deadLetterSubject, queueStreamName, queueSubject } from '../../src/names';
import { startNatsServer, type NatsServer } from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import {
  describeWorkQueueCompliance,
  type WorkQueueHarness,
  Reader,
  delay,
  eventually,
  rejection,
  uid,
} from '@dynamo-ts/runtime/compliance';

describeWithBinaries(['nats-server'], 'JetStreamWorkQueue', () => {
  jest.setTimeout(30_000);
  let server: NatsServer;

  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.dispose();
  });

  /** A fresh connection that retries forever, quickly (servers restart in these tests). */
  function natsConnect(): Promise<NatsConnection> {
    return connect({ servers: server.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  }

  /** Opens queues, each on its own connection; `close()` closes queues, then connections. */
  class Clients {
    private readonly opened: Array<{ q: JetStreamWorkQueue; nc: NatsConnection }> = [];
    async open<T = unknown>(
      options: JetStreamWorkQueueOptions,
    ): Promise<{ q: JetStreamWorkQueue<T>; nc: NatsConnection }> {
      const nc = await natsConnect();
      try {
        const q = await JetStreamWorkQueue.create<T>(nc, options);
        this.opened.push({ q: q as JetStreamWorkQueue, nc });
        return { q, nc };
      } catch (e) {
        await nc.close();
        throw e;
      }
    }
    async close(): Promise<void> {
      const all = this.opened.splice(0);
      for (const { q } of all) await q.close();
      for (const { nc } of all) if (!nc.isClosed()) await nc.close();
    }
  }

  describeWorkQueueCompliance('compliance', async (): Promise<WorkQueueHarness> => {
    const clients = new Clients();
    const connections = new Map<unknown, NatsConnection>();
    return {
      async connect(options: WorkQueueOptions) {
        const { q, nc } = await clients.open(options);
        connections.set(q, nc);
        return q;
      },
      async crash(queue) {
        await (queue as JetStreamWorkQueue).crash();
        await connections.get(queue)?.close();
      },
      teardown: () => clients.close(),
    };
  });

  describe('on a real server', () => {
    let clients: Clients;
    let options: { namespace: string; name: string };
    beforeEach(() => {
      clients = new Clients();
      options = { namespace: `ns-${uid()}`, name: `q-${uid()}` };
    });
    afterEach(async () => {
      await clients.close();
    });

    test('creates the stream, the shared consumer and the dead-letter stream with the documented layout', async () => {
      const { q, nc } = await clients.open({ ...options, ackWaitMs: 1500 });
      expect(q.streamName).toBe(queueStreamName(options.namespace, options.name));
      const jsm = await jetstreamManager(nc);
      const si = await jsm.streams.info(q.streamName);
      expect(si.config.subjects).toEqual([queueSubject(options.namespace, options.name)]);
      expect(si.config.retention).toBe(RetentionPolicy.Workqueue);
      expect(si.config.storage).toBe(StorageType.File);
      expect(si.config.num_replicas).toBe(1);
      const ci = await jsm.consumers.info(q.streamName, JETSTREAM_QUEUE_CONSUMER);
      expect(ci.config.ack_wait).toBe(1500 * 1_000_000);
      expect(ci.config.max_deliver).toBe(-1);
      const dl = await jsm.streams.info(deadLetterStreamName(options.namespace, options.name));
      expect(dl.config.subjects).toEqual([deadLetterSubject(options.namespace, options.name)]);
      expect(dl.config.retention).toBe(RetentionPolicy.Limits);
    });

    test('several processes may open the same queue at once; the last ackWait wins', async () => {
      const opened = await Promise.all([1, 2, 3, 4, 5].map(() => clients.open({ ...options, ackWaitMs: 2000 })));
      const again = await clients.open({ ...options, ackWaitMs: 3000 });
      const jsm = await jetstreamManager(again.nc);
      const ci = await jsm.consumers.info(again.q.streamName, JETSTREAM_QUEUE_CONSUMER);
      expect(ci.config.ack_wait).toBe(3000 * 1_000_000);
      await opened[0]!.q.push('x');
      expect(await again.q.depth()).toBe(1);
      // A producer opening it without an ackWait of its own leaves the consumers' setting alone.
      const producer = await clients.open({ namespace: options.namespace, name: options.name });
      const after = await jsm.consumers.info(producer.q.streamName, JETSTREAM_QUEUE_CONSUMER);
      expect(after.config.ack_wait).toBe(3000 * 1_000_000);
    });

    test('refuses an existing stream of the same name that cannot serve as the queue', async () => {
      const nc = await natsConnect();
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({
          name: queueStreamName(options.namespace, options.name),
          subjects: [`other.${uid()}`],
          retention: RetentionPolicy.Limits,
        });
        const e = await rejection(JetStreamWorkQueue.create(nc, options));
        expect(e.code).toBe('INVALID_ARGUMENT');
        expect(e.message).toContain(queueStreamName(options.namespace, options.name));
      } finally {
        await nc.close();
      }
    });

    test('validates its options and payload sizes', async () => {
      const nc = await natsConnect();
      try {
        expect((await rejection(JetStreamWorkQueue.create(nc, { ...options, name: 'a.b' }))).code).toBe(
          'INVALID_ARGUMENT',
        );
        expect((await rejection(JetStreamWorkQueue.create(nc, { ...options, maxDeliver: 0 }))).code).toBe(
          'INVALID_ARGUMENT',
        );
      } finally {
        await nc.close();
      }
      const { q } = await clients.open<string>(options);
      expect(() => q.consume({ maxInFlight: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      const tooLarge = (await rejection(q.push('x'.repeat(2 * 1024 * 1024)))) as { code?: string; limit?: number };
      expect(tooLarge.code).toBe('PAYLOAD_TOO_LARGE');
      // the limit reported leaves room for the headers: a job of exactly that size is stored
      expect(tooLarge.limit).toBeGreaterThan(1024 * 1024 - 300);
      await q.push('x'.repeat(tooLarge.limit! - 2));
      expect((await rejection(q.push('x'.repeat(tooLarge.limit! - 1)))).code).toBe('PAYLOAD_TOO_LARGE');
      expect(await q.depth()).toBe(1);
      expect((await rejection(q.push('x', { deadline: Number.NaN }))).code).toBe('INVALID_ARGUMENT');
      await q.close();
      expect((await rejection(q.push('x'))).code).toBe('CLOSED');
    });

    test('a job pushed to an idle queue reaches a waiting consumer within milliseconds', async () => {
      const { q } = await clients.open<number>(options);
      const ac = new AbortController();
      const it = q.consume({ signal: ac.signal })[Symbol.asyncIterator]();
      const samples: number[] = [];
      for (let i = 0; i < 30; i++) {
        const next = it.next();
        await delay(20); // the consumer is idle, its pull waiting on the server
        const t0 = performance.now();
        await q.push(i);
        const { value: job } = await next;
        samples.push(performance.now() - t0);
        expect(job!.data).toBe(i);
        await job!.ack();
      }
      ac.abort();
      expect((await it.next()).done).toBe(true);
      samples.sort((a, b) => a - b);
      const p50 = samples[Math.floor(samples.length / 2)]!;
      const max = samples[samples.length - 1]!;
      process.stderr.write(
        `JetStreamWorkQueue push->job latency to an idle consumer: p50 ${p50.toFixed(2)} ms, max ${max.toFixed(2)} ms\n`,
      );
      expect(p50).toBeLessThan(50);
    });

    test('a consumer whose NatsConnection closes mid-job: its job is redelivered to another', async () => {
      const a = await clients.open<string>({ ...options, ackWaitMs: 500 });
      const b = await clients.open<string>({ ...options, ackWaitMs: 500 });
      await b.q.push('mid-job');
      const ra = new Reader<Job<string>>(a.q.consume());
      const [held] = await ra.take(1);
      await a.nc.close();
      await ra.end();
      expect((ra.error as { code?: string }).code).toBe('CLOSED');
      expect((await rejection(held!.ack())).code).toBe('CLOSED');
      await a.q.close();
      const ac = new AbortController();
      const rb = new Reader<Job<string>>(b.q.consume({ signal: ac.signal }));
      const [again] = await rb.take(1, 5000);
      expect(again!.id).toBe(held!.id);
      expect(again!.deliveryCount).toBe(2);
      await again!.ack();
      ac.abort();
      await rb.end();
    });

    test('two queues of the same name in different namespaces do not mix', async () => {
      const x = await clients.open<string>({ namespace: `${options.namespace}-x`, name: options.name });
      const y = await clients.open<string>({ namespace: `${options.namespace}-y`, name: options.name });
      expect(x.q.streamName).not.toBe(y.q.streamName);
      await x.q.push('for-x');
      await y.q.push('for-y1');
      await y.q.push('for-y2');
      expect(await x.q.depth()).toBe(1);
      expect(await y.q.depth()).toBe(2);
      const ax = new AbortController();
      const ay = new AbortController();
      const rx = new Reader<Job<string>>(x.q.consume({ signal: ax.signal }));
      const ry = new Reader<Job<string>>(y.q.consume({ signal: ay.signal, maxInFlight: 2 }));
      const [jx] = await rx.take(1);
      const jy = await ry.take(2);
      expect(jx!.data).toBe('for-x');
      expect(jy.map((j) => j.data)).toEqual(['for-y1', 'for-y2']);
      for (const j of [jx!, ...jy]) await j.ack();
      await x.q.push('sentinel-x');
      expect((await rx.take(1))[0]!.data).toBe('sentinel-x');
      expect(ry.items).toHaveLength(2);
      ax.abort();
      ay.abort();
    });

    test('dead letters are kept, inspectable, in the dead-letter stream; malformed jobs go there too', async () => {
      const { q, nc } = await clients.open<string>({ ...options, ackWaitMs: 10_000, maxDeliver: 1 });
      await q.push('poison', { deadline: Date.now() + 60_000 });
      const ac = new AbortController();
      const r = new Reader<Job<string>>(q.consume({ signal: ac.signal }));
      const [job] = await r.take(1);
      await job!.nak();
      // a body that is not JSON, published by someone else
      await jetstream(nc).publish(q.subject, 'not json');
      await q.push('sentinel');
      expect((await r.take(1))[0]!.data).toBe('sentinel');
      await r.items[1]!.ack();
      await eventually('two dead letters', async () => (await q.stats()).deadLettered === 2);
      const jsm = await jetstreamManager(nc);
      const dlq = await jsm.streams.info(q.deadLetterStreamName);
      expect(dlq.state.messages).toBe(2);
      const letters = await Promise.all(
        [dlq.state.first_seq, dlq.state.first_seq + 1].map(async (seq) =>
          (await jsm.streams.getMessage(q.deadLetterStreamName, { seq }))!.json<JetStreamDeadLetter>(),
        ),
      );
      expect(letters[0]).toMatchObject({
        id: job!.id,
        data: 'poison',
        deliveryCount: 2,
        reason: 'max_deliver',
        subject: q.subject,
      });
      expect(letters[0]!.deadline).toBe(job!.deadline);
      expect(letters[1]).toMatchObject({ data: 'not json', deliveryCount: 1, reason: 'malformed' });
      expect(await q.depth()).toBe(0);
      expect((await jsm.streams.info(q.streamName)).state.messages).toBe(0);
      ac.abort();
    });

    test('forged jobs (not JSON, refused by validate, a huge id header) never reach the consumer, which keeps going', async () => {
      const validate = (d: unknown): { n: number } => {
        if (typeof d !== 'object' || d === null || typeof (d as { n?: unknown }).n !== 'number') {
          throw new Error('n must be a number');
        }
        return d as { n: number };
      };
      const { q, nc } = await clients.open<{ n: number }>({ ...options, validate });
      const js = jetstream(nc);
      const forged: Array<string | Uint8Array> = [
        'null',
        '{}',
        '42',
        '"str"',
        '[1]',
        '{"n":"1"}',
        '{',
        '',
        'x'.repeat(50_000),
      ];
      for (const body of forged) await js.publish(q.subject, body);
      const h = natsHeaders();
      h.set('Dynamo-Job-Id', 'i'.repeat(30_000));
      h.set('Dynamo-Deadline', 'not a number');
      await js.publish(q.subject, '{"n":7}', { headers: h });
      await q.push({ n: 1 });
      const ac = new AbortController();
      const r = new Reader<Job<{ n: number }>>(q.consume({ signal: ac.signal, maxInFlight: 4 }));
      const jobs = await r.take(2);
      expect(jobs.map((j) => j.data)).toEqual([{ n: 7 }, { n: 1 }]);
      expect(jobs[0]!.id).toMatch(new RegExp(`^${q.streamName}:\\d+$`));
      for (const j of jobs) await j.ack();
      await eventually('every forged job dead-lettered', async () => (await q.stats()).deadLettered === forged.length);
      expect(await q.depth()).toBe(0);
      process.stderr.write(
        `JetStreamWorkQueue: ${forged.length + 1} forged jobs tried, ${forged.length} dead-lettered\n`,
      );
      ac.abort();
    });

    test('the monitoring endpoint (jsz) shows the stream, its consumer and what it delivered', async () => {
      const { q } = await clients.open<number>(options);
      for (let i = 0; i < 3; i++) await q.push(i);
      const ac = new AbortController();
      const r = new Reader<Job<number>>(q.consume({ signal: ac.signal, maxInFlight: 3 }));
      const jobs = await r.take(3);
      await jobs[0]!.ack();
      const res = await fetch(`http://127.0.0.1:${server.monitorPort}/jsz?streams=true&consumers=true`);
      expect(res.ok).toBe(true);
      const jsz = (await res.json()) as {
        account_details?: Array<{
          stream_detail?: Array<{
            name: string;
            state: { messages: number };
            consumer_detail?: Array<{ name: string; delivered: { stream_seq: number }; num_ack_pending: number }>;
          }>;
        }>;
      };
      const streams = (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []);
      const stream = streams.find((s) => s.name === q.streamName);
      expect(stream).toBeDefined();
      expect(stream!.state.messages).toBe(2);
      const consumer = stream!.consumer_detail?.find((c) => c.name === JETSTREAM_QUEUE_CONSUMER);
      expect(consumer?.delivered.stream_seq).toBe(3);
      expect(consumer?.num_ack_pending).toBe(2);
      expect(streams.some((s) => s.name === q.deadLetterStreamName)).toBe(true);
      for (const j of jobs.slice(1)) await j.ack();
      ac.abort();
    });

    test('a deleted stream is recreated by the next push, and waiting consumers resume', async () => {
      const { q, nc } = await clients.open<string>(options);
      const ac = new AbortController();
      const it = q.consume({ signal: ac.signal })[Symbol.asyncIterator]();
      const waiting = it.next();
      await delay(100);
      await (await jetstreamManager(nc)).streams.delete(q.streamName);
      await q.push('after-delete');
      const job = (await waiting).value as Job<string>;
      expect(job.data).toBe('after-delete');
      await job.ack();
      ac.abort();
      expect((await it.next()).done).toBe(true);
    });

    // Last: restarts the server the whole file shares.
    test('a waiting consumer survives a nats-server restart and gets the jobs pushed after it', async () => {
      const { q } = await clients.open<string>({ ...options, ackWaitMs: 5000 });
      const producer = await clients.open<string>(options);
      const ac = new AbortController();
      const it = q.consume({ signal: ac.signal })[Symbol.asyncIterator]();
      await producer.q.push('before');
      const before = (await it.next()).value as Job<string>;
      await before.ack();
      const waiting = it.next(); // the consumer waits, its pull open on the server
      await server.stop();
      await server.start();
      // The pull died with the server: it must be re-issued after the reconnect.
      let pushedAt = 0;
      await eventually(
        'a push to succeed after the restart',
        async () => {
          const t0 = performance.now();
          try {
            await producer.q.push('after', { timeoutMs: 1000 });
            pushedAt = t0;
            return true;
          } catch {
            return false;
          }
        },
        15_000,
      );
      const after = (await waiting).value as Job<string>;
      const latency = performance.now() - pushedAt;
      expect(after.data).toBe('after');
      expect(after.deliveryCount).toBe(1);
      await after.ack();
      process.stderr.write(
        `JetStreamWorkQueue: job pushed after a server restart delivered ${latency.toFixed(1)} ms after the push started\n`,
      );
      expect(await q.depth()).toBe(0);
      ac.abort();
      expect((await it.next()).done).toBe(true);
    });
  });
});
