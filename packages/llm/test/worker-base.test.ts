import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import {
  PREFILL_QUEUE,
  workerService,
  type EngineOutputWire,
  type EngineRequest,
  type KvStateRef,
} from '@dynamo-ts/llm';

/** An engine that counts up from the last context token, forever unless told to stop. */
const seen: EngineRequest[] = [];
/** KV states the worker base told the engine to discard. */
const discarded: KvStateRef[] = [];
const Counter = workerService<{ stop_after: number }>({
  name: 'Counter',
  embeddedReplicas: 1,
  configProperties: { stop_after: { type: 'integer', minimum: 0, default: 0 } },
  createEngine: (host, ctx) => ({
    async *generate(req) {
      seen.push(req);
      let t = req.contextTokenIds.at(-1) ?? 0;
      for (let i = 1; ; i++) {
        const stop = ctx.config.stop_after > 0 && i === ctx.config.stop_after;
        yield stop ? { tokenIds: [++t, ++t], finishReason: 'stop' } : { tokenIds: [++t, ++t] };
        if (stop) return;
        host.loadChanged();
      }
    },
    discardKvState: (ref) => void discarded.push(ref),
  }),
});

describe('the worker base', () => {
  let graph: GraphHandle;
  let ns: string;
  async function serve(config: Record<string, unknown>): Promise<void> {
    ns = `wb-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    graph = await serveGraph(Counter, {
      platform: embeddedPlatform(),
      settings: { namespace: ns, port: 0, workerName: 'w', leaseTtlMs: 10000 },
      config: { Counter: config },
      logger: createLogger({ silent: true }),
    });
  }
  afterEach(() => graph.close({ timeoutMs: 1000 }));

  async function call(req: Record<string, unknown>): Promise<EngineOutputWire[]> {
    const rt = graph.get('Counter')[0]!.runtime;
    const client = await rt.namespace(ns).component('Counter').endpoint('generate').client();
    const out: EngineOutputWire[] = [];
    for await (const ev of client.generate<EngineOutputWire>(req)) out.push(ev);
    return out;
  }

  it('cuts the stream at max_tokens (mid-step) with finish_reason length', async () => {
    await serve({});
    const out = await call({ request_id: 'r1', token_ids: [10], max_tokens: 5 });
    expect(out.flatMap((o) => o.token_ids)).toEqual([11, 12, 13, 14, 15]);
    expect(out.at(-1)!.finish_reason).toBe('length');
  });

  it("keeps the engine's own stop when it lands exactly on max_tokens", async () => {
    await serve({ stop_after: 2 });
    const out = await call({ request_id: 'r2', token_ids: [0], max_tokens: 4 });
    expect(out.flatMap((o) => o.token_ids)).toEqual([1, 2, 3, 4]);
    expect(out.at(-1)!.finish_reason).toBe('stop');
  });

  it('continues a migrated request after its generated tokens, counting them against max_tokens', async () => {
    await serve({});
    seen.length = 0;
    const out = await call({ request_id: 'r3', token_ids: [1, 2], generated_token_ids: [3, 4, 5], max_tokens: 5 });
    expect(seen[0]!.contextTokenIds).toEqual([1, 2, 3, 4, 5]);
    expect(seen[0]!.maxNewTokens).toBe(2);
    expect(out.flatMap((o) => o.token_ids)).toEqual([6, 7]);
    // Nothing left to generate: one empty `length` item, the engine is not called.
    expect(await call({ request_id: 'r4', token_ids: [1], generated_token_ids: [2, 3], max_tokens: 2 })).toEqual([
      { token_ids: [], finish_reason: 'length' },
    ]);
  });

  it('registers its metadata and publishes load', async () => {
    await serve({ block_size: 8, cache_blocks: 64, model: 'counter', load_metrics_interval_ms: 0 });
    const rt = graph.get('Counter')[0]!.runtime;
    const client = await rt.namespace(ns).component('Counter').endpoint('generate').client();
    expect(client.instances()[0]!.metadata).toMatchObject({ model: 'counter', block_size: 8, total_blocks: 64 });
    const loads: unknown[] = [];
    const sub = rt.namespace(ns).component('Counter').subscribe('load_metrics');
    void (async () => {
      for await (const m of sub) loads.push(m.data);
    })();
    await rt.eventPlane.flush();
    await call({ request_id: 'r5', token_ids: new Array(20).fill(1), max_tokens: 4 });
    await new Promise((r) => setTimeout(r, 50));
    sub.unsubscribe();
    expect(loads).toContainEqual(
      expect.objectContaining({ worker_id: rt.instanceId, active_blocks: 3, total_blocks: 64 }),
    );
    expect(loads.at(-1)).toMatchObject({ active_blocks: 0 });
  });

  it('disaggregated: a malformed prefill reply is skipped and the subscription keeps working', async () => {
    await serve({
      remote_prefill: true,
      max_local_prefill_length: 0,
      max_prefill_queue_size: 100,
      prefill_timeout_ms: 2000,
    });
    const rt = graph.get('Counter')[0]!.runtime;
    const subject = rt.namespace(ns).component('Counter').eventSubject(`prefill_done_${rt.instanceId}`);
    for (const bad of [null, 42, 'x', {}, { request_id: 7 }, []]) await rt.eventPlane.publish(subject, bad);
    // A stand-in prefill worker answers the job through the reply subject.
    const queue = await rt.openQueue({ namespace: ns, name: PREFILL_QUEUE });
    const stop = new AbortController();
    void (async () => {
      for await (const job of queue.consume({ signal: stop.signal })) {
        const j = job.data as { request_id: string; engine_id: string; reply_to: string };
        await rt.eventPlane.publish(j.reply_to, null);
        await rt.eventPlane.publish(j.reply_to, {
          request_id: j.request_id,
          engine_id: j.engine_id,
          prefill_worker: 'p',
        });
        await job.ack();
      }
    })();
    seen.length = 0;
    await call({ request_id: 'r6', token_ids: [1, 2, 3, 4, 5], max_tokens: 2 });
    stop.abort();
    await queue.close();
    // Answered by the good reply after the bad ones (a timeout would have meant a local prefill).
    expect(seen[0]!.prefilledRemotely).toBe(true);
  });
  it('disaggregated: a handed-over KV state reaches the engine; one nobody waits for is discarded', async () => {
    await serve({
      remote_prefill: true,
      max_local_prefill_length: 0,
      max_prefill_queue_size: 100,
      prefill_timeout_ms: 2000,
    });
    const rt = graph.get('Counter')[0]!.runtime;
    const kv: KvStateRef = { file: 'a.kv', bytes: 10, tokens: 5, sha256: 'ab'.repeat(32), model: 'm' };
    const queue = await rt.openQueue({ namespace: ns, name: PREFILL_QUEUE });
    const stop = new AbortController();
    let replyTo = '';
    void (async () => {
      for await (const job of queue.consume({ signal: stop.signal })) {
        const j = job.data as { request_id: string; engine_id: string; reply_to: string };
        replyTo = j.reply_to;
        const done = { request_id: j.request_id, engine_id: j.engine_id, prefill_worker: 'p' };
        await rt.eventPlane.publish(j.reply_to, { ...done, kv_state: kv });
        await job.ack();
      }
    })();
    seen.length = 0;
    await call({ request_id: 'r7', token_ids: [1, 2, 3, 4, 5], max_tokens: 2 });
    stop.abort();
    await queue.close();
    expect(seen[0]).toMatchObject({ prefilledRemotely: true, prefilledKv: kv });
    // A completion after its request gave up (or a second delivery's): its state is freed.
    const late = { ...kv, file: 'late.kv' };
    await rt.eventPlane.publish(replyTo, {
      request_id: 'gone',
      engine_id: rt.instanceId,
      prefill_worker: 'p',
      kv_state: late,
    });
    await rt.eventPlane.publish(replyTo, {
      request_id: 'bad',
      engine_id: rt.instanceId,
      prefill_worker: 'p',
      kv_state: { ...kv, file: '../x' },
    });
    for (let i = 0; i < 100 && !discarded.length; i++) await new Promise((r) => setTimeout(r, 10));
    expect(discarded).toEqual([late]);
  });
});
