import { startFrontend, type FrontendServerOptions } from '@dynamo-ts/frontend';
import { RetryPolicy } from '@dynamo-ts/runtime';
import { defineService, type AnyServiceDefinition, type ServiceContext, type ServiceDefinition } from '@dynamo-ts/sdk';
import { type ProcessorApi, type LlmRequest } from './protocol';
import { ResumableStream } from './resume';

/** Config of a Frontend service. */
export interface FrontendConfig {
  /** HTTP port; default `DYNAMO_PORT` (8000). */
  port?: number;
  /** Listen address; default `DYNAMO_HOST`, else `0.0.0.0` (reachable from the other nodes). */
  host?: string;
  /** Largest request body accepted, bytes (413 above). */
  body_limit_bytes: number;
  /** Per-request timeout, ms (504 after it); 0 = none. */
  request_timeout_ms: number;
  /** Times one client stream may be resumed after its stream from a Processor broke. */
  max_resumes: number;
  /** Pause before the n-th resume: n times this, ms. */
  resume_backoff_ms: number;
  /** Requests of one model answered at once; more wait (`max_queued_requests`) or are shed. 0: no limit. */
  max_concurrent_requests: number;
  /** Requests of one model waiting for a slot; beyond it a request is shed at once (529 by default). */
  max_queued_requests: number;
  /** The longest a request waits for a slot before it is shed, ms. */
  queue_timeout_ms: number;
}

/** Options of {@link frontendService}. */
export interface FrontendServiceOptions {
  /** Component name. Default `Frontend`. */
  name?: string;
  /** The Processor service ({@link ProcessorApi}). */
  processor: ServiceDefinition<never, typeof ProcessorApi> | AnyServiceDefinition;
  /** The worker service: `/v1/models` lists the models its instances register; `/health` counts them. */
  worker: AnyServiceDefinition;
  /** The model listed for a worker whose metadata names none. */
  defaultModel: string;
  /** Extra options of the HTTP frontend, e.g. from the app's own settings. */
  http?(ctx: ServiceContext<FrontendConfig>): Partial<FrontendServerOptions>;
}

/** How long a request waits for a Processor to (re)register (lost lease, restart) before a 503. */
const WAIT_FOR_PROCESSOR_MS = 2000;

/**
 * The HTTP frontend component: `POST /generate`, the OpenAI routes, `/health`, `/metrics`,
 * calling the Processor with stream resume (a Processor that dies mid-stream is replaced without
 * the client seeing a gap).
 */
export function frontendService(o: FrontendServiceOptions): ServiceDefinition<FrontendConfig> {
  return defineService<FrontendConfig>({
    name: o.name ?? 'Frontend',
    dependencies: [o.processor],
    configSchema: {
      properties: {
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        host: { type: 'string', minLength: 1, maxLength: 255 },
        body_limit_bytes: { type: 'integer', minimum: 1, maximum: 1 << 30, default: 4 * 1024 * 1024 },
        request_timeout_ms: { type: 'integer', minimum: 0, maximum: 2 ** 31 - 1, default: 0 },
        max_resumes: { type: 'integer', minimum: 0, maximum: 16, default: 3 },
        resume_backoff_ms: { type: 'number', minimum: 0, maximum: 60000, default: 100 },
        max_concurrent_requests: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 0 },
        max_queued_requests: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 0 },
        queue_timeout_ms: { type: 'integer', minimum: 0, maximum: 2 ** 31 - 1, default: 1000 },
      },
    },
    async create(ctx) {
      const cfg = ctx.config;
      const processor = await ctx.client(o.processor as ServiceDefinition<never, typeof ProcessorApi>, 'generate');
      const workers = await ctx.client(o.worker.name, 'generate');
      const retry = new RetryPolicy({ migrations: cfg.max_resumes, backoffMs: cfg.resume_backoff_ms });
      const server = await startFrontend({
        port: cfg.port ?? ctx.settings.port,
        host: cfg.host ?? ctx.settings.host ?? '0.0.0.0',
        bodyLimit: cfg.body_limit_bytes,
        logger: ctx.logger,
        requestTimeoutMs: cfg.request_timeout_ms,
        // API keys (DYNAMO_API_KEYS, DYNAMO_API_KEY_FILE, DYNAMO_API_KEY) as the CLI read them.
        ...(ctx.settings.apiKeys?.length
          ? { apiKeys: ctx.settings.apiKeys, metricsRequireKey: ctx.settings.metricsRequireKey }
          : {}),
        ...(cfg.max_concurrent_requests > 0
          ? {
              admission: {
                maxConcurrentRequests: cfg.max_concurrent_requests,
                maxQueuedRequests: cfg.max_queued_requests,
                queueTimeoutMs: cfg.queue_timeout_ms,
                ...(ctx.settings.overloadStatusCode ? { overloadStatus: ctx.settings.overloadStatusCode } : {}),
              },
            }
          : {}),
        ...o.http?.(ctx),
        models: () => [
          ...new Set(
            workers.instances().map((i) => {
              const model = i.metadata?.model;
              return typeof model === 'string' && model ? model : o.defaultModel;
            }),
          ),
        ],
        generate: (req, { parent }) =>
          new ResumableStream(processor, req as LlmRequest, {
            tokens: (ev) => ev.token_ids,
            resumeRequest: (r, received) => ({ ...r, generated_token_ids: received }),
            retry,
            logger: ctx.logger,
            requestOptions: { parent, requestId: req.request_id, waitForInstanceMs: WAIT_FOR_PROCESSOR_MS },
          }),
        health: () => {
          const n = workers.instances().length;
          const p = processor.instances().length;
          if (p === 0) return { ok: false, reason: `no ${o.processor.name} instance`, workers: n };
          if (n === 0) return { ok: false, reason: `no ${o.worker.name} instance`, workers: n };
          return { ok: true, workers: n };
        },
      });
      return {
        metadata: { url: server.url },
        drain: (d) => server.drain(d),
        close: () => server.close(),
      };
    },
  });
}
