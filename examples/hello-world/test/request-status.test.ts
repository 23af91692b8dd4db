import { createLogger, type EndpointClient } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import type { RequestProgress as RequestStatus } from '@dynamo-ts/llm';
import { uniqueNamespace } from './helpers';

/**
 * The Processor's `request_status` events, which the Router's load accounting follows: one
 * `finished` per request, preceded by `first_token` only when the answer outlasts the event
 * loop's turn in which its first token came (a faster one needs only `finished`).
 */
describe("the Processor's request status", () => {
  async function serve(tokenDelayMs: number): Promise<{
    graph: GraphHandle;
    processor: EndpointClient;
    statuses: RequestStatus[];
    stop: AbortController;
  }> {
    const namespace = uniqueNamespace('status');
    const graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace, port: 0, workerName: 'node', leaseTtlMs: 10000 },
      config: { Frontend: { port: 0, host: '127.0.0.1' }, DummyWorker: { token_delay_ms: tokenDelayMs } },
      logger: createLogger({ silent: true }),
    });
    const ns = graph.get('Frontend')[0]!.runtime.namespace(namespace);
    const processor = await ns.component('Processor').endpoint('generate').client();
    const statuses: RequestStatus[] = [];
    const stop = new AbortController();
    const sub = ns.component('Processor').subscribe<RequestStatus>('request_status', { signal: stop.signal });
    void (async () => {
      try {
        for await (const m of sub) statuses.push(m.data);
      } catch {
        // ended by `stop`
      }
    })();
    await graph.get('Frontend')[0]!.runtime.eventPlane.flush();
    return { graph, processor, statuses, stop };
  }

  async function ask(processor: EndpointClient, id: string): Promise<string> {
    let out = '';
    for await (const ev of processor.generate<{ worker_output: string }>(
      { prompt: 'Tell me a joke', request_id: id },
      { requestId: id },
    ))
      out += ev.worker_output;
    return out;
  }

  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 30));

  it('sends first_token, then finished, naming the worker, for an answer spread over turns', async () => {
    const s = await serve(5);
    try {
      const out = await ask(s.processor, 'slow-1');
      await settle();
      const worker = out.split('_GeneratedBy_')[1];
      const id = s.graph.get('DummyWorker').find((r) => r.workerName === worker)!.served[0]!.info.instanceId;
      expect(s.statuses).toEqual([
        { request_id: 'slow-1', worker_id: id, status: 'first_token' },
        { request_id: 'slow-1', worker_id: id, status: 'finished' },
      ]);
    } finally {
      s.stop.abort();
      await s.graph.close({ timeoutMs: 2000 });
    }
  });

  it('sends only finished for answers done within their first token turn, each request its own', async () => {
    const s = await serve(0);
    try {
      await Promise.all(['fast-1', 'fast-2', 'fast-3'].map((id) => ask(s.processor, id)));
      await settle();
      expect(s.statuses.map((x) => [x.request_id, x.status]).sort()).toEqual([
        ['fast-1', 'finished'],
        ['fast-2', 'finished'],
        ['fast-3', 'finished'],
      ]);
    } finally {
      s.stop.abort();
      await s.graph.close({ timeoutMs: 2000 });
    }
  });
});
