import { startFrontend, type GenerateEvent, type GenerateRequest } from '@dynamo-ts/frontend';
import { isDynamoError, type CancelSource, type EndpointClient, type Logger } from '@dynamo-ts/runtime';
import { defineService } from '@dynamo-ts/sdk';
import type { ProcessorEvent, ProcessorRequest } from './protocol';
import { Processor } from './processor';
import { DummyWorker } from './worker';

/** Config of the Frontend. */
export interface FrontendConfig {
  /** HTTP port; default `DYNAMO_PORT` (8000). */
  port?: number;
  /** Listen address; default `DYNAMO_HOST` (`0.0.0.0`). */
  host?: string;
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
 * `/health`, `/live`, `/metrics`; calls the Processor. API keys come from the settings (`DYNAMO_API_KEYS`).
 */
export const Frontend = defineService<FrontendConfig>({
  name: 'Frontend',
  dependencies: [Processor],
  configSchema: {
    properties: {
      port: { type: 'integer', minimum: 0, maximum: 65535 },
      host: { type: 'string' },
      body_limit_bytes: { type: 'integer', minimum: 1, default: 4 * 1024 * 1024 },
      request_timeout_ms: { type: 'integer', minimum: 0, default: 0 },
    },
  },
  async create(ctx) {
    const processor = await ctx.client(Processor, 'generate');
    const workers = await ctx.client(DummyWorker, 'generate');
    const server = await startFrontend({
      port: ctx.config.port ?? ctx.settings.port,
      host: ctx.config.host ?? ctx.settings.host ?? '0.0.0.0',
      bodyLimit: ctx.config.body_limit_bytes,
      logger: ctx.logger,
      requestTimeoutMs: ctx.config.request_timeout_ms,
      // DYNAMO_API_KEYS / DYNAMO_API_KEY_FILE / DYNAMO_API_KEY and DYNAMO_METRICS_REQUIRE_KEY, read by the CLI.
      ...(ctx.settings.apiKeys?.length
        ? { apiKeys: ctx.settings.apiKeys, metricsRequireKey: ctx.settings.metricsRequireKey }
        : {}),
      models: () => [
        ...new Set(
          workers.instances().map((i) => {
            const model = i.metadata?.model;
            return typeof model === 'string' && model ? model : DEFAULT_MODEL;
          }),
        ),
      ],
      generate: (req, { parent }) => new ResumableStream(processor, ctx.logger, req, parent),
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

/**
 * A call to the Processor; a stream that breaks after some items (its Processor died, or NATS
 * dropped the connection under it) is resumed on a Processor with the tokens already sent, so
 * the client's stream goes on without a gap or a duplicate. A plain iterator rather than an async
 * generator: each token is one `then` on the Processor stream's own `next()`, not a generator's
 * extra promise hops (the SSE path reads thousands per request); a class, so a request makes one
 * object rather than a set of closures.
 */
class ResumableStream implements AsyncIterableIterator<GenerateEvent> {
  /** Token ids received so far (sent again on a resume). */
  private readonly received: number[] = [];
  private resumes = 0;
  /** An item arrived from the current upstream. */
  private got = false;
  private finished = false;
  private upstream: AsyncIterator<ProcessorEvent> | undefined = undefined;

  // Bound once per request. (Arrow-function fields would do the same, but tsx, which runs graph
  // files, names every such function with a defineProperty call: measurable per request.)
  private readonly onItem: (r: IteratorResult<ProcessorEvent>) => IteratorResult<GenerateEvent>;
  private readonly onError: (e: unknown) => Promise<IteratorResult<GenerateEvent>>;

  constructor(
    private readonly processor: EndpointClient,
    private readonly logger: Logger,
    private readonly req: GenerateRequest,
    private readonly parent: CancelSource,
  ) {
    this.onItem = this.item.bind(this);
    this.onError = this.recover.bind(this);
  }

  next(): Promise<IteratorResult<GenerateEvent>> {
    if (this.finished) return Promise.resolve({ done: true, value: undefined });
    return (this.upstream ?? this.open()).next().then(this.onItem, this.onError);
  }

  return(): Promise<IteratorResult<GenerateEvent>> {
    this.finished = true;
    void this.upstream?.return?.()?.catch(() => undefined);
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private open(): AsyncIterator<ProcessorEvent> {
    const received = this.received;
    const payload: ProcessorRequest = received.length ? { ...this.req, generated_token_ids: received } : this.req;
    this.got = false;
    this.upstream = this.processor
      .generate<ProcessorEvent>(payload, {
        parent: this.parent,
        requestId: this.req.request_id,
        waitForInstanceMs: WAIT_FOR_PROCESSOR_MS,
      })
      [Symbol.asyncIterator]();
    return this.upstream;
  }

  private item(r: IteratorResult<ProcessorEvent>): IteratorResult<GenerateEvent> {
    if (r.done) {
      this.finished = true;
      return r;
    }
    this.got = true;
    const ids = r.value.token_ids;
    for (let i = 0; i < ids.length; i++) this.received.push(ids[i]!);
    return r;
  }

  private async recover(e: unknown): Promise<IteratorResult<GenerateEvent>> {
    const broken = isDynamoError(e) && (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT');
    const some = this.got || this.received.length > 0;
    if (this.finished || this.parent.cancelled || !broken || !some || this.resumes >= MAX_RESUMES) {
      this.finished = true;
      throw e;
    }
    this.logger.warn('stream from the Processor broke; resuming', {
      request_id: this.req.request_id,
      received_tokens: this.received.length,
      error: (e as Error).message,
    });
    await new Promise((r) => setTimeout(r, 100 * (this.resumes + 1)));
    this.resumes++;
    return this.open().next().then(this.onItem, this.onError);
  }
}
