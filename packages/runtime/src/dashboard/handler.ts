import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../logger';
import { noopLogger } from '../logger';
import { DashboardCollector } from './data';
import { DASHBOARD_CSS, DASHBOARD_JS, dashboardHtml } from './page';

/** Options of {@link createDashboardHandler}. */
export interface DashboardHandlerOptions {
  /** Where the numbers come from (default: a collector over the process's registry and sources). */
  collector?: DashboardCollector;
  /** Path the dashboard is mounted at. Default `/dashboard`. */
  basePath?: string;
  /** How often the page polls, ms. Default 2000. */
  pollMs?: number;
  logger?: Logger;
}

/** Which part of the dashboard a path names. */
export type DashboardPart = 'page' | 'script' | 'style' | 'data';

/** Answers the dashboard's paths on a plain `node:http` server (the frontend wraps it in express). */
export interface DashboardHandler {
  /** The part `path` (without query) names, or undefined when it is not a dashboard path. */
  part(path: string): DashboardPart | undefined;
  /**
   * Answers `req` when its path is a dashboard path and returns true; returns false (and writes
   * nothing) otherwise. `GET`/`HEAD` only (405 for other methods).
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

/**
 * Headers of every dashboard answer: no inline script or style, nothing loaded from elsewhere,
 * not framed, no MIME sniffing, no referrer.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

const BASE_PATH = /^(\/[A-Za-z0-9._~-]+)+$/;

/** Builds the handler of `GET <basePath>`, `<basePath>/app.js`, `<basePath>/style.css` and `<basePath>/data`. */
export function createDashboardHandler(options: DashboardHandlerOptions = {}): DashboardHandler {
  const basePath = options.basePath ?? '/dashboard';
  if (!BASE_PATH.test(basePath)) {
    throw new RangeError(
      `basePath must be an absolute path like /dashboard without a trailing slash (got ${basePath})`,
    );
  }
  const pollMs = options.pollMs ?? 2000;
  if (!Number.isFinite(pollMs) || pollMs < 250) throw new RangeError(`pollMs must be a number >= 250 (got ${pollMs})`);
  const collector = options.collector ?? new DashboardCollector();
  const logger = options.logger ?? noopLogger;
  const html = dashboardHtml(basePath, pollMs);
  const parts = new Map<string, DashboardPart>([
    [basePath, 'page'],
    [`${basePath}/`, 'page'],
    [`${basePath}/app.js`, 'script'],
    [`${basePath}/style.css`, 'style'],
    [`${basePath}/data`, 'data'],
  ]);
  const statics: Record<Exclude<DashboardPart, 'data'>, { type: string; body: string }> = {
    page: { type: 'text/html; charset=utf-8', body: html },
    script: { type: 'text/javascript; charset=utf-8', body: DASHBOARD_JS },
    style: { type: 'text/css; charset=utf-8', body: DASHBOARD_CSS },
  };

  const send = (res: ServerResponse, status: number, type: string, body: string, head: boolean): void => {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(head ? undefined : body);
  };
  const sendError = (res: ServerResponse, status: number, message: string, type: string, head: boolean): void =>
    send(res, status, 'application/json', JSON.stringify({ error: { message, type, code: null, param: null } }), head);

  return {
    part: (path) => parts.get(path),
    handle(req, res) {
      const path = (req.url ?? '/').split('?')[0]!;
      const part = parts.get(path);
      if (part === undefined) return false;
      const head = req.method === 'HEAD';
      if (req.method !== 'GET' && !head) {
        res.setHeader('allow', 'GET, HEAD');
        sendError(res, 405, `${req.method} is not allowed on ${path} (use GET)`, 'invalid_request_error', false);
        return true;
      }
      if (part !== 'data') {
        const s = statics[part];
        send(res, 200, s.type, s.body, head);
        return true;
      }
      collector.read().then(
        (data) => send(res, 200, 'application/json', JSON.stringify(data), head),
        (e: Error) => {
          logger.error('dashboard data failed', { error: e.message });
          sendError(res, 500, `dashboard data failed: ${e.message}`, 'internal_error', head);
        },
      );
      return true;
    },
  };
}
