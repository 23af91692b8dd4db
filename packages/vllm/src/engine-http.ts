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

/** Which HTTP API an engine speaks: vLLM's OpenAI server, or SGLang's native `/generate`. */
export type EngineKind = 'vllm' | 'sglang';

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
  yield* streamSse(base, '/v1/completions', body, call.signal, (data) => parseChunk(base, data));
}

/**
 * Streams one generation from SGLang's native API: POST `/generate` with `input_ids`,
 * `sampling_params` (`max_new_tokens`, `temperature`, `top_p`, `sampling_seed`) and `stream`,
 * yielding the new token ids of each `data:` chunk (`output_ids`, cumulative by default, the
 * delta with `--incremental-streaming-output`: either is read right, see {@link parseSglangChunk}).
 * Aborting `signal` closes the HTTP request (SGLang aborts the request when its client leaves).
 */
export async function* streamSglang(base: string, call: CompletionCall): AsyncGenerator<EngineStep> {
  const sampling: Record<string, unknown> = {};
  if (call.maxTokens !== undefined) sampling.max_new_tokens = call.maxTokens;
  if (call.temperature !== undefined) sampling.temperature = call.temperature;
  if (call.topP !== undefined) sampling.top_p = call.topP;
  if (call.seed !== undefined) sampling.sampling_seed = call.seed;
  const body = { input_ids: call.tokenIds, sampling_params: sampling, stream: true };
  let emitted = 0;
  yield* streamSse(base, '/generate', body, call.signal, (data) => {
    const step = parseSglangChunk(base, data, emitted);
    if (step) emitted += step.tokenIds.length;
    return step;
  });
}

/** POSTs `body` to the engine and yields the step of each SSE `data:` line until `[DONE]` or a finish reason. */
async function* streamSse(
  base: string,
  path: string,
  body: unknown,
  signal: AbortSignal,
  parse: (data: string) => EngineStep | undefined,
): AsyncGenerator<EngineStep> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (signal.aborted) return;
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
        const step = parse(data);
        if (step) {
          yield step;
          if (step.finishReason !== undefined) return;
        }
      }
    }
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  }
  throw new UnavailableError(`engine ${base} ended the stream without a finish reason`);
}

/** Token ids as an engine sent them: an array of uint32, or undefined when `v` is not one. */
function tokenIdsOf(v: unknown): number[] | undefined {
  return Array.isArray(v) && v.every((t) => Number.isInteger(t) && t >= 0 && t <= 0xffffffff)
    ? (v as number[])
    : undefined;
}

/** Throws the engine's in-stream error (`{"error": {"message"}}`), if the chunk is one. */
function throwIfError(base: string, o: unknown): void {
  const e = (o as { error?: { message?: unknown } } | null)?.error;
  if (e) throw new Error(`engine ${base}: ${String((e as { message?: unknown }).message ?? 'error')}`);
}

function parseJson(base: string, data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new Error(`engine ${base} sent a chunk that is not JSON`);
  }
}

/**
 * One `data:` chunk of SGLang's `/generate` stream: `{output_ids, meta_info: {completion_tokens,
 * finish_reason, ...}}`. `output_ids` holds every token so far (the default) or only the new ones
 * (`--incremental-streaming-output`); either way they end with the `completion_tokens - emitted`
 * tokens not yet emitted, which is what this returns. `finish_reason` is null or
 * `{type: 'length' | 'stop' | 'abort', ...}`: an abort fails the request with the engine's message.
 */
export function parseSglangChunk(base: string, data: string, emitted: number): EngineStep | undefined {
  const o = parseJson(base, data) as { output_ids?: unknown; meta_info?: Record<string, unknown> } | null;
  throwIfError(base, o);
  if (!o || typeof o !== 'object') throw new Error(`engine ${base} sent a chunk that is not an object`);
  const ids = tokenIdsOf(o.output_ids);
  if (!ids) throw new Error(`engine ${base} sent bad output_ids`);
  const meta = o.meta_info;
  const total = meta?.completion_tokens;
  if (typeof total !== 'number' || !Number.isInteger(total)) {
    throw new Error(`engine ${base} sent a chunk without meta_info.completion_tokens`);
  }
  const fresh = total - emitted;
  if (fresh < 0 || fresh > ids.length) {
    throw new Error(`engine ${base} sent ${ids.length} output_ids for ${total} tokens after ${emitted}`);
  }
  const step: EngineStep = { tokenIds: ids.slice(ids.length - fresh) };
  const finish = meta?.finish_reason as { type?: unknown; message?: unknown; status_code?: unknown } | null;
  if (finish !== null && finish !== undefined) {
    if (finish.type === 'abort') {
      const msg = `engine ${base} aborted the request: ${String(finish.message ?? 'no reason given')}`;
      const code = finish.status_code;
      // A 4xx is this request's fault; anything else may go better on another worker.
      throw typeof code === 'number' && code >= 400 && code < 500 ? new Error(msg) : new UnavailableError(msg);
    }
    step.finishReason = mapFinish(finish.type);
  }
  if (step.tokenIds.length === 0 && step.finishReason === undefined) return undefined;
  return step;
}

/** One SSE chunk of a completion stream; undefined when it carries nothing. */
export function parseChunk(base: string, data: string): EngineStep | undefined {
  const o = parseJson(base, data) as { choices?: unknown } | null;
  throwIfError(base, o);
  const choice = Array.isArray(o?.choices) ? (o.choices[0] as Record<string, unknown> | undefined) : undefined;
  if (!choice) return undefined;
  const ids = choice.token_ids;
  const finish = choice.finish_reason;
  if (ids === undefined || ids === null) {
    if (finish === null || finish === undefined) return undefined;
    return { tokenIds: [], finishReason: mapFinish(finish) };
  }
  const tokens = tokenIdsOf(ids);
  if (!tokens) throw new Error(`engine ${base} sent bad token_ids (is return_token_ids supported? vLLM >= 0.10.2)`);
  const step: EngineStep = { tokenIds: tokens };
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

/** The engine's API and, from SGLang's `/get_server_info`, its KV page size and cache size. */
export interface EngineInfo {
  kind: EngineKind;
  /** SGLang's `page_size` (the KV block size its events use). */
  blockSize?: number;
  /** SGLang's `max_total_num_tokens / page_size`. */
  totalBlocks?: number;
}

const positiveInt = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;

/**
 * Which API the engine speaks (`auto`: SGLang when `GET /get_server_info` answers with a
 * `page_size`, which vLLM does not serve) and what SGLang reports of its cache.
 */
export async function detectEngine(base: string, kind: EngineKind | 'auto', timeoutMs: number): Promise<EngineInfo> {
  if (kind === 'vllm') return { kind };
  let res: Response;
  try {
    res = await fetch(`${base}/get_server_info`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new Error(`engine ${base} did not answer /get_server_info: ${(e as Error).message}`);
  }
  const text = await res.text().catch(() => '');
  let info: Record<string, unknown> | undefined;
  if (res.ok && text.length <= 8 << 20) {
    try {
      const v: unknown = JSON.parse(text);
      if (v && typeof v === 'object' && !Array.isArray(v)) info = v as Record<string, unknown>;
    } catch {
      info = undefined;
    }
  }
  const pageSize = positiveInt(info?.page_size);
  if (pageSize === undefined) {
    if (kind === 'sglang') {
      throw new Error(`engine ${base} answered /get_server_info with ${res.status} and no page_size: is it SGLang?`);
    }
    return { kind: 'vllm' };
  }
  const out: EngineInfo = { kind: 'sglang', blockSize: pageSize };
  const tokens = positiveInt(info?.max_total_num_tokens);
  if (tokens !== undefined) out.totalBlocks = Math.max(1, Math.floor(tokens / pageSize));
  return out;
}
