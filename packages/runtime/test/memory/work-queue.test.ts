/** Memory-only work-queue behaviour: dead letters, stale settles, validation. */
import { MemoryCluster } from '../../src/memory';
import type { EventMessage } from '../../src/events/event-plane';
import type { Job } from '../../src/queue/work-queue';
import { MemoryQueueStore, MemoryWorkQueue } from '../../src/queue/memory';
import { deadLetterSubject } from '../../src/names';
import { Reader, rejection } from '@dynamo-ts/runtime/compliance';

describe('MemoryWorkQueue', () => {
  let cluster: MemoryCluster;
  const aborts: AbortController[] = [];
  const consume = <T>(q: MemoryWorkQueue<T>, maxInFlight = 1): Reader<Job<T>> => {
    const ac = new AbortController();
    aborts.push(ac);
    return new Reader(q.consume({ signal: ac.signal, maxInFlight }));
  };

  beforeEach(() => {
    cluster = new MemoryCluster();
  });
  afterEach(async () => {
    for (const ac of aborts.splice(0)) ac.abort();
    await cluster.close();
  });

  test('validate refuses bad job data at push, naming why', async () => {
    const validate = (d: unknown): unknown => {
      if (typeof d !== 'number') throw new Error('job must be a number');
      return d;
    };
    const q = cluster.workQueue<unknown>({ namespace: 'ns', name: 'v', validate });
    expect(await rejection(q.push(null))).toMatchObject({ code: 'INVALID_ARGUMENT', message: /job must be a number/ });
    await q.push(3);
    const r = consume(q);
    expect((await r.take(1))[0]!.data).toBe(3);
  });

  test('dead letters are kept by the store and published on the dead-letter subject', async () => {
    const events = cluster.eventPlane();
    const dead = new Reader<EventMessage>(events.subscribe(deadLetterSubject('ns', 'prefill')));
    const q = cluster.workQueue<{ p: string }>({ namespace: 'ns', name: 'prefill', maxDeliver: 1 });
    await q.push({ p: 'poison' }, { deadline: Date.now() + 60_000 });
    const r = consume(q);
    const [job] = await r.take(1);
    await job!.nak();
    await q.push({ p: 'next' });
    expect((await r.take(1))[0]!.data).toEqual({ p: 'next' });
    const letters = cluster.queues.deadLetters('ns', 'prefill');
    expect(letters).toEqual([{ id: job!.id, data: { p: 'poison' }, deliveryCount: 1, deadline: job!.deadline }]);
    expect((await q.stats()).deadLettered).toBe(1);
    const [msg] = await dead.take(1);
    expect(msg!.data).toEqual({ id: job!.id, deliveryCount: 1, data: { p: 'poison' } });
    expect(cluster.queues.deadLetters('ns', 'other')).toEqual([]);
  });

  test('settling a stale delivery does nothing; the redelivery stays valid', async () => {
    const q = cluster.workQueue<string>({ namespace: 'ns', name: 'stale', ackWaitMs: 50 });
    await q.push('x');
    const r = consume(q, 2);
    const [first, second] = await r.take(2);
    expect(second!.id).toBe(first!.id);
    expect(second!.deliveryCount).toBe(2);
    await first!.ack();
    await first!.nak();
    expect((await q.stats()).inFlight).toBe(1);
    await second!.ack();
    await second!.ack();
    expect(await q.stats()).toMatchObject({ inFlight: 0, depth: 0, redelivered: 1 });
  });

  test('queues are shared per (namespace, name) and isolated otherwise', async () => {
    const a = cluster.workQueue({ namespace: 'ns', name: 'q' });
    const b = cluster.workQueue({ namespace: 'ns', name: 'q' });
    const c = cluster.workQueue({ namespace: 'other', name: 'q' });
    await a.push(1);
    await a.push(2);
    expect(await b.depth()).toBe(2);
    expect(await c.depth()).toBe(0);
    expect(cluster.queues.depth('ns', 'q')).toBe(2);
  });

  test('a nak delay counts in depth until redelivery', async () => {
    const q = cluster.workQueue<string>({ namespace: 'ns', name: 'delay' });
    await q.push('x');
    const r = consume(q);
    const [job] = await r.take(1);
    expect(await q.depth()).toBe(0);
    await job!.nak(100);
    expect(await q.depth()).toBe(1);
    const [again] = await r.take(1);
    expect(again!.deliveryCount).toBe(2);
    await again!.ack();
  });

  test('closed clients refuse calls with CLOSED; options are validated', async () => {
    const q = cluster.workQueue<string>({ namespace: 'ns', name: 'closed' });
    await q.push('x');
    const r = consume(q);
    const [job] = await r.take(1);
    await q.close();
    await r.end();
    expect((await rejection(job!.ack())).code).toBe('CLOSED');
    expect((await rejection(q.push('y'))).code).toBe('CLOSED');
    expect((await rejection(q.depth())).code).toBe('CLOSED');
    const store = new MemoryQueueStore();
    expect(() => new MemoryWorkQueue(store, { namespace: 'bad ns', name: 'q' })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => new MemoryWorkQueue(store, { namespace: 'ns', name: 'q', maxDeliver: 0 })).toThrow(/maxDeliver/);
    expect(() => new MemoryWorkQueue(store, { namespace: 'ns', name: 'q', ackWaitMs: 0 })).toThrow(/ackWaitMs/);
    expect(() => new MemoryWorkQueue(store, { namespace: 'ns', name: 'q' }).consume({ maxInFlight: 0 })).toThrow(
      /maxInFlight/,
    );
    await store.close();
    expect(() => new MemoryWorkQueue(store, { namespace: 'ns', name: 'q' })).toThrow(
      expect.objectContaining({ code: 'CLOSED' }),
    );
  });

  test('a consumer stopped while a job was handed to it gives the job back undelivered', async () => {
    const q = cluster.workQueue<string>({ namespace: 'ns', name: 'race' });
    const ac = new AbortController();
    const it = q.consume({ signal: ac.signal })[Symbol.asyncIterator]();
    const pending = it.next();
    const pushed = q.push('x'); // handed to the pending pull synchronously...
    ac.abort(); // ...which is stopped before it could yield it
    await pushed;
    expect((await pending).done).toBe(true);
    const [job] = await consume(q).take(1);
    expect(job!.data).toBe('x');
    expect(job!.deliveryCount).toBe(1);
  });
});
