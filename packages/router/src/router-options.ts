/**
 * The options of `KvRouter`, their defaults and their validation, in one place.
 * @packageDocumentation
 */
import { DEFAULT_APPROX_TTL_MS } from './approx-indexer';
import { ignoreWarnings, type Clock, type RandomSource, type WarningHandler } from './common';
import { RouterInvalidArgumentError } from './errors';
import { checkBlockSize } from './hashing';
import { DEFAULT_MAX_BLOCKS_PER_WORKER, type GapPolicy } from './indexer-types';
import { DEFAULT_LOAD_METRICS_TTL_MS, DEFAULT_MAX_TRACKED_REQUESTS, DEFAULT_REQUEST_TIMEOUT_MS } from './load';
import { MAX_REPLICA_ID_LENGTH } from './replica';
import { checkNonNegative, type KvPreset, kvPreset } from './scheduler';
import { checkEngineProfile, type EngineProfile } from './ttft-cost';
import { STRATEGY_NAMES, createStrategy, isStrategyName } from './strategies/index';
import type { RoutingStrategy, StrategyName } from './strategies/strategy';

/** Default tokens per KV block (Dynamo's default). */
export const DEFAULT_BLOCK_SIZE = 64;

/** Options of {@link KvRouter}; every field is optional. */
export interface KvRouterOptions {
  /** Tokens per KV block; must match the workers'. Default 64. */
  blockSize?: number;
  /** A built-in strategy name or your own {@link RoutingStrategy}; default `'kv'`. */
  strategy?: StrategyName | RoutingStrategy;
  /**
   * `kv` strategy: the preset its other options default to: `'tuned'` (default; see
   * `TUNED_KV_OPTIONS`) or `'dynamo'` (Dynamo's cost exactly).
   */
  kvPreset?: KvPreset;
  /** `kv` strategy: weight of the prefill term; default from the preset (tuned 16, dynamo 1). */
  overlapWeight?: number;
  /** `kv` strategy: softmax temperature; default 0 (deterministic). */
  temperature?: number;
  /**
   * `kv` strategy, `ttft` preset: the engines' timing curve for workers without a profile of their
   * own (`KvRouter.setWorkerProfile`); default `MOCKER_ENGINE_PROFILE`.
   */
  engineProfile?: EngineProfile;
  /**
   * True (default): the index comes from the workers' KV events. False: workers send none, and the
   * router assumes each routed request's blocks stay cached on its worker for `approxTtlMs`.
   */
  useKvEvents?: boolean;
  /** Approximate mode: how long routed blocks are assumed cached, ms; default 120 000. */
  approxTtlMs?: number;
  /** What a gap in a worker's event ids does; default `'clear'` (see {@link KvIndexer}). */
  gapPolicy?: GapPolicy;
  /** How long a worker's reported load stays valid, ms; default 10 000. */
  loadMetricsTtlMs?: number;
  /** Requests never finished are released after this long, ms; default 600 000. */
  requestTimeoutMs?: number;
  /** Prefix of the request ids the router generates; default `'req'`. */
  requestIdPrefix?: string;
  /** Clock in ms; default `Date.now`. */
  now?: Clock;
  /** Uniform random in [0, 1); default `Math.random`. */
  random?: RandomSource;
  /** Receives warnings; default: ignored. */
  onWarning?: WarningHandler;
  /**
   * This replica's id among several routers of one deployment (unique, e.g. the instance id). Set
   * it to share state with the others: every decision, first token, end and fence is then queued
   * as a `ReplicaMessage` for `takeReplicaMessages()`. Default: unset (one router, nothing queued).
   */
  routerId?: string;
  /**
   * A fenced worker is unfenced by its own load report or KV event only when that arrives at least
   * this long after the fence (earlier ones may have been in flight when it died), ms; default 1000.
   * A first token from it unfences it at once.
   */
  fenceHoldMs?: number;
  /** Most requests tracked at once (this router's and its peers'); default 131 072. */
  maxTrackedRequests?: number;
  /**
   * Most blocks indexed per worker (events mode), lowered to what each worker reports it can hold
   * (`total_blocks`); the oldest stored are evicted beyond. Default 1,048,576.
   */
  maxBlocksPerWorker?: number;
}

/** {@link KvRouterOptions} with defaults applied and values validated. */
export interface CompiledRouterOptions {
  /** Tokens per KV block. */
  blockSize: number;
  /** The strategy instance (built from the name, or yours). */
  strategy: RoutingStrategy;
  /** Index from KV events (true) or approximate (false). */
  useKvEvents: boolean;
  /** Approximate mode: lifetime of a routed block, ms. */
  approxTtlMs: number;
  /** What an event-id gap does. */
  gapPolicy: GapPolicy;
  /** Validity of reported load, ms. */
  loadMetricsTtlMs: number;
  /** Release of never-finished requests, ms. */
  requestTimeoutMs: number;
  /** Prefix of generated request ids. */
  requestIdPrefix: string;
  /** Clock, ms. */
  now: Clock;
  /** Uniform random in [0, 1). */
  random: RandomSource;
  /** Warning sink. */
  onWarning: WarningHandler;
  /** This replica's id, or undefined (no sharing). */
  routerId: string | undefined;
  /** See {@link KvRouterOptions.fenceHoldMs}. */
  fenceHoldMs: number;
  /** Most requests tracked at once. */
  maxTrackedRequests: number;
  /** Most blocks indexed per worker. */
  maxBlocksPerWorker: number;
}

/**
 * Applies defaults and validates options, all in one place.
 * @throws RouterInvalidArgumentError naming the first invalid option and what it expects
 */
export function compileRouterOptions(options: KvRouterOptions = {}): CompiledRouterOptions {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkBlockSize(blockSize, 'blockSize');
  const s = options.strategy ?? 'kv';
  let strategy: RoutingStrategy;
  if (typeof s === 'string') {
    if (!isStrategyName(s)) {
      throw new RouterInvalidArgumentError(
        `strategy must be one of ${STRATEGY_NAMES.join(', ')} or a RoutingStrategy, got ${JSON.stringify(s)}`,
      );
    }
    const preset = kvPreset(options.kvPreset ?? 'ttft');
    strategy = createStrategy(s, {
      preset: options.kvPreset ?? 'ttft',
      overlapWeight: checkNonNegative(options.overlapWeight ?? preset.overlapWeight, 'overlapWeight'),
      temperature: checkNonNegative(options.temperature ?? preset.temperature, 'temperature'),
      ...(options.engineProfile !== undefined
        ? { engineProfile: checkEngineProfile(options.engineProfile, 'engineProfile') }
        : {}),
    });
  } else if (typeof s === 'object' && s !== null && typeof s.select === 'function') {
    strategy = s;
  } else {
    throw new RouterInvalidArgumentError('strategy must be a strategy name or an object with select(ctx)');
  }
  const positive = (v: number | undefined, def: number, name: string): number => {
    const x = v ?? def;
    if (typeof x !== 'number' || !(x > 0) || !Number.isFinite(x)) {
      throw new RouterInvalidArgumentError(`${name} must be a positive number of milliseconds, got ${String(x)}`);
    }
    return x;
  };
  const gapPolicy = options.gapPolicy ?? 'clear';
  if (gapPolicy !== 'clear' && gapPolicy !== 'keep') {
    throw new RouterInvalidArgumentError(`gapPolicy must be 'clear' or 'keep', got ${String(gapPolicy)}`);
  }
  const fn = <T>(v: T | undefined, def: T, name: string): T => {
    const x = v ?? def;
    if (typeof x !== 'function') throw new RouterInvalidArgumentError(`${name} must be a function`);
    return x;
  };
  return {
    blockSize,
    strategy,
    useKvEvents: options.useKvEvents ?? true,
    approxTtlMs: positive(options.approxTtlMs, DEFAULT_APPROX_TTL_MS, 'approxTtlMs'),
    gapPolicy,
    loadMetricsTtlMs: positive(options.loadMetricsTtlMs, DEFAULT_LOAD_METRICS_TTL_MS, 'loadMetricsTtlMs'),
    requestTimeoutMs: positive(options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS, 'requestTimeoutMs'),
    requestIdPrefix: options.requestIdPrefix ?? 'req',
    now: fn(options.now, Date.now, 'now'),
    random: fn(options.random, Math.random, 'random'),
    onWarning: fn(options.onWarning, ignoreWarnings, 'onWarning'),
    routerId: checkRouterId(options.routerId),
    fenceHoldMs: checkNonNegative(options.fenceHoldMs ?? DEFAULT_FENCE_HOLD_MS, 'fenceHoldMs'),
    maxBlocksPerWorker: checkPositiveInt(
      options.maxBlocksPerWorker ?? DEFAULT_MAX_BLOCKS_PER_WORKER,
      'maxBlocksPerWorker',
    ),
    maxTrackedRequests: checkPositiveInt(
      options.maxTrackedRequests ?? DEFAULT_MAX_TRACKED_REQUESTS,
      'maxTrackedRequests',
    ),
  };
}

/** Default {@link KvRouterOptions.fenceHoldMs}. */
export const DEFAULT_FENCE_HOLD_MS = 1000;

function checkRouterId(id: unknown): string | undefined {
  if (id === undefined) return undefined;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_REPLICA_ID_LENGTH) {
    throw new RouterInvalidArgumentError(`routerId must be a string of 1 to ${MAX_REPLICA_ID_LENGTH} characters`);
  }
  return id;
}

function checkPositiveInt(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new RouterInvalidArgumentError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}
