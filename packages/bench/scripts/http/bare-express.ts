/**
 * Case (a) of the request-path benchmark: bare express answering `/generate` with the same JSON
 * shape as the graph (`{worker_output, request_id}`), and, when the client accepts
 * `text/event-stream`, the bare SSE loop: one `data: {"worker_output","request_id"}` event per
 * word of the output, written with the same backpressure handling as the frontend.
 *
 * Run by `http-compare.ts` as a child process: prints `{"url": ...}` on its IPC channel once listening.
 */
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.use(express.json({ limit: 4 * 1024 * 1024 }));

app.post('/generate', (req: Request, res: Response) => {
  const body = req.body as { prompt?: unknown; request_id?: unknown };
  if (typeof body?.prompt !== 'string' || body.prompt === '') {
    res.status(400).json({ error: { message: 'prompt must be a non-empty string', type: 'invalid_request_error' } });
    return;
  }
  const requestId = typeof body.request_id === 'string' ? body.request_id : globalThis.crypto.randomUUID();
  const output = `${body.prompt}_GeneratedBy_bare`;
  res.setHeader('x-request-id', requestId);
  if (!(req.headers.accept ?? '').includes('text/event-stream')) {
    res.json({ worker_output: output, request_id: requestId });
    return;
  }
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Connection', 'keep-alive');
  res.flushHeaders();
  const pieces = output.match(/\s*\S+/g) ?? [output];
  let i = 0;
  const write = (): void => {
    while (i < pieces.length) {
      const ok = res.write(`data: ${JSON.stringify({ worker_output: pieces[i++], request_id: requestId })}\n\n`);
      if (!ok) {
        res.once('drain', write);
        return;
      }
    }
    res.end();
  };
  write();
});

const server = app.listen(0, '127.0.0.1', () => {
  const port = (server.address() as AddressInfo).port;
  process.send?.({ url: `http://127.0.0.1:${port}` });
});
process.on('message', (m: { type?: string }) => {
  if (m?.type === 'stop') {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
