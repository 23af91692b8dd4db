import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { capturedLogger, expectNoSecret } from '@dynamo-ts/runtime/testing';
import { apiKeyAuth, createFrontendApp, startFrontend, type FrontendServer } from '@dynamo-ts/frontend';
import { fakeGenerate, type FakeRecord } from './support/fake';

const KEYS = ['sk-alpha-0001-secret', 'sk-beta-0002-secret'];

describe('several API keys, /metrics protection, bind host', () => {
  const servers: FrontendServer[] = [];
  const log = capturedLogger();
  const logger = log.logger;
  const start = async (o: { metricsRequireKey?: boolean; host?: string } = {}): Promise<FrontendServer> => {
    const record: FakeRecord = { requests: [], aborted: new Map() };
    const s = await startFrontend({
      port: 0,
      host: o.host ?? '127.0.0.1',
      generate: fakeGenerate(record),
      models: () => ['m'],
      apiKeys: KEYS,
      metricsRequireKey: o.metricsRequireKey,
      registry: new Registry(),
      logger,
    });
    servers.push(s);
    return s;
  };
  afterAll(async () => {
    for (const s of servers) await s.close();
    expect(log.text()).toContain('http request');
    expectNoSecret(log.text(), KEYS);
  });
  const get = (s: FrontendServer, path: string, key?: string): Promise<Response> =>
    fetch(`${s.url}${path}`, key ? { headers: { authorization: `Bearer ${key}` } } : {});

  it('accepts each configured key and refuses others with 401 invalid_api_key', async () => {
    const s = await start();
    for (const k of KEYS) expect((await get(s, '/v1/models', k)).status).toBe(200);
    for (const bad of [undefined, 'sk-alpha-0001-secreT', `${KEYS[0]}x`, KEYS[0]!.slice(0, -1)]) {
      const r = await get(s, '/v1/models', bad);
      expect(r.status).toBe(401);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('/metrics is open by default and needs a key with metricsRequireKey; probes stay open', async () => {
    const open = await start();
    expect((await get(open, '/metrics')).status).toBe(200);
    const closed = await start({ metricsRequireKey: true });
    expect((await get(closed, '/metrics')).status).toBe(401);
    const ok = await get(closed, '/metrics', KEYS[1]);
    expect(ok.status).toBe(200);
    // No key value ever becomes a metric label.
    const text = await ok.text();
    for (const k of KEYS) expect(text).not.toContain(k);
    expect((await get(closed, '/health')).status).toBe(200);
    expect((await get(closed, '/live')).status).toBe(200);
  });

  it('listens on the given host', async () => {
    const s = await start({ host: '127.0.0.1' });
    expect((s.server.address() as AddressInfo).address).toBe('127.0.0.1');
  });

  it('rejects an empty key list, an empty key, and metricsRequireKey without a key', () => {
    const generate = fakeGenerate({ requests: [], aborted: new Map() });
    const registry = new Registry();
    expect(() => createFrontendApp({ generate, apiKeys: [], registry })).toThrow(/at least one key/);
    expect(() => createFrontendApp({ generate, apiKeys: ['k', ''], registry })).toThrow(/apiKeys\[1\]/);
    expect(() => createFrontendApp({ generate, metricsRequireKey: true, registry })).toThrow(/needs an API key/);
    expect(() => apiKeyAuth([])).toThrow(RangeError);
  });
});
