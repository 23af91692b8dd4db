/**
 * Lower bounds of the `kv` strategy's costs, split into a part that depends only on a worker's load
 * (its key in the router's load-ordered heap, kept up to date as load changes) and a part that
 * depends only on the request and the most the worker can share of it:
 *
 * ```
 * cost(w) >= bound(class(w), requestFloor(request, level), loadKey(w))
 *            for every w sharing at most `level` blocks; bound non-decreasing in floor and key
 * ```
 *
 * With it, `KvRouter` scores the few workers that share more than `level` leading blocks, then walks
 * the others in ascending bound (one heap per load class, ordered by key) and stops once that
 * exceeds the best cost found (plus the tie tolerance): no worker left could win or tie. Each bound
 * below restates its cost's terms (`scheduler.ts` `kvCost`, `ttft-cost.ts` `predictTtftMs`): change
 * both together (`test/bounded-search.property.test.ts` checks the inequality).
 * @packageDocumentation
 */
import type { RoutingContext } from './strategies/strategy';
import { delayedRequests, type EngineProfile, heldBlocks, idleWorkShare } from './ttft-cost';

/** The load figures of one worker a key is computed from (effective values, as the context has them). */
export interface LoadFigures {
  /** Active KV blocks. */
  activeBlocks: number;
  /** Prompt tokens queued for prefill. */
  activePrefillTokens: number;
  /** Requests running. */
  inflight: number;
  /** Requests queued or prefilling. */
  prefillRequests: number;
}

/**
 * What a strategy offers for a search that need not score every worker. A strategy with a
 * `costBound` promises that `select(ctx)` picks a worker of minimum `cost(ctx, i)` and that its pick
 * depends only on the workers whose cost is within `1e-9 * max(1, |min|)` of the minimum, taken in
 * context order (so dropping workers that cannot tie changes nothing).
 */
export interface CostBound {
  /**
   * Workers fall into this many load classes (`loadClass`), each with its own request floor: a
   * term that multiplies a worker's load by the request's work (the ttft cost's queue share) is
   * bounded per class instead of by its smallest value over all workers.
   */
  readonly classes: number;
  /** The load class (`0 .. classes - 1`) of a worker with these figures. */
  loadClass(f: LoadFigures): number;
  /** Request-independent part of the bound for a worker with these figures and profile. */
  loadKey(f: LoadFigures, profile: EngineProfile | undefined, blockSize: number): number;
  /**
   * Request part of the bound for any worker of load class `cls` sharing at most `level` leading
   * blocks (indexed or active) of the context's prompt. It may read the context's decision-wide
   * fields (`islTokens`, `blockSize`, `prefixSharers`, `arrivalRate`, `busyShare`,
   * `queuedRequests`, `fleetSize`), not its per-worker entries.
   */
  requestFloor(ctx: RoutingContext, level: number, profile: EngineProfile | undefined, cls: number): number;
  /**
   * The bound itself, for a worker of load class `cls` whose request floor is at least `floor` and
   * whose load key is `key`: at most its cost, and non-decreasing in both `floor` and `key` (the
   * walk visits each class in ascending key and stops at the first bound above the best cost; the
   * floors of several profiles are merged by their minimum). `floor + key` for an additive cost; a
   * cost whose request part grows with the load (the ttft work term) lifts it.
   */
  bound(ctx: RoutingContext, cls: number, floor: number, key: number): number;
  /** The exact cost `select` minimises, of context entry `i`. */
  cost(ctx: RoutingContext, i: number): number;
}

/**
 * Bound of `kvCost` (blocks objective):
 * `ow * (isl - overlap * bs + qw * queue) / bs + active + new` with `overlap <= level` and
 * `new >= requestBlocks - level` (the active overlap is at most `level` too).
 */
export function blocksLoadKey(f: LoadFigures, overlapWeight: number, queueWeight: number, blockSize: number): number {
  return (overlapWeight * queueWeight * f.activePrefillTokens) / blockSize + f.activeBlocks;
}

/** See {@link blocksLoadKey}. */
export function blocksRequestFloor(islTokens: number, blockSize: number, level: number, overlapWeight: number): number {
  const requestBlocks = Math.ceil(islTokens / blockSize);
  const l = Math.min(level, Math.floor(islTokens / blockSize));
  return (overlapWeight * (islTokens - l * blockSize)) / blockSize + Math.max(0, requestBlocks - l);
}

/**
 * Bound of `predictTtftMs` (ttft objective). With `fresh >= 1` the prefill needs at least
 * `ceil((queue + 1) / max_batched)` steps, each costing one decode step at the blocks the worker
 * holds ({@link heldBlocks}); the memory term is >= 0.
 */
export function ttftLoadKey(f: LoadFigures, p: EngineProfile, blockSize: number): number {
  const q = f.activePrefillTokens;
  const steps = Math.ceil((q + 1) / p.maxBatchedTokens);
  const held = heldBlocks(f.activeBlocks, q, blockSize);
  const step = p.decodeBaseMs + p.decodePerSeqMs * f.inflight + p.decodePerContextTokenMs * held * blockSize;
  return p.prefillFixedMs * (f.prefillRequests + 1) + p.prefillPerTokenMs * q + steps * step;
}

/**
 * Load classes of the ttft bound: no request ahead (0), or at least one (1). The work term's share
 * is 1 behind a queue and the prefix's coldness before an empty one, and the router's `busyShare`
 * is the share of workers outside class 0.
 */
export const TTFT_CLASSES = 2;

/** The ttft bound's load class: whether a request is queued or prefilling ahead. */
export function ttftLoadClass(f: LoadFigures): number {
  return f.prefillRequests >= 1 ? 1 : 0;
}

/**
 * See {@link ttftLoadKey}, which holds the request's own fixed cost. A worker sharing
 * `overlap <= level` blocks computes `fresh >= f` tokens, `f = max(1, isl - level * bs)`, with
 * `cached >= isl - fresh`, so the compute of its own prefill is at least
 * `own = per_token * f + attention * f * (isl - f / 2)` (increasing in `f` up to `isl`): the request
 * floor, also the floor of the work term's `own_ms`; its predicted TTFT is at least that plus its
 * load key ({@link ttftBound} adds the work term).
 */
export function ttftRequestFloor(ctx: RoutingContext, level: number, p: EngineProfile): number {
  const isl = ctx.islTokens;
  const f = Math.max(1, isl - Math.min(level * ctx.blockSize, isl));
  return p.prefillPerTokenMs * f + p.prefillAttentionMs * f * (isl - f / 2);
}

/**
 * The ttft bound of a worker of class `cls` with request floor `own` and load key `key`: its TTFT
 * is at least `t = own + key`, and the work term (`ttft-cost.ts`) counts `delayed * share * (own +
 * memory)`, where `delayed` is non-decreasing in the TTFT and the worker's decision share (so at
 * least its value at `t` and the even share `1 / fleet`), `share` is 1 for a worker of class 1 (a
 * request ahead) and {@link idleWorkShare} in class 0 (decision-wide), and memory >= 0. The result
 * grows with `key` (the work term scales with the TTFT), which an additive floor would miss.
 */
export function ttftBound(
  ctx: RoutingContext,
  cls: number,
  own: number,
  key: number,
  workWeight: number,
  maxDelayed: number,
): number {
  const t = own + key;
  if (workWeight === 0) return t;
  const n = delayedRequests(ctx, 0, t, workWeight, maxDelayed);
  const share = cls > 0 ? 1 : idleWorkShare(ctx);
  return t + n * share * own;
}
