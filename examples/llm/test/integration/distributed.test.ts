import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { tinyModel } from '@dynamo-ts/llamacpp';
import { workerEvents, type WorkerRequestEvent } from '@dynamo-ts/llm';
import { createLogger } from '@dynamo-ts/runtime';
import { startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';
import { distributedPlatform, serveGraph, type GraphHandle, type ServeSettings } from '@dynamo-ts/sdk';
import { describeWithBinaries } from '../../../../test/support/integration';
import { Frontend, LlamaWorker } from '../../graph';

jest.setTimeout(60_000);

/**
 * examples/llm across "machines" over real NATS and etcd: the graph (Frontend, Processor, Router)
 * and two LlamaWorkers, each with its own connections and lease; KV events over NATS route a
 * shared prefix back to the worker whose slot holds it.
 */
describeWithBinaries(['nats-server', 'etcd'], 'distributed examples/llm (NATS + etcd, llama.cpp)', () => {
  let nats: NatsServer;
  let etcd: EtcdServer;
  const graphs: GraphHandle[] = [];
  const logger = createLogger({ silent: true });
  const namespace = `llmdist-${process.pid}-${Date.now()}`;
  const model = path.join(mkdtempSync(path.join(tmpdir(), 'llm-dist-')), 'tiny.gguf');
  writeFileSync(model, tinyModel({ seed: 11 }));
  const blocks = { Router: { block_size: 16 }, LlamaWorker: { model, block_size: 16, slots: 2 } };

  const serve = async (root: typeof Frontend | typeof LlamaWorker, workerName: string, config = {}) => {
    const settings: ServeSettings = { namespace, port: 0, workerName, leaseTtlMs: 2000 };
    const platform = await distributedPlatform({
      natsServers: [nats.url],
      etcdEndpoints: [etcd.url],
      leaseTtlMs: settings.leaseTtlMs,
      logger,
    });
    const g = await serveGraph(root, { platform, settings, config: { ...blocks, ...config }, logger });
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

  it('serves completions from worker processes found through etcd, routing a shared prefix to one', async () => {
    await serve(LlamaWorker, 'gpu1');
    await serve(LlamaWorker, 'gpu2');
    const frontend = await serve(Frontend, 'front', { Frontend: { port: 0, host: '127.0.0.1' } });
    expect(frontend.services.map((s) => s.definition.name)).toEqual(['Router', 'Processor', 'Frontend']);
    const url = frontend.get('Frontend')[0]!.instance.metadata!.url as string;
    for (let i = 0; i < 200; i++) {
      const h = await fetch(`${url}/health`);
      if (((await h.json()) as { workers?: number }).workers === 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['dynamo-tiny']);
    const seen: string[] = [];
    const on = (e: WorkerRequestEvent): void => void seen.push(e.worker_name);
    workerEvents.on('request_started', on);
    try {
      const prefix = Array.from({ length: 100 }, () => 'router cache').join(' ');
      for (let i = 0; i < 4; i++) {
        const r = await client.completions.create({ model: 'dynamo-tiny', prompt: `${prefix} ${i}`, max_tokens: 3 });
        expect(r.usage?.completion_tokens).toBe(3);
        // KV events travel over NATS: give the router a moment to index them.
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      workerEvents.off('request_started', on);
    }
    expect(seen).toHaveLength(4);
    expect(new Set(seen).size).toBe(1);
  });
});
