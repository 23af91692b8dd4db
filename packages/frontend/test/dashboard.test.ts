import { Registry } from 'prom-client';
import { dashboard as board } from '@dynamo-ts/runtime';
import { startFrontend, type FrontendServer, type GenerateEvent, type GenerateRequest } from '@dynamo-ts/frontend';

async function* echo(req: GenerateRequest): AsyncGenerator<GenerateEvent> {
  for (const w of req.prompt.split(/(?= )/)) yield { worker_output: w, request_id: req.request_id };
}

const generate = (url: string, prompt: string, key?: string) =>
  fetch(`${url}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ prompt }),
  });

describe('GET /dashboard', () => {
  let server: FrontendServer;
  beforeAll(async () => {
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: echo,
      registry: new Registry(),
      dashboard: {
        workers: () => [{ id: 'w1', name: 'node-a', activeBlocks: 8, totalBlocks: 32, waiting: 1 }],
      },
    });
  });
  afterAll(() => server.close());

  it('serves the page, its script and stylesheet without inline code, under a strict CSP', async () => {
    const page = await fetch(`${server.url}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    expect(html).toContain('<script src="/dashboard/app.js" defer></script>');
    expect(html).not.toMatch(/<script>(?!<\/script>)/); // no inline script
    const js = await fetch(`${server.url}/dashboard/app.js`);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    const code = await js.text();
    expect(code).toContain("'/data'");
    expect(code).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    expect((await fetch(`${server.url}/dashboard/style.css`)).headers.get('content-type')).toMatch(/text\/css/);
  });

  it('answers the numbers as JSON: requests the frontend served and the workers of its source', async () => {
    for (const p of ['a b c', 'd e']) expect((await generate(server.url, p)).status).toBe(200);
    const res = await fetch(`${server.url}/dashboard/data`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const d = (await res.json()) as board.DashboardData;
    expect(d.requests.total).toBe(2);
    expect(d.requests.by_status).toEqual({ success: 2 });
    expect(d.ttft_ms.count).toBe(2);
    expect(d.ttft_ms.p50).toBeGreaterThan(0);
    expect(d.itl_ms.count).toBe(3); // 3 + 2 tokens: 2 + 1 gaps
    expect(d.workers).toEqual([
      expect.objectContaining({
        id: 'w1',
        name: 'node-a',
        active_blocks: 8,
        total_blocks: 32,
        kv_usage: 0.25,
        waiting: 1,
      }),
    ]);
  });

  it('refuses other methods with 405 JSON', async () => {
    const res = await fetch(`${server.url}/dashboard/data`, { method: 'POST' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/POST is not allowed/);
  });
});

describe('GET /dashboard with an API key', () => {
  let server: FrontendServer;
  beforeAll(async () => {
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: echo,
      registry: new Registry(),
      apiKey: 'k3y',
    });
  });
  afterAll(() => server.close());

  it('serves the page (no numbers in it) but the data only with the key', async () => {
    expect((await fetch(`${server.url}/dashboard`)).status).toBe(200);
    const denied = await fetch(`${server.url}/dashboard/data`);
    expect(denied.status).toBe(401);
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    const wrong = await fetch(`${server.url}/dashboard/data`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const ok = await fetch(`${server.url}/dashboard/data`, { headers: { authorization: 'Bearer k3y' } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as board.DashboardData).requests.total).toBe(0);
  });
});

describe('dashboard: false', () => {
  it('turns the routes off', async () => {
    const server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: echo,
      registry: new Registry(),
      dashboard: false,
    });
    try {
      expect((await fetch(`${server.url}/dashboard`)).status).toBe(404);
      expect((await fetch(`${server.url}/dashboard/data`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe('createDashboardHandler options', () => {
  it('refuses a base path that is not a clean absolute path, and a too-short poll interval', () => {
    expect(() => board.createDashboardHandler({ basePath: 'dash' })).toThrow(/basePath/);
    expect(() => board.createDashboardHandler({ basePath: '/a/"b' })).toThrow(/basePath/);
    expect(() => board.createDashboardHandler({ pollMs: 10 })).toThrow(/pollMs/);
  });
});
