import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { EngineProcess, engineRestarts, kvHandovers, promptTokens, slotsInUse, tinyModel } from '@dynamo-ts/llamacpp';
import { workerEvents, type WorkerRequestEvent } from '@dynamo-ts/llm';
import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../graph';

const logger = createLogger({ silent: true });
const dir = mkdtempSync(path.join(tmpdir(), 'llm-example-'));
const MODEL = path.join(dir, 'tiny.gguf');
writeFileSync(MODEL, tinyModel({ seed: 7 }));

const METRICS = {
  dynamo_worker_prompt_tokens_total: promptTokens,
  dynamo_worker_slots_in_use: slotsInUse,
  dynamo_worker_engine_restarts_total: engineRestarts,
  dynamo_worker_kv_handovers_total: kvHandovers,
};

/** Sum of a metric's samples whose labels match `labels` (a string equal, a RegExp matching). */
async function metricSum(name: keyof typeof METRICS, labels: Record<string, string | RegExp> = {}): Promise<number> {
  const m = await METRICS[name].get();
  let sum = 0;
  for (const v of m?.values ?? [])
    if (
      Object.entries(labels).every(([k, want]) => {
        const got = String((v.labels as Record<string, unknown>)[k]);
        return typeof want === 'string' ? got === want : want.test(got);
      })
    )
      sum += v.value;
  return sum;
}

/** Greedy tokens of `prompt` from an engine called directly (no graph). */
async function directGreedy(prompt: string, maxNewTokens: number): Promise<string> {
  const engine = new EngineProcess({ modelPath: MODEL, slots: 1, contextSize: 2048, logger });
  try {
    await engine.start();
    const tokens = await engine.tokenize(prompt);
    const out: number[] = [];
    await engine.request<void>(
      (id) => ({ type: 'generate', id, slot: 0, tokens, maxNewTokens, temperature: 0 }),
      (m, ok) => (m.type === 'token' ? void out.push(m.token) : m.type === 'done' ? ok() : undefined),
    ).done;
    return await engine.detokenize(out);
  } finally {
    await engine.close();
  }
}

/** Pids of this process's engine children. */
function engineChildren(): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('engine-child'))
        out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('examples/llm on the tiny model', () => {
  let graph: GraphHandle;
  let url: string;
  let client: OpenAI;

  beforeAll(async () => {
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: `llm-${process.pid}`, port: 0, workerName: 'node', leaseTtlMs: 10000 },
      config: {
        Frontend: { port: 0, host: '127.0.0.1' },
        Router: { block_size: 16 },
        LlamaWorker: { model: MODEL, block_size: 16, slots: 2, context_size: 2048, restart_delay_ms: 50 },
      },
      logger,
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  }, 60000);
  afterAll(async () => {
    await graph?.close({ timeoutMs: 2000 });
  });

  it('lists the model by its GGUF name', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['dynamo-tiny']);
  });

  it('greedy completion equals the engine called directly, and is the same across two runs', async () => {
    const prompt = 'hello the world of models and tokens';
    const ask = () => client.completions.create({ model: 'dynamo-tiny', prompt, max_tokens: 16, temperature: 0 });
    const a = await ask();
    const b = await ask();
    expect(a.choices[0]!.text.length).toBeGreaterThan(0);
    expect(b.choices[0]!.text).toBe(a.choices[0]!.text);
    expect(a.usage?.completion_tokens).toBe(16);
    expect(a.choices[0]!.text).toBe(await directGreedy(prompt, 16));
  }, 30000);

  it('a stop sequence cuts the answer and ends the engine request', async () => {
    const prompt = 'the model and the cache';
    const greedy = await client.completions.create({ model: 'dynamo-tiny', prompt, max_tokens: 24, temperature: 0 });
    const full = greedy.choices[0]!.text;
    const stopAt = full
      .slice(Math.floor(full.length / 2))
      .trim()
      .split(' ')[0]!;
    const cut = await client.completions.create({
      model: 'dynamo-tiny',
      prompt,
      max_tokens: 24,
      temperature: 0,
      stop: [stopAt],
    });
    expect(cut.choices[0]!.finish_reason).toBe('stop');
    expect(cut.choices[0]!.text).toBe(full.slice(0, full.indexOf(stopAt)));
    await until(async () => (await metricSum('dynamo_worker_slots_in_use')) === 0);
  });

  it('the engine samples with temperature, top_p and seed: the same seed repeats', async () => {
    const engine = new EngineProcess({ modelPath: MODEL, slots: 1, contextSize: 512, logger });
    try {
      await engine.start();
      const tokens = await engine.tokenize('the model and the cache');
      const sample = async (seed: number): Promise<number[]> => {
        const out: number[] = [];
        await engine.request<void>(
          (id) => ({ type: 'generate', id, slot: 0, tokens, maxNewTokens: 24, temperature: 2, topP: 1, seed }),
          (m, ok) => (m.type === 'token' ? void out.push(m.token) : m.type === 'done' ? ok() : undefined),
        ).done;
        return out;
      };
      const a = await sample(5);
      expect(await sample(5)).toEqual(a);
      const others = [await sample(6), await sample(7), await sample(8)];
      expect(others.some((t) => t.join() !== a.join())).toBe(true);
    } finally {
      await engine.close();
    }
  }, 30000);

  it('samples over HTTP: a seed repeats, other seeds differ, temperature 0 is the engine greedy', async () => {
    const prompt = 'the router and the worker';
    const sample = async (seed: number): Promise<string> =>
      (await client.completions.create({ model: 'dynamo-tiny', prompt, max_tokens: 16, temperature: 1.5, seed }))
        .choices[0]!.text;
    const a = await sample(11);
    expect(await sample(11)).toBe(a);
    const others = [await sample(12), await sample(13), await sample(14)];
    expect(others.some((t) => t !== a)).toBe(true);
    const chat = async (seed: number): Promise<string | null> =>
      (
        await client.chat.completions.create({
          model: 'dynamo-tiny',
          messages: [{ role: 'user', content: prompt }],
          max_tokens: 16,
          temperature: 1.5,
          top_p: 0.9,
          seed,
        })
      ).choices[0]!.message.content;
    expect(await chat(21)).toBe(await chat(21));
    const greedy = await client.completions.create({ model: 'dynamo-tiny', prompt, max_tokens: 16, temperature: 0 });
    expect(greedy.choices[0]!.text).toBe(await directGreedy(prompt, 16));
    expect(others.concat(a)).not.toContain(greedy.choices[0]!.text);
  }, 30000);

  it('answers a chat and streams it', async () => {
    const r = await client.chat.completions.create({
      model: 'dynamo-tiny',
      messages: [{ role: 'user', content: 'hello world' }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(r.choices[0]!.message.content?.length).toBeGreaterThan(0);
    expect(r.usage?.completion_tokens).toBe(8);
    const stream = await client.chat.completions.create({
      model: 'dynamo-tiny',
      messages: [{ role: 'user', content: 'hello world' }],
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let text = '';
    let chunks = 0;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      chunks++;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text).toBe(r.choices[0]!.message.content);
  });

  it('sends requests sharing a long prefix to the worker whose slots hold it', async () => {
    const seen: WorkerRequestEvent[] = [];
    const on = (e: WorkerRequestEvent): void => void seen.push(e);
    workerEvents.on('request_started', on);
    try {
      // 120 one-token words: 7 full blocks of 16 tokens.
      const prefix = Array.from({ length: 120 }, (_, i) => ['model', 'cache', 'router', 'worker'][i % 4]).join(' ');
      const cachedBefore = await metricSum('dynamo_worker_prompt_tokens_total', { cached: 'true' });
      for (let i = 0; i < 5; i++)
        await client.completions.create({ model: 'dynamo-tiny', prompt: `${prefix} question ${i}`, max_tokens: 2 });
      const names = new Set(seen.map((e) => e.worker_name));
      expect(seen).toHaveLength(5);
      expect(names.size).toBe(1);
      // The four later prompts reused the prefix from the slot instead of evaluating it again.
      const reused = (await metricSum('dynamo_worker_prompt_tokens_total', { cached: 'true' })) - cachedBefore;
      expect(reused).toBeGreaterThanOrEqual(4 * 112);
    } finally {
      workerEvents.off('request_started', on);
    }
  });

  it('a client disconnect frees its slot', async () => {
    const cancelled = new Promise<WorkerRequestEvent>((r) => workerEvents.once('request_cancelled', r));
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'dynamo-tiny', prompt: 'stream a long answer', max_tokens: 1900, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await until(async () => (await metricSum('dynamo_worker_slots_in_use')) > 0);
    ac.abort();
    await cancelled;
    await until(async () => (await metricSum('dynamo_worker_slots_in_use')) === 0);
  });

  it('kill -9 of an engine child mid-stream: the stream completes and the child comes back', async () => {
    const before = engineChildren();
    expect(before.length).toBeGreaterThanOrEqual(3);
    const started = new Promise<WorkerRequestEvent>((r) => workerEvents.once('request_started', r));
    const stream = await client.completions.create({
      model: 'dynamo-tiny',
      prompt: 'migrate this stream',
      max_tokens: 1500,
      temperature: 0,
      stream: true,
    });
    const who = await started;
    const inst = graph.get('LlamaWorker').find((w) => w.instance.metadata?.worker_name === who.worker_name)!;
    const pid = inst.instance.metadata!.engine_pid as number;
    let text = '';
    let n = 0;
    let finish: string | null | undefined;
    for await (const c of stream) {
      text += c.choices[0]?.text ?? '';
      if (++n === 3) process.kill(pid, 'SIGKILL');
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('length');
    expect(text.length).toBeGreaterThan(1000);
    expect(await metricSum('dynamo_worker_engine_restarts_total')).toBeGreaterThanOrEqual(1);
    await until(() => {
      const now = engineChildren();
      return now.length === before.length && !now.includes(pid);
    });
  }, 30000);
});

describe('examples/llm disaggregated (configs/disagg.yaml) on the tiny model', () => {
  it('a long prompt is prefilled by a LlamaPrefillWorker, its KV state handed over, then decoded', async () => {
    const kvDir = mkdtempSync(path.join(tmpdir(), 'llm-kv-'));
    const graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: `llm-disagg-${process.pid}`, port: 0, workerName: 'dis', leaseTtlMs: 10000 },
      config: {
        Frontend: { port: 0, host: '127.0.0.1' },
        Router: { block_size: 16 },
        LlamaWorker: {
          model: MODEL,
          block_size: 16,
          slots: 1,
          remote_prefill: true,
          max_local_prefill_length: 32,
          max_prefill_queue_size: 100,
          prefill_timeout_ms: 10000,
          kv_transfer_dir: kvDir,
        },
        LlamaPrefillWorker: { model: MODEL, replicas: 1, kv_transfer_dir: kvDir },
      },
      logger,
    });
    try {
      const url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
      const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
      // The prefill worker is `dis`; its replicas `dis-N` are the decode workers.
      const decode = /^dis-/;
      const count = async () => ({
        prefilled: await metricSum('dynamo_worker_prompt_tokens_total', { worker: 'dis', cached: 'false' }),
        decodeEvaluated: await metricSum('dynamo_worker_prompt_tokens_total', { worker: decode, cached: 'false' }),
        loaded: await metricSum('dynamo_worker_kv_handovers_total', { worker: decode, outcome: 'loaded' }),
        fallback: await metricSum('dynamo_worker_kv_handovers_total', { outcome: 'fallback' }),
      });
      const before = await count();
      const prompt = Array.from({ length: 100 }, () => 'model cache').join(' ');
      const r = await c.completions.create({ model: 'dynamo-tiny', prompt, max_tokens: 8, temperature: 0 });
      expect(r.usage?.completion_tokens).toBe(8);
      const after = await count();
      // The prefill worker evaluated the prompt; the decode worker loaded its state and evaluated
      // only the last prompt token (whose logits the saved state does not carry).
      expect(after.prefilled - before.prefilled).toBeGreaterThanOrEqual(200);
      expect(after.loaded - before.loaded).toBe(1);
      expect(after.fallback - before.fallback).toBe(0);
      expect(after.decodeEvaluated - before.decodeEvaluated).toBe(1);
      // The same greedy answer as the engine evaluating the whole prompt itself.
      expect(r.choices[0]!.text).toBe(await directGreedy(prompt, 8));
      // The state file was deleted once loaded.
      expect(readdirSync(kvDir)).toEqual([]);
    } finally {
      await graph.close({ timeoutMs: 2000 });
    }
  }, 60000);
});
