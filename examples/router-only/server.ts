/**
 * The router on its own: a small Node HTTP service that routes each OpenAI request to the vLLM
 * instance whose KV cache holds the longest prefix of it, and proxies the request there. It uses
 * `@dynamo-ts/router` and the ZMQ ingest of `@dynamo-ts/vllm/ingest`, nothing of the runtime.
 * Tokens come from the engine's own `/tokenize` (so routing hashes what the engine caches).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KvRouter } from '@dynamo-ts/router';
import { KvEventIngest, type IngestLogger } from '@dynamo-ts/vllm/ingest';

/** An engine: HTTP base URL (http://10.0.0.5:8000), KV-event PUB and replay endpoints (tcp://10.0.0.5:5557). */
export interface EngineAddress {
  url: string;
  kvEvents: string;
  kvReplay?: string;
}

export interface RouterOnlyOptions {
  engines: EngineAddress[];
  /** The engines' --block-size. */
  blockSize: number;
  port?: number;
  host?: string;
  logger: IngestLogger;
}

const MAX_BODY = 8 << 20;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Starts the service; resolves with its URL and a close function. */
export async function startRouterOnly(
  o: RouterOnlyOptions,
): Promise<{ url: string; router: KvRouter; close(): Promise<void> }> {
  const router = new KvRouter({ blockSize: o.blockSize, strategy: 'kv' });
  const ingests = o.engines.map((e) => {
    router.addWorker(e.url);
    const ing = new KvEventIngest({
      workerId: e.url,
      endpoint: e.kvEvents,
      replayEndpoint: e.kvReplay,
      blockSize: o.blockSize,
      emit: (ev) => router.applyEvent(ev),
      logger: o.logger,
    });
    ing.start();
    return ing;
  });
  let seq = 0;
  const fail = (res: ServerResponse, status: number, message: string): void => {
    if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message, type: status < 500 ? 'invalid_request_error' : 'api_error' } }));
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '';
      if (req.method !== 'POST' || !['/v1/completions', '/v1/chat/completions'].includes(path)) {
        return fail(res, 404, `no route ${req.method} ${path}`);
      }
      const raw = await readBody(req);
      let body: { prompt?: unknown; messages?: unknown; model?: unknown };
      try {
        body = JSON.parse(raw.toString('utf8')) as typeof body;
      } catch {
        return fail(res, 400, 'body is not JSON');
      }
      if (typeof body !== 'object' || body === null) return fail(res, 400, 'body must be a JSON object');
      const chat = path === '/v1/chat/completions';
      if (chat ? !Array.isArray(body.messages) : body.prompt === undefined) {
        return fail(res, 400, chat ? 'messages is required' : 'prompt is required');
      }
      // The engine's tokenizer (any engine: they serve the same model).
      const abort = new AbortController();
      res.on('close', () => abort.abort());
      const first = o.engines[seq % o.engines.length]!.url;
      const tok = await fetch(`${first}/tokenize`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          chat ? { model: body.model, messages: body.messages } : { model: body.model, prompt: body.prompt },
        ),
        signal: abort.signal,
      });
      const tokens = ((await tok.json()) as { tokens?: unknown }).tokens;
      if (!tok.ok || !Array.isArray(tokens))
        return fail(res, tok.ok ? 502 : tok.status, 'the engine could not tokenize the request');
      const requestId = `r${++seq}`;
      const decision = router.route({ tokenIds: tokens as number[], requestId });
      o.logger.debug('routed', {
        request_id: requestId,
        engine: decision.worker_id,
        overlap_blocks: decision.overlap_blocks,
      });
      try {
        const up = await fetch(`${decision.worker_id}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: raw,
          signal: abort.signal,
        });
        router.onFirstToken(requestId);
        res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
        if (up.body) for await (const chunk of up.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
        res.end();
      } finally {
        router.onFinished(requestId);
      }
    })().catch((e: Error & { status?: number }) => {
      if (!res.writableEnded) fail(res, e.status ?? 502, e.message);
    });
  });
  await new Promise<void>((r) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', r));
  return {
    url: `http://${o.host ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`,
    router,
    async close() {
      for (const i of ingests) i.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
