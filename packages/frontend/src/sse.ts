import type { Response } from 'express';

/** Starts a Server-Sent Events response. */
export function startSse(res: Response, headers: Record<string, string> = {}): void {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream');
  res.setHeader('Cache-Control', 'no-cache');
  // A client that asked to close gets the socket closed after the last event, not kept idle.
  res.setHeader('Connection', res.req.headers.connection?.toLowerCase() === 'close' ? 'close' : 'keep-alive');
  res.setHeader('X-Accel-Buffering', 'no');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.flushHeaders();
}

/** Events written this turn and not yet handed to the socket, per response (see {@link writeSse}). */
const pending = new WeakMap<Response, { events: string[]; chars: number }>();
/** Pending text that is written at once rather than at the end of the turn (a fast upstream may not yield to the event loop for a whole stream). */
const FLUSH_CHARS = 16 * 1024;
/** Responses whose last write found the socket buffer full (until it drains). */
const blocked = new WeakSet<Response>();

/**
 * Hands the events collected this turn to the socket in one write.
 * @returns false when the socket buffer is full (the caller should wait for {@link waitDrain})
 */
export function flushSse(res: Response): boolean {
  const p = pending.get(res);
  if (p !== undefined) {
    pending.delete(res);
    if (res.writableEnded || res.destroyed) return false;
    if (!res.write(p.events.length === 1 ? p.events[0]! : p.events.join('')) && !blocked.has(res)) {
      blocked.add(res);
      res.once('drain', () => blocked.delete(res));
    }
  }
  return !blocked.has(res);
}

/**
 * Writes one SSE event (`data: <json>`), optionally named. Events written in one turn of the event
 * loop go to the socket as one write (one HTTP chunk) at the end of the turn, or once 16 KiB are
 * pending: still one event per item for the client, but one `res.write` (chunk framing, stream
 * bookkeeping, a system call) per batch instead of per token. End the response with
 * {@link endSse} so none is left behind.
 * @returns false when the socket buffer was full at the last write: wait for {@link waitDrain}
 */
export function writeSse(res: Response, data: unknown, event?: string): boolean {
  const payload = typeof data === 'string' ? data : JSON.stringify(data);
  const text = event ? `event: ${event}\ndata: ${payload}\n\n` : `data: ${payload}\n\n`;
  const p = pending.get(res);
  if (p === undefined) {
    pending.set(res, { events: [text], chars: text.length });
    setImmediate(flushSse, res);
  } else {
    p.events.push(text);
    p.chars += text.length;
    // An upstream that never yields to the event loop (in-process planes) would otherwise hold
    // the whole stream here: write every 16 KiB, as the socket's own buffer would.
    if (p.chars >= FLUSH_CHARS) return flushSse(res);
  }
  return !blocked.has(res);
}

/** Writes the events still pending, then ends the response. */
export function endSse(res: Response): void {
  flushSse(res);
  if (!res.writableEnded) res.end();
}

/** Waits for the socket to drain after {@link writeSse} returned false (or for the client to leave). */
export function waitDrain(res: Response): Promise<void> {
  if (flushSse(res) || res.writableEnded || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

const EVENT_STREAM = /(?:^|,)\s*text\/event-stream/i;

/** True when the client asked for an event stream. */
export function wantsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && EVENT_STREAM.test(accept);
}
