import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dashboard, metrics } from '@dynamo-ts/runtime';

/** A running `/metrics` server. */
export interface MetricsServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the process's Prometheus registry on `GET /metrics`, and the live dashboard of the
 * process on `GET /dashboard` (numbers at `/dashboard/data`), for processes without the HTTP
 * frontend (workers, routers, prefill workers in distributed mode). Enabled by `DYNAMO_METRICS_PORT`.
 */
export async function startMetricsServer(options: {
  port: number;
  host?: string;
  registry?: Pick<typeof metrics.defaultRegistry, 'metrics' | 'contentType' | 'getMetricsAsJSON'>;
  /** Serve `/dashboard` too (default true). */
  dashboard?: boolean;
}): Promise<MetricsServer> {
  const registry = options.registry ?? metrics.defaultRegistry;
  const board =
    options.dashboard === false
      ? undefined
      : dashboard.createDashboardHandler({ collector: new dashboard.DashboardCollector({ registry }) });
  const server = http.createServer((req, res) => {
    if (board?.handle(req, res)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}`, type: 'not_found_error' } }));
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      },
      (e: Error) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: e.message, type: 'internal_error' } }));
      },
    );
  });
  const host = options.host ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
