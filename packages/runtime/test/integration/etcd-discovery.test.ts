/**
 * EtcdDiscovery against a real etcd (started once for the file): the discovery compliance
 * suite, then what only a real server shows: an outage longer than the lease TTL, a lease lost
 * behind the client's back, a client killed without revoking, and etcd being absent at start.
 */
import net from 'node:net';
import { Etcd3 } from 'etcd3';
import type { Discovery, DiscoveryEvent } from '../../src/discovery/discovery';
import { EtcdDiscovery, type EtcdDiscoveryOptions } from '../../src/discovery/etcd';
import { instanceKey } from '../../src/names';
import { freePort, startEtcd, type EtcdServer } from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import { describeDiscoveryCompliance, Reader, delay, eventually, rejection, uid } from '@dynamo-ts/runtime/compliance';

/** A TCP proxy to a loopback port that can cut every connection and refuse new ones (a network partition). */
class PartitionProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    readonly port: number,
    private readonly target: number,
  ) {}
  static async start(target: number): Promise<PartitionProxy> {
    const p = new PartitionProxy(await freePort(), target);
    await p.restore();
    return p;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  /** Accepts connections again (on the same port). */
  async restore(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: this.target });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }
  /** Drops every connection and refuses new ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describeWithBinaries(['etcd'], 'EtcdDiscovery', () => {
  jest.setTimeout(30_000);
  let etcd: EtcdServer;

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.dispose();
  });

  /** Clients opened by a test; close() closes (revokes) whatever is still open. */
  function clients(): {
    open(options?: Partial<EtcdDiscoveryOptions>): Promise<EtcdDiscovery>;
    close(): Promise<void>;
  } {
    const all: EtcdDiscovery[] = [];
    return {
      async open(options = {}) {
        const c = await EtcdDiscovery.connect({ endpoints: [etcd.url], ...options });
        all.push(c);
        return c;
      },
      async close() {
        await Promise.all(all.splice(0).map((c) => c.close()));
      },
    };
  }

  describeDiscoveryCompliance('compliance', async () => {
    const c = clients();
    return {
      connect: (options) => c.open(options),
      crash: (client: Discovery) => (client as EtcdDiscovery).crash(),
      teardown: () => c.close(),
    };
  });

  describe('with a real server', () => {
    const c = clients();
    let unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => {
      unhandled.push(e);
    };
    beforeEach(() => {
      unhandled = [];
      process.on('unhandledRejection', onUnhandled);
    });
    afterEach(async () => {
      process.off('unhandledRejection', onUnhandled);
      if (!etcd.running) await etcd.start();
      await c.close();
    });

    test('the lease id is the etcd lease, in hex; the TTL is whole seconds', async () => {
      const a = await c.open({ leaseTtlMs: 1500 });
      const raw = new Etcd3({ hosts: etcd.url });
      try {
        const ttl = await raw.leaseClient.leaseTimeToLive({ ID: BigInt(`0x${a.leaseId}`).toString() });
        expect(Number(ttl.grantedTTL)).toBe(2);
      } finally {
        raw.close();
      }
    });

    test('an outage longer than the lease TTL: nothing throws, status goes disconnected, then everything is back', async () => {
      const ns = `outage-${uid()}`;
      const a = await c.open({ leaseTtlMs: 2000 });
      const b = await c.open();
      const key = instanceKey(ns, 'Worker', 'generate', a.leaseId);
      await a.put(key, 'worker-a');
      await a.put(`${key}-config`, 'cfg', { lease: false });
      const r = new Reader<DiscoveryEvent>(b.watchPrefix(`dynamo/${ns}/`));
      expect(await r.take(3)).toEqual([
        { type: 'put', key, value: 'worker-a' },
        { type: 'put', key: `${key}-config`, value: 'cfg' },
        { type: 'synced' },
      ]);
      const leaseId = a.leaseId;

      await etcd.stop();
      await eventually('a to notice the outage', () => a.status === 'disconnected', 3000);
      expect((await rejection(a.get(key))).code).toBe('UNAVAILABLE');
      expect((await rejection(b.put(`${key}-x`, 'v'))).code).toBe('UNAVAILABLE');
      await delay(3000); // longer than the lease TTL
      expect(a.status).toBe('disconnected');
      expect(r.ended).toBe(false);

      await etcd.start();
      await eventually('a to reconnect', () => a.status === 'connected', 10_000);
      await eventually('b to reconnect', async () => (await b.get(key).catch(() => undefined)) === 'worker-a', 10_000);
      expect(a.leaseId).toBe(leaseId);
      expect(await b.getPrefix(`dynamo/${ns}/`)).toEqual([
        { key, value: 'worker-a' },
        { key: `${key}-config`, value: 'cfg' },
      ]);
      // The watcher's view is the final state: whatever it saw, the key is there at the end.
      await a.put(`${key}-marker`, 'm');
      await eventually(
        'the watcher to see the marker',
        () => r.items.some((e) => e.type === 'put' && e.key === `${key}-marker`),
        10_000,
      );
      const view = new Map<string, string>();
      for (const e of r.items) {
        if (e.type === 'put') view.set(e.key, e.value);
        else if (e.type === 'delete') view.delete(e.key);
      }
      expect(Object.fromEntries(view)).toEqual({ [key]: 'worker-a', [`${key}-config`]: 'cfg', [`${key}-marker`]: 'm' });
      expect(r.error).toBeUndefined();
      expect(unhandled).toEqual([]);
      await a.delete(`${key}-config`);
    });

    test('a partition longer than the TTL: the lease expires, and the key is back with the same lease id after it', async () => {
      const proxy = await PartitionProxy.start(etcd.port);
      try {
        const ns = `partition-${uid()}`;
        const a = await c.open({ endpoints: [proxy.url], leaseTtlMs: 1000 });
        const b = await c.open();
        const key = instanceKey(ns, 'Worker', 'generate', a.leaseId);
        await a.put(key, 'worker-a');
        const seenByB = new Reader<DiscoveryEvent>(b.watchPrefix(`dynamo/${ns}/`));
        const seenByA = new Reader<DiscoveryEvent>(a.watchPrefix(`dynamo/${ns}/`));
        expect(await seenByB.take(2)).toEqual([{ type: 'put', key, value: 'worker-a' }, { type: 'synced' }]);
        expect(await seenByA.take(2)).toEqual([{ type: 'put', key, value: 'worker-a' }, { type: 'synced' }]);
        const leaseId = a.leaseId;

        await proxy.cut();
        await eventually('a to notice the partition', () => a.status === 'disconnected', 3000);
        expect((await rejection(a.put(`${key}-2`, 'v'))).code).toBe('UNAVAILABLE');
        // etcd (still up) expires a's lease: the others see the instance go.
        expect(await seenByB.take(1, 5000)).toEqual([{ type: 'delete', key }]);
        expect(unhandled).toEqual([]);

        await proxy.restore();
        await eventually('a to reconnect', () => a.status === 'connected', 10_000);
        expect(a.leaseId).toBe(leaseId);
        // Re-registered under the same lease id (same key), so the others see it come back.
        expect(await seenByB.take(1, 5000)).toEqual([{ type: 'put', key, value: 'worker-a' }]);
        expect(await b.get(key)).toBe('worker-a');
        // a's own watch resynced: the key went and came back while it was cut off, so it reports
        // nothing (no spurious delete of a key that exists).
        await a.put(`${key}-marker`, 'm');
        expect(await seenByA.take(1, 5000)).toEqual([{ type: 'put', key: `${key}-marker`, value: 'm' }]);
        // The keys hang on the re-granted lease: closing a removes them at once.
        await a.close();
        expect(await b.getPrefix(`dynamo/${ns}/`)).toEqual([]);
      } finally {
        await c.close();
        await proxy.cut();
      }
    });

    test('a lease lost behind the client is granted again with the same id and its keys put again', async () => {
      const prefix = `lost/${uid()}/`;
      const a = await c.open({ leaseTtlMs: 1000 });
      const b = await c.open();
      await a.put(`${prefix}one`, '1');
      await a.put(`${prefix}two`, '2');
      const r = new Reader<DiscoveryEvent>(b.watchPrefix(prefix));
      expect(await r.take(3)).toHaveLength(3);
      // Revoke a's lease from outside, as an expiry during an outage would.
      const raw = new Etcd3({ hosts: etcd.url });
      try {
        await raw.leaseClient.leaseRevoke({ ID: BigInt(`0x${a.leaseId}`).toString() });
      } finally {
        raw.close();
      }
      const events = await r.take(4, 5000);
      expect(events.slice(0, 2).map((e) => e.type)).toEqual(['delete', 'delete']);
      expect(events.slice(2)).toEqual([
        { type: 'put', key: `${prefix}one`, value: '1' },
        { type: 'put', key: `${prefix}two`, value: '2' },
      ]);
      expect(await b.getPrefix(prefix)).toHaveLength(2);
      expect(a.status).toBe('connected');
      // The keys are bound to the re-granted lease: closing a removes them at once.
      await a.close();
      expect(await b.getPrefix(prefix)).toEqual([]);
    });

    test('a client killed without revoking: its key vanishes within TTL + 1 s', async () => {
      const key = `killed/${uid()}`;
      const a = await c.open({ leaseTtlMs: 2000 });
      const b = await c.open();
      await a.put(key, 'alive');
      await delay(1500); // a keep-alive or two have gone out
      await a.crash();
      const crashedAt = Date.now();
      expect(await b.get(key)).toBe('alive');
      await eventually('the key to vanish', async () => (await b.get(key)) === undefined, 3000 + 500);
      expect(Date.now() - crashedAt).toBeLessThanOrEqual(3000 + 200);
    });

    test('connect fails with UNAVAILABLE when etcd is not there', async () => {
      const port = await freePort();
      const started = Date.now();
      const err = await rejection(
        EtcdDiscovery.connect({ endpoints: [`http://127.0.0.1:${port}`], dialTimeoutMs: 500 }),
      );
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toContain(String(port));
      expect(Date.now() - started).toBeLessThan(3000);
    });

    test('a watch started during an outage delivers its snapshot when etcd returns', async () => {
      const prefix = `late/${uid()}/`;
      const a = await c.open();
      await a.put(`${prefix}k`, 'v');
      await etcd.stop();
      const r = new Reader<DiscoveryEvent>(a.watchPrefix(prefix));
      await delay(500);
      expect(r.items).toEqual([]);
      await etcd.start();
      expect(await r.take(2, 10_000)).toEqual([{ type: 'put', key: `${prefix}k`, value: 'v' }, { type: 'synced' }]);
      await a.close();
      await r.end();
    });
  });
});
