/**
 * The compliance suite of {@link EventPlane}: every implementation (memory, NATS) must pass it.
 * Subjects are unique per test. Subscribers `flush()` after subscribing so the server knows the
 * subscription before another plane publishes; "not delivered" is checked with a sentinel event
 * published after the unwanted ones (per-publisher order), never with a sleep.
 */
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import type { EventMessage, EventPlane } from '../events/event-plane';
import { Reader, uid } from './helpers';

/** What the suite needs from an implementation. */
export interface EventPlaneHarness {
  /** A new plane (a new "process") on the same server. */
  connect(): Promise<EventPlane>;
  /** Stop everything the harness started. */
  teardown(): Promise<void>;
}

/** Registers the event-plane compliance tests under `describe(name)`. */
export function describeEventPlaneCompliance(name: string, setup: () => Promise<EventPlaneHarness>): void {
  describe(name, () => {
    jest.setTimeout(20_000);
    let h: EventPlaneHarness;
    let pub: EventPlane;
    let sub: EventPlane;
    let base: string;

    beforeEach(async () => {
      h = await setup();
      pub = await h.connect();
      sub = await h.connect();
      base = `compliance.${uid()}`;
    });
    afterEach(async () => {
      await pub.close();
      await sub.close();
      await h.teardown();
    });

    test('a subscriber receives the events published on its subject, with subject and data', async () => {
      const subject = `${base}.kv_events`;
      const r = new Reader<EventMessage>(sub.subscribe(subject));
      await sub.flush();
      await pub.publish(subject, { n: 1 });
      await pub.publish(subject, 'two');
      await pub.publish(subject, [3]);
      await pub.flush();
      expect(await r.take(3)).toEqual([
        { subject, data: { n: 1 } },
        { subject, data: 'two' },
        { subject, data: [3] },
      ]);
    });

    test('the subscription reports its subject', () => {
      const s = sub.subscribe(`${base}.*`);
      expect(s.subject).toBe(`${base}.*`);
      s.unsubscribe();
    });

    test('events from one publisher arrive in publish order', async () => {
      const subject = `${base}.order`;
      const r = new Reader<EventMessage<number>>(sub.subscribe<number>(subject));
      await sub.flush();
      const n = 500;
      for (let i = 0; i < n; i++) await pub.publish(subject, i);
      await pub.flush();
      const got = await r.take(n);
      expect(got.map((m) => m.data)).toEqual(Array.from({ length: n }, (_, i) => i));
    });

    test('data is copied: publisher changes and other subscribers do not show through', async () => {
      const subject = `${base}.copy`;
      const r1 = new Reader<EventMessage<{ v: number; d?: unknown }>>(sub.subscribe(subject));
      const r2 = new Reader<EventMessage<{ v: number; d?: unknown }>>(sub.subscribe(subject));
      const local = new Reader<EventMessage<{ v: number }>>(pub.subscribe(subject));
      await sub.flush();
      await pub.flush();
      const data = { v: 1, d: new Date(0) };
      await pub.publish(subject, data);
      data.v = 2;
      await pub.flush();
      const [m1] = await r1.take(1);
      const [m2] = await r2.take(1);
      const [m3] = await local.take(1);
      expect(m1!.data).toEqual({ v: 1, d: '1970-01-01T00:00:00.000Z' });
      expect(m3!.data).toEqual({ v: 1, d: '1970-01-01T00:00:00.000Z' });
      expect(m1!.data).not.toBe(m2!.data);
      expect(m3!.data).not.toBe(data);
      m1!.data.v = 99;
      expect(m2!.data.v).toBe(1);
    });

    test('every subscriber gets every event (fan-out)', async () => {
      const subject = `${base}.fanout`;
      const readers = [0, 1, 2].map(() => new Reader<EventMessage>(sub.subscribe(subject)));
      await sub.flush();
      await pub.publish(subject, 'a');
      await pub.publish(subject, 'b');
      await pub.flush();
      for (const r of readers) expect((await r.take(2)).map((m) => m.data)).toEqual(['a', 'b']);
    });

    test("'*' matches exactly one token", async () => {
      const r = new Reader<EventMessage>(sub.subscribe(`${base}.*.load_metrics`));
      await sub.flush();
      await pub.publish(`${base}.worker-a.load_metrics`, 1);
      await pub.publish(`${base}.worker-a.kv_events`, 'no');
      await pub.publish(`${base}.a.b.load_metrics`, 'no');
      await pub.publish(`${base}.load_metrics`, 'no');
      await pub.publish(`${base}.worker-b.load_metrics`, 2);
      await pub.publish(`${base}.sentinel.load_metrics`, 'end');
      await pub.flush();
      const got = await r.take(3);
      expect(got).toEqual([
        { subject: `${base}.worker-a.load_metrics`, data: 1 },
        { subject: `${base}.worker-b.load_metrics`, data: 2 },
        { subject: `${base}.sentinel.load_metrics`, data: 'end' },
      ]);
    });

    test("'>' matches one or more trailing tokens", async () => {
      const r = new Reader<EventMessage>(sub.subscribe(`${base}.events.>`));
      await sub.flush();
      await pub.publish(`${base}.events`, 'no');
      await pub.publish(`${base}.events.a`, 1);
      await pub.publish(`${base}.other.a`, 'no');
      await pub.publish(`${base}.events.a.b.c`, 2);
      await pub.publish(`${base}.events.sentinel`, 'end');
      await pub.flush();
      expect((await r.take(3)).map((m) => m.data)).toEqual([1, 2, 'end']);
    });

    test('unsubscribe ends the iteration and stops delivery', async () => {
      const subject = `${base}.unsub`;
      const s = sub.subscribe(subject);
      const r = new Reader<EventMessage>(s);
      const witness = new Reader<EventMessage>(sub.subscribe(subject));
      await sub.flush();
      await pub.publish(subject, 1);
      await pub.flush();
      expect((await r.take(1)).map((m) => m.data)).toEqual([1]);
      expect((await witness.take(1)).map((m) => m.data)).toEqual([1]);
      s.unsubscribe();
      s.unsubscribe();
      await r.end();
      await sub.flush();
      await pub.publish(subject, 2);
      await pub.flush();
      expect((await witness.take(1)).map((m) => m.data)).toEqual([2]);
      expect(r.items.map((m) => m.data)).toEqual([1]);
      expect(r.error).toBeUndefined();
    });

    test('the signal ends the iteration; breaking out of it unsubscribes', async () => {
      const subject = `${base}.signal`;
      const ac = new AbortController();
      const r = new Reader<EventMessage>(sub.subscribe(subject, { signal: ac.signal }));
      await sub.flush();
      await pub.publish(subject, 1);
      await pub.flush();
      await r.take(1);
      ac.abort();
      await r.end();
      expect(r.error).toBeUndefined();

      const s = sub.subscribe(subject);
      await sub.flush();
      await pub.publish(subject, 'x');
      await pub.flush();
      for await (const m of s) {
        expect(m.data).toBe('x');
        break;
      }
    });

    test('publishing with no subscriber succeeds', async () => {
      await pub.publish(`${base}.nobody`, { any: 'thing' });
      await pub.flush();
    });

    test('closing the plane ends its subscriptions', async () => {
      const r = new Reader<EventMessage>(sub.subscribe(`${base}.closing`));
      await sub.flush();
      await sub.close();
      await r.end();
    });
  });
}
