/**
 * Engine doubles (test support, not shipped): a vLLM-like engine with a prefix cache that
 * publishes real `KVEventBatch` bytes on a ZMQ PUB socket (three frames: topic, 8-byte big-endian
 * sequence, msgpack batch) with a ROUTER replay socket answering vLLM's replay protocol, in either
 * encoding (`array`: msgspec array_like tagged structs; `map`: the keyed form), and an
 * OpenAI-compatible HTTP server answering token-id completions (`return_token_ids`), `/health`,
 * `/metrics` and `/v1/models`; or SGLang's HTTP server (`api: 'sglang'`).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as zmq from 'zeromq';
import { sequenceHashes } from '@dynamo-ts/router';
import { seqFrame } from '../../src/ingest/wire';
import { F64, pack, type Msg } from './msgspec';

export type Encoding = 'array' | 'map';

/** The engine's own 64-bit block hash (sha256 of parent + tokens, truncated), usually beyond 2^53. */
export function engineBlockHash(parent: bigint | null, tokens: readonly number[]): bigint {
  const h = createHash('sha256')
    .update(String(parent ?? 'none'))
    .update(Buffer.from(Uint32Array.from(tokens).buffer));
  return h.digest().readBigUInt64BE(0);
}

/** Builds one event in the given encoding. */
export function storedEvent(enc: Encoding, hashes: bigint[], parent: bigint | null, tokens: number[], bs: number): Msg {
  if (enc === 'array') return ['BlockStored', hashes, parent, tokens, bs, null, 'GPU'];
  return {
    type: 'BlockStored',
    block_hashes: hashes,
    parent_block_hash: parent,
    token_ids: tokens,
    block_size: bs,
    lora_id: null,
    medium: 'GPU',
  };
}
export function removedEvent(enc: Encoding, hashes: bigint[]): Msg {
  return enc === 'array'
    ? ['BlockRemoved', hashes, 'GPU']
    : { type: 'BlockRemoved', block_hashes: hashes, medium: 'GPU' };
}
export function clearedEvent(enc: Encoding): Msg {
  return enc === 'array' ? ['AllBlocksCleared'] : { type: 'AllBlocksCleared' };
}
export function batchBytes(enc: Encoding, events: Msg[], dpRank?: number): Buffer {
  const ts = new F64(1767225600.25);
  if (enc === 'array')
    return pack(dpRank === undefined ? [ts as unknown as Msg, events] : [ts as unknown as Msg, events, dpRank]);
  const m: Record<string, Msg> = { ts: ts as unknown as Msg, events };
  if (dpRank !== undefined) m.data_parallel_rank = dpRank;
  return pack(m);
}

/** A ZMQ KV-event publisher with vLLM's sequence numbers, replay buffer and replay socket. */
export class KvPublisherDouble {
  readonly pub = new zmq.Publisher({ linger: 0 });
  readonly replay = new zmq.Router({ linger: 0 });
  endpoint = '';
  replayEndpoint = '';
  seq = 0n;
  readonly buffer: [bigint, Buffer][] = [];
  private closed = false;

  constructor(readonly topic = 'kv-events') {}

  async start(pubEndpoint = 'tcp://127.0.0.1:0', replayEndpoint = 'tcp://127.0.0.1:0'): Promise<this> {
    await this.pub.bind(pubEndpoint);
    await this.replay.bind(replayEndpoint);
    this.endpoint = this.pub.lastEndpoint!;
    this.replayEndpoint = this.replay.lastEndpoint!;
    void this.serveReplay();
    return this;
  }

  private async serveReplay(): Promise<void> {
    try {
      for await (const [id, empty, start] of this.replay) {
        if (!id || !empty || !start || start.length !== 8) continue;
        const from = start.readBigInt64BE(0);
        for (const [s, p] of this.buffer) if (s >= from) await this.replay.send([id, Buffer.alloc(0), seqFrame(s), p]);
        await this.replay.send([id, Buffer.alloc(0), seqFrame(-1), Buffer.alloc(0)]);
      }
    } catch (e) {
      if (!this.closed) throw e;
    }
  }

  /** Publishes a payload as the next batch (`drop`: buffered for replay but never sent: a lost message). */
  async publish(payload: Buffer, o: { drop?: boolean } = {}): Promise<void> {
    const s = this.seq++;
    this.buffer.push([s, payload]);
    if (this.buffer.length > 10000) this.buffer.shift();
    if (!o.drop) await this.send([this.topic, seqFrame(s), payload]);
  }

  /** One send at a time (a zeromq socket refuses a send while another is in progress). */
  private sending: Promise<void> = Promise.resolve();
  private send(frames: (Buffer | string)[]): Promise<void> {
    const next = this.sending.then(() => this.pub.send(frames));
    this.sending = next.catch(() => undefined);
    return next;
  }

  /** Sends raw frames (bad input). */
  async raw(frames: (Buffer | string)[]): Promise<void> {
    await this.send(frames);
  }

  /** The engine restarted: sequence from 0, empty replay buffer. */
  restart(): void {
    this.seq = 0n;
    this.buffer.length = 0;
  }

  close(): void {
    this.closed = true;
    this.pub.close();
    this.replay.close();
  }
}

/** A prefix-caching engine model: the blocks it holds, by engine hash, with the router's hash of each. */
export class CacheModel {
  /** Engine hash -> router sequence hash. */
  readonly blocks = new Map<bigint, bigint>();

  constructor(readonly blockSize: number) {}

  /** Stores the full blocks of `tokens`; returns the event (new blocks only) or undefined. */
  store(tokens: readonly number[], enc: Encoding): Msg | undefined {
    const bs = this.blockSize;
    const routerHashes = sequenceHashes(tokens, bs);
    let prev: bigint | null = null;
    let parent: bigint | null = null;
    const hashes: bigint[] = [];
    let first = -1;
    for (let i = 0; i < routerHashes.length; i++) {
      const h = engineBlockHash(prev, tokens.slice(i * bs, (i + 1) * bs));
      if (first < 0 && !this.blocks.has(h)) {
        first = i;
        parent = prev;
      }
      if (first >= 0) {
        this.blocks.set(h, routerHashes[i]!);
        hashes.push(h);
      }
      prev = h;
    }
    if (first < 0) return undefined;
    const stored = tokens.slice(first * bs, (first + hashes.length) * bs) as number[];
    return storedEvent(enc, hashes, parent, stored, bs);
  }

  remove(hashes: bigint[], enc: Encoding): Msg {
    for (const h of hashes) this.blocks.delete(h);
    return removedEvent(enc, hashes);
  }

  clear(enc: Encoding): Msg {
    this.blocks.clear();
    return clearedEvent(enc);
  }

  /** The router's hashes of what the engine holds. */
  routerHashes(): bigint[] {
    return [...new Set(this.blocks.values())].sort();
  }
}

/** Options of {@link EngineDouble}. */
export interface EngineDoubleOptions {
  blockSize: number;
  totalBlocks?: number;
  model?: string;
  encoding?: Encoding;
  /** Delay between streamed tokens, ms. */
  tokenDelayMs?: number;
  /** Expose `vllm:cache_config_info` (the block size). Default true. */
  cacheConfigInfo?: boolean;
  /**
   * `vllm` (default): vLLM's OpenAI server. `sglang`: SGLang's HTTP server as its
   * `srt/entrypoints/http_server.py` answers: `GET /get_server_info` (`page_size`,
   * `max_total_num_tokens`), `POST /generate` with `input_ids` and `sampling_params` streaming
   * `data: {text, output_ids, meta_info}` chunks then `data: [DONE]`, `sglang:*` metrics.
   */
  api?: 'vllm' | 'sglang';
  /** SGLang's `--incremental-streaming-output`: each chunk's `output_ids` are the new ones only. */
  incremental?: boolean;
}

/** A vLLM double: HTTP server + KV publisher + cache model. */
export class EngineDouble {
  readonly kv = new KvPublisherDouble();
  readonly cache: CacheModel;
  private server: Server | undefined;
  url = '';
  healthy = true;
  waiting = 0;
  /** Requests received (bodies), and how many the client closed before the end. */
  readonly requests: Record<string, unknown>[] = [];
  /** Time the engine saw each client-closed request's connection close (ms, performance.now). */
  readonly closedAt: number[] = [];
  readonly startedAt: number[] = [];
  /** Streams that ran to their end (SGLang double). */
  private finished = 0;
  private readonly enc: Encoding;

  constructor(readonly o: EngineDoubleOptions) {
    this.cache = new CacheModel(o.blockSize);
    this.enc = o.encoding ?? 'array';
  }

  async start(): Promise<this> {
    await this.kv.start();
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Stores `tokens` in the cache and publishes the event. */
  async store(tokens: readonly number[], o: { drop?: boolean } = {}): Promise<void> {
    const e = this.cache.store(tokens, this.enc);
    if (e) await this.kv.publish(batchBytes(this.enc, [e]), o);
  }

  async remove(hashes: bigint[], o: { drop?: boolean } = {}): Promise<void> {
    await this.kv.publish(batchBytes(this.enc, [this.cache.remove(hashes, this.enc)]), o);
  }

  async clear(): Promise<void> {
    await this.kv.publish(batchBytes(this.enc, [this.cache.clear(this.enc)]));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '';
    if (path === '/health') {
      res.writeHead(this.healthy ? 200 : 503).end();
      return;
    }
    if (path === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: this.o.model ?? 'double-model', object: 'model' }] }));
      return;
    }
    if (this.o.api === 'sglang') {
      if (await this.handleSglang(req, res, path)) return;
      res.writeHead(404).end();
      return;
    }
    if (path === '/metrics') {
      const info =
        this.o.cacheConfigInfo === false
          ? ''
          : `# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size="${this.o.blockSize}",num_gpu_blocks="${this.o.totalBlocks ?? 1000}",enable_prefix_caching="True"} 1.0\n`;
      const usage = this.cache.blocks.size / (this.o.totalBlocks ?? 1000);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(
        `# HELP vllm:num_requests_waiting Number of requests waiting.\n# TYPE vllm:num_requests_waiting gauge\n` +
          `vllm:num_requests_waiting{engine="0",model_name="m"} ${this.waiting}.0\n` +
          `vllm:num_requests_running{engine="0",model_name="m"} ${this.startedAt.length - this.closedAt.length}.0\n` +
          `vllm:kv_cache_usage_perc{engine="0",model_name="m"} ${usage}\n` +
          info,
      );
      return;
    }
    if (
      req.method === 'POST' &&
      (path === '/tokenize' || path === '/v1/completions' || path === '/v1/chat/completions')
    ) {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        prompt: number[] | string;
        messages?: { content: string }[];
        max_tokens?: number;
        stream?: boolean;
      };
      // Text is tokenized one token per character (vLLM's /tokenize answers {tokens, count, max_model_len}).
      const text = body.messages ? body.messages.map((m) => m.content).join('\n') : body.prompt;
      const textual = typeof text === 'string';
      if (typeof text === 'string') body.prompt = [...text].map((c) => c.codePointAt(0)!);
      if (path === '/tokenize') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ tokens: body.prompt, count: body.prompt.length, max_model_len: 4096 }));
        return;
      }
      this.requests.push(body);
      if (body.stream === false || (body.stream === undefined && textual)) {
        await this.store(body.prompt as number[]);
        const chat = path === '/v1/chat/completions';
        res.writeHead(200, { 'content-type': 'application/json' });
        const choice = chat
          ? { index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'length' }
          : { index: 0, text: 'ok', finish_reason: 'length' };
        const usage = { prompt_tokens: body.prompt.length, completion_tokens: 1, total_tokens: body.prompt.length + 1 };
        res.end(
          JSON.stringify({
            id: 'x',
            object: chat ? 'chat.completion' : 'text_completion',
            created: 0,
            model: 'm',
            choices: [choice],
            usage,
          }),
        );
        return;
      }
      if (!Array.isArray(body.prompt) || !body.prompt.every((t) => Number.isInteger(t))) {
        res
          .writeHead(400, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: { message: 'prompt must be token ids' } }));
        return;
      }
      this.startedAt.push(performance.now());
      let done = false;
      res.on('close', () => {
        if (!done) this.closedAt.push(performance.now());
      });
      await this.store(body.prompt);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const n = body.max_tokens ?? 4;
      const last = body.prompt[body.prompt.length - 1] ?? 0;
      for (let i = 0; i < n; i++) {
        if (res.destroyed) return;
        if (this.o.tokenDelayMs) await new Promise((r) => setTimeout(r, this.o.tokenDelayMs));
        if (res.destroyed) return;
        const chunk = {
          id: 'cmpl-1',
          object: 'text_completion',
          choices: [
            { index: 0, text: '', token_ids: [(last + i + 1) % 50000], finish_reason: i === n - 1 ? 'length' : null },
          ],
        };
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      }
      done = true;
      res.end('data: [DONE]\n\n');
      return;
    }
    res.writeHead(404).end();
  }

  /** SGLang's routes; false for a path it does not serve. */
  private async handleSglang(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const bs = this.o.blockSize;
    const total = this.o.totalBlocks ?? 1000;
    if (path === '/get_server_info') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          model_path: this.o.model ?? 'double-model',
          page_size: bs,
          max_total_num_tokens: total * bs,
          incremental_streaming_output: this.o.incremental === true,
          internal_states: [{}],
          version: '0.5.0',
        }),
      );
      return true;
    }
    if (path === '/metrics') {
      const labels = 'model_name="m",engine_type="unified",tp_rank="0",pp_rank="0"';
      const running = this.startedAt.length - this.closedAt.length - this.finished;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(
        `# HELP sglang:num_running_reqs The number of running requests.\n# TYPE sglang:num_running_reqs gauge\n` +
          `sglang:num_running_reqs{${labels}} ${running}.0\n` +
          `# TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs{${labels}} ${this.waiting}.0\n` +
          `# TYPE sglang:token_usage gauge\nsglang:token_usage{${labels}} ${this.cache.blocks.size / total}\n` +
          `# TYPE sglang:cache_hit_rate gauge\nsglang:cache_hit_rate{${labels}} 0.0\n`,
      );
      return true;
    }
    if (req.method !== 'POST' || path !== '/generate') return false;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      input_ids?: unknown;
      text?: unknown;
      sampling_params?: { max_new_tokens?: number };
      stream?: boolean;
      rid?: string;
    };
    this.requests.push(body as Record<string, unknown>);
    const ids = body.input_ids;
    if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0)) {
      // SGLang's ErrorResponse for a request it cannot read.
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ object: 'error', message: 'input_ids must be token ids', type: 'Bad Request', code: 400 }),
      );
      return true;
    }
    const prompt = ids as number[];
    const n = body.sampling_params?.max_new_tokens ?? 128;
    this.startedAt.push(performance.now());
    let done = false;
    res.on('close', () => {
      if (!done) this.closedAt.push(performance.now());
    });
    await this.store(prompt);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const out: number[] = [];
    const last = prompt[prompt.length - 1] ?? 0;
    for (let i = 0; i < n; i++) {
      if (res.destroyed) return true;
      if (this.o.tokenDelayMs) await new Promise((r) => setTimeout(r, this.o.tokenDelayMs));
      if (res.destroyed) return true;
      const t = (last + i + 1) % 50000;
      out.push(t);
      const end = i === n - 1;
      const chunk = {
        text: out.map((x) => `t${x}`).join(' '),
        output_ids: this.o.incremental ? [t] : [...out],
        meta_info: {
          id: body.rid ?? 'rid-1',
          finish_reason: end ? { type: 'length', length: n } : null,
          prompt_tokens: prompt.length,
          completion_tokens: out.length,
          cached_tokens: 0,
        },
      };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    }
    done = true;
    this.finished++;
    res.end('data: [DONE]\n\n');
    return true;
  }

  async close(): Promise<void> {
    this.kv.close();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
