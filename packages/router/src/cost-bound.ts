/**
 * Lower bounds of the `kv` strategy's costs, split into a part that depends only on a worker's load
 * (its key in the router's load-ordered heap, kept up to date as load changes) and a part that
 * depends only on the request and the most the worker can share of it:
 *
 * ```
 * cost(w) >= requestFloor(request, level) + loadKey(w)   for every w sharing at most `level` blocks
 * ```
 *
 * With it, `KvRouter` scores the few workers that share more than `level` leading blocks, then walks
 * the others in ascending `requestFloor(class) + loadKey` (one heap per load class) and stops once
 * that exceeds the best cost found (plus the tie tolerance): no worker left could win or tie. Each bound below restates its cost's terms (`scheduler.ts` `kvCost`, `ttft-cost.ts`
 * `predictTtftMs`): change both together (`test/cost-bound.property.test.ts` checks the inequality).
 * @packageDocumentation
 */
import type { RoutingContext } from './strategies/strategy';
import type { EngineProfile } from './ttft-cost';

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
   * blocks (indexed or active) of an `islTokens`-token prompt, `prefixSharers` running requests
   * (the context's) sharing its first block.
   */
  requestFloor(
    islTokens: number,
    blockSize: number,
    level: number,
    profile: EngineProfile | undefined,
    prefixSharers: number,
    cls: number,
  ): number;
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
 * `ceil((queue + 1) / max_batched)` steps, each costing one decode step; the memory term is >= 0.
 */
export function ttftLoadKey(f: LoadFigures, p: EngineProfile, blockSize: number): number {
  const q = f.activePrefillTokens;
  const steps = Math.ceil((q + 1) / p.maxBatchedTokens);
  const step = p.decodeBaseMs + p.decodePerSeqMs * f.inflight + p.decodePerContextTokenMs * f.activeBlocks * blockSize;
  return p.prefillFixedMs * f.prefillRequests + p.prefillPerTokenMs * q + steps * step;
}

/** Load classes of the ttft bound: requests ahead 0, 1, ..., `TTFT_CLASSES - 1` or more. */
export const TTFT_CLASSES = 16;

/** The ttft bound's load class: the requests queued or prefilling ahead, capped. */
export function ttftLoadClass(f: LoadFigures): number {
  const a = f.prefillRequests;
  return a >= TTFT_CLASSES - 1 ? TTFT_CLASSES - 1 : a > 0 ? Math.floor(a) : 0;
}

/**
 * See {@link ttftLoadKey}. A worker sharing `overlap <= level` blocks computes `fresh >= f` tokens,
 * `f = max(1, isl - level * bs)`, with `cached >= isl - fresh`, so its own prefill is at least
 * `own = fixed + per_token * f + attention * f * (isl - f / 2)` (increasing in `f` up to `isl`). It is
 * counted once, plus `workWeight * max(busy, cold)` times, where `cold = 1 / (1 + prefixSharers)` is
 * the same for every worker of the decision and `busy = ahead / (ahead + 1)` is at least
 * `cls / (cls + 1)` for a worker of load class `cls` (ahead >= cls).
 */
export function ttftRequestFloor(
  islTokens: number,
  blockSize: number,
  level: number,
  p: EngineProfile,
  workWeight: number,
  prefixSharers = 0,
  cls = 0,
): number {
  const f = Math.max(1, islTokens - Math.min(level * blockSize, islTokens));
  const own = p.prefillFixedMs + p.prefillPerTokenMs * f + p.prefillAttentionMs * f * (islTokens - f / 2);
  const cold = 1 / (1 + prefixSharers);
  const busy = cls / (cls + 1);
  return (1 + workWeight * (busy > cold ? busy : cold)) * own;
}
