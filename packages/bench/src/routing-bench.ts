/**
 * `dynamo-ts bench routing`: replays requests on simulated engines (`@dynamo-ts/mocker`) on a
 * virtual clock, once per routing strategy, on the same requests, and reports TTFT, ITL, end-to-end
 * latency, the cache hit rate and the load imbalance of each.
 *
 * Per strategy: `workers` {@link SimEngine}s and one {@link KvRouter} with the strategy. At each
 * request's arrival the router picks a worker from what it knows at that virtual instant (KV events
 * and load metrics the engines published at the end of their previous steps, plus its own
 * decisions), and the request joins that engine's queue. An idle engine starts a step at once; a
 * step's tokens, KV events and load become visible when it ends. Nothing sleeps: the run takes as
 * long as the computation, and the result is the same for the same seed.
 *
 * - TTFT: first token - arrival; ITL: per request, (last token - first token) / (tokens - 1);
 *   e2e: last token - arrival. Percentiles over requests (nearest rank).
 * - `hit_rate`: prompt tokens the engines found cached / prompt tokens.
 * - `load_imbalance`: max / mean of the engines' busy time.
 * - `failed`: requests an engine refused (they can never fit its KV cache) or that never finished.
 * @packageDocumentation
 */
import { KvRouter, MOCKER_ENGINE_PROFILE, type EngineProfile } from '@dynamo-ts/router';
import {
  SIM_ENGINE_DEFAULTS,
  SimEngine,
  VLLM_SIM_TIMING,
  VirtualEventLoop,
  VllmSimEngine,
  seededRandom,
  type SimStep,
} from '@dynamo-ts/mocker';
import type { BenchRequest } from './routing/trace';
import {
  ALL_STRATEGY_NAMES,
  createStrategy,
  isStrategyName,
  type StrategyName,
  type StrategyOptions,
} from './strategies';

export { parseMooncakeTrace, traceRequests, TraceFormatError, fillHashIdTokens } from './routing/trace';
export type { BenchRequest, MooncakeRecord } from './routing/trace';
export { sharedPrefixWorkload, mixedLengthWorkload, SHARED_PREFIX_DEFAULTS } from './routing/workload';
export type { MixedLengthOptions } from './routing/workload';
export type { SharedPrefixOptions } from './routing/workload';
export { routingChartSvg } from './routing/chart';

/** Strategies compared by default. */
export const DEFAULT_BENCH_STRATEGIES: readonly StrategyName[] = [
  'kv',
  'round-robin',
  'random',
  'power-of-two',
  'sglang-cache-aware',
  'vllm-prefix-aware',
  'llm-d-scorers',
];

/** Options of {@link runRoutingBench}. */
export interface RoutingBenchOptions {
  /** The requests (sorted by arrival or not). */
  requests: readonly BenchRequest[];
  /** Engines; default 8. */
  workers?: number;
  /** Strategies, in report order; default {@link DEFAULT_BENCH_STRATEGIES}. */
  strategies?: readonly StrategyName[];
  /** Engine speedup ratio; default 1. */
  speedup?: number;
  /** Seed of the routers' random choices; default 1. */
  seed?: number;
  /** Engine KV blocks; default 16384. */
  numBlocks?: number;
  /** Engine (and router) block size; default 64. */
  blockSize?: number;
  /** Engine max running sequences; default 256. */
  maxNumSeqs?: number;
  /** Engine max tokens per batch; default 8192. */
  maxBatchedTokens?: number;
  /** Options of the strategies (e.g. the `kv` scheduler's weights). */
  strategyOptions?: StrategyOptions;
  /**
   * Routers taking requests round-robin; default 1. With more, each sees only its own decisions
   * plus what the replica protocol shares (`replicaSharing`), delivered `replicaDelayMs` later.
   */
  routerReplicas?: number;
  /** Whether replicas exchange replica messages; default true. */
  replicaSharing?: boolean;
  /** Delay of a replica message, virtual ms; default 1. */
  replicaDelayMs?: number;
  /**
   * The simulated engine: `vllm` (default: on-demand blocks with preemption, chunked prefill with
   * partial-prefill limits, context-dependent timing; `VllmSimEngine`) or `mocker` (Dynamo's mocker
   * model, the earlier default; `SimEngine`).
   */
  engineModel?: EngineModel;
}

/** The simulated engine models. */
export type EngineModel = 'vllm' | 'mocker';

/** Progress callbacks. */
export interface RoutingBenchHooks {
  /** Called as requests arrive in each strategy's run (phase = the strategy name). */
  onProgress?(phase: string, done: number, total: number): void;
}

/** p50 and p99, ms. */
export interface LatencyPercentiles {
  p50: number;
  p99: number;
}

/** One strategy's figures (the `--json` shape). */
export interface RoutingRun {
  strategy: string;
  requests: number;
  failed: number;
  ttft_ms: LatencyPercentiles;
  itl_ms: LatencyPercentiles;
  e2e_ms: LatencyPercentiles;
  hit_rate: number;
  load_imbalance: number;
}

/** Extra figures of a run, for the table and chart (not in the JSON). */
export interface RoutingRunDetail {
  strategy: string;
  /** TTFT at percentiles 10, 25, 50, 75, 90, 95, 99, ms. */
  ttftCurve: Array<{ p: number; ms: number }>;
  /** Per-engine busy time, ms. */
  busyMs: number[];
  /** Virtual time at which the last request finished, ms. */
  makespanMs: number;
  /** Every completed request's TTFT, ms, ascending (to pool runs, e.g. several seeds). */
  ttftSamples: number[];
}

/** Result of {@link runRoutingBench}. */
export interface RoutingBenchResult {
  runs: RoutingRun[];
  details: RoutingRunDetail[];
  config: {
    workers: number;
    requests: number;
    speedup: number;
    seed: number;
    blockSize: number;
    numBlocks: number;
    routerReplicas: number;
    engineModel: EngineModel;
  };
}

/** The machine-readable result: exactly `{"runs": [...]}` (DESIGN.md section 8). */
export function routingBenchJson(result: RoutingBenchResult): { runs: RoutingRun[] } {
  return { runs: result.runs };
}

/** The percentiles drawn in the chart. */
export const TTFT_CURVE_PERCENTILES = [10, 25, 50, 75, 90, 95, 99] as const;

/** Nearest-rank percentile of sorted values (0 when empty). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))]!;
}

const round = (x: number, digits = 3): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/**
 * Runs every strategy on the requests (see the module comment).
 * @throws Error naming the option for invalid options (unknown strategy, non-positive counts)
 */
export async function runRoutingBench(
  options: RoutingBenchOptions,
  hooks: RoutingBenchHooks = {},
): Promise<RoutingBenchResult> {
  const workers = positiveInt('workers', options.workers ?? 8);
  const strategies = options.strategies ?? DEFAULT_BENCH_STRATEGIES;
  if (strategies.length === 0) throw new Error('strategies must name at least one strategy');
  for (const s of strategies) {
    if (!isStrategyName(s)) {
      throw new Error(
        `strategies: unknown strategy ${JSON.stringify(s)}; expected some of ${ALL_STRATEGY_NAMES.join(', ')}`,
      );
    }
  }
  const speedup = options.speedup ?? 1;
  if (typeof speedup !== 'number' || !(speedup > 0) || !Number.isFinite(speedup)) {
    throw new Error(`speedup must be a positive number, got ${String(speedup)}`);
  }
  const seed = options.seed ?? 1;
  if (!Number.isFinite(seed)) throw new Error(`seed must be a number, got ${String(seed)}`);
  const engine = {
    numBlocks: positiveInt('numBlocks', options.numBlocks ?? SIM_ENGINE_DEFAULTS.numBlocks),
    blockSize: positiveInt('blockSize', options.blockSize ?? SIM_ENGINE_DEFAULTS.blockSize),
    maxNumSeqs: positiveInt('maxNumSeqs', options.maxNumSeqs ?? SIM_ENGINE_DEFAULTS.maxNumSeqs),
    maxBatchedTokens: positiveInt('maxBatchedTokens', options.maxBatchedTokens ?? SIM_ENGINE_DEFAULTS.maxBatchedTokens),
  };
  if (options.requests.length === 0) throw new Error('requests: nothing to replay');
  const replicas: Replicas = {
    count: positiveInt('routerReplicas', options.routerReplicas ?? 1),
    sharing: options.replicaSharing ?? true,
    delayMs: options.replicaDelayMs ?? 1,
  };
  const model = options.engineModel ?? 'vllm';
  if (model !== 'vllm' && model !== 'mocker') {
    throw new Error(`engineModel must be vllm or mocker, got ${JSON.stringify(model)}`);
  }
  if (!(replicas.delayMs >= 0) || !Number.isFinite(replicas.delayMs)) {
    throw new Error(`replicaDelayMs must be a number >= 0, got ${String(replicas.delayMs)}`);
  }
  const requests = options.requests
    .map((r, i) => ({ r, i }))
    .sort((a, b) => a.r.arrivalMs - b.r.arrivalMs || a.i - b.i)
    .map((x) => x.r);
  const runs: RoutingRun[] = [];
  const details: RoutingRunDetail[] = [];
  for (const name of strategies) {
    const { run, detail } = await runOne(
      name,
      requests,
      workers,
      speedup,
      seed,
      engine,
      options.strategyOptions,
      hooks,
      replicas,
      model,
    );
    runs.push(run);
    details.push(detail);
  }
  return {
    runs,
    details,
    config: {
      workers,
      requests: requests.length,
      speedup,
      seed,
      blockSize: engine.blockSize,
      numBlocks: engine.numBlocks,
      routerReplicas: replicas.count,
      engineModel: model,
    },
  };
}

/** A profile whose times are divided by `speedup` (the engine's speedup ratio). */
function scaledProfile(
  p: Omit<EngineProfile, 'maxBatchedTokens'> & { maxBatchedTokens: number },
  speedup: number,
): EngineProfile {
  return {
    prefillFixedMs: p.prefillFixedMs / speedup,
    prefillPerTokenMs: p.prefillPerTokenMs / speedup,
    prefillAttentionMs: p.prefillAttentionMs / speedup,
    maxBatchedTokens: p.maxBatchedTokens,
    decodeBaseMs: p.decodeBaseMs / speedup,
    decodePerSeqMs: p.decodePerSeqMs / speedup,
    decodePerContextTokenMs: p.decodePerContextTokenMs / speedup,
  };
}

interface Replicas {
  count: number;
  sharing: boolean;
  delayMs: number;
}

interface Track {
  arrival: number;
  first: number;
  last: number;
  tokens: number;
  done: boolean;
}

async function runOne(
  name: StrategyName,
  requests: readonly BenchRequest[],
  workers: number,
  speedup: number,
  seed: number,
  eng: { numBlocks: number; blockSize: number; maxNumSeqs: number; maxBatchedTokens: number },
  strategyOptions: StrategyOptions | undefined,
  hooks: RoutingBenchHooks,
  replicas: Replicas,
  model: EngineModel,
): Promise<{ run: RoutingRun; detail: RoutingRunDetail }> {
  const loop = new VirtualEventLoop();
  const share = replicas.count > 1 && replicas.sharing;
  const routers = Array.from(
    { length: replicas.count },
    (_, k) =>
      new KvRouter({
        blockSize: eng.blockSize,
        strategy: createStrategy(name, strategyOptions ?? {}),
        now: loop.clock,
        // Replica 0 draws what a single router draws, so one replica replays the old bench exactly.
        random: seededRandom(seed + k),
        requestIdPrefix: 'bench',
        ...(share ? { routerId: `router-${k}` } : {}),
      }),
  );
  // The router that routed each request gets its first token and end (its response stream).
  const owner = new Map<string, KvRouter>();
  /** Delivers a replica's queued messages to the others after the configured delay. */
  const flush = (from: KvRouter): void => {
    if (!share) return;
    const msgs = from.takeReplicaMessages();
    if (msgs.length === 0) return;
    loop.schedule(loop.now + replicas.delayMs, () => {
      for (const to of routers) if (to !== from) for (const m of msgs) to.applyReplicaMessage(m);
    });
  };
  const engines = new Map<string, SimEngine | VllmSimEngine>();
  const stepping = new Set<string>();
  // What each worker's metadata would publish: its engine's timing curve (sped up like the engine).
  const curve = model === 'vllm' ? VLLM_SIM_TIMING : MOCKER_ENGINE_PROFILE;
  const profile = scaledProfile({ ...curve, maxBatchedTokens: eng.maxBatchedTokens }, speedup);
  for (let w = 0; w < workers; w++) {
    const id = `worker-${w}`;
    const o = { workerId: id, speedupRatio: speedup, ...eng };
    engines.set(id, model === 'vllm' ? new VllmSimEngine(o) : new SimEngine(o));
    for (const router of routers) {
      router.addWorker(id);
      router.setWorkerProfile(id, profile);
    }
  }
  const tracks = new Map<string, Track>();
  let failed = 0;
  let promptTokens = 0;
  let cachedTokens = 0;
  let makespan = 0;

  const onStepEnd = (id: string, e: SimEngine | VllmSimEngine, step: SimStep): void => {
    stepping.delete(id);
    for (const router of routers) {
      for (const ev of step.kvEvents) router.applyEvent(ev);
      router.applyLoad(step.load);
    }
    for (const a of step.admitted) {
      promptTokens += a.promptTokens;
      cachedTokens += a.cachedTokens;
    }
    const now = loop.now;
    for (const t of step.tokens) {
      const tr = tracks.get(t.requestId)!;
      const router = owner.get(t.requestId)!;
      if (t.index === 0) {
        tr.first = now;
        router.onFirstToken(t.requestId);
      }
      tr.last = now;
      tr.tokens++;
      if (t.done) {
        tr.done = true;
        router.onFinished(t.requestId);
        owner.delete(t.requestId);
        if (now > makespan) makespan = now;
      }
    }
    for (const router of routers) flush(router);
    kick(id, e);
  };
  const kick = (id: string, e: SimEngine | VllmSimEngine): void => {
    if (stepping.has(id)) return;
    const step = e.step(loop.now);
    if (step === null) return;
    stepping.add(id);
    loop.schedule(step.endsAt, () => onStepEnd(id, e, step));
  };

  const total = requests.length;
  const chunk = 64;
  for (let start = 0; start < total; start += chunk) {
    const end = Math.min(total, start + chunk);
    for (let i = start; i < end; i++) {
      const req = requests[i]!;
      const requestId = `r${i}`;
      const router = routers[i % routers.length]!;
      loop.schedule(req.arrivalMs, () => {
        const tokens = req.tokens();
        const d = router.route({ tokenIds: tokens, requestId });
        const e = engines.get(d.worker_id)!;
        owner.set(requestId, router);
        try {
          const load = e.submit({ requestId, tokenIds: tokens, maxTokens: req.outputLength });
          // The engine's answer reaches only the router that sent the request.
          router.applyLoad(load);
        } catch {
          failed++;
          router.onFinished(requestId);
          owner.delete(requestId);
          flush(router);
          return;
        }
        flush(router);
        tracks.set(requestId, { arrival: loop.now, first: NaN, last: NaN, tokens: 0, done: false });
        kick(d.worker_id, e);
      });
    }
    // Run up to the next chunk's first arrival, then report progress and yield to the event loop.
    const next = end < total ? requests[end]!.arrivalMs : Infinity;
    loop.run(next === Infinity ? Infinity : next - 1e-9);
    hooks.onProgress?.(name, end, total);
    await new Promise<void>((r) => setImmediate(r));
  }
  loop.run();

  const ttft: number[] = [];
  const itl: number[] = [];
  const e2e: number[] = [];
  for (const tr of tracks.values()) {
    if (!tr.done) {
      failed++;
      continue;
    }
    ttft.push(tr.first - tr.arrival);
    e2e.push(tr.last - tr.arrival);
    if (tr.tokens > 1) itl.push((tr.last - tr.first) / (tr.tokens - 1));
  }
  const asc = (a: number, b: number): number => a - b;
  ttft.sort(asc);
  itl.sort(asc);
  e2e.sort(asc);
  const busy = [...engines.values()].map((e) => e.busyTimeMs);
  const mean = busy.reduce((a, b) => a + b, 0) / busy.length;
  const pair = (v: number[]): LatencyPercentiles => ({ p50: round(percentile(v, 50)), p99: round(percentile(v, 99)) });
  return {
    run: {
      strategy: name,
      requests: total,
      failed,
      ttft_ms: pair(ttft),
      itl_ms: pair(itl),
      e2e_ms: pair(e2e),
      hit_rate: round(promptTokens === 0 ? 0 : cachedTokens / promptTokens, 4),
      load_imbalance: round(mean === 0 ? 1 : Math.max(...busy) / mean, 4),
    },
    detail: {
      strategy: name,
      ttftCurve: TTFT_CURVE_PERCENTILES.map((p) => ({ p, ms: round(percentile(ttft, p)) })),
      busyMs: busy.map((b) => round(b)),
      makespanMs: round(makespan),
      ttftSamples: ttft,
    },
  };
}

/** A fixed-width table of the runs, best TTFT p50 marked. */
export function formatRoutingBenchTable(result: RoutingBenchResult): string {
  const c = result.config;
  const head = [
    'strategy',
    'requests',
    'failed',
    'ttft p50',
    'ttft p99',
    'itl p50',
    'itl p99',
    'e2e p50',
    'e2e p99',
    'hit rate',
    'imbalance',
  ];
  const rows = result.runs.map((r) => [
    r.strategy,
    String(r.requests),
    String(r.failed),
    ms(r.ttft_ms.p50),
    ms(r.ttft_ms.p99),
    ms(r.itl_ms.p50),
    ms(r.itl_ms.p99),
    ms(r.e2e_ms.p50),
    ms(r.e2e_ms.p99),
    `${(r.hit_rate * 100).toFixed(1)}%`,
    r.load_imbalance.toFixed(3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]): string =>
    cells.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  const lines = [
    `routing benchmark: ${c.requests} requests, ${c.workers} simulated engines (${c.numBlocks} blocks of ${c.blockSize} tokens), speedup ${c.speedup}, seed ${c.seed}` +
      `, ${c.engineModel} engine model` +
      (c.routerReplicas > 1 ? `, ${c.routerReplicas} router replicas` : ''),
    fmt(head),
    fmt(head.map((_, i) => '-'.repeat(widths[i]!))),
    ...rows.map(fmt),
  ];
  const rr = result.runs.find((r) => r.strategy === 'round-robin');
  const kv = result.runs.find((r) => r.strategy === 'kv');
  if (rr !== undefined && kv !== undefined && kv.ttft_ms.p50 > 0) {
    lines.push(
      `kv vs round-robin: TTFT p50 ${(rr.ttft_ms.p50 / kv.ttft_ms.p50).toFixed(2)}x lower, p99 ${(rr.ttft_ms.p99 / kv.ttft_ms.p99).toFixed(2)}x lower`,
    );
  }
  return lines.join('\n');
}

function ms(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`;
}
