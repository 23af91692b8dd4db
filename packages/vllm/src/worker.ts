import { UnavailableError, type Logger } from '@dynamo-ts/runtime';
import {
  WORKER_BASE_CONFIG_PROPERTIES,
  workerService,
  type Engine,
  type EngineHost,
  type WorkerApi,
  type WorkerBaseConfig,
} from '@dynamo-ts/llm';
import type { ServiceDefinition } from '@dynamo-ts/sdk';
import {
  checkHealth,
  detectEngine,
  engineLoad,
  scrapeMetrics,
  streamCompletion,
  streamSglang,
  type EngineInfo,
  type EngineMetrics,
} from './engine-http';
import { checkEndpoint, KvEventIngest } from './ingest/index';

/** Config of the engine-adapter worker (one external engine per worker). */
export interface VllmWorkerConfig {
  /** The engine's HTTP base URL, e.g. `http://10.0.0.5:8000`. */
  url?: string;
  /** Embedded mode: several engines, comma-separated; worker r serves the r-th. */
  engines?: string;
  /** The engine's KV-event PUB endpoint(s), comma-separated in the order of `engines`. */
  kv_events?: string;
  /** Its replay endpoint(s), same order. */
  kv_replay?: string;
  /** Topic prefix of the KV events (vLLM's `topic`). */
  kv_topic: string;
  /** Data-parallel ranks of each engine (rank r publishes on port + r). */
  dp_size: number;
  /** Load scraped from `/metrics` every this many ms. */
  metrics_interval_ms: number;
  /** `/health` polled every this many ms; an engine that fails it is marked down. */
  health_interval_ms: number;
  /** Timeout of one `/health` or `/metrics` call, ms. */
  probe_timeout_ms: number;
  /** The engine's API: `vllm` (`/v1/completions`), `sglang` (`/generate`), or `auto` (detected at start). */
  engine: 'auto' | 'vllm' | 'sglang';
  /**
   * Who reads the engine's KV events: `adapter` (this worker, republishing them on the event
   * plane) or `router` (the Router subscribes to the endpoints this worker registers, with
   * `--Router.ingest=direct`; this worker only registers them).
   */
  kv_ingest: 'adapter' | 'router';
}

/** What the adapter knows of its engine. */
interface EngineTarget {
  url: string;
  kvEvents: string | undefined;
  kvReplay: string | undefined;
}

const list = (s: string | undefined): string[] =>
  s === undefined
    ? []
    : s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x.length > 0);

/** The engine worker `replica` serves, from the config; throws naming the flag that is wrong. */
export function engineTarget(cfg: VllmWorkerConfig, replica: number, name = 'VllmWorker'): EngineTarget {
  const urls = cfg.engines !== undefined ? list(cfg.engines) : list(cfg.url);
  if (urls.length === 0) throw new Error(`--${name}.url (or --${name}.engines) is required`);
  if (cfg.engines === undefined && urls.length > 1)
    throw new Error(`--${name}.url takes one URL; use --${name}.engines`);
  const events = list(cfg.kv_events);
  const replays = list(cfg.kv_replay);
  for (const [flag, l] of [
    ['kv_events', events],
    ['kv_replay', replays],
  ] as const) {
    if (l.length > 0 && l.length !== urls.length) {
      throw new Error(`--${name}.${flag} lists ${l.length} endpoints for ${urls.length} engines`);
    }
    for (const e of l) checkEndpoint(`--${name}.${flag}`, e);
  }
  const url = urls[replica];
  if (url === undefined) throw new Error(`--${name}.engines lists ${urls.length} engines; worker ${replica} has none`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--${name}.url must be http(s)://HOST:PORT, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`--${name}.url must be http(s)://HOST:PORT, got ${JSON.stringify(url)}`);
  }
  return { url: url.replace(/\/+$/, ''), kvEvents: events[replica], kvReplay: replays[replica] };
}

/** The model the engine serves (`/v1/models`' first id). */
async function servedModel(url: string, timeoutMs: number): Promise<string> {
  const res = await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url}/v1/models answered ${res.status}`);
  const body = (await res.json()) as { data?: { id?: unknown }[] };
  const id = body.data?.[0]?.id;
  if (typeof id !== 'string' || !id) throw new Error(`${url}/v1/models lists no model`);
  return id;
}

/** Options of {@link vllmWorkerService}. */
export interface VllmWorkerServiceOptions {
  /** Component name. Default `VllmWorker`. */
  name?: string;
}

/**
 * The engine-adapter worker: one external vLLM (or SGLang) instance behind the worker base.
 * Registers the engine (URL, model, block size, total blocks, DP size, KV-event endpoints) in
 * discovery; serves `generate` through vLLM's `/v1/completions` or SGLang's `/generate` with
 * token ids (streamed; cancellation closes
 * the HTTP request; migration continues after `generated_token_ids`, done by the base); reports
 * load scraped from `/metrics`; refuses requests while `/health` fails (the processor re-routes);
 * and republishes the engine's ZMQ KV events as the router's on the event plane (`kv_ingest=adapter`)
 * or leaves them to a Router that subscribes to the engine itself (`kv_ingest=router`).
 */
export function vllmWorkerService(
  o: VllmWorkerServiceOptions = {},
): ServiceDefinition<VllmWorkerConfig & WorkerBaseConfig, typeof WorkerApi> {
  const name = o.name ?? 'VllmWorker';
  return workerService<VllmWorkerConfig>({
    name,
    embeddedReplicas: 1,
    embeddedReplicasFor: (cfg) => Math.max(1, list(cfg.engines).length),
    configProperties: {
      url: { type: 'string', minLength: 1, maxLength: 2048 },
      engines: { type: 'string', minLength: 1, maxLength: 65536 },
      kv_events: { type: 'string', minLength: 1, maxLength: 65536 },
      kv_replay: { type: 'string', minLength: 1, maxLength: 65536 },
      kv_topic: { type: 'string', maxLength: 256, default: '' },
      dp_size: { type: 'integer', minimum: 1, maximum: 1024, default: 1 },
      metrics_interval_ms: { type: 'integer', minimum: 10, maximum: 600000, default: 1000 },
      health_interval_ms: { type: 'integer', minimum: 10, maximum: 600000, default: 2000 },
      probe_timeout_ms: { type: 'integer', minimum: 1, maximum: 600000, default: 2000 },
      engine: { enum: ['auto', 'vllm', 'sglang'], default: 'auto' },
      kv_ingest: { enum: ['adapter', 'router'], default: 'adapter' },
      // vLLM's default block size; the model is the engine's unless given.
      block_size: { ...WORKER_BASE_CONFIG_PROPERTIES.block_size, default: 16 },
      model: { type: 'string', minLength: 1, maxLength: 256 },
    },
    async createEngine(host, ctx) {
      const cfg = ctx.config;
      const t = engineTarget(cfg, ctx.replica, name);
      return VllmEngine.start(host, cfg, t, ctx.logger);
    },
  });
}

/** The engine side of the adapter. */
class VllmEngine implements Engine {
  private metrics: EngineMetrics | undefined;
  private down = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private ingest: KvEventIngest | undefined;

  private constructor(
    private readonly host: EngineHost,
    private readonly cfg: VllmWorkerConfig & WorkerBaseConfig,
    private readonly t: EngineTarget,
    private readonly model: string,
    private readonly totalBlocks: number,
    private readonly info: EngineInfo,
    private readonly log: Logger,
  ) {}

  static async start(
    host: EngineHost,
    cfg: VllmWorkerConfig & WorkerBaseConfig,
    t: EngineTarget,
    log: Logger,
  ): Promise<VllmEngine> {
    const timeout = cfg.probe_timeout_ms;
    const info = await detectEngine(t.url, cfg.engine, timeout);
    let m: EngineMetrics;
    try {
      m = await scrapeMetrics(t.url, timeout);
    } catch (e) {
      throw new Error(`engine ${t.url} did not answer /metrics: ${(e as Error).message}`);
    }
    // vLLM reports its block size in /metrics, SGLang its page size in /get_server_info.
    const engineBlockSize = m.blockSize ?? info.blockSize;
    const engineBlocks = m.totalBlocks ?? info.totalBlocks;
    // A block size that differs from the router's silently breaks routing: refuse to start.
    if (engineBlockSize !== undefined && engineBlockSize !== cfg.block_size) {
      const flag = info.kind === 'sglang' ? '--page-size' : '--block-size';
      const msg =
        `engine ${t.url} uses block size ${engineBlockSize} but the worker is configured for ${cfg.block_size}: ` +
        `set --VllmWorker.block_size=${engineBlockSize} and --Router.block_size=${engineBlockSize} (or the engine's ${flag})`;
      log.error('KV block size mismatch', {
        url: t.url,
        engine_block_size: engineBlockSize,
        block_size: cfg.block_size,
      });
      throw new Error(msg);
    }
    if (engineBlockSize === undefined) {
      log.warn('engine does not expose its block size (vllm:cache_config_info); make sure it matches', {
        url: t.url,
        block_size: cfg.block_size,
      });
    }
    const model = (cfg.model as string | undefined) ?? (await servedModel(t.url, timeout));
    const total = (engineBlocks ?? cfg.cache_blocks) * cfg.dp_size;
    const eng = new VllmEngine(host, cfg, t, model, total, info, log);
    eng.metrics = m;
    if (t.kvEvents !== undefined && cfg.kv_ingest === 'router') {
      log.info('KV events left to the Router (--Router.ingest=direct reads them from the registered endpoint)', {
        url: t.url,
        kv_events: t.kvEvents,
      });
    } else if (t.kvEvents !== undefined) {
      eng.ingest = new KvEventIngest({
        workerId: host.workerId,
        endpoint: t.kvEvents,
        replayEndpoint: t.kvReplay,
        dpSize: cfg.dp_size,
        topic: cfg.kv_topic,
        blockSize: cfg.block_size,
        maxBlocks: Math.max(1024, 2 * (engineBlocks ?? cfg.cache_blocks)),
        emit: (e) => host.publishKvEvent(e),
        logger: log,
      });
      eng.ingest.start();
    } else log.warn('no --VllmWorker.kv_events: the router will not see this engine cache', { url: t.url });
    eng.every(cfg.metrics_interval_ms, () => eng.scrape());
    eng.every(cfg.health_interval_ms, () => eng.probe());
    log.info('engine attached', {
      url: t.url,
      engine: info.kind,
      model,
      block_size: cfg.block_size,
      total_blocks: total,
      dp_size: cfg.dp_size,
    });
    return eng;
  }

  private every(ms: number, f: () => Promise<void>): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void f().finally(() => (busy = false));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async scrape(): Promise<void> {
    try {
      this.metrics = await scrapeMetrics(this.t.url, this.cfg.probe_timeout_ms);
      this.host.loadChanged();
    } catch (e) {
      this.log.debug('metrics scrape failed', { url: this.t.url, error: (e as Error).message });
    }
  }

  private async probe(): Promise<void> {
    const ok = await checkHealth(this.t.url, this.cfg.probe_timeout_ms);
    if (ok === !this.down) return;
    this.down = !ok;
    if (this.down) this.log.warn('engine marked down (/health failed)', { url: this.t.url });
    else this.log.info('engine is up again', { url: this.t.url });
  }

  /** Whether the engine failed its last health check. */
  get isDown(): boolean {
    return this.down;
  }

  load() {
    return engineLoad(this.metrics ?? { waiting: 0, running: 0, usage: 0 }, this.totalBlocks);
  }

  metadata(): Record<string, unknown> {
    return {
      model: this.model,
      engine_url: this.t.url,
      block_size: this.cfg.block_size,
      total_blocks: this.totalBlocks,
      dp_size: this.cfg.dp_size,
      engine: this.info.kind,
      // Where a Router with --Router.ingest=direct reads this engine's KV events.
      kv_events: this.t.kvEvents ?? null,
      kv_replay: this.t.kvReplay ?? null,
      kv_topic: this.cfg.kv_topic,
    };
  }

  async *generate(req: Parameters<Engine['generate']>[0], ctx: Parameters<Engine['generate']>[1]) {
    if (this.down) throw new UnavailableError(`engine ${this.t.url} is down`);
    const stream = this.info.kind === 'sglang' ? streamSglang : streamCompletion;
    yield* stream(this.t.url, {
      model: this.model,
      tokenIds: req.contextTokenIds,
      maxTokens: req.maxNewTokens,
      temperature: req.temperature,
      topP: req.topP,
      seed: req.seed,
      signal: ctx.signal,
    });
  }

  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.ingest?.close();
  }
}
