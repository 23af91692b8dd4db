import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { HttpError } from './errors';

/** Paths answered without an API key: the probes, and `/metrics` unless {@link ApiKeyAuthOptions.protectMetrics}. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/health', '/live', '/metrics']);

/** Options of {@link apiKeyAuth}. */
export interface ApiKeyAuthOptions {
  /** `/metrics` needs a key too (scrapers send `Authorization: Bearer <key>`). Default false. */
  protectMetrics?: boolean;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Checks that `keys` is a non-empty list of non-empty keys and returns them without duplicates.
 * Throws a RangeError naming the problem (never a key).
 */
export function checkApiKeys(keys: readonly string[]): string[] {
  if (keys.length === 0) throw new RangeError('apiKeys must hold at least one key (leave it undefined for no key)');
  const i = keys.findIndex((k) => typeof k !== 'string' || k.length === 0);
  if (i >= 0) throw new RangeError(`apiKeys[${i}] must be a non-empty string`);
  return [...new Set(keys)];
}

/**
 * Requires `Authorization: Bearer <key>`, the key being one of `keys`, on every path but
 * {@link OPEN_PATHS}; anything else gets 401 `invalid_api_key` in OpenAI's error shape. The
 * sent key is hashed and compared with every accepted key's hash in constant time, all of
 * them each time, so neither the key nor which key matched shows in the response time.
 */
export function apiKeyAuth(keys: string | readonly string[], options: ApiKeyAuthOptions = {}): RequestHandler {
  const expected = checkApiKeys(typeof keys === 'string' ? [keys] : keys).map(digest);
  const open = (path: string): boolean => OPEN_PATHS.has(path) && !(options.protectMetrics && path === '/metrics');
  return (req: Request, res: Response, next: NextFunction): void => {
    if (open(req.path)) {
      next();
      return;
    }
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
    if (m) {
      const sent = digest(m[1]!);
      let ok = false;
      for (const e of expected) ok = timingSafeEqual(sent, e) || ok;
      if (ok) {
        next();
        return;
      }
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
