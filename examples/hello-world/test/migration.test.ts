import { PassThrough } from 'node:stream';
import { createLogger, flushLogs } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import type { LlmEvent as ProcessorEvent } from '@dynamo-ts/llm';
import { workerEvents, type WorkerRequestEvent } from '../components/worker';
import { generateSse, uniqueNamespace } from './helpers';

/** Failover and mid-stream migration in the embedded graph: a worker's request plane is closed under a stream. */
describe('stream migration (embedded)', () => {
  let graph: GraphHandle;
  let url: string;
  let namespace: string;

  beforeEach(async () => {
    namespace = uniqueNamespace('migr');
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace, port: 0, workerName: 'node', leaseTtlMs: 10000 },
      config: {
        Frontend: { port: 0, host: '127.0.0.1' },
        DummyWorker: { token_delay_ms: 15 },
        Processor: { retry_backoff_ms: 0 },
      },
      logger: createLogger({ silent: true }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
  });
  afterEach(async () => {
    await graph.close({ timeoutMs: 2000 });
  });

  /** Kills (closes the request plane of) the worker that starts `requestId`, after `afterTokens` of its items. */
  function killWorkerServing(requestId: string, delayMs: number): Promise<string> {
    return new Promise((resolve) => {
      const onStart = (ev: WorkerRequestEvent): void => {
        if (ev.request_id !== requestId) return;
        workerEvents.off('request_started', onStart);
        setTimeout(() => {
          const victim = graph.get('DummyWorker').find((r) => r.workerName === ev.worker_name)!;
          void victim.runtime.requestPlane.close().then(() => resolve(ev.worker_name));
        }, delayMs);
      };
      workerEvents.on('request_started', onStart);
    });
  }

  it('continues a stream on the other worker when its worker dies mid-stream, with no gap or duplicate', async () => {
    const prompt = 'Tell me a long story about a lighthouse keeper and the sea';
    const started: string[] = [];
    const seen = (ev: WorkerRequestEvent): void => void (ev.request_id === 'mig-1' && started.push(ev.worker_name));
    workerEvents.on('request_started', seen);
    const killed = killWorkerServing('mig-1', 120);
    const res = await generateSse(url, prompt, 'mig-1');
    const victim = await killed;
    expect(res.status).toBe(200);
    const survivor = graph.get('DummyWorker').find((r) => r.workerName !== victim)!.workerName;
    workerEvents.off('request_started', seen);
    expect(res.output).toBe(`${prompt}_GeneratedBy_${survivor}`);
    expect(started).toEqual([victim, survivor]);
    // Some tokens came from the victim before it died: the stream really moved.
    expect(res.events.length).toBeGreaterThan(3);
  });

  it('cuts the answer at max_tokens and reports token counts and the finish reason', async () => {
    const { runtime } = graph.get('Processor')[0]!;
    const client = await runtime.namespace(namespace).component('Processor').endpoint('generate').client();
    const items: ProcessorEvent[] = [];
    for await (const ev of client.generate<ProcessorEvent>({
      prompt: 'one two three four',
      request_id: 'mt-1',
      max_tokens: 3,
    })) {
      items.push(ev);
    }
    client.close();
    const last = items[items.length - 1]!;
    expect(last.finish_reason).toBe('length');
    expect(last.completion_tokens).toBe(3);
    expect(last.prompt_tokens).toBe(4);
    expect(items.map((i) => i.worker_output).join('')).toBe('one two three');
  });

  it('fails over before the first token when the chosen worker is gone', async () => {
    const killed = killWorkerServing('fo-1', 0);
    const res = await generateSse(url, 'Tell me a joke', 'fo-1');
    const victim = await killed;
    expect(res.status).toBe(200);
    expect(res.output).toMatch(/^Tell me a joke_GeneratedBy_node-[01]$/);
    expect(res.worker).not.toBe(victim);
  });
});

/** The Frontend→Processor hop: a stream whose Processor dies mid-way resumes on another Processor. */
describe('stream resume across Processors (embedded)', () => {
  it('resumes the streams of a Processor that dies mid-stream, with no gap or duplicate', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const stream = new PassThrough();
    stream.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
    });
    const graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: uniqueNamespace('resume'), port: 0, workerName: 'node', leaseTtlMs: 10000 },
      config: {
        Frontend: { port: 0, host: '127.0.0.1' },
        Processor: { replicas: 2 },
        DummyWorker: { token_delay_ms: 15 },
      },
      logger: createLogger({ stream, level: 'warn' }),
    });
    try {
      const url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
      const prompts = [0, 1, 2, 3].map((i) => `Story number ${i} about a lighthouse keeper and the sea`);
      const answers = Promise.all(prompts.map((p, i) => generateSse(url, p, `resume-${i}`)));
      await new Promise((r) => setTimeout(r, 100));
      await graph.get('Processor')[0]!.runtime.requestPlane.close();
      const results = await answers;
      results.forEach((r, i) => expect(r.output).toMatch(new RegExp(`^${prompts[i]}_GeneratedBy_node-[01]$`)));
      flushLogs(); // lines are written at the end of the event-loop turn
      expect(lines.filter((l) => l.message === 'stream from the Processor broke; resuming').length).toBeGreaterThan(0);
    } finally {
      await graph.close({ timeoutMs: 2000 });
    }
  });
});
