/**
 * The options and results of the `KvIndexer`.
 * @packageDocumentation
 */
import type { WarningHandler } from './common';

/** What a gap in a worker's event ids does: drop the worker's blocks, or keep them. */
export type GapPolicy = 'clear' | 'keep';

/** Options of {@link KvIndexer}. */
export interface KvIndexerOptions {
  /** Receives warnings (gaps, unknown parents, stale or invalid events). */
  onWarning?: WarningHandler;
  /** See {@link GapPolicy}; default `'clear'`. */
  gapPolicy?: GapPolicy;
  /**
   * False forces sequence hashes to be chained in JavaScript instead of WebAssembly (used only where
   * WebAssembly is unavailable otherwise); results are identical. For tests and diagnostics.
   */
  webAssembly?: boolean;
  /**
   * Most blocks indexed per worker, whatever its events say; beyond, its oldest stored blocks are
   * evicted (workers with engine-specific block ids are resynced instead). The cap is lowered to a
   * worker's reported capacity (plus 1/16, at least 64, for events in flight) by
   * {@link KvIndexer.setWorkerCapacity}. Default 1,048,576.
   */
  maxBlocksPerWorker?: number;
}

/** Default {@link KvIndexerOptions.maxBlocksPerWorker}. */
export const DEFAULT_MAX_BLOCKS_PER_WORKER = 1 << 20;

/** Whether an event changed the index. */
export type ApplyStatus = 'applied' | 'rejected' | 'ignored';

/** Why an event was rejected or ignored. */
export type ApplyReason = 'invalid' | 'unknown_parent' | 'stale_event' | 'unknown_worker' | 'no_kv_events';

/** Outcome of applying one event. */
export interface ApplyResult {
  /** `applied`, `rejected` (malformed or unknown parent) or `ignored` (stale, unknown worker...). */
  status: ApplyStatus;
  /** Set unless applied. */
  reason?: ApplyReason;
  /** Blocks added (stored), removed (removed, cleared). */
  blocks: number;
  /** Blocks named by a `removed` event that the worker did not hold. */
  missing?: number;
  /** Set when the event id skipped ahead: the id expected and the one received. */
  gap?: { expected: number; received: number };
  /** True when the gap made the indexer drop the worker's blocks (gapPolicy `'clear'`). */
  resynced?: boolean;
  /** Validation errors of an `invalid` event. */
  errors?: string[];
}

/** Cumulative counts of an indexer's events. */
export interface KvIndexerCounters {
  /** Events applied. */
  applied: number;
  /** Events rejected (malformed, unknown parent). */
  rejected: number;
  /** Events ignored (stale ids). */
  ignored: number;
  /** Event-id gaps seen. */
  gaps: number;
}
