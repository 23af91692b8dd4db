import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createLogger, metrics } from '@dynamo-ts/runtime';
import { embeddedPlatform, loadConfigFile, mergeConfig, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import { uniqueNamespace } from './helpers';

/**
 * The live dashboard in a real browser (headless Chromium) against the embedded disaggregated
 * hello-world graph under traffic: the page asks for the API key, then shows the workers, the
 * Router's decisions per worker, request totals, TTFT, the prefill queue and KV usage, and
 * renders an untrusted worker name as text. A screenshot is kept in test-artifacts/.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const API_KEY = 'dashboard-test-key';
const ARTIFACTS = path.join(__dirname, '..', '..', '..', 'test-artifacts');
/** A worker name as hostile as discovery could carry. */
const HOSTILE = '<img src=x onerror="window.__xss=1">';

const available = fs.existsSync(CHROMIUM);
if (!available && process.env.CI === 'true') {
  throw new Error(`the dashboard browser test needs Chromium at ${CHROMIUM} (apt-get install chromium)`);
}
if (!available) console.warn(`skipping the dashboard browser test: no Chromium at ${CHROMIUM}`);
const maybe = available ? describe : describe.skip;

async function post(url: string, prompt: string): Promise<number> {
  const res = await fetch(`${url}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ prompt }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Decisions per worker as the Router counted them (the registry the page reads). */
async function decisionsByWorker(): Promise<Map<string, number>> {
  const m = metrics.defaultRegistry.getSingleMetric('dynamo_router_decisions_total');
  const out = new Map<string, number>();
  for (const v of (await m!.get()).values) {
    const w = String(v.labels.worker);
    out.set(w, (out.get(w) ?? 0) + v.value);
  }
  return out;
}

/** What the page-side check reads of the DOM (the tests compile without the DOM library). */
interface PageDocument {
  querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }>;
}

const cell = (page: Page, worker: string, col: string) =>
  page.locator(`tr[data-worker="${worker}"] td[data-col="${col}"]`);

maybe('dashboard in a browser', () => {
  let graph: GraphHandle;
  let url: string;
  let context: BrowserContext;
  let profile: string;
  const stop = new AbortController();
  const unregister: Array<() => void> = [];

  beforeAll(async () => {
    const namespace = uniqueNamespace('dash');
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace, port: 0, workerName: 'node', leaseTtlMs: 10000, apiKeys: [API_KEY] },
      config: mergeConfig(loadConfigFile(path.join(__dirname, '..', 'configs', 'disagg.yaml')), {
        Frontend: { port: 0, host: '127.0.0.1' },
        DummyWorker: { token_delay_ms: 3, cache_blocks: 256 },
        PrefillWorker: { delay_ms: 10 },
      }),
      logger: createLogger({ silent: true }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;

    // The Router service registers its workers' rows itself; one more source, with a row whose
    // name would run script if the page rendered names as HTML.
    unregister.push(
      // A row whose name would run script if the page rendered names as HTML.
      metrics.registerDashboardSource('hostile', () => [
        { id: 'hostile-id', name: HOSTILE, activeBlocks: 1, hitRate: 0.5 },
      ]),
    );

    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'dynamo-dashboard-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1440, height: 900 },
    });
  }, 60_000);

  afterAll(async () => {
    stop.abort();
    for (const u of unregister) u();
    await context?.close();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    await graph?.close({ timeoutMs: 2000 });
  });

  it('asks for the API key, then renders the workers and numbers of the running graph', async () => {
    // Unrelated prompts, so the kv router spreads them over both workers.
    const words = [
      'Tell',
      'Which',
      'Zebras',
      'Describe',
      'Quantum',
      'Bread',
      'Ocean',
      'Maps',
      'Jazz',
      'Rust',
      'Mars',
      'Tea',
    ];
    for (const w of words) expect(await post(url, `${w} ${w.toLowerCase()} and more about ${w} today`)).toBe(200);

    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${url}/dashboard`);
    // No key yet: the data endpoint refuses and the page shows the key form.
    await page.locator('#key-form').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('#status-text').textContent()).toBe('API key needed');
    await page.fill('#key-input', API_KEY);
    await page.click('#key-form button');

    await page.locator('[data-stat="total"]').filter({ hasText: '12 answered' }).waitFor({ timeout: 15_000 });
    expect(await page.locator('#status-text').textContent()).toBe('live');
    expect(await page.locator('#key-form').isVisible()).toBe(false);

    // The workers: both DummyWorkers, with the Router's decisions per worker as it counted them.
    const counted = await decisionsByWorker();
    expect([...counted.values()].reduce((a, b) => a + b, 0)).toBe(12);
    await page.locator('[data-stat="decisions"]').filter({ hasText: /^12$/ }).waitFor({ timeout: 10_000 });
    for (const w of ['node-0', 'node-1']) {
      const text = await cell(page, w, 'decisions').locator('span.v').textContent();
      expect(Number(text)).toBe(counted.get(w) ?? 0);
      // KV figures from the source: capacity is the configured 256 blocks.
      expect(await cell(page, w, 'blocks').textContent()).toMatch(/^\d+ \/ 256$/);
      expect(await cell(page, w, 'kv-usage').textContent()).toMatch(/%$/);
      expect(Number(await cell(page, w, 'cached-blocks').textContent())).toBeGreaterThan(0);
    }
    // Latency and the prefill queue (every prefill is remote in this config).
    expect(await page.locator('[data-stat="ttft-p50"]').textContent()).toMatch(/^[\d.,]+ (ms|s)$/);
    expect(await page.locator('[data-stat="itl-p50"]').textContent()).toMatch(/^[\d.,]+ (ms|s)$/);
    expect(await page.locator('[data-stat="queue-depth"]').textContent()).toMatch(/^\d+$/);
    expect(await page.locator('[data-stat="prefill"]').textContent()).toMatch(/^12 remote/);

    // The hostile name is shown as text, and ran nothing.
    expect(await page.locator('td.name').filter({ hasText: HOSTILE }).count()).toBe(1);
    expect(await page.locator('#workers img').count()).toBe(0);
    const hostileRow = page.locator('#workers tr').filter({ has: page.locator('td.name', { hasText: HOSTILE }) });
    expect(await hostileRow.locator('td[data-col="hit-rate"]').textContent()).toBe('50 %');
    expect(await page.evaluate('typeof window.__xss')).toBe('undefined');

    // Under load: KV usage shows, and the charts draw once there are two readings.
    let running = true;
    const load = (async () => {
      const long = 'Describe the history of the printing press and its effects on Europe in detail '.repeat(3);
      while (running) await Promise.all(Array.from({ length: 6 }, (_, i) => post(url, `${i} ${long}`)));
    })();
    try {
      await page.waitForFunction(
        () => {
          // Runs in the page (a function, since the page's CSP forbids evaluating strings).
          const doc = (globalThis as unknown as { document: PageDocument }).document;
          const usage = Array.from(doc.querySelectorAll('td[data-col="kv-usage"] .v'));
          return (
            usage.some((e) => e.textContent !== '0 %') &&
            doc.querySelectorAll('#chart-rate path').length > 0 &&
            doc.querySelectorAll('#chart-ttft path').length > 0
          );
        },
        undefined,
        { timeout: 20_000, polling: 200 },
      );
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const shot = path.join(ARTIFACTS, 'dashboard.png');
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`dashboard screenshot: ${shot}`);
    } finally {
      running = false;
      await load;
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);
});
