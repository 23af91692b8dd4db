import { startFrontend, type GenerateEvent } from '@dynamo-ts/frontend';
import { defineService } from '@dynamo-ts/sdk';
import { Processor } from './processor';
import { DummyWorker } from './worker';

/** Config of the Frontend. */
export interface FrontendConfig {
  /** HTTP port; default `DYNAMO_PORT` (8000). */
  port?: number;
  host: string;
  /** Largest request body accepted, bytes (413 above). */
  body_limit_bytes: number;
}

/** The HTTP frontend: `POST /generate` (SSE or JSON), `/health`, `/live`; calls the Processor. */
export const Frontend = defineService<FrontendConfig>({
  name: 'Frontend',
  dependencies: [Processor],
  configSchema: {
    properties: {
      port: { type: 'integer', minimum: 0, maximum: 65535 },
      host: { type: 'string', default: '0.0.0.0' },
      body_limit_bytes: { type: 'integer', minimum: 1, default: 4 * 1024 * 1024 },
    },
  },
  async create(ctx) {
    const processor = await ctx.client(Processor, 'generate');
    const workers = await ctx.client(DummyWorker, 'generate');
    const server = await startFrontend({
      port: ctx.config.port ?? ctx.settings.port,
      host: ctx.config.host,
      bodyLimit: ctx.config.body_limit_bytes,
      logger: ctx.logger,
      generate: (req, { signal }) => processor.generate<GenerateEvent>(req, { signal, requestId: req.request_id }),
      health: () => {
        const n = workers.instances().length;
        const p = processor.instances().length;
        if (p === 0) return { ok: false, reason: 'no Processor instance', workers: n };
        if (n === 0) return { ok: false, reason: 'no DummyWorker instance', workers: n };
        return { ok: true, workers: n };
      },
    });
    return {
      metadata: { url: server.url },
      drain: (o) => server.drain(o),
      close: () => server.close(),
    };
  },
});
