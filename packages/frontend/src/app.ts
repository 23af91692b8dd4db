import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { register as globalRegistry, type Registry } from 'prom-client';
import { noopLogger, type Logger } from '@dynamo-ts/runtime';
import { Admission, type AdmissionOptions } from './admission';
import { apiKeyAuth, checkApiKeys } from './auth';
import { dashboardRoutes, type FrontendDashboardOptions } from './dashboard/routes';
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
  /** Load shedding per model (see {@link Admission}); default none. */
  admission?: AdmissionOptions;
  /**
   * The Prometheus registry the `dynamo_frontend_*` metrics go to and `GET /metrics` serves.
   * Default prom-client's global `register`, so metrics other components of the process register there appear too.
   */
  registry?: Registry;
  /**
   * The live dashboard at `GET /dashboard` (its numbers at `/dashboard/data`, behind the API key
   * when one is set). Default on; `false` turns it off.
   */
  dashboard?: boolean | FrontendDashboardOptions;
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
  const admission = options.admission ? new Admission(options.admission, registry) : undefined;
  const deps: OpenAiDeps = {
    generate: options.generate,
    models: options.models,
    metrics,
    logger,
    timeoutMs,
    admission,
  };
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
  const bodyLimit = byteLimit(options.bodyLimit ?? 4 * 1024 * 1024);
  const parseJson = express.json({
    limit: bodyLimit,
    strict: false,
    type: 'application/json',
  });
  const dashboard =
    options.dashboard === false
      ? undefined
      : dashboardRoutes(options.dashboard === true ? {} : (options.dashboard ?? {}), registry, logger);
  // The dashboard's page holds no data: served before the API key check (it asks for the key).
  // Routes on their paths rather than a middleware, so other requests only pass a path match.
  if (dashboard) app.all(dashboard.pagePaths, dashboard.handler);
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
    // A declared size over the limit is refused before the body arrives (the JSON parser would
    // answer only once it had all come in), and the connection closed rather than drained.
    const declared = req.headers['content-length'];
    if (declared !== undefined && declared.length > 0 && Number(declared) > bodyLimit) {
      res.setHeader('Connection', 'close');
      next(tooLarge(Number(declared), bodyLimit));
      return;
    }
    if (auth === undefined) parseJson(req, res, next);
    else auth(req, res, (err?: unknown) => (err === undefined ? parseJson(req, res, next) : next(err)));
  });

  app.post('/generate', generateRoute({ generate: options.generate, logger, metrics, timeoutMs, admission }));
  app.post('/v1/chat/completions', chatCompletionsRoute(deps));
  app.post('/v1/completions', completionsRoute(deps));
  app.use(modelsRoutes(options.models));
  app.use(healthRoutes(options.health ?? (() => ({ ok: true }))));
  app.use(metricsRoutes(registry));
  if (dashboard) app.all(dashboard.dataPath, dashboard.handler);

  app.use((req: Request, res: Response) => {
    res.status(404).json({
      error: { message: `no route ${req.method} ${req.path}`, type: 'not_found_error', code: 'not_found', param: null },
    });
  });
  // express recognises error middleware by its four parameters.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof HttpError) {
      if (!res.headersSent) {
        if (err.headers) res.set(err.headers);
        res.status(err.status).json(err.body());
      }
      return;
    }
    const e = err as { type?: string; status?: number; message?: string; limit?: number; length?: number };
    if (e.type === 'entity.too.large') {
      res.setHeader('Connection', 'close');
      const t = tooLarge(e.length, bodyLimit);
      res.status(t.status).json(t.body());
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

/** The body limit in bytes: a number, or a string like `512kb` / `4mb` (as express's `limit`). */
export function byteLimit(limit: number | string): number {
  if (typeof limit === 'number') {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`bodyLimit must be a positive integer (got ${limit})`);
    return limit;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(limit);
  if (!m) throw new RangeError(`bodyLimit must be bytes or a size like 4mb (got ${JSON.stringify(limit)})`);
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(m[2] ?? 'b').toLowerCase() as 'b'];
  return Math.floor(Number(m[1]) * unit);
}

/** The 413 of a body over the limit, naming the limit clients are held to. */
function tooLarge(size: number | undefined, limit: number): HttpError {
  const mib = limit >= 1024 * 1024 ? ` (${+(limit / 1024 / 1024).toFixed(2)} MiB)` : '';
  return new HttpError(
    413,
    'invalid_request_error',
    'payload_too_large',
    `request body${size !== undefined ? ` of ${size} bytes` : ''} exceeds the limit of ${limit} bytes${mib}`,
  );
}
