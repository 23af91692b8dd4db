import net from 'node:net';
import { Registry } from 'prom-client';
import {
  Admission,
  startFrontend,
  type FrontendServer,
  type GenerateEvent,
  type OverloadStatus,
} from '@dynamo-ts/frontend';

const MODEL = 'm';

/** An upstream whose requests finish only when the test says so. */
function gatedUpstream(): {
  generate: () => AsyncIterable<GenerateEvent>;
  started: () => number;
  finishAll: () => void;
} {
  let started = 0;
  const gates: Array<() => void> = [];
  let open = false;
  return {
    started: () => started,
    finishAll: () => {
      open = true;
      for (const g of gates.splice(0)) g();
    },
    generate: () =>
      (async function* () {
        started++;
        if (!open) await new Promise<void>((r) => gates.push(r));
        yield { worker_output: 'ok', completion_tokens: 1, prompt_tokens: 1, finish_reason: 'stop' } as GenerateEvent;
      })(),
  };
}

const completion = (url: string): Promise<Response> =>
  fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: 'hi' }),
  });

async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 5));
  expect(await cond()).toBe(true);
}

describe('admission: load shedding per model', () => {
  it.each([529, 503, 429] as OverloadStatus[])(
    'admits max_concurrent_requests, queues max_queued, sheds the rest with %d and Retry-After, recovers at once',
    async (status) => {
      const up = gatedUpstream();
      const registry = new Registry();
      const server = await startFrontend({
        port: 0,
        host: '127.0.0.1',
        generate: up.generate,
        models: () => [MODEL],
        registry,
        admission: { maxConcurrentRequests: 2, maxQueuedRequests: 3, queueTimeoutMs: 10_000, overloadStatus: status },
      });
      try {
        const admitted = [completion(server.url), completion(server.url)];
        await until(() => up.started() === 2);
        const queued = [completion(server.url), completion(server.url), completion(server.url)];
        await until(async () => /dynamo_frontend_queued_requests\{model="m"\} 3/.test(await registry.metrics()));
        // Beyond the queue: shed at once, before any upstream work.
        const shed = await Promise.all(Array.from({ length: 10 }, () => completion(server.url)));
        for (const r of shed) {
          expect(r.status).toBe(status);
          expect(r.headers.get('retry-after')).toBe('1');
          const body = (await r.json()) as { error: { code: string; message: string } };
          expect(body.error.code).toBe('overloaded');
          expect(body.error.message).toMatch(/model 'm' is at its limit of 2 concurrent requests/);
        }
        expect(up.started()).toBe(2);
        up.finishAll();
        for (const r of await Promise.all([...admitted, ...queued])) expect(r.status).toBe(200);
        expect(up.started()).toBe(5);
        // Load gone: the next request is admitted at once.
        expect((await completion(server.url)).status).toBe(200);
        const text = await registry.metrics();
        expect(text).toMatch(/dynamo_frontend_admitted_requests_total\{model="m"\} 6/);
        expect(text).toMatch(/dynamo_frontend_rejected_overload_requests_total\{model="m",reason="queue_full"\} 10/);
        expect(text).toMatch(/dynamo_frontend_queued_requests\{model="m"\} 0/);
      } finally {
        await server.close();
      }
    },
  );

  it('rejects a request that waited longer than queue_timeout_ms, and frees the place of a client that left', async () => {
    const adm = new Admission({ maxConcurrentRequests: 1, maxQueuedRequests: 1, queueTimeoutMs: 20 }, new Registry());
    const release = await adm.acquire(MODEL);
    await expect(adm.acquire(MODEL)).rejects.toMatchObject({ status: 529, message: /no slot freed within 20 ms/ });
    const ac = new AbortController();
    const waiting = adm.acquire(MODEL, ac.signal);
    ac.abort(new Error('client left'));
    await expect(waiting).rejects.toThrow('client left');
    expect(adm.load(MODEL)).toEqual({ active: 1, queued: 0 });
    release();
    release(); // idempotent
    expect(adm.load(MODEL)).toEqual({ active: 0, queued: 0 });
  });

  it('refuses options it cannot honour', () => {
    const r = new Registry();
    expect(() => new Admission({ overloadStatus: 500 as OverloadStatus }, r)).toThrow(/overloadStatus must be one of/);
    expect(() => new Admission({ maxConcurrentRequests: -1 }, r)).toThrow(/maxConcurrentRequests/);
    expect(() => new Admission({ queueTimeoutMs: 2 ** 31 }, r)).toThrow(/queueTimeoutMs/);
  });
});

describe('HTTP edge', () => {
  let server: FrontendServer;
  beforeAll(async () => {
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      bodyLimit: 1024,
      generate: () =>
        (async function* () {
          yield { worker_output: 'a', finish_reason: 'stop' } as GenerateEvent;
        })(),
      registry: new Registry(),
    });
  });
  afterAll(async () => {
    await server.close();
  });

  /** Sends raw bytes; resolves with what came back once the server closed the socket (or after `waitMs`). */
  function raw(text: string, waitMs = 3000): Promise<{ data: string; closed: boolean; ms: number }> {
    return new Promise((resolve) => {
      const t0 = performance.now();
      const s = net.connect(server.port, '127.0.0.1');
      let data = '';
      const timer = setTimeout(() => {
        s.destroy();
        resolve({ data, closed: false, ms: performance.now() - t0 });
      }, waitMs);
      s.on('data', (d) => (data += d.toString()));
      s.on('close', () => {
        clearTimeout(timer);
        resolve({ data, closed: true, ms: performance.now() - t0 });
      });
      s.on('error', () => undefined);
      s.write(text);
    });
  }

  it('answers 413 to a declared Content-Length over the limit before the body arrives, naming the limit', async () => {
    // Headers only: the 100 MB body never comes. The answer must not wait for it.
    const r = await raw(
      'POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n',
    );
    expect(r.data).toMatch(/^HTTP\/1.1 413/);
    expect(r.data).toMatch(/request body of 100000000 bytes exceeds the limit of 1024 bytes/);
    expect(r.closed).toBe(true);
  });

  it('answers 413 naming the limit when a body without Content-Length grows over it', async () => {
    const body = JSON.stringify({ prompt: 'x'.repeat(5000) });
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const r = await raw(
      `POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
    );
    expect(r.data).toMatch(/^HTTP\/1.1 413/);
    expect(r.data).toMatch(/exceeds the limit of 1024 bytes/);
  });

  it('closes an SSE answer when the client sent Connection: close', async () => {
    const body = JSON.stringify({ prompt: 'hi' });
    const r = await raw(
      `POST /generate HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    expect(r.data).toMatch(/^HTTP\/1.1 200/);
    expect(r.data).toMatch(/connection: close/i);
    expect(r.data).toMatch(/"worker_output":"a"/);
    // Closed by the server, not after the 3 s wait (nor the 5 s keep-alive).
    expect(r.closed).toBe(true);
  });
});
