import { startFrontend, type GenerateEvent, type GenerateRequest } from '@dynamo-ts/frontend';
import { isDynamoError, type CancelSource } from '@dynamo-ts/runtime';
import { defineService } from '@dynamo-ts/sdk';
import type { ProcessorEvent, ProcessorRequest } from './protocol';
import { Processor } from './processor';
import { DummyWorker } from './worker';

/** Config of the Frontend. */
export interface FrontendConfig {
  /** HTTP port; default `DYNAMO_PORT` (8000). */
  port?: number;
  host: string;
  /** Largest request body accepted, bytes (413 above). */
  body_limit_bytes: number;
  /** Per-request timeout, ms (504 after it); 0 = none. */
  request_timeout_ms: number;
}

/** How long a request waits for a Processor to (re)register (lost lease, restart) before a 503. */
const WAIT_FOR_PROCESSOR_MS = 2000;
/** Times one client stream may be resumed after its stream from a Processor broke. */
const MAX_RESUMES = 3;

/** The model a DummyWorker serves when its discovery metadata names none. */
export const DEFAULT_MODEL = 'hello-world';

/**
 * The HTTP frontend: `POST /generate` (SSE or JSON), the OpenAI routes (`/v1/chat/completions`,
 * `/v1/completions`, `/v1/models` listing the models the DummyWorkers announce in discovery),
 * `/health`, `/live`, `/metrics`; calls the Processor. `DYNAMO_API_KEY`, when set, is the API key.
 */
export const Frontend = defineService<FrontendConfig>({
  name: 'Frontend',
  dependencies: [Processor],
  configSchema: {
    properties: {
      port: { type: 'integer', minimum: 0, maximum: 65535 },
      host: { type: 'string', default: '0.0.0.0' },
      body_limit_bytes: { type: 'integer', minimum: 1, default: 4 * 1024 * 1024 },
      request_timeout_ms: { type: 'integer', minimum: 0, default: 0 },
    },
  },
  async create(ctx) {
    const processor = await ctx.client(Processor, 'generate');
    const workers = await ctx.client(DummyWorker, 'generate');
    /**
     * Calls the Processor; a stream that breaks after some items (its Processor died, or NATS
     * dropped the connection under it) is resumed on a Processor with the tokens already sent,
     * so the client's stream goes on without a gap or a duplicate. A plain iterator rather than an
     * async generator: each token is one `then` on the Processor stream's own `next()`, not a
     * generator's extra promise hops (the SSE path reads thousands per request).
     */
    function resumable(req: GenerateRequest, parent: CancelSource): AsyncIterableIterator<GenerateEvent> {
      const received: number[] = [];
      let resumes = 0;
      let got = false;
      let finished = false;
      let upstream: AsyncIterator<ProcessorEvent> | undefined;
      const open = (): AsyncIterator<ProcessorEvent> => {
        const payload: ProcessorRequest = { ...req, ...(received.length ? { generated_token_ids: received } : {}) };
        got = false;
        upstream = processor
          .generate<ProcessorEvent>(payload, {
            parent,
            requestId: req.request_id,
            waitForInstanceMs: WAIT_FOR_PROCESSOR_MS,
          })
          [Symbol.asyncIterator]();
        return upstream;
      };
      const onItem = (r: IteratorResult<ProcessorEvent>): IteratorResult<GenerateEvent> => {
        if (r.done) {
          finished = true;
          return r;
        }
        got = true;
        const ids = r.value.token_ids;
        for (let i = 0; i < ids.length; i++) received.push(ids[i]!);
        return r;
      };
      const onError = async (e: unknown): Promise<IteratorResult<GenerateEvent>> => {
        const broken = isDynamoError(e) && (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT');
        if (finished || parent.cancelled || !broken || !(got || received.length > 0) || resumes >= MAX_RESUMES) {
          finished = true;
          throw e;
        }
        ctx.logger.warn('stream from the Processor broke; resuming', {
          request_id: req.request_id,
          received_tokens: received.length,
          error: (e as Error).message,
        });
        await new Promise((r) => setTimeout(r, 100 * (resumes + 1)));
        resumes++;
        return open().next().then(onItem, onError);
      };
      return {
        next(): Promise<IteratorResult<GenerateEvent>> {
          if (finished) return Promise.resolve({ done: true, value: undefined });
          return (upstream ?? open()).next().then(onItem, onError);
        },
        return(): Promise<IteratorResult<GenerateEvent>> {
          finished = true;
          void upstream?.return?.()?.catch(() => undefined);
          return Promise.resolve({ done: true, value: undefined });
        },
        [Symbol.asyncIterator]() {
          return this;
        },
      };
    }

    const server = await startFrontend({
      port: ctx.config.port ?? ctx.settings.port,
      host: ctx.config.host,
      bodyLimit: ctx.config.body_limit_bytes,
      logger: ctx.logger,
      requestTimeoutMs: ctx.config.request_timeout_ms,
      // The example is an edge of the system, where the environment may be read.
      apiKey: process.env.DYNAMO_API_KEY || undefined,
      models: () => [
        ...new Set(
          workers.instances().map((i) => {
            const model = i.metadata?.model;
            return typeof model === 'string' && model ? model : DEFAULT_MODEL;
          }),
        ),
      ],
      generate: (req, { parent }) => resumable(req, parent),
      health: () => {
        const n = workers.instances().length;
        const p = processor.instances().length;
        if (p === 0) return { ok: false, reason: 'no Processor instance', workers: n };
        if (n === 0) return { ok: false, reason: 'no DummyWorker instance', workers: n };
        return { ok: true, workers: n };
      },
    });
    return {
      metadata: { url: server.url },
      drain: (o) => server.drain(o),
      close: () => server.close(),
    };
  },
});
