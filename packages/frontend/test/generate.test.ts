import http from 'node:http';
import { UnavailableError } from '@dynamo-ts/runtime';
import { startFrontend, type FrontendServer, type GenerateEvent, type GenerateRequest } from '@dynamo-ts/frontend';

/** A generate function that echoes the prompt word by word, recording cancellations. */
function echo(record: { cancelled: string[] }) {
  return async function* (req: GenerateRequest, { signal }: { signal: AbortSignal }): AsyncGenerator<GenerateEvent> {
    if (req.prompt === 'unavailable') throw new UnavailableError('no worker');
    const words = req.prompt === 'slow' ? Array.from({ length: 1000 }, (_, i) => `w${i} `) : req.prompt.split(/(?= )/);
    try {
      for (const w of words) {
        if (req.prompt === 'slow') await new Promise((r) => setTimeout(r, 5));
        if (signal.aborted) return;
        yield { worker_output: w, request_id: req.request_id };
      }
    } finally {
      if (signal.aborted) record.cancelled.push(req.request_id);
    }
  };
}

describe('POST /generate', () => {
  let server: FrontendServer;
  const record = { cancelled: [] as string[] };
  beforeAll(async () => {
    server = await startFrontend({ port: 0, host: '127.0.0.1', generate: echo(record), bodyLimit: 1024 });
  });
  afterAll(async () => {
    await server.close();
  });

  const post = (body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${server.url}/generate`, { method: 'POST', body, headers });

  it('answers one JSON body with the whole output when the client does not ask for SSE', async () => {
    const res = await post(JSON.stringify({ prompt: 'Tell me a joke', request_id: 'r1' }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(await res.json()).toEqual({ worker_output: 'Tell me a joke', request_id: 'r1' });
  });

  it('streams SSE events that concatenate to the output', async () => {
    const res = await post(JSON.stringify({ prompt: 'Tell me a joke', request_id: 'r2' }), {
      'content-type': 'application/json',
      accept: 'text/event-stream',
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    const events = text
      .split('\n\n')
      .filter(Boolean)
      .map((e) => JSON.parse(e.replace(/^data: /, '')) as GenerateEvent);
    expect(events.length).toBe(4);
    expect(events.map((e) => e.worker_output).join('')).toBe('Tell me a joke');
    expect(events.every((e) => e.request_id === 'r2')).toBe(true);
  });

  it('generates a request id when absent and echoes it in a header', async () => {
    const res = await post(JSON.stringify({ prompt: 'hi' }));
    const body = (await res.json()) as GenerateEvent;
    expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('x-request-id')).toBe(body.request_id);
  });

  const bad: Array<[string, string, Record<string, string> | undefined, number, RegExp]> = [
    ['invalid JSON', '{"prompt": ', undefined, 400, /not valid JSON/],
    ['missing prompt', '{"request_id": "x"}', undefined, 400, /prompt is required/],
    ['non-string prompt', '{"prompt": 42}', undefined, 400, /prompt must be of type string/],
    ['empty prompt', '{"prompt": ""}', undefined, 400, /prompt/],
    ['non-string request_id', '{"prompt": "a", "request_id": 7}', undefined, 400, /request_id must be of type string/],
    [
      'a request_id a header cannot carry',
      '{"prompt": "a", "request_id": "\\u0000\\u00e9"}',
      undefined,
      400,
      /request_id must be printable ASCII/,
    ],
    ['a JSON array', '[{"prompt": "a"}]', undefined, 400, /must be a JSON object/],
    ['a JSON string', '"hello"', undefined, 400, /must be a JSON object/],
    ['null', 'null', undefined, 400, /must be a JSON object/],
    [
      'wrong content type',
      '{"prompt": "a"}',
      { 'content-type': 'text/plain' },
      415,
      /Content-Type must be application\/json/,
    ],
    ['no content type', '{"prompt": "a"}', {}, 415, /Content-Type/],
    ['oversized body', JSON.stringify({ prompt: 'x'.repeat(2000) }), undefined, 413, /exceeds the limit of 1024 bytes/],
  ];
  it.each(bad)('rejects %s with a JSON error', async (_name, body, headers, status, message) => {
    const res = await post(body, headers ?? { 'content-type': 'application/json' });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error: { message: string; type: string; code: string } };
    expect(json.error.message).toMatch(message);
    expect(typeof json.error.type).toBe('string');
    expect(typeof json.error.code).toBe('string');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await fetch(`${server.url}/nope`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('maps runtime errors to statuses (UNAVAILABLE -> 503), before and without SSE', async () => {
    const res = await post(JSON.stringify({ prompt: 'unavailable' }), {
      'content-type': 'application/json',
      accept: 'text/event-stream',
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unavailable');
  });

  it('keeps serving after bad input', async () => {
    await post('{oops');
    const res = await post(JSON.stringify({ prompt: 'still here' }));
    expect(res.status).toBe(200);
  });

  it('cancels the work when the client disconnects mid-stream', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        `${server.url}/generate`,
        { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' } },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => undefined);
      req.end(JSON.stringify({ prompt: 'slow', request_id: 'gone' }));
      setTimeout(() => reject(new Error('no data')), 5000).unref();
    });
    for (let i = 0; i < 100 && !record.cancelled.includes('gone'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(record.cancelled).toContain('gone');
  });
});

describe('GET /health and /live', () => {
  it('reports 503 with a reason when not ready, 200 when ready', async () => {
    let ready = false;
    const server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: echo({ cancelled: [] }),
      health: () => (ready ? { ok: true } : { ok: false, reason: 'no DummyWorker instance' }),
    });
    try {
      let res = await fetch(`${server.url}/health`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { reason: string }).reason).toBe('no DummyWorker instance');
      ready = true;
      res = await fetch(`${server.url}/health`);
      expect(res.status).toBe(200);
      res = await fetch(`${server.url}/live`);
      expect(res.status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
