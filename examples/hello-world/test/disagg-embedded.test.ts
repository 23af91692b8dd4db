import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger, flushLogs, metrics } from '@dynamo-ts/runtime';
import { embeddedPlatform, loadConfigFile, mergeConfig, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import { generateJson, uniqueNamespace } from './helpers';

/** Sum of a metric's series whose labels include `labels`. */
async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const m = metrics.defaultRegistry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))
    .reduce((a, v) => a + v.value, 0);
}

/** The seed's disaggregated request on the embedded graph with configs/disagg.yaml. */
describe('embedded disaggregated graph', () => {
  let graph: GraphHandle;
  let url: string;
  const lines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    const stream = new PassThrough();
    stream.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
    });
    const file = path.join(__dirname, '..', 'configs', 'disagg.yaml');
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: uniqueNamespace(), port: 0, workerName: 'node', leaseTtlMs: 10000 },
      config: mergeConfig(loadConfigFile(file), {
        Frontend: { port: 0, host: '127.0.0.1' },
        PrefillWorker: { delay_ms: 10 },
      }),
      logger: createLogger({ stream, level: 'info' }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
  });

  it('serves prefill workers as the config asks', () => {
    expect(graph.get('PrefillWorker')).toHaveLength(1);
    expect(graph.get('DummyWorker')).toHaveLength(2);
  });

  it('answers the seed request once, after a prefill worker did its prefill', async () => {
    const r = await generateJson(url, 'This is prefill disagg serving example', '12345');
    expect(r.status).toBe(200);
    expect(r.body.worker_output).toMatch(/^This is prefill disagg serving example_GeneratedBy_node-[01]$/);
    expect(r.body.request_id).toBe('12345');
    flushLogs(); // lines are written at the end of the event-loop turn
    const done = lines.filter((l) => l.message === 'prefill done' && l.request_id === '12345');
    expect(done).toHaveLength(1);
    expect(lines.some((l) => l.message === 'remote prefill did not complete in time; prefilling locally')).toBe(false);
  });

  it('counts remote prefills and settled jobs in the process metrics', async () => {
    await generateJson(url, 'Count this prefill in the metrics please', 'metrics-1');
    const remote =
      (await metricValue('dynamo_prefill_decisions_total', { worker: 'node-0', decision: 'remote' })) +
      (await metricValue('dynamo_prefill_decisions_total', { worker: 'node-1', decision: 'remote' }));
    expect(remote).toBeGreaterThanOrEqual(2);
    expect(await metricValue('dynamo_prefill_jobs_total', { worker: 'node', outcome: 'done' })).toBeGreaterThanOrEqual(
      2,
    );
    const text = await metrics.defaultRegistry.metrics();
    expect(text).toContain('# TYPE dynamo_prefill_queue_redeliveries_total counter');
    expect(text).toContain('# TYPE dynamo_prefill_queue_depth gauge');
  });

  it('without prefill workers, falls back to a local prefill at the deadline and still answers once', async () => {
    const g = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: uniqueNamespace(), port: 0, workerName: 'solo', leaseTtlMs: 10000 },
      config: {
        Frontend: { port: 0, host: '127.0.0.1' },
        DummyWorker: { remote_prefill: true, max_local_prefill_length: 0, prefill_timeout_ms: 100, replicas: 1 },
        PrefillWorker: { replicas: 0 },
      },
      logger: createLogger({ silent: true }),
    });
    try {
      const u = g.get('Frontend')[0]!.instance.metadata!.url as string;
      const r = await generateJson(u, 'Tell me a joke', 'fallback-1');
      expect(r.body.worker_output).toBe('Tell me a joke_GeneratedBy_solo');
      expect(await metricValue('dynamo_prefill_fallbacks_total', { worker: 'solo', cause: 'timeout' })).toBe(1);
    } finally {
      await g.close({ timeoutMs: 1000 });
    }
  });
});
