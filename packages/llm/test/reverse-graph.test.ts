import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphConfig, type GraphHandle } from '@dynamo-ts/sdk';
import { workerEvents, type WorkerRequestEvent } from '@dynamo-ts/llm';
import { prefilled, ReverseFrontend } from './support/reverse-graph';

/** The reverse-engine graph (built from the packages alone) does what the hello-world does. */
describe('a second graph from the packages: the reverse engine', () => {
  let graph: GraphHandle | undefined;
  afterEach(async () => {
    await graph?.close({ timeoutMs: 2000 });
    graph = undefined;
  });

  async function serve(config: GraphConfig): Promise<string> {
    graph = await serveGraph(ReverseFrontend, {
      platform: embeddedPlatform(),
      settings: {
        namespace: `rev-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
        port: 0,
        workerName: 'node',
        leaseTtlMs: 10000,
      },
      config: {
        ReverseFrontend: { port: 0, host: '127.0.0.1' },
        ReverseProcessor: { retry_backoff_ms: 0, block_size: 4 },
        ReverseRouter: { block_size: 4 },
        ...config,
      },
      logger: createLogger({ silent: true }),
    });
    return graph.get('ReverseFrontend')[0]!.instance.metadata!.url as string;
  }

  async function ask(url: string, prompt: string, requestId?: string): Promise<{ text: string; worker: string }> {
    const res = await fetch(`${url}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ prompt, ...(requestId ? { request_id: requestId } : {}) }),
    });
    expect(res.status).toBe(200);
    const text = (await res.text())
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => (JSON.parse(e.slice(6)) as { worker_output: string }).worker_output)
      .join('');
    return { text, worker: text.split('|')[1] ?? '' };
  }

  const reversed = (s: string): string => [...s].reverse().join('');

  it.each(['remote', 'local'])(
    'answers and routes shared prefixes to the worker that holds them (router_mode %s)',
    async (mode) => {
      const url = await serve({
        ReverseWorker: { block_size: 4 },
        ReverseProcessor: { retry_backoff_ms: 0, block_size: 4, router_mode: mode },
      });
      const base = 'a long shared system prompt that fills several blocks; ';
      const first = await ask(url, `${base}question one`);
      expect(first.text).toBe(`${reversed(`${base}question one`)}|${first.worker}`);
      for (const q of ['question two', 'question three', 'another question']) {
        expect((await ask(url, `${base}${q}`)).worker).toBe(first.worker);
      }
      // A prompt that shares nothing goes to the emptier worker.
      expect((await ask(url, 'zzzz yyyy xxxx wwww')).worker).not.toBe(first.worker);
    },
  );

  it('migrates a stream whose worker dies mid-stream, with no gap or duplicate', async () => {
    const url = await serve({ ReverseWorker: { block_size: 4, token_delay_ms: 10 } });
    const prompt = 'migrate this answer from one worker to the other please';
    const started: string[] = [];
    const onStart = (ev: WorkerRequestEvent): void => {
      if (ev.request_id !== 'rev-mig') return;
      started.push(ev.worker_name);
      if (started.length === 1) {
        const victim = graph!.get('ReverseWorker').find((r) => r.workerName === ev.worker_name)!;
        setTimeout(() => void victim.runtime.requestPlane.close(), 150);
      }
    };
    workerEvents.on('request_started', onStart);
    try {
      const res = await ask(url, prompt, 'rev-mig');
      expect(started).toHaveLength(2);
      expect(res.text).toBe(`${reversed(prompt)}|${started[1]}`);
    } finally {
      workerEvents.off('request_started', onStart);
    }
  });

  it('fails over before the first token: the worker holding the prefix is gone, another answers', async () => {
    const url = await serve({ ReverseWorker: { block_size: 4 } });
    const prompt = 'a prompt the first worker caches before it dies';
    const holder = (await ask(url, prompt)).worker;
    const victim = graph!.get('ReverseWorker').find((r) => r.workerName === holder)!;
    await victim.runtime.requestPlane.close();
    const survivor = graph!.get('ReverseWorker').find((r) => r.workerName !== holder)!.workerName;
    // The router still picks the holder (its cache has the prefix); no responders: routed again.
    for (let i = 0; i < 3; i++)
      expect(await ask(url, prompt)).toEqual({ text: `${reversed(prompt)}|${survivor}`, worker: survivor });
  });

  it('disaggregated: prefills go through the queue to the prefill worker', async () => {
    prefilled.length = 0;
    const url = await serve({
      ReverseWorker: { block_size: 4, remote_prefill: true, max_local_prefill_length: 0, max_prefill_queue_size: 100 },
      ReversePrefill: { replicas: 1 },
    });
    for (const p of ['disaggregated one', 'disaggregated two']) {
      const res = await ask(url, p);
      expect(res.text).toBe(`${reversed(p)}|${res.worker}`);
    }
    expect(prefilled).toEqual(['node', 'node']);
  });
});
