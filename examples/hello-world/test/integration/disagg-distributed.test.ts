import { PassThrough } from 'node:stream';
import { createLogger, DistributedRuntime, flushLogs, metrics, type Logger } from '@dynamo-ts/runtime';
import { connectNats, JetStreamWorkQueue, NatsEventPlane, NatsRequestPlane } from '@dynamo-ts/runtime/nats';
import { EtcdDiscovery } from '@dynamo-ts/runtime/etcd';
import { startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';
import { distributedPlatform, serveGraph, type GraphHandle, type Platform, type ServeSettings } from '@dynamo-ts/sdk';
import { describeWithBinaries } from '../../../../test/support/integration';
import { DummyWorker, Frontend } from '../../components/graph';
import { PrefillWorker } from '../../components/prefill-worker';
import { generateJson, uniqueNamespace } from '../helpers';

type Line = Record<string, unknown>;

/** A logger whose JSON lines land in `lines`. */
function capture(lines: Line[]): Logger {
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => {
    for (const l of d.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Line);
  });
  return createLogger({ stream, level: 'info' });
}

/** The 'prefill done' lines of one request, once at least one was written (lines are written at the end of the event-loop turn). */
async function prefillDoneLines(lines: Line[], requestId: string): Promise<Line[]> {
  const done = (): Line[] => lines.filter((l) => l.message === 'prefill done' && l.request_id === requestId);
  await until(`'prefill done' for ${requestId}`, () => {
    flushLogs();
    return done().length > 0;
  });
  return done();
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Disaggregated serving over real NATS JetStream and etcd, each service with its own
 * connection and lease as separate processes have: the seed's request, a prefill worker dying
 * with a job in hand (redelivery), and no prefill worker at all (the deadline path).
 */
describeWithBinaries(['nats-server', 'etcd'], 'disaggregated hello-world graph (JetStream + etcd)', () => {
  let nats: NatsServer;
  let etcd: EtcdServer;
  const graphs: GraphHandle[] = [];

  beforeAll(async () => {
    [nats, etcd] = await Promise.all([startNatsServer({ jetstream: true }), startEtcd()]);
  });
  afterAll(async () => {
    for (const g of graphs.reverse()) await g.close({ timeoutMs: 2000 }).catch(() => undefined);
    await Promise.all([nats?.dispose(), etcd?.dispose()]);
  });

  /** Serves `root` as its own "process" (NATS connection + etcd lease). */
  async function serve(
    namespace: string,
    root: typeof Frontend | typeof DummyWorker | typeof PrefillWorker,
    workerName: string,
    config: Record<string, Record<string, unknown>>,
    logger: Logger,
  ): Promise<GraphHandle> {
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
  }

  /** Like {@link serve}, for a prefill worker that can be killed without any goodbye. */
  async function serveCrashable(
    namespace: string,
    workerName: string,
    config: Record<string, unknown>,
    logger: Logger,
  ) {
    const nc = await connectNats({ servers: [nats.url], name: workerName });
    const discoveries: EtcdDiscovery[] = [];
    const platform: Platform = {
      mode: 'distributed',
      async newRuntime(log: Logger) {
        const discovery = await EtcdDiscovery.connect({ endpoints: [etcd.url], leaseTtlMs: 2000 });
        discoveries.push(discovery);
        return new DistributedRuntime({
          discovery,
          requestPlane: new NatsRequestPlane(nc, { logger: log }),
          eventPlane: new NatsEventPlane(nc, { logger: log }),
          openQueue: (o) => JetStreamWorkQueue.create(nc, { ...o, logger: log }),
          logger: log,
        });
      },
      async close() {
        if (!nc.isClosed()) await nc.close();
      },
    };
    const settings: ServeSettings = { namespace, port: 0, workerName, leaseTtlMs: 2000 };
    const g = await serveGraph(PrefillWorker, { platform, settings, config: { PrefillWorker: config }, logger });
    graphs.push(g);
    return {
      /** The "process" dies: its NATS connection drops, its lease is left to expire. */
      async kill(): Promise<void> {
        await nc.close();
        for (const d of discoveries) await d.crash();
      },
    };
  }

  const decodeConfig = (over: Record<string, unknown> = {}) => ({
    DummyWorker: { remote_prefill: true, max_local_prefill_length: 0, max_prefill_queue_size: 100, ...over },
  });

  async function frontendUrl(namespace: string, logger: Logger, decodeWorkers: number): Promise<string> {
    const g = await serve(namespace, Frontend, 'graph', { Frontend: { port: 0, host: '127.0.0.1' } }, logger);
    const url = g.get('Frontend')[0]!.instance.metadata!.url as string;
    await until('decode workers in /health', async () => {
      const h = (await (await fetch(`${url}/health`)).json()) as { workers?: number };
      return h.workers === decodeWorkers;
    });
    return url;
  }

  it("answers the seed's disaggregated request after a prefill worker pulled the job (jsz shows it)", async () => {
    const namespace = uniqueNamespace('dsg');
    const lines: Line[] = [];
    const logger = capture(lines);
    await serve(namespace, DummyWorker, 'decode1', decodeConfig(), logger);
    await serve(namespace, DummyWorker, 'decode2', decodeConfig(), logger);
    await serve(namespace, PrefillWorker, 'prefill1', { PrefillWorker: { delay_ms: 20 } }, logger);
    const url = await frontendUrl(namespace, logger, 2);

    const r = await generateJson(url, 'This is prefill disagg serving example', '12345');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      worker_output: expect.stringMatching(/^This is prefill disagg serving example_GeneratedBy_decode[12]$/),
      request_id: '12345',
    });
    // The worker logs 'prefill done' after its ack, which can come after the answer reached us.
    const done = await prefillDoneLines(lines, '12345');
    expect(done).toHaveLength(1);

    const jsz = (await (await fetch(`${nats.monitorUrl}/jsz?streams=true&consumers=true`)).json()) as {
      account_details?: Array<{
        stream_detail?: Array<{
          name: string;
          state: { messages: number; last_seq: number };
          consumer_detail?: Array<{ delivered: { stream_seq: number }; num_ack_pending: number }>;
        }>;
      }>;
    };
    const streams = (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []);
    const stream = streams.find((s) => s.name === `DYNAMO_${namespace.toUpperCase().replace(/-/g, '_')}_PREFILL`);
    expect(stream).toBeDefined();
    expect(stream!.state.last_seq).toBeGreaterThanOrEqual(1); // the job was stored ...
    expect(stream!.state.messages).toBe(0); // ... and acked away (WorkQueue retention)
    expect(stream!.consumer_detail![0]!.delivered.stream_seq).toBeGreaterThanOrEqual(1);
    expect(stream!.consumer_detail![0]!.num_ack_pending).toBe(0);
  });

  it('redelivers the job of a prefill worker that died mid-prefill; the client gets one answer', async () => {
    const namespace = uniqueNamespace('dsr');
    const lines: Line[] = [];
    const logger = capture(lines);
    await serve(namespace, DummyWorker, 'decode1', decodeConfig({ prefill_timeout_ms: 15000, replicas: 1 }), logger);
    const victim = await serveCrashable(
      namespace,
      'victim',
      { delay_ms: 3000, ack_wait_ms: 400, max_deliver: 5 },
      logger,
    );
    const url = await frontendUrl(namespace, logger, 1);

    const answer = generateJson(url, 'Tell me a story about redelivery', 'redeliver-1');
    await until('the victim to start the prefill', () =>
      lines.some((l) => l.message === 'prefill started' && l.request_id === 'redeliver-1'),
    );
    await victim.kill();
    await serve(namespace, PrefillWorker, 'rescuer', { PrefillWorker: { delay_ms: 10, ack_wait_ms: 400 } }, logger);

    const r = await answer;
    expect(r.status).toBe(200);
    expect(r.body.worker_output).toBe('Tell me a story about redelivery_GeneratedBy_decode1');
    const done = await prefillDoneLines(lines, 'redeliver-1');
    expect(done).toHaveLength(1);
    expect(done[0]!.delivery).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => l.message === 'remote prefill did not complete in time; prefilling locally')).toBe(false);
  });

  it('prefills locally at the deadline when no prefill worker answers, and drops the expired job later', async () => {
    const namespace = uniqueNamespace('dsd');
    const lines: Line[] = [];
    const logger = capture(lines);
    await serve(namespace, DummyWorker, 'lonely', decodeConfig({ prefill_timeout_ms: 300, replicas: 1 }), logger);
    const url = await frontendUrl(namespace, logger, 1);

    const r = await generateJson(url, 'Nobody prefills this one', 'deadline-1');
    expect(r.body.worker_output).toBe('Nobody prefills this one_GeneratedBy_lonely');
    flushLogs();
    expect(lines.some((l) => l.message === 'remote prefill did not complete in time; prefilling locally')).toBe(true);

    // A prefill worker that starts after the deadline drops the job instead of doing useless work.
    const late = await serve(namespace, PrefillWorker, 'late', { PrefillWorker: { delay_ms: 0 } }, logger);
    const expired = async (): Promise<number> => {
      const m = metrics.defaultRegistry.getSingleMetric('dynamo_prefill_queue_expired_total');
      const v = (await m?.get())?.values.find((x) => x.labels.worker === 'late');
      return v?.value ?? 0;
    };
    await until('the expired job to be counted', async () => (await expired()) === 1, 5000);
    flushLogs();
    expect(lines.some((l) => l.message === 'prefill started' && l.request_id === 'deadline-1')).toBe(false);
    await late.close({ timeoutMs: 1000 });
  });
});
