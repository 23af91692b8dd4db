import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { HttpError } from './errors';

/** Paths answered without an API key (probes and scrapes). */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/health', '/live', '/metrics']);

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Requires `Authorization: Bearer <apiKey>` on every path but {@link OPEN_PATHS}; anything else
 * gets 401 `invalid_api_key` in OpenAI's error shape. The comparison takes the same time whatever
 * the key sent.
 */
export function apiKeyAuth(apiKey: string): RequestHandler {
  const expected = digest(apiKey);
  return (req: Request, res: Response, next: NextFunction): void => {
    if (OPEN_PATHS.has(req.path)) {
      next();
      return;
    }
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
    if (m && timingSafeEqual(digest(m[1]!), expected)) {
      next();
      return;
    }
    res.setHeader('WWW-Authenticate', 'Bearer');
    next(
      new HttpError(
        401,
        'invalid_request_error',
        'invalid_api_key',
        header ? 'Incorrect API key provided' : 'Missing API key: send Authorization: Bearer <key>',
      ),
    );
  };
}
