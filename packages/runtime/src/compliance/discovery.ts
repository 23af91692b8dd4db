/**
 * The compliance suite of {@link Discovery}: every implementation (memory, etcd) must pass it.
 * Keys are unique per test (random prefix), so the suite can share a server with other suites.
 */
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import type { Discovery, DiscoveryEvent } from '../discovery/discovery';
import { Reader, eventually, rejection, uid } from './helpers';

/** What the suite needs from an implementation. */
export interface DiscoveryHarness {
  /** A new client (a new "process") connected to the same store. */
  connect(options?: { leaseTtlMs?: number }): Promise<Discovery>;
  /** Simulate the death of a client's process: stop keep-alives and connections without revoking the lease. */
  crash(client: Discovery): Promise<void>;
  /** Stop everything the harness started. */
  teardown(): Promise<void>;
}

/** Lease TTL of the crash tests: whole seconds, as etcd rounds up (and raises 1 s to its 2 s minimum). */
const SHORT_TTL_MS = 1000;
/** How long a crashed client's lease may take to expire: TTL, etcd's minimum TTL and its expiry sweep. */
const EXPIRY_BOUND_MS = SHORT_TTL_MS + 6000;

/** Registers the discovery compliance tests under `describe(name)`. */
export function describeDiscoveryCompliance(name: string, setup: () => Promise<DiscoveryHarness>): void {
  describe(name, () => {
    jest.setTimeout(20_000);
    let h: DiscoveryHarness;
    let prefix: string;

    beforeEach(async () => {
      h = await setup();
      prefix = `compliance/${uid()}/`;
    });
    afterEach(async () => {
      await h.teardown();
    });

    test('put, get, overwrite, delete', async () => {
      const c = await h.connect();
      const k = `${prefix}a`;
      expect(await c.get(k)).toBeUndefined();
      await c.put(k, 'v1', { lease: false });
      expect(await c.get(k)).toBe('v1');
      await c.put(k, 'v2', { lease: false });
      expect(await c.get(k)).toBe('v2');
      await c.delete(k);
      expect(await c.get(k)).toBeUndefined();
      await c.delete(k); // deleting a missing key is not an error
      await c.close();
    });

    test('getPrefix returns the keys under the prefix, sorted', async () => {
      const c = await h.connect();
      await c.put(`${prefix}b`, '2');
      await c.put(`${prefix}a`, '1');
      await c.put(`${prefix}c/d`, '3');
      await c.put(`${prefix.slice(0, -1)}-other`, 'x', { lease: false });
      expect(await c.getPrefix(prefix)).toEqual([
        { key: `${prefix}a`, value: '1' },
        { key: `${prefix}b`, value: '2' },
        { key: `${prefix}c/d`, value: '3' },
      ]);
      expect(await c.getPrefix(`${prefix}zz`)).toEqual([]);
      await c.delete(`${prefix.slice(0, -1)}-other`);
      await c.close();
    });

    test('values are shared between clients; each client has its own stable lease id', async () => {
      const a = await h.connect();
      const b = await h.connect();
      expect(a.leaseId).toMatch(/^[0-9a-f]+$/);
      expect(b.leaseId).toMatch(/^[0-9a-f]+$/);
      expect(a.leaseId).not.toBe(b.leaseId);
      expect(a.status).toBe('connected');
      await a.put(`${prefix}k`, 'from-a');
      expect(await b.get(`${prefix}k`)).toBe('from-a');
      const id = a.leaseId;
      await a.put(`${prefix}k2`, 'again');
      expect(a.leaseId).toBe(id);
      await a.close();
      await b.close();
    });

    test('leased keys vanish at once when the client closes; unleased keys stay', async () => {
      const a = await h.connect();
      const b = await h.connect();
      await a.put(`${prefix}leased`, 'x');
      await a.put(`${prefix}kept`, 'y', { lease: false });
      expect(await b.get(`${prefix}leased`)).toBe('x');
      await a.close();
      expect(a.status).toBe('closed');
      expect(await b.get(`${prefix}leased`)).toBeUndefined();
      expect(await b.get(`${prefix}kept`)).toBe('y');
      await b.delete(`${prefix}kept`);
      await b.close();
    });

    test('close is idempotent and later calls fail with CLOSED', async () => {
      const a = await h.connect();
      await a.close();
      await a.close();
      expect((await rejection(a.get(`${prefix}x`))).code).toBe('CLOSED');
      expect((await rejection(a.put(`${prefix}x`, 'v'))).code).toBe('CLOSED');
    });

    test('a crashed client keeps its keys until its lease expires', async () => {
      const a = await h.connect({ leaseTtlMs: SHORT_TTL_MS });
      const b = await h.connect();
      await a.put(`${prefix}instance`, 'alive');
      await h.crash(a);
      expect(await b.get(`${prefix}instance`)).toBe('alive');
      await eventually(
        'the crashed lease to expire',
        async () => (await b.get(`${prefix}instance`)) === undefined,
        EXPIRY_BOUND_MS,
      );
      await b.close();
    });

    test('a live client keeps its short lease alive past its TTL', async () => {
      const a = await h.connect({ leaseTtlMs: SHORT_TTL_MS });
      const b = await h.connect();
      await a.put(`${prefix}instance`, 'alive');
      // Wait well past the (effective) TTL: keep-alives must hold the key.
      await new Promise((r) => setTimeout(r, 2500));
      expect(await b.get(`${prefix}instance`)).toBe('alive');
      expect(a.status).toBe('connected');
      await a.close();
      await b.close();
    });

    test('watch: snapshot sorted, then synced, then changes in order', async () => {
      const a = await h.connect();
      await a.put(`${prefix}b`, '2');
      await a.put(`${prefix}a`, '1');
      await a.put(`${prefix.slice(0, -1)}-outside`, 'o', { lease: false });
      const w = a.watchPrefix(prefix);
      const r = new Reader<DiscoveryEvent>(w);
      expect(await r.take(3)).toEqual([
        { type: 'put', key: `${prefix}a`, value: '1' },
        { type: 'put', key: `${prefix}b`, value: '2' },
        { type: 'synced' },
      ]);
      await a.put(`${prefix}c`, '3');
      await a.delete(`${prefix}a`);
      await a.put(`${prefix}b`, '2b');
      await a.put(`${prefix.slice(0, -1)}-outside`, 'o2', { lease: false });
      await a.put(`${prefix}d`, '4');
      expect(await r.take(4)).toEqual([
        { type: 'put', key: `${prefix}c`, value: '3' },
        { type: 'delete', key: `${prefix}a` },
        { type: 'put', key: `${prefix}b`, value: '2b' },
        { type: 'put', key: `${prefix}d`, value: '4' },
      ]);
      w.close();
      await r.end();
      await a.delete(`${prefix.slice(0, -1)}-outside`);
      await a.close();
    });

    test('watch of an empty prefix starts with synced; many changes arrive in order', async () => {
      const a = await h.connect();
      const b = await h.connect();
      const w = b.watchPrefix(prefix);
      const r = new Reader<DiscoveryEvent>(w);
      expect(await r.take(1)).toEqual([{ type: 'synced' }]);
      const n = 50;
      for (let i = 0; i < n; i++) await a.put(`${prefix}k`, String(i));
      const events = await r.take(n);
      expect(events.map((e) => (e.type === 'put' ? e.value : e.type))).toEqual(
        Array.from({ length: n }, (_, i) => String(i)),
      );
      w.close();
      await r.end();
      await a.close();
      await b.close();
    });

    test('watch reports the deletes of a closed client (lease revoked)', async () => {
      const a = await h.connect();
      const b = await h.connect();
      const r = new Reader<DiscoveryEvent>(b.watchPrefix(prefix));
      expect(await r.take(1)).toEqual([{ type: 'synced' }]);
      await a.put(`${prefix}x`, '1');
      await a.put(`${prefix}y`, '2');
      expect(await r.take(2)).toEqual([
        { type: 'put', key: `${prefix}x`, value: '1' },
        { type: 'put', key: `${prefix}y`, value: '2' },
      ]);
      await a.close();
      const deletes = await r.take(2);
      expect(deletes.map((e) => e.type)).toEqual(['delete', 'delete']);
      expect(deletes.map((e) => (e.type === 'delete' ? e.key : '')).sort()).toEqual([`${prefix}x`, `${prefix}y`]);
      await b.close();
      await r.end();
    });

    test('watch reports the delete when a crashed client lease expires', async () => {
      const a = await h.connect({ leaseTtlMs: SHORT_TTL_MS });
      const b = await h.connect();
      const r = new Reader<DiscoveryEvent>(b.watchPrefix(prefix));
      expect(await r.take(1)).toEqual([{ type: 'synced' }]);
      await a.put(`${prefix}instance`, 'alive');
      expect(await r.take(1)).toEqual([{ type: 'put', key: `${prefix}instance`, value: 'alive' }]);
      await h.crash(a);
      expect(await r.take(1, EXPIRY_BOUND_MS)).toEqual([{ type: 'delete', key: `${prefix}instance` }]);
      await b.close();
      await r.end();
    });

    test('a watch started after a put sees it in the snapshot', async () => {
      const a = await h.connect();
      const b = await h.connect();
      await a.put(`${prefix}k`, 'v');
      const r = new Reader<DiscoveryEvent>(b.watchPrefix(prefix));
      expect(await r.take(2)).toEqual([{ type: 'put', key: `${prefix}k`, value: 'v' }, { type: 'synced' }]);
      await a.close();
      await b.close();
      await r.end();
    });

    test('close() of a watch, its signal and the client closing each end the iteration', async () => {
      const a = await h.connect();
      const w1 = a.watchPrefix(prefix);
      const r1 = new Reader<DiscoveryEvent>(w1);
      await r1.take(1);
      w1.close();
      await r1.end();
      expect(r1.error).toBeUndefined();

      const ac = new AbortController();
      const r2 = new Reader<DiscoveryEvent>(a.watchPrefix(prefix, { signal: ac.signal }));
      await r2.take(1);
      ac.abort();
      await r2.end();

      const r3 = new Reader<DiscoveryEvent>(a.watchPrefix(prefix));
      await r3.take(1);
      await a.close();
      await r3.end();
    });

    test('breaking out of a watch iteration stops the watch', async () => {
      const a = await h.connect();
      const w = a.watchPrefix(prefix);
      const seen: DiscoveryEvent[] = [];
      for await (const ev of w) {
        seen.push(ev);
        if (ev.type === 'synced') break;
      }
      expect(seen).toEqual([{ type: 'synced' }]);
      await a.put(`${prefix}k`, 'v');
      await a.close();
    });

    test('an aborted signal fails calls with CANCELLED', async () => {
      const a = await h.connect();
      const ac = new AbortController();
      ac.abort();
      expect((await rejection(a.get(`${prefix}k`, { signal: ac.signal }))).code).toBe('CANCELLED');
      expect((await rejection(a.put(`${prefix}k`, 'v', { signal: ac.signal }))).code).toBe('CANCELLED');
      expect((await rejection(a.getPrefix(prefix, { signal: ac.signal }))).code).toBe('CANCELLED');
      expect((await rejection(a.delete(`${prefix}k`, { signal: ac.signal }))).code).toBe('CANCELLED');
      expect(await a.get(`${prefix}k`)).toBeUndefined();
      const r = new Reader<DiscoveryEvent>(a.watchPrefix(prefix, { signal: ac.signal }));
      await r.end();
      expect(r.items).toEqual([]);
      await a.close();
    });
  });
}
