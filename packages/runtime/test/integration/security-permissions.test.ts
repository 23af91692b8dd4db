/**
 * The least-privilege NATS authorization of docs/security.md (natsAuthorizationConfig) against a
 * real nats-server: the legitimate flows work (a frontend calls two workers with streaming and
 * cancellation, a worker publishes its events and pushes a prefill job, a prefill worker
 * consumes it), and a client holding only one worker's credentials cannot read the other
 * worker's requests, the frontend's inbox or the prefill queue, cannot write to another inbox or
 * forge another component's events; a client without credentials cannot connect.
 */
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { NatsEventPlane } from '../../src/events/nats';
import { endpointSubject, queueStreamName } from '../../src/names';
import { connectNats } from '../../src/nats-connection';
import { JetStreamWorkQueue } from '../../src/queue/jetstream';
import { inboxPrefixFor, natsAuthorizationConfig, type NatsRoleUser } from '../../src/security/nats-authorization';
import { startNatsServer, type NatsServer, capturedLogger, expectNoSecret } from '../../src/testing';
import { NatsRequestPlane } from '../../src/transport/nats';
import { describeWithBinaries } from '../../../../test/support/integration';
import { rejectionOf } from './security-helpers';

const NS = 'perm';
const users: NatsRoleUser[] = [
  { user: 'frontend', password: 'pw-frontend-1f2e', role: 'frontend' },
  { user: 'worker1', password: 'pw-worker1-3a4b', role: 'worker', scope: 'w1' },
  { user: 'worker2', password: 'pw-worker2-5c6d', role: 'worker', scope: 'w2' },
  { user: 'prefill1', password: 'pw-prefill1-7e8f', role: 'prefill', scope: 'p1' },
];
const secrets = users.map((u) => u.password!);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describeWithBinaries(['nats-server'], 'least-privilege NATS authorization', () => {
  jest.setTimeout(30_000);
  let server: NatsServer;
  const conns: NatsConnection[] = [];
  const log = capturedLogger();

  beforeAll(async () => {
    server = await startNatsServer({ config: natsAuthorizationConfig(users, { namespace: NS }) });
  });
  afterAll(async () => {
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await server?.dispose();
    expectNoSecret(log.text(), secrets);
  });

  async function as(user: string): Promise<NatsConnection> {
    const u = users.find((x) => x.user === user)!;
    const nc = await connectNats({
      servers: server.url,
      user,
      password: u.password,
      inboxPrefix: inboxPrefixFor(user),
      logger: log.logger,
    });
    conns.push(nc);
    return nc;
  }
  /** Counts what a raw subscription receives, and whether the server refused it. */
  function spy(nc: NatsConnection, subject: string): { count: () => number; refused: () => boolean } {
    let n = 0;
    let refused = false;
    nc.subscribe(subject, {
      callback: (err) => {
        if (err) refused = true;
        else n++;
      },
    });
    return { count: () => n, refused: () => refused };
  }

  it('frontend -> two workers: each serves only its own subjects; worker1 sees none of worker2 requests', async () => {
    const front = new NatsRequestPlane(await as('frontend'));
    const w1nc = await as('worker1');
    const w1 = new NatsRequestPlane(w1nc);
    const w2 = new NatsRequestPlane(await as('worker2'));
    const s1 = endpointSubject(NS, 'DummyWorker', 'generate', 'a1', 'w1');
    const s2 = endpointSubject(NS, 'DummyWorker', 'generate', 'b2', 'w2');
    const gen = (name: string) =>
      async function* (req: unknown): AsyncIterable<unknown> {
        for (let i = 0; i < 40; i++) yield { name, i, prompt: (req as { prompt: string }).prompt };
      };
    await w1.serve(s1, gen('w1'));
    await w2.serve(s2, gen('w2'));
    // The attacker (worker1's credentials) listens on worker2's subjects, everything, every inbox.
    const stolen = [
      spy(w1nc, s2),
      spy(w1nc, `dynamo.${NS}.DummyWorker.generate.w2.*`),
      spy(w1nc, '>'),
      spy(w1nc, '_INBOX.>'),
      spy(w1nc, `${inboxPrefixFor('frontend')}.>`),
    ];
    await sleep(100);
    for (const [subject, name] of [
      [s1, 'w1'],
      [s2, 'w2'],
    ] as const) {
      const items: Array<{ name: string }> = [];
      for await (const it of front.request<{ name: string }>(subject, { prompt: 'secret prompt' })) items.push(it);
      expect(items).toHaveLength(40);
      expect(items.every((x) => x.name === name)).toBe(true);
    }
    // Cancellation (the caller writes to the worker's control inbox) works too.
    const r = front.request(s2, { prompt: 'x' });
    for await (const _ of r) break;
    await sleep(100);
    for (const s of stolen) {
      expect(s.count()).toBe(0);
      expect(s.refused()).toBe(true);
    }
    // worker1 cannot even serve worker2's subject: nothing reaches it, worker2 still answers.
    const rogue = new NatsRequestPlane(w1nc);
    let hijacked = 0;
    await rogue
      .serve(s2, async function* () {
        hijacked++;
        yield { name: 'rogue' };
      })
      .catch(() => undefined);
    await sleep(100);
    for (let i = 0; i < 4; i++) {
      const items: Array<{ name: string }> = [];
      for await (const it of front.request<{ name: string }>(s2, { prompt: 'p' })) items.push(it);
      expect(items[0]!.name).toBe('w2');
    }
    expect(hijacked).toBe(0);
    await Promise.all([front.close(), w1.close(), w2.close(), rogue.close()]);
  });

  it("worker1 cannot write to the frontend's inbox, nor publish events as anyone but itself", async () => {
    const fnc = await as('frontend');
    const w1nc = await as('worker1');
    const pnc = await as('prefill1');
    const inbox = `${inboxPrefixFor('frontend')}.victim`;
    const got = spy(fnc, inbox);
    const status = spy(fnc, `dynamo.${NS}.events.Processor.request_status`);
    const kvAny = spy(fnc, `dynamo.${NS}.events.DummyWorker.kv_events.*`);
    const kvPlain = spy(fnc, `dynamo.${NS}.events.DummyWorker.kv_events`);
    const done = spy(fnc, `dynamo.${NS}.events.DummyWorker.prefill_done_a1`);
    await fnc.flush();
    w1nc.publish(inbox, 'forged answer');
    w1nc.publish('_INBOX.anything', 'forged answer');
    w1nc.publish(`dynamo.${NS}.events.Processor.request_status`, '{}');
    w1nc.publish(`dynamo.${NS}.DummyWorker.generate.w2.b2`, '{}');
    // KV events as worker2, or unscoped (as any worker): refused.
    w1nc.publish(`dynamo.${NS}.events.DummyWorker.kv_events.w2`, '{}');
    w1nc.publish(`dynamo.${NS}.events.DummyWorker.kv_events`, '{}');
    // A prefill worker may answer a decode worker but not pose as one.
    pnc.publish(`dynamo.${NS}.events.DummyWorker.kv_events`, '{}');
    pnc.publish(`dynamo.${NS}.events.DummyWorker.kv_events.w1`, '{}');
    pnc.publish(`dynamo.${NS}.events.DummyWorker.prefill_done_a1`, '{}');
    // Its own events are allowed.
    await new NatsEventPlane(w1nc).publish(`dynamo.${NS}.events.DummyWorker.kv_events.w1`, { stored: [1] });
    await w1nc.flush().catch(() => undefined);
    await pnc.flush().catch(() => undefined);
    await sleep(200);
    expect(got.count()).toBe(0);
    expect(status.count()).toBe(0);
    expect(kvPlain.count()).toBe(0);
    expect(kvAny.count()).toBe(1);
    expect(done.count()).toBe(1);
  });

  it('the prefill queue: a worker pushes, only a prefill worker consumes', async () => {
    const w1nc = await as('worker1');
    const producer = await JetStreamWorkQueue.create(w1nc, { namespace: NS, name: 'prefill' });
    await producer.push({ tokens: [1, 2, 3] });
    expect(await producer.depth()).toBe(1);
    // worker1 may not pull jobs (they hold other requests' prompts).
    const thief = await JetStreamWorkQueue.create(await as('worker2'), { namespace: NS, name: 'prefill' });
    const ac = new AbortController();
    const stolen: unknown[] = [];
    const stealing = (async () => {
      try {
        for await (const job of thief.consume({ signal: ac.signal })) stolen.push(job.data);
      } catch {
        // refused: fine
      }
    })();
    await sleep(300);
    ac.abort();
    await stealing;
    expect(stolen).toEqual([]);
    // Nor read the dead letters through a consumer of its own.
    const jsm = await jetstreamManager(w1nc);
    // (The dead-letter stream exists: the refusal below is the permission, not a missing stream.)
    expect((await jsm.streams.info(`${queueStreamName(NS, 'prefill')}_DLQ`)).config.name).toMatch(/_DLQ$/);
    await expect(
      jsm.consumers.add(`${queueStreamName(NS, 'prefill')}_DLQ`, {
        durable_name: 'thief',
        ack_policy: AckPolicy.Explicit,
      }),
    ).rejects.toThrow();
    const consumer = await JetStreamWorkQueue.create(await as('prefill1'), { namespace: NS, name: 'prefill' });
    const stop = new AbortController();
    for await (const job of consumer.consume({ signal: stop.signal })) {
      expect(job.data).toEqual({ tokens: [1, 2, 3] });
      await job.ack();
      stop.abort();
    }
    await Promise.all([producer.close(), thief.close(), consumer.close()]);
  });

  it('a client without credentials, or with a wrong password, cannot connect', async () => {
    for (const o of [{}, { user: 'worker1', password: 'guess' }]) {
      const e = await rejectionOf(connectNats({ servers: server.url, timeoutMs: 1500, ...o }));
      expect(e.message).toMatch(/refused the credentials/);
    }
  });
});
