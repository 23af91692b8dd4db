import { createLogger } from '@dynamo-ts/runtime';
import { startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';
import { distributedPlatform, serveGraph, type GraphHandle, type ServeSettings } from '@dynamo-ts/sdk';
import { Etcd3 } from 'etcd3';
import { describeWithBinaries } from '../../../../test/support/integration';
import { DummyWorker, Frontend } from '../../components/graph';
import { generateJson, generateSse, uniqueNamespace } from '../helpers';

jest.setTimeout(90_000);

/**
 * Faults of the distributed deployment over real nats-server and etcd: a worker dying without
 * a goodbye (what kill -9 looks like to the others: its NATS subscriptions vanish and its lease
 * is never revoked), and etcd going away for 15 s under traffic.
 */
describeWithBinaries(['nats-server', 'etcd'], 'distributed hello-world under faults', () => {
  let nats: NatsServer;
  let etcd: EtcdServer;
  let etcdClient: Etcd3;
  const graphs: GraphHandle[] = [];
  const logger = createLogger({ silent: true });
  const leaseTtlMs = 2000;

  const serve = async (
    namespace: string,
    root: typeof Frontend | typeof DummyWorker,
    workerName: string,
    config = {},
  ) => {
    const settings: ServeSettings = { namespace, port: 0, workerName, leaseTtlMs };
    const platform = await distributedPlatform({
      natsServers: [nats.url],
      etcdEndpoints: [etcd.url],
      leaseTtlMs,
      logger,
    });
    const g = await serveGraph(root, { platform, settings, config, logger });
    graphs.push(g);
    return g;
  };

  const deployment = async () => {
    const ns = uniqueNamespace('fault');
    const frontend = await serve(ns, Frontend, 'graph', { Frontend: { port: 0, host: '127.0.0.1' } });
    const node1 = await serve(ns, DummyWorker, 'node1');
    const node2 = await serve(ns, DummyWorker, 'node2');
    const url = frontend.get('Frontend')[0]!.instance.metadata!.url as string;
    for (let i = 0; i < 200; i++) {
      const h = (await (await fetch(`${url}/health`)).json()) as { workers?: number };
      if (h.workers === 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    return { ns, url, workers: { node1, node2 } };
  };

  beforeAll(async () => {
    [nats, etcd] = await Promise.all([startNatsServer(), startEtcd()]);
    etcdClient = new Etcd3({ hosts: etcd.url });
  });
  afterAll(async () => {
    for (const g of graphs.reverse()) await g.close({ timeoutMs: 2000 });
    etcdClient?.close();
    await Promise.all([nats?.dispose(), etcd?.dispose()]);
  });

  it('loses no request when the worker that served "Tell me a joke" dies, and etcd drops it within TTL + 1 s', async () => {
    const { ns, url, workers } = await deployment();
    const joke = await generateSse(url, 'Tell me a joke');
    expect(joke.status).toBe(200);
    const victim = workers[joke.worker as 'node1' | 'node2'];
    const survivor = joke.worker === 'node1' ? 'node2' : 'node1';
    const rt = victim.services[0]!.runtime;
    const key = `dynamo/${ns}/instances/DummyWorker/generate/${rt.instanceId}`;
    expect(await etcdClient.get(key).string()).not.toBeNull();

    // Die without a goodbye: subscriptions gone, lease left to expire.
    const crashedAt = Date.now();
    await (rt.discovery as unknown as { crash(): Promise<void> }).crash();
    await rt.requestPlane.close();
    await rt.eventPlane.close();

    // etcd is polled on its own every 50 ms (checking between requests would add their latency
    // under load to the measured expiry).
    let goneAfterMs: number | undefined;
    const poll = (async () => {
      while (goneAfterMs === undefined && Date.now() - crashedAt < 15_000) {
        if ((await etcdClient.get(key).string()) === null) goneAfterMs = Date.now() - crashedAt;
        else await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // 30 requests with the joke's prefix over the next 6 s.
    const results: Array<{ status: number; output: string }> = [];
    for (let i = 0; i < 30; i++) {
      const r = await generateJson(url, `Tell me a joke number ${i}`);
      results.push({ status: r.status, output: r.body.worker_output });
      await new Promise((r) => setTimeout(r, 200));
    }
    await poll;
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    results.forEach((r, i) => expect(r.output).toBe(`Tell me a joke number ${i}_GeneratedBy_${survivor}`));
    expect(goneAfterMs).toBeDefined();
    // etcd's smallest lease TTL is 2 s; the key must be gone within TTL + 1 s of the crash.
    expect(goneAfterMs!).toBeLessThanOrEqual(leaseTtlMs + 1000 + 250);
  });

  it('keeps serving through a 15 s etcd outage and registers again when etcd returns', async () => {
    const { ns, url } = await deployment();
    const prefix = `dynamo/${ns}/instances/`;
    const before = (await etcdClient.getAll().prefix(prefix).keys()).sort();
    expect(before).toHaveLength(4); // Router, Processor and two DummyWorkers (the Frontend serves no endpoint)
    await etcd.stop();
    const statuses: number[] = [];
    const until = Date.now() + 15_000;
    let i = 0;
    while (Date.now() < until) {
      const r = await generateJson(url, `${i % 2 ? 'Tell me' : 'Which team'} during the outage ${i++}`);
      statuses.push(r.status);
      await new Promise((r) => setTimeout(r, 250));
    }
    await etcd.start();
    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // Every registration is back (same instance ids) within a few seconds.
    let after: string[] = [];
    for (let t = 0; t < 100; t++) {
      after = (
        await etcdClient
          .getAll()
          .prefix(prefix)
          .keys()
          .catch(() => [])
      ).sort();
      if (after.length === before.length && after.every((k, j) => k === before[j])) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(after).toEqual(before);
    const r = await generateJson(url, 'Tell me a joke after the outage');
    expect(r.status).toBe(200);
  });
});
