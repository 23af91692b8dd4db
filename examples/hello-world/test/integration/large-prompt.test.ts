import { createLogger } from '@dynamo-ts/runtime';
import { startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';
import { distributedPlatform, serveGraph, type GraphHandle, type ServeSettings } from '@dynamo-ts/sdk';
import { describeWithBinaries } from '../../../../test/support/integration';
import { DummyWorker, Frontend } from '../../components/graph';
import { uniqueNamespace } from '../helpers';

/**
 * Prompt size in distributed mode (issue 21): a prompt that fits the HTTP body limit is served,
 * though it, its token ids and the worker's echo of it are several times nats-server's default
 * `max_payload` of 1 MiB (the request plane sends them in chunks); a body over the limit gets 413
 * naming `body_limit_bytes`. The graph and the worker each have their own NATS connection.
 */
describeWithBinaries(['nats-server', 'etcd'], 'distributed hello-world graph: large prompts', () => {
  jest.setTimeout(120_000);
  let nats: NatsServer;
  let etcd: EtcdServer;
  const graphs: GraphHandle[] = [];
  const logger = createLogger({ silent: true });
  const namespace = uniqueNamespace('large');
  let url = '';

  const serve = async (root: typeof Frontend | typeof DummyWorker, workerName: string, config = {}) => {
    // A long lease: the worker hashes the prompt's ~1.5 M token ids into KV blocks in one go.
    const settings: ServeSettings = { namespace, port: 0, workerName, leaseTtlMs: 10_000 };
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
    const frontend = await serve(Frontend, 'node1', { Frontend: { port: 0, host: '127.0.0.1' } });
    await serve(DummyWorker, 'node2');
    url = frontend.get('Frontend')[0]!.instance.metadata!.url as string;
    for (let i = 0; i < 500; i++) {
      const h = await fetch(`${url}/health`);
      if (((await h.json()) as { workers?: number }).workers === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  afterAll(async () => {
    for (const g of graphs.reverse()) await g.close({ timeoutMs: 2000 });
    await Promise.all([nats?.dispose(), etcd?.dispose()]);
  });

  it('a 3.5 MB prompt (under the 4 MiB body limit) answers 200', async () => {
    const words = ['tell', 'me', 'a', 'joke', 'about', 'the', 'world', 'series', 'in', '2020'];
    const parts: string[] = [];
    for (let n = 0, i = 0; n < 3_500_000; i++) {
      const w = words[(i * 7) % words.length]! + (i % 97);
      parts.push(w);
      n += w.length + 1;
    }
    const prompt = parts.join(' ');
    expect(prompt.length).toBeGreaterThan(3_500_000);
    expect(prompt.length).toBeLessThan(4 * 1024 * 1024 - 100);
    // The echo worker answers with the prompt token by token: max_tokens keeps the test short
    // (the OpenAI route takes it; /generate echoes the whole prompt, ~1.1 M items).
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'hello-world', prompt, max_tokens: 16 }),
    });
    const text = await res.text();
    expect({ status: res.status, text: text.slice(0, 300) }).toMatchObject({ status: 200 });
    const body = JSON.parse(text) as {
      choices: Array<{ text: string; finish_reason: string }>;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    expect(body.choices[0]!.finish_reason).toBe('length');
    expect(body.usage.completion_tokens).toBe(16);
    expect(body.usage.prompt_tokens).toBeGreaterThan(1_000_000);
    expect(prompt.startsWith(body.choices[0]!.text)).toBe(true);
    expect(body.choices[0]!.text.length).toBeGreaterThan(16);
  });

  it('a body over body_limit_bytes gets 413 naming that limit', async () => {
    const res = await fetch(`${url}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x'.repeat(4 * 1024 * 1024) }),
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { error: { type: string; message: string } };
    expect(body.error.message).toContain('exceeds the limit of 4194304 bytes (4 MiB)');
    expect(body.error.message).not.toContain('1048576');
  });
});
