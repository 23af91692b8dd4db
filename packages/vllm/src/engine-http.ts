import { UnavailableError } from '@dynamo-ts/runtime';
import type { EngineLoad, EngineStep, WireFinishReason } from '@dynamo-ts/llm';

/** One generation as the engine's OpenAI-compatible `/v1/completions` takes it, with token ids. */
export interface CompletionCall {
  model: string;
  /** The context: prompt + tokens generated before a migration. */
  tokenIds: readonly number[];
  maxTokens: number | undefined;
  temperature?: number;
  topP?: number;
  seed?: number;
  signal: AbortSignal;
}

/** What `/metrics` says (vLLM's names, or SGLang's). */
export interface EngineMetrics {
  waiting: number;
  running: number;
  /** KV cache in use, 0..1. */
  usage: number;
  /** From `vllm:cache_config_info`, when exposed. */
  blockSize?: number;
  totalBlocks?: number;
}

/** The largest SSE line accepted from an engine (a longer one is a broken stream). */
const MAX_LINE = 1 << 20;

/**
 * Streams one completion from the engine: POST `/v1/completions` with the prompt as token ids,
 * `stream` and `return_token_ids` (vLLM ≥ 0.10.2), yielding each chunk's token ids. Aborting
 * `signal` closes the HTTP request (the engine then aborts the sequence).
 */
export async function* streamCompletion(base: string, call: CompletionCall): AsyncGenerator<EngineStep> {
  const body: Record<string, unknown> = {
    model: call.model,
    prompt: call.tokenIds,
    stream: true,
    return_token_ids: true,
  };
  if (call.maxTokens !== undefined) body.max_tokens = call.maxTokens;
  if (call.temperature !== undefined) body.temperature = call.temperature;
  if (call.topP !== undefined) body.top_p = call.topP;
  if (call.seed !== undefined) body.seed = call.seed;
  let res: Response;
  try {
    res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
      signal: call.signal,
    });
  } catch (e) {
    if (call.signal.aborted) return;
    throw new UnavailableError(`engine ${base} did not answer: ${(e as Error).message}`);
  }
  if (!res.ok || !res.body) {
    const text = (await res.text().catch(() => '')).slice(0, 300);
    const msg = `engine ${base} answered ${res.status}: ${text}`;
    // 5xx: the engine cannot serve now (another worker may); 4xx: this request is wrong.
    if (res.status >= 500) throw new UnavailableError(msg);
    throw new Error(msg);
  }
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      if (buf.length > MAX_LINE && !buf.includes('\n')) throw new Error(`engine ${base} sent an over-long SSE line`);
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        const step = parseChunk(base, data);
        if (step) {
          yield step;
          if (step.finishReason !== undefined) return;
        }
      }
    }
  } catch (e) {
    if (call.signal.aborted) return;
    throw e;
  }
  throw new UnavailableError(`engine ${base} ended the stream without a finish reason`);
}

/** One SSE chunk of a completion stream; undefined when it carries nothing. */
export function parseChunk(base: string, data: string): EngineStep | undefined {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    throw new Error(`engine ${base} sent a chunk that is not JSON`);
  }
  const o = v as { error?: { message?: unknown }; choices?: unknown };
  if (o && typeof o === 'object' && o.error) throw new Error(`engine ${base}: ${String(o.error.message ?? 'error')}`);
  const choice = Array.isArray(o?.choices) ? (o.choices[0] as Record<string, unknown> | undefined) : undefined;
  if (!choice) return undefined;
  const ids = choice.token_ids;
  const finish = choice.finish_reason;
  if (ids === undefined || ids === null) {
    if (finish === null || finish === undefined) return undefined;
    return { tokenIds: [], finishReason: mapFinish(finish) };
  }
  if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0 && t <= 0xffffffff)) {
    throw new Error(`engine ${base} sent bad token_ids (is return_token_ids supported? vLLM >= 0.10.2)`);
  }
  const step: EngineStep = { tokenIds: ids as number[] };
  if (finish !== null && finish !== undefined) step.finishReason = mapFinish(finish);
  return step;
}

function mapFinish(f: unknown): WireFinishReason {
  return f === 'length' ? 'length' : 'stop';
}

/** Parses Prometheus text: `name{labels} value` lines into samples. */
export function parsePrometheus(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const value = Number(m[4]);
    if (Number.isFinite(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** The load figures in an engine's `/metrics` (vLLM: `vllm:*`; SGLang: `sglang:*`). */
export function readEngineMetrics(text: string): EngineMetrics {
  const m: EngineMetrics = { waiting: 0, running: 0, usage: 0 };
  let usage: number | undefined;
  for (const s of parsePrometheus(text)) {
    switch (s.name) {
      case 'vllm:num_requests_waiting':
      case 'sglang:num_queue_reqs':
        m.waiting += s.value;
        break;
      case 'vllm:num_requests_running':
      case 'sglang:num_running_reqs':
        m.running += s.value;
        break;
      case 'vllm:kv_cache_usage_perc':
      case 'vllm:gpu_cache_usage_perc':
      case 'sglang:token_usage':
        usage = Math.max(usage ?? 0, s.value);
        break;
      case 'vllm:cache_config_info': {
        const bs = Number(s.labels.block_size);
        const nb = Number(s.labels.num_gpu_blocks);
        if (Number.isInteger(bs) && bs > 0) m.blockSize = bs;
        if (Number.isInteger(nb) && nb > 0) m.totalBlocks = nb;
        break;
      }
    }
  }
  m.usage = Math.min(1, Math.max(0, usage ?? 0));
  return m;
}

/** Reads `/metrics` of the engine (throws when it does not answer within `timeoutMs`). */
export async function scrapeMetrics(base: string, timeoutMs: number): Promise<EngineMetrics> {
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  const text = await res.text();
  if (text.length > 8 << 20) throw new Error('/metrics larger than 8 MiB');
  return readEngineMetrics(text);
}

/** Whether `/health` answers 200 within `timeoutMs`. */
export async function checkHealth(base: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer().catch(() => undefined);
    return res.ok;
  } catch {
    return false;
  }
}

/** The router's load figures from the engine's metrics. */
export function engineLoad(m: EngineMetrics, totalBlocks: number): EngineLoad {
  return { activeBlocks: Math.round(m.usage * totalBlocks), totalBlocks, waiting: m.waiting };
}
