/**
 * The seed's disaggregated demo over the least-privilege NATS authorization of
 * docs/security.md (natsAuthorizationConfig): decode workers push prefill jobs to JetStream,
 * a prefill worker holding only the prefill role pulls them and answers; a decode worker's
 * credentials cannot pull the jobs (they carry other users' prompts).
 */
import { createLogger, inboxPrefixFor, natsAuthorizationConfig, type NatsRoleUser } from '@dynamo-ts/runtime';
import { connectNats, JetStreamWorkQueue } from '@dynamo-ts/runtime/nats';
import { startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';
import { distributedPlatform, serveGraph, type GraphHandle, type ServeSettings } from '@dynamo-ts/sdk';
import { describeWithBinaries } from '../../../../test/support/integration';
import { DummyWorker, Frontend } from '../../components/graph';
import { PrefillWorker } from '../../components/prefill-worker';
import { generateJson, uniqueNamespace } from '../helpers';

const namespace = uniqueNamespace('sdg');
const users: NatsRoleUser[] = [
  { user: 'graph', password: 'pw-graph-11', role: 'frontend' },
  { user: 'decode1', password: 'pw-decode1-22', role: 'worker', scope: 'decode1' },
  { user: 'prefill1', password: 'pw-prefill1-33', role: 'prefill', scope: 'prefill1' },
];

describeWithBinaries(['nats-server', 'etcd'], 'secured disaggregated hello-world graph', () => {
  jest.setTimeout(60_000);
  let nats: NatsServer;
  let etcd: EtcdServer;
  const graphs: GraphHandle[] = [];
  const logger = createLogger({ silent: true });

  beforeAll(async () => {
    [nats, etcd] = await Promise.all([
      startNatsServer({ config: natsAuthorizationConfig(users, { namespace }) }),
      startEtcd(),
    ]);
  });
  afterAll(async () => {
    for (const g of graphs.reverse()) await g.close({ timeoutMs: 2000 }).catch(() => undefined);
    await Promise.all([nats?.dispose(), etcd?.dispose()]);
  });

  async function serve(root: typeof Frontend | typeof DummyWorker | typeof PrefillWorker, user: string, config = {}) {
    const u = users.find((x) => x.user === user)!;
    const settings: ServeSettings = { namespace, port: 0, workerName: user, leaseTtlMs: 2000 };
    const platform = await distributedPlatform({
      natsServers: [nats.url],
      etcdEndpoints: [etcd.url],
      leaseTtlMs: settings.leaseTtlMs,
      logger,
      nats: { user, password: u.password, inboxPrefix: inboxPrefixFor(user) },
      ...(u.scope ? { subjectScope: u.scope } : {}),
    });
    const g = await serveGraph(root, { platform, settings, config, logger });
    graphs.push(g);
    return g;
  }

  it('answers after the prefill worker pulled the job; decode credentials cannot pull jobs', async () => {
    await serve(DummyWorker, 'decode1', {
      DummyWorker: { remote_prefill: true, max_local_prefill_length: 0, max_prefill_queue_size: 100 },
    });
    await serve(PrefillWorker, 'prefill1', { PrefillWorker: { delay_ms: 20 } });
    const g = await serve(Frontend, 'graph', { Frontend: { port: 0, host: '127.0.0.1' } });
    const url = g.get('Frontend')[0]!.instance.metadata!.url as string;
    for (let i = 0; i < 200; i++) {
      if (((await (await fetch(`${url}/health`)).json()) as { workers?: number }).workers === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    // Different prompts: a cached prefix would be prefilled locally.
    for (const prompt of ['This is prefill disagg serving example', 'Quite another prompt entirely']) {
      const r = await generateJson(url, prompt);
      expect(r.status).toBe(200);
      expect(r.body.worker_output).toBe(`${prompt}_GeneratedBy_decode1`);
    }
    const jsz = (await (await fetch(`${nats.monitorUrl}/jsz?streams=true&consumers=true`)).json()) as {
      account_details?: Array<{ stream_detail?: Array<{ name: string; state: { last_seq: number } }> }>;
    };
    const stream = (jsz.account_details ?? [])
      .flatMap((a) => a.stream_detail ?? [])
      .find((s) => s.name === `DYNAMO_${namespace.toUpperCase().replace(/-/g, '_')}_PREFILL`);
    expect(stream?.state.last_seq).toBeGreaterThanOrEqual(2);

    // A thief with decode1's credentials tries to pull the next job.
    const nc = await connectNats({
      servers: nats.url,
      user: 'decode1',
      password: users[1]!.password,
      inboxPrefix: inboxPrefixFor('decode1'),
    });
    const thief = await JetStreamWorkQueue.create(nc, { namespace, name: 'prefill' });
    const ac = new AbortController();
    const stolen: unknown[] = [];
    const stealing = (async () => {
      try {
        for await (const job of thief.consume({ signal: ac.signal })) stolen.push(job.data);
      } catch {
        // refused
      }
    })();
    const r = await generateJson(url, 'Zebras prefer a third prompt');
    expect(r.body.worker_output).toBe('Zebras prefer a third prompt_GeneratedBy_decode1');
    ac.abort();
    await stealing;
    expect(stolen).toEqual([]);
    await thief.close();
    await nc.close();
  });
});
