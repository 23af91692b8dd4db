/**
 * The compliance suite of {@link WorkQueue}: every implementation (memory, JetStream) must pass it.
 * Every test uses its own namespace and queue name. "Not delivered" is checked by pushing a
 * sentinel job afterwards and seeing it come first (a waiting redelivery would come before it),
 * never with a sleep.
 */
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import type { Job, WorkQueue, WorkQueueOptions } from '../queue/work-queue';
import { Reader, delay, eventually, uid } from './helpers';

/** What the suite needs from an implementation. */
export interface WorkQueueHarness {
  /** A new client of the queue (a new "process"); options.namespace/name given by the suite (use unique names per test). */
  connect(options: WorkQueueOptions): Promise<WorkQueue>;
  /** Simulate a consumer process dying: stop without settling its jobs. */
  crash(queue: WorkQueue): Promise<void>;
  teardown(): Promise<void>;
}

/** Ack wait of the redelivery tests: short, so the suite stays fast on a real server. */
const ACK_WAIT_MS = 400;

/** Registers the work-queue compliance tests under `describe(name)`. */
export function describeWorkQueueCompliance(name: string, setup: () => Promise<WorkQueueHarness>): void {
  describe(name, () => {
    jest.setTimeout(20_000);
    let h: WorkQueueHarness;
    let options: WorkQueueOptions;
    const aborts: AbortController[] = [];

    /** Starts a consumer in the background; it stops at the end of the test. */
    function consume<T>(q: WorkQueue, maxInFlight = 1): Reader<Job<T>> {
      const ac = new AbortController();
      aborts.push(ac);
      return new Reader<Job<T>>((q as WorkQueue<T>).consume({ signal: ac.signal, maxInFlight }));
    }

    beforeEach(async () => {
      h = await setup();
      options = { namespace: `ns-${uid()}`, name: `q-${uid()}` };
    });
    afterEach(async () => {
      for (const ac of aborts.splice(0)) ac.abort();
      await h.teardown();
    });

    test('push, consume in order, ack', async () => {
      const q = await h.connect({ ...options });
      await q.push({ n: 1 });
      await q.push({ n: 2 });
      await q.push({ n: 3 });
      const r = consume<{ n: number }>(q, 3);
      const jobs = await r.take(3);
      expect(jobs.map((j) => j.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
      expect(jobs.map((j) => j.deliveryCount)).toEqual([1, 1, 1]);
      expect(new Set(jobs.map((j) => j.id)).size).toBe(3);
      for (const j of jobs) await j.ack();
      await eventually('in-flight to drop to 0', async () => (await q.stats()).inFlight === 0);
      expect(await q.depth()).toBe(0);
      await q.close();
    });

    test('job data is a copy of what was pushed', async () => {
      const q = await h.connect({ ...options });
      const data = { v: 1, when: new Date(0) };
      await q.push(data);
      data.v = 2;
      const [job] = await consume(q).take(1);
      expect(job!.data).toEqual({ v: 1, when: '1970-01-01T00:00:00.000Z' });
      await job!.ack();
      await q.close();
    });

    test('each job goes to exactly one of two consumers', async () => {
      const a = await h.connect({ ...options });
      const b = await h.connect({ ...options });
      const ra = consume<number>(a);
      const rb = consume<number>(b);
      const n = 20;
      for (let i = 0; i < n; i++) await a.push(i);
      const got: number[] = [];
      const cursors = new Map<Reader<Job<number>>, number>([
        [ra, 0],
        [rb, 0],
      ]);
      const ackNew = async (): Promise<void> => {
        for (const [r, from] of cursors) {
          for (let k = from; k < r.items.length; k++) {
            const job = r.items[k]!;
            cursors.set(r, k + 1);
            expect(job.deliveryCount).toBe(1);
            got.push(job.data);
            await job.ack();
          }
        }
      };
      await eventually(`${n} jobs consumed`, async () => {
        await ackNew();
        return got.length >= n;
      });
      expect([...got].sort((x, y) => x - y)).toEqual(Array.from({ length: n }, (_, i) => i));
      await a.push(-1);
      await eventually('the sentinel', async () => {
        await ackNew();
        return got.length === n + 1;
      });
      expect(got).toHaveLength(n + 1);
      await a.close();
      await b.close();
    });

    test('nak redelivers the job with deliveryCount 2', async () => {
      const q = await h.connect({ ...options, ackWaitMs: 10_000 });
      await q.push({ work: 'x' });
      const r = consume<{ work: string }>(q);
      const [first] = await r.take(1);
      expect(first!.deliveryCount).toBe(1);
      await first!.nak();
      const [second] = await r.take(1);
      expect(second!.id).toBe(first!.id);
      expect(second!.data).toEqual({ work: 'x' });
      expect(second!.deliveryCount).toBe(2);
      await second!.ack();
      await eventually('stats to count the redelivery', async () => (await q.stats()).redelivered >= 1);
      await q.close();
    });

    test('nak with a delay redelivers later', async () => {
      const q = await h.connect({ ...options, ackWaitMs: 10_000 });
      await q.push('later');
      const r = consume<string>(q);
      const [first] = await r.take(1);
      const nakAt = Date.now();
      await first!.nak(300);
      const [second] = await r.take(1);
      expect(second!.deliveryCount).toBe(2);
      expect(Date.now() - nakAt).toBeGreaterThanOrEqual(250);
      await second!.ack();
      await q.close();
    });

    test('a job not acked within ackWait is redelivered', async () => {
      const a = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      const b = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      await a.push('slow');
      const ra = consume<string>(a);
      const [held] = await ra.take(1);
      expect(held!.deliveryCount).toBe(1);
      // a holds its only slot; b gets the redelivery after the ack wait.
      const rb = consume<string>(b);
      const [again] = await rb.take(1, ACK_WAIT_MS + 5000);
      expect(again!.id).toBe(held!.id);
      expect(again!.deliveryCount).toBe(2);
      await again!.ack();
      await a.close();
      await b.close();
    });

    test('inProgress keeps a job from redelivery past ackWait', async () => {
      const a = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      const b = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      await a.push('long');
      const [job] = await consume<string>(a).take(1);
      const rb = consume<string>(b);
      const until = Date.now() + ACK_WAIT_MS * 3;
      while (Date.now() < until) {
        await job!.inProgress();
        await delay(ACK_WAIT_MS / 4);
      }
      await job!.ack();
      await a.push('sentinel');
      const [next] = await rb.take(1);
      expect(next!.data).toBe('sentinel');
      expect(next!.deliveryCount).toBe(1);
      await next!.ack();
      await a.close();
      await b.close();
    });

    test("a crashed consumer's jobs are redelivered to another", async () => {
      const a = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      const b = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      await b.push('j1');
      await b.push('j2');
      const held = await consume<string>(a, 2).take(2);
      await h.crash(a);
      const rb = consume<string>(b, 2);
      const again = await rb.take(2, ACK_WAIT_MS + 5000);
      expect(again.map((j) => j.data).sort()).toEqual(['j1', 'j2']);
      expect(again.map((j) => j.deliveryCount)).toEqual([2, 2]);
      expect(new Set(again.map((j) => j.id))).toEqual(new Set(held.map((j) => j.id)));
      for (const j of again) await j.ack();
      await b.close();
    });

    test('close leaves unsettled jobs to redelivery', async () => {
      const a = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      const b = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      await a.push('unsettled');
      const ra = consume<string>(a);
      await ra.take(1);
      await a.close();
      await a.close();
      await ra.end();
      const [again] = await consume<string>(b).take(1, ACK_WAIT_MS + 5000);
      expect(again!.data).toBe('unsettled');
      expect(again!.deliveryCount).toBe(2);
      await again!.ack();
      await b.close();
    });

    test('after maxDeliver deliveries a job is dead-lettered, never yielded again', async () => {
      const q = await h.connect({ ...options, ackWaitMs: 10_000, maxDeliver: 2 });
      await q.push('poison');
      const r = consume<string>(q);
      const [d1] = await r.take(1);
      await d1!.nak();
      const [d2] = await r.take(1);
      expect(d2!.deliveryCount).toBe(2);
      await d2!.nak();
      await q.push('sentinel');
      const [next] = await r.take(1);
      expect(next!.data).toBe('sentinel');
      await next!.ack();
      await eventually('stats to count the dead letter', async () => (await q.stats()).deadLettered === 1);
      expect(r.items.filter((j) => j.data === 'poison')).toHaveLength(2);
      await q.close();
    });

    test('a job pulled after its deadline is dropped and counted as expired', async () => {
      const q = await h.connect({ ...options });
      const future = Date.now() + 60_000;
      await q.push('late', { deadline: Date.now() + 100 });
      await delay(300);
      await q.push('in-time', { deadline: future });
      const r = consume<string>(q);
      const [job] = await r.take(1);
      expect(job!.data).toBe('in-time');
      expect(job!.deadline).toBe(future);
      await job!.ack();
      await eventually('stats to count the expired job', async () => (await q.stats()).expired === 1);
      expect(r.items.map((j) => j.data)).toEqual(['in-time']);
      await q.close();
    });

    test('term drops the job without redelivery', async () => {
      const q = await h.connect({ ...options, ackWaitMs: ACK_WAIT_MS });
      await q.push('bad');
      const r = consume<string>(q);
      const [job] = await r.take(1);
      await job!.term();
      await delay(ACK_WAIT_MS + 200);
      await q.push('sentinel');
      const [next] = await r.take(1);
      expect(next!.data).toBe('sentinel');
      expect(next!.deliveryCount).toBe(1);
      await next!.ack();
      await q.close();
    });

    test('depth counts the jobs waiting, not those in flight', async () => {
      const q = await h.connect({ ...options, ackWaitMs: 10_000 });
      expect(await q.depth()).toBe(0);
      await q.push(1);
      await q.push(2);
      await q.push(3);
      await eventually('depth 3', async () => (await q.depth()) === 3);
      const [job] = await consume<number>(q).take(1);
      await eventually('depth 2 with one in flight', async () => (await q.depth()) === 2);
      const stats = await q.stats();
      expect(stats.inFlight).toBe(1);
      expect(stats.depth).toBe(2);
      await job!.ack();
      await eventually('depth 1 after the next pull', async () => (await q.depth()) === 1);
      await q.close();
    });

    test('maxInFlight bounds the unsettled jobs a consumer holds', async () => {
      const a = await h.connect({ ...options, ackWaitMs: 10_000 });
      const b = await h.connect({ ...options, ackWaitMs: 10_000 });
      await a.push(1);
      await a.push(2);
      await a.push(3);
      const ra = consume<number>(a, 2);
      const held = await ra.take(2);
      expect(held.map((j) => j.data)).toEqual([1, 2]);
      // a holds 2 of 2: the third job must be left for b.
      const [third] = await consume<number>(b).take(1);
      expect(third!.data).toBe(3);
      expect(third!.deliveryCount).toBe(1);
      await third!.ack();
      for (const j of held) await j.ack();
      await a.close();
      await b.close();
    });

    test('the signal ends consumption', async () => {
      const q = await h.connect({ ...options });
      const ac = new AbortController();
      const r = new Reader<Job>(q.consume({ signal: ac.signal }));
      await q.push('one');
      const [job] = await r.take(1);
      await job!.ack();
      ac.abort();
      await r.end();
      expect(r.error).toBeUndefined();
      await q.push('two');
      expect(await q.depth()).toBe(1);
      await q.close();
    });
  });
}
