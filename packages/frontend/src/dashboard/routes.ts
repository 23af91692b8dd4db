import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Registry } from 'prom-client';
import { dashboard, metrics, type Logger } from '@dynamo-ts/runtime';

/** The frontend's `dashboard` option (see {@link FrontendDashboardOptions}). */
export interface FrontendDashboardOptions {
  /**
   * Workers this frontend knows of itself, shown with those of the process's dashboard sources
   * (`metrics.registerDashboardSource`, e.g. a Router served in the same process).
   */
  workers?: metrics.DashboardSource;
  /** How often the page polls, ms. Default 2000. */
  pollMs?: number;
  /** Span of the headline rate and percentiles, ms. Default 60 000. */
  windowMs?: number;
}

/** The two halves of the dashboard: the static page (no data, open) and its data (behind the API key). */
export interface DashboardRoutes {
  /** `/dashboard`, `/dashboard/`, `/dashboard/app.js`, `/dashboard/style.css`: mounted before the API key check. */
  pagePaths: string[];
  /** `/dashboard/data`: mounted after the API key check. */
  dataPath: string;
  /** Answers any of those paths (405 JSON for methods other than GET and HEAD). */
  handler: RequestHandler;
}

/**
 * The live dashboard of the frontend: the page is served to anyone (it holds no number; when the
 * frontend has an API key the page asks for it), the numbers only with the key.
 */
export function dashboardRoutes(
  options: FrontendDashboardOptions,
  registry: Registry,
  logger: Logger,
): DashboardRoutes {
  const onSourceError = (source: string, e: Error): void =>
    logger.warn('dashboard source failed', { source, error: e.message });
  const sources = new metrics.DashboardSources();
  sources.register('process', () => metrics.dashboardSources.workers(onSourceError));
  if (options.workers) sources.register('frontend', options.workers);
  const collector = new dashboard.DashboardCollector({
    registry,
    sources,
    ...(options.windowMs !== undefined ? { windowMs: options.windowMs } : {}),
    onSourceError,
  });
  const handler = dashboard.createDashboardHandler({
    collector,
    logger,
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
  });
  const paths = ['/dashboard', '/dashboard/', '/dashboard/app.js', '/dashboard/style.css', '/dashboard/data'];
  return {
    pagePaths: paths.filter((p) => handler.part(p) !== 'data'),
    dataPath: paths.find((p) => handler.part(p) === 'data')!,
    handler: (req: Request, res: Response, next: NextFunction) => {
      if (!handler.handle(req, res)) next();
    },
  };
}
