import { createLogger } from '@dynamo-ts/runtime';
import type { EngineOutputWire } from '@dynamo-ts/llm';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { detectEngine, parseSglangChunk } from '../src/engine-http';
import { vllmWorkerService } from '../src/worker';
import { EngineDouble } from './support/engine-double';
import { until } from './support/util';

const chunk = (ids: number[], completion: number, finish: unknown = null): string =>
  JSON.stringify({
    text: 'x',
    output_ids: ids,
    meta_info: { id: 'r', finish_reason: finish, completion_tokens: completion },
  });

describe("SGLang's /generate stream chunks", () => {
  it('takes the new tokens whether output_ids are cumulative (default) or incremental', () => {
    // Cumulative: every chunk repeats the tokens so far.
    expect(parseSglangChunk('e', chunk([5], 1), 0)).toEqual({ tokenIds: [5] });
    expect(parseSglangChunk('e', chunk([5, 6, 7], 3), 1)).toEqual({ tokenIds: [6, 7] });
    // Incremental (--incremental-streaming-output): only the new ones.
    expect(parseSglangChunk('e', chunk([6, 7], 3), 1)).toEqual({ tokenIds: [6, 7] });
    expect(parseSglangChunk('e', chunk([8], 4, { type: 'length', length: 4 }), 3)).toEqual({
      tokenIds: [8],
      finishReason: 'length',
    });
    expect(parseSglangChunk('e', chunk([5, 9], 2, { type: 'stop', matched: 9 }), 1)).toEqual({
      tokenIds: [9],
      finishReason: 'stop',
    });
    // Nothing new and no finish: nothing to yield.
    expect(parseSglangChunk('e', chunk([5], 1), 1)).toBeUndefined();
  });

  it('refuses what it cannot trust, naming the cause', () => {
    expect(() => parseSglangChunk('e', 'nope', 0)).toThrow(/not JSON/);
    expect(() => parseSglangChunk('e', '{"error":{"message":"boom"}}', 0)).toThrow(/boom/);
    expect(() => parseSglangChunk('e', JSON.stringify({ output_ids: [1] }), 0)).toThrow(/completion_tokens/);
    expect(() => parseSglangChunk('e', chunk([-1], 1), 0)).toThrow(/bad output_ids/);
    expect(() => parseSglangChunk('e', chunk([1], 5), 0)).toThrow(/1 output_ids for 5 tokens/);
    expect(() =>
      parseSglangChunk('e', chunk([], 0, { type: 'abort', message: 'too long', status_code: 400 }), 0),
    ).toThrow(/aborted the request: too long/);
  });
});

describe('engine detection', () => {
  it("auto tells SGLang (its /get_server_info page size) from vLLM, and 'sglang' insists", async () => {
    const sg = await new EngineDouble({ blockSize: 8, totalBlocks: 50, api: 'sglang' }).start();
    const vl = await new EngineDouble({ blockSize: 8 }).start();
    try {
      expect(await detectEngine(sg.url, 'auto', 1000)).toEqual({ kind: 'sglang', blockSize: 8, totalBlocks: 50 });
      expect(await detectEngine(vl.url, 'auto', 1000)).toEqual({ kind: 'vllm' });
      expect(await detectEngine(vl.url, 'vllm', 1000)).toEqual({ kind: 'vllm' });
      await expect(detectEngine(vl.url, 'sglang', 1000)).rejects.toThrow(/404 and no page_size: is it SGLang/);
    } finally {
      await sg.close();
      await vl.close();
    }
  });
});

describe.each([false, true])('the adapter over an SGLang double (incremental output: %s)', (incremental) => {
  let double: EngineDouble;
  let graph: GraphHandle;
  const ns = `sgl-${process.pid}-${incremental ? 'inc' : 'cum'}`;
  const Worker = vllmWorkerService({ name: 'SglWorker' });

  beforeAll(async () => {
    double = await new EngineDouble({
      blockSize: 4,
      totalBlocks: 64,
      api: 'sglang',
      incremental,
      tokenDelayMs: 10,
    }).start();
    graph = await serveGraph(Worker, {
      platform: embeddedPlatform(),
      settings: { namespace: ns, port: 0, workerName: 'w', leaseTtlMs: 10000 },
      config: { SglWorker: { url: double.url, block_size: 4, metrics_interval_ms: 20, load_metrics_interval_ms: 0 } },
      logger: createLogger({ silent: true }),
    });
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
    await double.close();
  });

  const client = async () => {
    const rt = graph.get('SglWorker')[0]!.runtime;
    return rt.namespace(ns).component('SglWorker').endpoint('generate').client();
  };

  it('registers the engine with its page size and cache size from /get_server_info', async () => {
    expect((await client()).instances()[0]!.metadata).toMatchObject({
      engine: 'sglang',
      model: 'double-model',
      block_size: 4,
      total_blocks: 64,
    });
  });

  it('generates through /generate with input_ids and sampling_params, each token once', async () => {
    const c = await client();
    const out: EngineOutputWire[] = [];
    for await (const ev of c.generate<EngineOutputWire>({
      request_id: 'g1',
      token_ids: [10, 11, 12],
      max_tokens: 4,
      temperature: 0,
      seed: 7,
    }))
      out.push(ev);
    expect(out.flatMap((o) => o.token_ids)).toEqual([13, 14, 15, 16]);
    expect(out.at(-1)!.finish_reason).toBe('length');
    expect(double.requests.at(-1)).toEqual({
      input_ids: [10, 11, 12],
      sampling_params: { max_new_tokens: 4, temperature: 0, sampling_seed: 7 },
      stream: true,
    });
  });

  it('cancelling the stream closes the upstream HTTP request within 100 ms', async () => {
    const c = await client();
    const closed = double.closedAt.length;
    const abort = new AbortController();
    const it = c.generate<EngineOutputWire>(
      { request_id: 'g2', token_ids: [1], max_tokens: 500 },
      { signal: abort.signal },
    );
    const reader = it[Symbol.asyncIterator]();
    await reader.next();
    const t0 = performance.now();
    abort.abort();
    await reader.return?.(undefined);
    await until(() => double.closedAt.length > closed, 1000, 'upstream closed');
    expect(double.closedAt.at(-1)! - t0).toBeLessThan(100);
  });

  it("publishes the load read from SGLang's /metrics names", async () => {
    const rt = graph.get('SglWorker')[0]!.runtime;
    const loads: { waiting?: number; total_blocks?: number }[] = [];
    const sub = rt.namespace(ns).component('SglWorker').subscribe('load_metrics');
    void (async () => {
      for await (const m of sub) loads.push(m.data as { waiting?: number });
    })();
    await rt.eventPlane.flush();
    double.waiting = 7;
    try {
      await until(() => loads.some((l) => l.waiting === 7), 3000, 'load with sglang:num_queue_reqs');
      expect(loads.find((l) => l.waiting === 7)).toMatchObject({ total_blocks: 64 });
    } finally {
      double.waiting = 0;
      sub.unsubscribe();
    }
  });
});

describe('the adapter refuses an SGLang engine whose page size differs', () => {
  it('names --page-size and the flags to set', async () => {
    const d = await new EngineDouble({ blockSize: 16, api: 'sglang' }).start();
    try {
      await expect(
        serveGraph(vllmWorkerService(), {
          platform: embeddedPlatform(),
          settings: { namespace: `sgl-bs-${process.pid}`, port: 0, workerName: 'w', leaseTtlMs: 10000 },
          config: { VllmWorker: { url: d.url, engine: 'sglang', block_size: 4 } },
          logger: createLogger({ silent: true }),
        }),
      ).rejects.toThrow(/block size 16.*--VllmWorker.block_size=16 .*engine's --page-size/);
    } finally {
      await d.close();
    }
  });
});
