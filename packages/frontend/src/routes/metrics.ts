import { Router } from 'express';
import type { Registry } from 'prom-client';

/** `GET /metrics`: the registry in the Prometheus text format. */
export function metricsRoutes(registry: Registry): Router {
  const r = Router();
  r.get('/metrics', async (_req, res) => {
    const text = await registry.metrics();
    res.setHeader('Content-Type', registry.contentType);
    res.end(text);
  });
  return r;
}
