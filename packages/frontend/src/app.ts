import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { noopLogger, type Logger } from '@dynamo-ts/runtime';
import { HttpError, sendError } from './errors';
import { generateRoute, type GenerateFn } from './routes/generate';
import { healthRoutes, type HealthFn } from './routes/health';

/** Options of {@link createFrontendApp}. */
export interface FrontendOptions {
  /** Runs one `/generate` request: yields its events in order. */
  generate: GenerateFn;
  /** Readiness for `GET /health`; default always ready. */
  health?: HealthFn;
  logger?: Logger;
  /** Largest accepted request body (bytes, or a string like `4mb`). Default 4 MiB. */
  bodyLimit?: number | string;
}

/** Builds the express app of the frontend (routes, JSON body parsing, error mapping, access log). */
export function createFrontendApp(options: FrontendOptions): Express {
  const logger = options.logger ?? noopLogger;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req: Request, res: Response, next: NextFunction) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      if (!logger.isLevelEnabled('info')) return;
      logger.info('http request', {
        method: req.method,
        path: req.path,
        status: res.statusCode,
        latency_ms: Number(process.hrtime.bigint() - start) / 1e6,
        request_id: res.getHeader('x-request-id'),
      });
    });
    next();
  });
  app.use(express.json({ limit: options.bodyLimit ?? 4 * 1024 * 1024, strict: false, type: 'application/json' }));

  app.post('/generate', generateRoute(options.generate, logger));
  app.use(healthRoutes(options.health ?? (() => ({ ok: true }))));

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
