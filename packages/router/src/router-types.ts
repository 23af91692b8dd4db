/**
 * The shapes `KvRouter` takes and answers: a route request, the decision, and its statistics.
 * @packageDocumentation
 */
import type { WorkerLoad } from './load';
import type { FenceInfo } from './peers';

/** A routing request. */
export interface RouteRequest {
  /** The prompt's token ids (u32). */
  tokenIds: ArrayLike<number>;
  /** Id for load tracking (`onFirstToken`/`onFinished`); generated when absent. */
  requestId?: string;
  /** False: only answer, record nothing (no load, no approximate-index entry). Default true. */
  record?: boolean;
  /**
   * Workers not to pick for this request (e.g. they failed it before); they stay registered.
   * @throws NoWorkersError when it leaves no worker
   */
  excludeWorkers?: ReadonlySet<string>;
}

/** The router's answer (snake_case: it is also the Router service's wire response). */
export interface RouteDecision {
  /** The chosen worker. */
  worker_id: string;
  /** The request id to pass to `onFirstToken`/`onFinished`. */
  request_id: string;
  /** Leading blocks of the prompt the chosen worker has cached. */
  overlap_blocks: number;
  /** Prompt length in tokens. */
  isl_tokens: number;
  /** Prompt tokens the chosen worker must prefill: `isl_tokens - overlap_blocks * block_size`. */
  uncached_tokens: number;
  /** Tokens per block. */
  block_size: number;
  /** The strategy that decided. */
  strategy: string;
  /** The chosen worker's cost (`kv` strategy). */
  cost?: number;
  /** Whether the decision was recorded as load. */
  recorded: boolean;
}

/** Per-worker figures of {@link RouterStats}. */
export interface WorkerStats extends WorkerLoad {
  /** The worker. */
  workerId: string;
  /** Distinct blocks the index says the worker caches. */
  cachedBlocks: number;
  /** Last KV event id accepted (events mode). */
  lastEventId?: number;
  /** Set while the worker is fenced (never chosen). */
  fenced?: FenceInfo;
  /** Event-id gaps seen (events mode). */
  eventGaps: number;
  /** Its share of the recent decisions (this router's and its peers'), in [0, 1]. */
  routedShare: number;
}

/** Router-wide figures, e.g. for Prometheus gauges and counters. */
export interface RouterStats {
  /** Name of the routing strategy. */
  strategy: string;
  /** Tokens per block. */
  blockSize: number;
  /** Where cache knowledge comes from: KV events, or the router's own decisions. */
  mode: 'kv_events' | 'approximate';
  /** Per registered worker, in registration order. */
  workers: WorkerStats[];
  /** Distinct blocks indexed. */
  indexedBlocks: number;
  /** (worker, block) pairs indexed. */
  indexEntries: number;
  /** Requests routed (recorded or not). */
  decisions: number;
  /** Requests currently tracked as in flight. */
  inflightRequests: number;
  /** Sum over decisions of overlap blocks / sum of prompt blocks (full blocks): the predicted hit rate. */
  predictedHitRate: number;
  /** KV events applied / rejected / ignored, and event-id gaps. */
  events: { applied: number; rejected: number; ignored: number; gaps: number };
  /** Requests of peer replicas tracked as load, and the peers followed. */
  replicas: { peerRequests: number; peers: number };
  /**
   * The bounded search (strategies with a cost bound): workers scored per decision on average,
   * and decisions where more workers tied at the best cost than it scores (it drew from a
   * rotating sample of them). Zeros without a search.
   */
  search: { scoredPerDecision: number; sampledTies: number };
  /**
   * Requests per second arriving at the fleet, a moving average over this router's and its peers'
   * decisions (the `ttft` cost's work term reads it); 0 before two, Infinity while every arrival
   * so far came at one instant.
   */
  arrivalsPerSecond: number;
}
