/**
 * `@dynamo-ts/router`: KV/prefix-aware routing compatible with Dynamo, usable in any Node service.
 * Block hashing, KV events and their schemas, the KV indexer (exact, from events) and the
 * approximate indexer (from decisions), load tracking, the cost-based scheduler and other
 * strategies, the disaggregation decision, and {@link KvRouter} tying them together. No I/O.
 * @packageDocumentation
 */
export { KvRouter, compileRouterOptions, DEFAULT_BLOCK_SIZE, DEFAULT_FENCE_HOLD_MS } from './router';
export type {
  KvRouterOptions,
  CompiledRouterOptions,
  RouteRequest,
  RouteDecision,
  RouterStats,
  WorkerStats,
} from './router';
export {
  validateReplicaMessage,
  peerRequestKey,
  MAX_REPLICA_HASHES,
  MAX_REPLICA_STATE_REQUESTS,
  MAX_REPLICA_ID_LENGTH,
} from './replica';
export type {
  ReplicaMessage,
  ReplicaRequest,
  ReplicaRoutedMessage,
  ReplicaProgressMessage,
  ReplicaFenceMessage,
  ReplicaStateMessage,
  ReplicaLeaveMessage,
} from './replica';
export type { FenceInfo, ReplicaApplyResult } from './peers';
export {
  HASH_SEED,
  BlockHasher,
  blockHashes,
  sequenceHashes,
  localBlockHash,
  sequenceHash,
  joinHash,
  packedLocalHash,
  packedSequenceHash,
  PACKED_STRIDE,
} from './hashing';
export type { PackedHashes } from './hashing';
export {
  kvEventSchema,
  kvStoredEventSchema,
  kvRemovedEventSchema,
  kvClearedEventSchema,
  loadMetricsSchema,
  wireHashSchema,
  validateKvEvent,
  validateLoadMetrics,
  isWireHash,
  hashToWire,
  hashFromWire,
  packedToHex,
} from './events';
export {
  storedEventFromTokens,
  storedEventForBlocks,
  removedEvent,
  clearedEvent,
  KvEventBuilder,
} from './event-builders';
export type {
  WireHash,
  KvEvent,
  KvEventBase,
  KvStoredEvent,
  KvStoredBlock,
  KvRemovedEvent,
  KvClearedEvent,
  LoadMetrics,
  ValidationResult,
} from './events';
export type { StoredBlocksRange } from './event-builders';
export { KvIndexer, DEFAULT_MAX_BLOCKS_PER_WORKER } from './indexer';
export type { KvIndexerOptions, GapPolicy, ApplyResult, ApplyStatus, ApplyReason, KvIndexerCounters } from './indexer';
export { ApproxKvIndexer, DEFAULT_APPROX_TTL_MS } from './approx-indexer';
export type { ApproxKvIndexerOptions } from './approx-indexer';
export { BlockIndex } from './block-index';
export {
  LoadColumns,
  LoadTracker,
  WorkerLoadState,
  DEFAULT_LOAD_METRICS_TTL_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_MAX_TRACKED_REQUESTS,
} from './load';
export type { LoadTrackerOptions, RequestLoad, WorkerLoad, TrackedRequestView } from './load';
export {
  KvScheduler,
  kvCost,
  softmaxSample,
  kvPreset,
  DEFAULT_OVERLAP_WEIGHT,
  DEFAULT_TEMPERATURE,
  DYNAMO_KV_OPTIONS,
  TUNED_KV_OPTIONS,
  TTFT_KV_OPTIONS,
} from './scheduler';
export type { KvSchedulerOptions, KvPreset, KvObjective } from './scheduler';
export {
  predictTtftMs,
  checkEngineProfile,
  delayedRequests,
  heldBlocks,
  idleWorkShare,
  MAX_BUSY_SHARE,
  MAX_DELAYED_REQUESTS,
  MOCKER_ENGINE_PROFILE,
} from './ttft-cost';
export { TrafficTracker, SHARE_HALF_LIFE_PER_WORKER } from './traffic';
export type { EngineProfile } from './ttft-cost';
export { blocksLoadKey, blocksRequestFloor, ttftLoadKey, ttftBound, ttftRequestFloor } from './cost-bound';
export type { CostBound, LoadFigures } from './cost-bound';
export { WorkerHeap } from './worker-heap';
export { SEARCH_TIES } from './bounded-search';
export type { EffectiveLoad } from './load-state';
export {
  createStrategy,
  isStrategyName,
  routingContext,
  randomIndex,
  loadBlocks,
  STRATEGY_NAMES,
  RoundRobinStrategy,
  RandomStrategy,
  LeastLoadedStrategy,
  PowerOfTwoStrategy,
} from './strategies/index';
export type {
  StrategyName,
  StrategyOptions,
  RoutingStrategy,
  RoutingContext,
  RoutingChoice,
  CandidateWorker,
} from './strategies/index';
export {
  shouldPrefillRemotely,
  disaggregationOptionsSchema,
  DEFAULT_MAX_LOCAL_PREFILL_LENGTH,
  DEFAULT_MAX_PREFILL_QUEUE_SIZE,
} from './disagg';
export type { DisaggregationOptions, DisaggregationDecision, DisaggregationReason, PrefillSituation } from './disagg';
export { RouterError, RouterInvalidArgumentError, NoWorkersError } from './errors';
export type { RouterErrorCode } from './errors';
export type { WarningHandler, Clock, RandomSource } from './common';
export { mulberry32, seededRandom } from './random';
