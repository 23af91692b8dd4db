import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import {
  buildRequest,
  compileHttpBenchOptions,
  formatHttpBenchTable,
  percentile,
  runHttpBench,
  summarize,
} from '../src/http-bench';

/** A tiny frontend double: JSON or SSE answers; every `failEvery`-th request gets a 503. */
async function startServer(opts: { failEvery?: number; sseError?: boolean; events?: number } = {}) {
  let n = 0;
  const bodies: unknown[] = [];
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      n++;
      bodies.push(JSON.parse(raw));
      paths.push(req.url ?? '');
      if (opts.failEvery && n % opts.failEvery === 0) {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"busy"}}');
        return;
      }
      if ((req.headers.accept ?? '').includes('text/event-stream')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (let i = 0; i < (opts.events ?? 3); i++) res.write(`data: {"worker_output":"t${i}","request_id":"x"}\n\n`);
        if (opts.sseError) res.write('event: error\ndata: {"error":{"message":"boom"}}\n\n');
        else if (paths[paths.length - 1] !== '/generate') res.write('data: [DONE]\n\n');
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"worker_output":"hi","request_id":"x"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    bodies,
    paths,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('percentiles', () => {
  it('uses the nearest rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 0.5)).toBe(50);
    expect(percentile(v, 0.99)).toBe(99);
    expect(percentile(v, 1)).toBe(100);
    expect(percentile([], 0.5)).toBe(0);
    expect(percentile([7], 0.99)).toBe(7);
  });

  it('summarizes unsorted values', () => {
    const s = summarize(new Float64Array([5, 1, 4, 2, 3]));
    expect(s).toEqual({ p50: 3, p90: 5, p99: 5, mean: 3, max: 5 });
    expect(summarize([])).toEqual({ p50: 0, p90: 0, p99: 0, mean: 0, max: 0 });
  });
});

describe('compileHttpBenchOptions', () => {
  it('applies defaults', () => {
    expect(compileHttpBenchOptions({ url: 'http://127.0.0.1:1' })).toMatchObject({
      concurrency: 8,
      durationS: 10,
      route: 'generate',
      stream: false,
    });
  });

  it.each([
    [{}, /--url is required/],
    [{ url: 'not a url' }, /--url must be an http:\/\/ URL/],
    [{ url: 'https://x' }, /--url must be an http:\/\/ URL/],
    [{ url: 'http://x', concurrency: 0 }, /--concurrency must be a positive integer/],
    [{ url: 'http://x', concurrency: 1.5 }, /--concurrency must be a positive integer/],
    [{ url: 'http://x', duration: -1 }, /--duration must be a positive number/],
    [{ url: 'http://x', route: 'embeddings' }, /--route must be one of generate, chat, completions/],
    [{ url: 'http://x', requests: 'many' }, /--requests must be a positive integer/],
    [{ url: 'http://x', prompt: '' }, /--prompt must be a non-empty string/],
  ])('refuses %j', (raw, message) => {
    expect(() => compileHttpBenchOptions(raw)).toThrow(message);
    try {
      compileHttpBenchOptions(raw);
    } catch (e) {
      expect((e as { code?: string }).code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('buildRequest', () => {
  const base = { url: 'http://127.0.0.1:1', concurrency: 1, durationS: 1, stream: true, prompt: 'p' };
  it('shapes each route', () => {
    const g = buildRequest({ ...base, route: 'generate' }, 3);
    expect(g.path).toBe('/generate');
    expect(JSON.parse(g.body)).toEqual({ prompt: 'p', request_id: `bench-${process.pid}-3` });
    const c = buildRequest({ ...base, route: 'completions', maxTokens: 5 }, 0);
    expect(c.path).toBe('/v1/completions');
    expect(JSON.parse(c.body)).toEqual({ model: 'hello-world', prompt: 'p', stream: true, max_tokens: 5 });
    const ch = buildRequest({ ...base, route: 'chat' }, 0);
    expect(ch.path).toBe('/v1/chat/completions');
    expect(JSON.parse(ch.body)).toEqual({
      model: 'hello-world',
      messages: [{ role: 'user', content: 'p' }],
      stream: true,
    });
  });
});

describe('runHttpBench against a local server', () => {
  it('counts every request and its latency', async () => {
    const s = await startServer();
    try {
      const r = await runHttpBench({
        url: s.url,
        concurrency: 4,
        durationS: 30,
        requests: 40,
        route: 'generate',
        stream: false,
      });
      expect(r.requests).toBe(40);
      expect(r.errors).toBe(0);
      expect(s.bodies).toHaveLength(40);
      expect(r.e2e_ms.p50).toBeGreaterThan(0);
      expect(r.e2e_ms.p99).toBeGreaterThanOrEqual(r.e2e_ms.p50);
      expect(r.ttft_ms.p50).toBeLessThanOrEqual(r.e2e_ms.p50);
      expect(r.bytes).toBe(40 * '{"worker_output":"hi","request_id":"x"}'.length);
      expect(r.requests_per_s).toBeCloseTo(40 / r.duration_s, 6);
      expect(formatHttpBenchTable(r)).toMatch(/generate c=4\s+40\s+0/);
    } finally {
      await s.close();
    }
  });

  it('counts SSE events, leaving out [DONE]', async () => {
    const s = await startServer({ events: 5 });
    try {
      const r = await runHttpBench({
        url: s.url,
        concurrency: 2,
        durationS: 30,
        requests: 10,
        route: 'chat',
        stream: true,
      });
      expect(r.requests).toBe(10);
      expect(r.events).toBe(50);
      expect(s.paths.every((p) => p === '/v1/chat/completions')).toBe(true);
      const g = await runHttpBench({
        url: s.url,
        concurrency: 1,
        durationS: 30,
        requests: 4,
        route: 'generate',
        stream: true,
      });
      expect(g.events).toBe(20);
    } finally {
      await s.close();
    }
  });

  it('counts error statuses and SSE error events as errors', async () => {
    const s = await startServer({ failEvery: 4 });
    try {
      const r = await runHttpBench({
        url: s.url,
        concurrency: 1,
        durationS: 30,
        requests: 20,
        route: 'generate',
        stream: false,
      });
      expect(r.requests).toBe(15);
      expect(r.errors).toBe(5);
      expect(r.error_kinds).toEqual({ status_503: 5 });
      expect(formatHttpBenchTable(r)).toContain('status_503 x5');
    } finally {
      await s.close();
    }
    const e = await startServer({ sseError: true });
    try {
      const r = await runHttpBench({
        url: e.url,
        concurrency: 2,
        durationS: 30,
        requests: 6,
        route: 'generate',
        stream: true,
      });
      expect(r.requests).toBe(0);
      expect(r.error_kinds).toEqual({ sse_error: 6 });
    } finally {
      await e.close();
    }
  });

  it('counts refused connections as socket errors', async () => {
    const s = await startServer();
    const url = s.url;
    await s.close();
    const r = await runHttpBench({ url, concurrency: 1, durationS: 30, requests: 3, route: 'generate', stream: false });
    expect(r.requests).toBe(0);
    expect(r.errors).toBe(3);
    expect(r.error_kinds).toEqual({ 'socket: ECONNREFUSED': 3 });
  });

  it('stops at the duration', async () => {
    const s = await startServer();
    try {
      const r = await runHttpBench({ url: s.url, concurrency: 2, durationS: 0.3, route: 'generate', stream: false });
      expect(r.requests).toBeGreaterThan(0);
      expect(r.requests).toBe(s.bodies.length);
      expect(r.duration_s).toBeGreaterThanOrEqual(0.3);
    } finally {
      await s.close();
    }
  });
});

describe('dynamo-ts bench http (built CLI)', () => {
  const main = path.resolve(__dirname, '../../sdk/dist/cli/main.js');
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [main, 'bench', 'http', ...args], (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('refuses a missing --url and a bad --concurrency with exit code 2', async () => {
    const a = await run([]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('--url is required');
    const b = await run(['--url', 'http://127.0.0.1:1', '--concurrency', '0']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('--concurrency must be a positive integer');
  });

  it('prints the table and writes --json', async () => {
    const s = await startServer();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-http-'));
    try {
      const json = `${dir}/r.json`;
      const r = await run([
        '--url',
        s.url,
        '--concurrency',
        '2',
        '--requests',
        '10',
        '--duration',
        '30',
        '--json',
        json,
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/generate c=2\s+10\s+0/);
      const parsed = JSON.parse(readFileSync(json, 'utf8')) as unknown;
      expect(parsed).toMatchObject({ requests: 10, errors: 0, route: 'generate', concurrency: 2 });
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
