/**
 * The contract every routing strategy implements, and the context it decides from.
 * @packageDocumentation
 */
import type { RandomSource } from '../common';
import type { CostBound } from '../cost-bound';
import { RouterInvalidArgumentError } from '../errors';
import type { EngineProfile } from '../ttft-cost';

/** Names of the built-in strategies ({@link createStrategy}, `KvRouterOptions.strategy`). */
export type StrategyName = 'kv' | 'round-robin' | 'random' | 'least-loaded' | 'power-of-two';

/** The built-in strategy names. */
export const STRATEGY_NAMES: readonly StrategyName[] = ['kv', 'round-robin', 'random', 'least-loaded', 'power-of-two'];

/**
 * What a strategy sees for one request: the candidate workers as parallel arrays (index `i` in
 * `0..count-1` is one worker) plus the request. Arrays may be longer than `count` (reused buffers);
 * read only the first `count` entries. Valid only during {@link RoutingStrategy.select}.
 */
export interface RoutingContext {
  /** Number of candidate workers (at least 1). */
  readonly count: number;
  /** Worker ids. */
  readonly workerIds: readonly string[];
  /** Leading blocks of the request each worker holds in cache. */
  readonly overlapBlocks: ArrayLike<number>;
  /** KV blocks in use on each worker (effective: see {@link LoadTracker}). */
  readonly activeBlocks: ArrayLike<number>;
  /**
   * Blocks the request would add to each worker's active blocks: its blocks minus the leading
   * ones already active there (shared with a running request).
   */
  readonly newBlocks: ArrayLike<number>;
  /** Prompt tokens waiting to be prefilled on each worker. */
  readonly activePrefillTokens: ArrayLike<number>;
  /** Distinct blocks each worker holds in cache (according to the indexer). */
  readonly cachedBlocks: ArrayLike<number>;
  /** Requests queued on each worker (reported; 0 when unknown). */
  readonly waiting: ArrayLike<number>;
  /** Prompt length in tokens. */
  readonly islTokens: number;
  /** Tokens per KV block. */
  readonly blockSize: number;
  /** Blocks the prompt occupies: `ceil(islTokens / blockSize)`. */
  readonly requestBlocks: number;
  /** Uniform random source in [0, 1). */
  readonly random: RandomSource;
  /** The prompt's token ids, when the caller has them (KvRouter passes them; policies that keep
   * their own prefix trees need them). */
  readonly tokenIds?: ArrayLike<number>;
  /**
   * Requests queued or prefilling on each worker: the larger of those this router (and its peers)
   * sent without a first token yet and the worker's reported waiting; absent: unknown.
   */
  readonly prefillRequests?: ArrayLike<number>;
  /** Requests routed to each worker and not finished (tracked by the router); absent: unknown. */
  readonly inflight?: ArrayLike<number>;
  /** Each worker's KV capacity in blocks as it reported it (0: unknown); absent: unknown. */
  readonly totalBlocks?: ArrayLike<number>;
  /** Each worker's engine timing curve when known (worker metadata); absent or undefined: unknown. */
  readonly profiles?: ArrayLike<EngineProfile | undefined>;
  /**
   * Running requests (this router's and its peers', on any worker) whose prompt starts with the
   * same block as this one: how hot the prompt's prefix is; absent: unknown.
   */
  readonly prefixSharers?: number;
  /**
   * Requests per ms arriving at the fleet (this router's and its peers' decisions, a moving
   * average); absent or 0: unknown.
   */
  readonly arrivalRate?: number;
  /** Each worker's share of the recent decisions, in [0, 1]; absent: unknown. */
  readonly routedShare?: ArrayLike<number>;
  /**
   * Share of all registered workers (not only the `count` here) with a request queued or
   * prefilling, in [0, 1]; absent: unknown. `KvRouter` counts it from the bounded search's load
   * classes, so it is 0 for a strategy whose bound has a single class.
   */
  readonly busyShare?: number;
  /**
   * Requests queued or prefilling on all registered workers (not only the `count` here), as their
   * effective loads count them; absent: unknown.
   */
  readonly queuedRequests?: number;
  /** Registered workers (the context may hold only some of them); absent: `count`. */
  readonly fleetSize?: number;
}

/** A strategy's pick. */
export interface RoutingChoice {
  /** Index of the chosen worker in the context. */
  index: number;
  /** The chosen worker's cost, for strategies that compute one. */
  cost?: number;
}

/** Picks a worker for a request. Implementations must not keep the context. */
export interface RoutingStrategy {
  /** Name reported in decisions and stats. */
  readonly name: string;
  /** Picks one of `ctx.count` workers. */
  select(ctx: RoutingContext): RoutingChoice;
  /**
   * Lower bounds of the cost `select` minimises, with the promise {@link CostBound} states: given
   * one, `KvRouter` passes only the workers that could win or tie (those sharing the prompt's
   * prefix and the least loaded others) instead of all of them.
   */
  readonly costBound?: CostBound | undefined;
}

/** One candidate for {@link routingContext}. */
export interface CandidateWorker {
  /** The worker. */
  workerId: string;
  /** Leading blocks of the request it caches; default 0. */
  overlapBlocks?: number;
  /** Its active blocks; default 0. */
  activeBlocks?: number;
  /** Blocks the request would add to its active blocks; default: all of the request's blocks. */
  newBlocks?: number;
  /** Its prompt tokens waiting for prefill; default 0. */
  activePrefillTokens?: number;
  /** Distinct blocks it caches; default 0. */
  cachedBlocks?: number;
  /** Its queued requests; default 0. */
  waiting?: number;
  /** Its requests in flight; default 0. */
  inflight?: number;
  /** Its requests queued or prefilling; default 0. */
  prefillRequests?: number;
  /** Its KV capacity in blocks; default 0 (unknown). */
  totalBlocks?: number;
  /** Its share of the recent decisions; default 0. */
  routedShare?: number;
}

/**
 * Builds a {@link RoutingContext} from plain objects: for tests, simulations and strategies used
 * outside {@link KvRouter}.
 */
export function routingContext(
  candidates: readonly CandidateWorker[],
  request: {
    islTokens: number;
    blockSize: number;
    random?: RandomSource;
    tokenIds?: ArrayLike<number>;
    prefixSharers?: number;
    arrivalRate?: number;
    busyShare?: number;
    queuedRequests?: number;
    fleetSize?: number;
  },
): RoutingContext {
  if (candidates.length === 0) throw new RouterInvalidArgumentError('at least one candidate worker is needed');
  const requestBlocks = Math.ceil(request.islTokens / request.blockSize);
  return {
    count: candidates.length,
    workerIds: candidates.map((c) => c.workerId),
    overlapBlocks: candidates.map((c) => c.overlapBlocks ?? 0),
    activeBlocks: candidates.map((c) => c.activeBlocks ?? 0),
    newBlocks: candidates.map((c) => c.newBlocks ?? requestBlocks),
    activePrefillTokens: candidates.map((c) => c.activePrefillTokens ?? 0),
    cachedBlocks: candidates.map((c) => c.cachedBlocks ?? 0),
    waiting: candidates.map((c) => c.waiting ?? 0),
    islTokens: request.islTokens,
    blockSize: request.blockSize,
    requestBlocks,
    random: request.random ?? Math.random,
    inflight: candidates.map((c) => c.inflight ?? 0),
    prefillRequests: candidates.map((c) => c.prefillRequests ?? 0),
    totalBlocks: candidates.map((c) => c.totalBlocks ?? 0),
    ...(request.tokenIds !== undefined ? { tokenIds: request.tokenIds } : {}),
    ...(request.prefixSharers !== undefined ? { prefixSharers: request.prefixSharers } : {}),
    ...(request.arrivalRate !== undefined ? { arrivalRate: request.arrivalRate } : {}),
    ...(request.busyShare !== undefined ? { busyShare: request.busyShare } : {}),
    ...(request.queuedRequests !== undefined ? { queuedRequests: request.queuedRequests } : {}),
    ...(request.fleetSize !== undefined ? { fleetSize: request.fleetSize } : {}),
    routedShare: candidates.map((c) => c.routedShare ?? 0),
  };
}

/** Index in [0, n) from a random source (guards against sources returning 1). */
export function randomIndex(random: RandomSource, n: number): number {
  const i = Math.floor(random() * n);
  return i >= n ? n - 1 : i < 0 ? 0 : i;
}

/** Load of worker `i` in blocks: active blocks plus pending prefill, in blocks. */
export function loadBlocks(ctx: RoutingContext, i: number): number {
  return ctx.activeBlocks[i]! + ctx.activePrefillTokens[i]! / ctx.blockSize;
}
