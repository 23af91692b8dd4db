import { Router } from 'express';

/** Readiness: ok, or not with a reason. */
export type HealthFn = () => { ok: boolean; reason?: string; [k: string]: unknown };

/** `GET /health` (200 when ready, 503 with the reason otherwise) and `GET /live` (always 200). */
export function healthRoutes(health: HealthFn): Router {
  const r = Router();
  r.get('/health', (_req, res) => {
    const h = health();
    res.status(h.ok ? 200 : 503).json({ status: h.ok ? 'healthy' : 'unhealthy', ...h });
  });
  r.get('/live', (_req, res) => {
    res.json({ status: 'live' });
  });
  return r;
}
