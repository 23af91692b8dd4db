import type { Response } from 'express';

/** Starts a Server-Sent Events response. */
export function startSse(res: Response, headers: Record<string, string> = {}): void {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Connection', 'keep-alive');
  res.setHeader('X-Accel-Buffering', 'no');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.flushHeaders();
}

/** Writes one SSE event (`data: <json>`), optionally named. Returns false when the socket buffer is full. */
export function writeSse(res: Response, data: unknown, event?: string): boolean {
  const payload = typeof data === 'string' ? data : JSON.stringify(data);
  return res.write(event ? `event: ${event}\ndata: ${payload}\n\n` : `data: ${payload}\n\n`);
}

/** Waits for the socket to drain after {@link writeSse} returned false (or for the client to leave). */
export function waitDrain(res: Response): Promise<void> {
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

/** True when the client asked for an event stream. */
export function wantsEventStream(accept: string | undefined): boolean {
  return !!accept && accept.split(',').some((p) => p.trim().toLowerCase().startsWith('text/event-stream'));
}
