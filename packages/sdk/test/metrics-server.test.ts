import { Registry } from 'prom-client';
import { metrics } from '@dynamo-ts/runtime';
import { startMetricsServer } from '@dynamo-ts/sdk';

describe('startMetricsServer', () => {
  it('serves the registry on GET /metrics and answers 404 elsewhere', async () => {
    const registry = new Registry();
    const c = metrics.counter({ name: 'test_metrics_server_hits_total', help: 'hits', registers: [registry] });
    c.inc(3);
    // Asking again for the same name returns the same counter instead of throwing.
    expect(metrics.counter({ name: 'test_metrics_server_hits_total', help: 'hits', registers: [registry] })).toBe(c);
    const server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry });
    try {
      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain');
      expect(await res.text()).toContain('test_metrics_server_hits_total 3');
      const other = await fetch(`${server.url}/other`);
      expect(other.status).toBe(404);
      expect(((await other.json()) as { error: { message: string } }).error.message).toContain('/other');
    } finally {
      await server.close();
    }
  });

  it('serves the dashboard of the process: page, and data from its registry and dashboard sources', async () => {
    const registry = new Registry();
    metrics
      .counter({
        name: 'dynamo_router_decisions_total',
        help: 'd',
        labelNames: ['strategy', 'worker'],
        registers: [registry],
      })
      .inc({ strategy: 'kv', worker: 'node-7' }, 4);
    const server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry });
    try {
      const page = await fetch(`${server.url}/dashboard`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('/dashboard/app.js');
      const res = await fetch(`${server.url}/dashboard/data`);
      expect(res.status).toBe(200);
      const d = (await res.json()) as { router: { decisions: number }; workers: Array<{ name: string }> };
      expect(d.router.decisions).toBe(4);
      expect(d.workers.map((w) => w.name)).toContain('node-7');
    } finally {
      await server.close();
    }
    const off = await startMetricsServer({ port: 0, host: '127.0.0.1', registry, dashboard: false });
    try {
      expect((await fetch(`${off.url}/dashboard`)).status).toBe(404);
    } finally {
      await off.close();
    }
  });

  it('fails clearly when the port is taken', async () => {
    const a = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: new Registry() });
    const port = Number(new URL(a.url).port);
    await expect(startMetricsServer({ port, host: '127.0.0.1', registry: new Registry() })).rejects.toThrow(
      /EADDRINUSE/,
    );
    await a.close();
  });
});
