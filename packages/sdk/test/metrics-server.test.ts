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

  it('fails clearly when the port is taken', async () => {
    const a = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: new Registry() });
    const port = Number(new URL(a.url).port);
    await expect(startMetricsServer({ port, host: '127.0.0.1', registry: new Registry() })).rejects.toThrow(
      /EADDRINUSE/,
    );
    await a.close();
  });
});
