/** Shared by the security integration tests: a logger whose lines are kept, and secret checks. */
import { Writable } from 'node:stream';
import { createLogger, flushLogs, type Logger } from '../../src/logger';

/** A JSON logger at debug level that keeps every line it writes. */
export function capturedLogger(): { logger: Logger; lines: () => string } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return {
    logger: createLogger({ level: 'debug', format: 'json', stream }),
    lines: () => {
      flushLogs();
      return out;
    },
  };
}

/** Fails naming the secret when any of `secrets` occurs in `text`. */
export function expectNoSecret(text: string, secrets: readonly string[]): void {
  for (const s of secrets) {
    if (text.includes(s)) throw new Error(`secret ${JSON.stringify(s.slice(0, 3))}... found in: ${text.slice(0, 400)}`);
  }
}

/** The rejection of `p` (fails when it resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<Error & { code?: string; retryable?: boolean }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string; retryable?: boolean };
  }
  throw new Error('expected a rejection');
}
