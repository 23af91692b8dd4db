import { createLogger } from '@dynamo-ts/runtime';
import { startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';
import { distributedPlatform, serveGraph, type GraphHandle, type ServeSettings } from '@dynamo-ts/sdk';
import { Etcd3 } from 'etcd3';
import { describeWithBinaries } from '../../../../test/support/integration';
import { DummyWorker, Frontend } from '../../components/graph';
import { generateSse, uniqueNamespace } from '../helpers';

/**
 * The seed's two-node aggregated deployment over real NATS and etcd: the graph (Frontend,
 * Processor, Router) and two DummyWorkers, each with its own NATS connection and etcd lease, as
 * separate processes would have.
 */
describeWithBinaries(['nats-server', 'etcd'], 'distributed hello-world graph (NATS + etcd)', () => {
  let nats: NatsServer;
  let etcd: EtcdServer;
  const graphs: GraphHandle[] = [];
  const logger = createLogger({ silent: true });
  const namespace = uniqueNamespace('dist');

  const serve = async (root: typeof Frontend | typeof DummyWorker, workerName: string, config = {}) => {
    const settings: ServeSettings = { namespace, port: 0, workerName, leaseTtlMs: 2000 };
    const platform = await distributedPlatform({
      natsServers: [nats.url],
      etcdEndpoints: [etcd.url],
      leaseTtlMs: settings.leaseTtlMs,
      logger,
    });
    const g = await serveGraph(root, { platform, settings, config, logger });
    graphs.push(g);
    return g;
  };

  beforeAll(async () => {
    [nats, etcd] = await Promise.all([startNatsServer(), startEtcd()]);
  });
  afterAll(async () => {
    for (const g of graphs.reverse()) await g.close({ timeoutMs: 2000 });
    await Promise.all([nats?.dispose(), etcd?.dispose()]);
  });

  it("routes the seed's prompts across two worker processes and lists them in etcd", async () => {
    const frontend = await serve(Frontend, 'node1', { Frontend: { port: 0, host: '127.0.0.1' } });
    expect(frontend.services.map((s) => s.definition.name)).toEqual(['Router', 'Processor', 'Frontend']);
    await serve(DummyWorker, 'node1');
    await serve(DummyWorker, 'node2');
    const url = frontend.get('Frontend')[0]!.instance.metadata!.url as string;
    for (let i = 0; i < 100; i++) {
      const h = await fetch(`${url}/health`);
      if (((await h.json()) as { workers?: number }).workers === 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }

    const client = new Etcd3({ hosts: etcd.url });
    try {
      const keys = await client.getAll().prefix(`dynamo/${namespace}/instances/DummyWorker/`).keys();
      expect(keys).toHaveLength(2);
      const values = Object.values(
        await client.getAll().prefix(`dynamo/${namespace}/instances/DummyWorker/`).json(),
      ) as Array<{ name: string }>;
      expect(values.map((v) => v.name).sort()).toEqual(['node1', 'node2']);
    } finally {
      client.close();
    }

    const joke = await generateSse(url, 'Tell me a joke', 'id_number');
    expect(joke.output).toMatch(/^Tell me a joke_GeneratedBy_node[12]$/);
    // KV events travel over NATS: give the router a moment to index them.
    await new Promise((r) => setTimeout(r, 100));
    const series = await generateSse(url, 'Which team won 2020 World Series', 'id_number');
    expect(series.worker).not.toBe(joke.worker);
    await new Promise((r) => setTimeout(r, 100));
    const fact = await generateSse(url, 'Tell me a fact', 'id_number');
    expect(fact.output).toBe(`Tell me a fact_GeneratedBy_${joke.worker}`);
  });
});
