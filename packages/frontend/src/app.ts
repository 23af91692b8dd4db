import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { register as globalRegistry, type Registry } from 'prom-client';
import { noopLogger, type Logger } from '@dynamo-ts/runtime';
import { apiKeyAuth, checkApiKeys } from './auth';
import { HttpError, sendError } from './errors';
import { FrontendMetrics } from './metrics';
import type { ModelsFn, OpenAiDeps } from './openai/completion';
import { chatCompletionsRoute } from './routes/chat-completions';
import { completionsRoute } from './routes/completions';
import { generateRoute, type GenerateFn } from './routes/generate';
import { healthRoutes, type HealthFn } from './routes/health';
import { metricsRoutes } from './routes/metrics';
import { modelsRoutes } from './routes/models';

/** Options of {@link createFrontendApp}. */
export interface FrontendOptions {
  /** Runs one generation request (`/generate` and the OpenAI routes): yields its events in order. */
  generate: GenerateFn;
  /**
   * The model ids served now, for `GET /v1/models`; a request naming another model gets 404
   * `model_not_found` (503 while none is served). Without it any model name is accepted and the
   * list is empty.
   */
  models?: ModelsFn;
  /** Readiness for `GET /health`; default always ready. */
  health?: HealthFn;
  logger?: Logger;
  /** Largest accepted request body (bytes, or a string like `4mb`). Default 4 MiB. */
  bodyLimit?: number | string;
  /** When set, every route but `/health`, `/live` and `/metrics` needs `Authorization: Bearer <apiKey>` (else 401). */
  apiKey?: string;
  /** Several accepted API keys (e.g. one per client, to rotate them); combined with `apiKey`. */
  apiKeys?: readonly string[];
  /** With a key configured, `/metrics` needs it too. Default false (scrapers need no key). */
  metricsRequireKey?: boolean;
  /** Per-request timeout, ms: the upstream is aborted and the client gets 504 (or an SSE error). 0 = none (default). */
  requestTimeoutMs?: number;
  /**
   * The Prometheus registry the `dynamo_frontend_*` metrics go to and `GET /metrics` serves.
   * Default prom-client's global `register`, so metrics other components of the process register there appear too.
   */
  registry?: Registry;
}

/**
 * Builds the express app of the frontend: `/generate`, the OpenAI routes, `/health`, `/live`,
 * `/metrics`, with JSON body parsing, the optional API key, error mapping and the access log.
 */
export function createFrontendApp(options: FrontendOptions): Express {
  const logger = options.logger ?? noopLogger;
  const timeoutMs = options.requestTimeoutMs ?? 0;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`requestTimeoutMs must be a number >= 0 (got ${timeoutMs})`);
  }
  if (options.apiKey !== undefined && options.apiKey.length === 0) {
    throw new RangeError('apiKey must not be empty (leave it undefined for no key)');
  }
  const registry = options.registry ?? globalRegistry;
  const metrics = new FrontendMetrics(registry);
  const deps: OpenAiDeps = { generate: options.generate, models: options.models, metrics, logger, timeoutMs };
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // The access log: one line per answered request, from one shared 'finish' listener. (Not a
  // property of the response: adding one to that large object copies its property store, 1.7 KB
  // a request, bench/http/alloc-http.ts f.)
  const startedAt = new WeakMap<Response, number>();
  function logAccess(this: Response): void {
    const req = this.req;
    logger.info('http request', {
      method: req.method,
      path: req.path,
      status: this.statusCode,
      latency_ms: performance.now() - (startedAt.get(this) ?? 0),
      request_id: this.getHeader('x-request-id'),
    });
  }
  const parseJson = express.json({
    limit: options.bodyLimit ?? 4 * 1024 * 1024,
    strict: false,
    type: 'application/json',
  });
  const keys = [...(options.apiKey !== undefined ? [options.apiKey] : []), ...(options.apiKeys ?? [])];
  if (options.apiKeys !== undefined) checkApiKeys(options.apiKeys);
  if (options.metricsRequireKey && keys.length === 0) {
    throw new RangeError('metricsRequireKey needs an API key (apiKey or apiKeys)');
  }
  const auth = keys.length > 0 ? apiKeyAuth(keys, { protectMetrics: options.metricsRequireKey }) : undefined;
  // The edge of every request in one middleware: the access log, then the API key (when set),
  // then the JSON body. One express layer rather than two (three with a key): express runs every
  // request through each layer in its router (matching, path trimming, a closure); the merge
  // saved 0.5 KB allocated a request (bench/http/alloc-http.ts f: 36.8 -> 36.3 KB).
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (logger.isLevelEnabled('info')) {
      startedAt.set(res, performance.now());
      res.on('finish', logAccess);
    }
    if (auth === undefined) parseJson(req, res, next);
    else auth(req, res, (err?: unknown) => (err === undefined ? parseJson(req, res, next) : next(err)));
  });

  app.post('/generate', generateRoute({ generate: options.generate, logger, metrics, timeoutMs }));
  app.post('/v1/chat/completions', chatCompletionsRoute(deps));
  app.post('/v1/completions', completionsRoute(deps));
  app.use(modelsRoutes(options.models));
  app.use(healthRoutes(options.health ?? (() => ({ ok: true }))));
  app.use(metricsRoutes(registry));

  app.use((req: Request, res: Response) => {
    res.status(404).json({
      error: { message: `no route ${req.method} ${req.path}`, type: 'not_found_error', code: 'not_found', param: null },
    });
  });
  // express recognises error middleware by its four parameters.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof HttpError) {
      if (!res.headersSent) res.status(err.status).json(err.body());
      return;
    }
    const e = err as { type?: string; status?: number; message?: string; limit?: number };
    if (e.type === 'entity.too.large') {
      res.status(413).json({
        error: {
          message: `request body exceeds the limit of ${e.limit} bytes`,
          type: 'invalid_request_error',
          code: 'payload_too_large',
          param: null,
        },
      });
      return;
    }
    if (e.type === 'entity.parse.failed') {
      res.status(400).json({
        error: {
          message: `request body is not valid JSON: ${e.message}`,
          type: 'invalid_request_error',
          code: 'invalid_json',
          param: null,
        },
      });
      return;
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({
        error: {
          message: e.message ?? 'bad request',
          type: 'invalid_request_error',
          code: e.type ?? 'bad_request',
          param: null,
        },
      });
      return;
    }
    logger.error('unhandled error in request', { error: e.message });
    sendError(res, err);
  });
  return app;
}
