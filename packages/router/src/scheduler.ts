/**
 * The KV-aware scheduler, with Dynamo's cost:
 *
 * ```
 * cost(w)           = overlap_weight * prefill_blocks(w) + decode_blocks(w)
 * prefill_blocks(w) = (isl_tokens - overlap(w) * block_size + active_prefill_tokens(w)) / block_size
 * decode_blocks(w)  = active_blocks(w) + new_blocks(w)
 * ```
 *
 * `overlap(w)` is the number of leading blocks of the prompt cached on `w`; `active_blocks(w)` the
 * distinct blocks of the requests running on `w`; `new_blocks(w)` the request's blocks
 * (`ceil(isl_tokens / block_size)`) minus those already active on `w` (shared with a running
 * request), as Dynamo's `ActiveSequences` counts them.
 * The lowest cost wins; equal costs go to the worker with the fewest cached blocks (the emptier
 * cache, so unrelated prompts spread out), then to a random one. With `temperature > 0` the worker
 * is sampled from softmax(-c/T) where c is the cost min-max normalised to [0, 1] (so T does not
 * depend on the scale of the costs: T = 1 makes the cheapest worker e ≈ 2.7 times as likely as the
 * dearest, T = 0.1 about 22 000 times).
 * @packageDocumentation
 */
import type { RandomSource } from './common';
import { RouterInvalidArgumentError } from './errors';
import { randomIndex, type RoutingChoice, type RoutingContext, type RoutingStrategy } from './strategies/strategy';

/** Options of {@link KvScheduler}. */
export interface KvSchedulerOptions {
  /** Weight of the prefill term; default 1. 0 ignores cache hits (pure load balancing). */
  overlapWeight?: number;
  /** Softmax temperature; default 0 (deterministic: lowest cost). */
  temperature?: number;
}

/** Default {@link KvSchedulerOptions.overlapWeight}. */
export const DEFAULT_OVERLAP_WEIGHT = 1;
/** Default {@link KvSchedulerOptions.temperature}. */
export const DEFAULT_TEMPERATURE = 0;

/** Throws unless `v` is a finite number >= 0. */
export function checkNonNegative(v: number, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new RouterInvalidArgumentError(`${name} must be a finite number >= 0, got ${String(v)}`);
  }
  return v;
}

/** Dynamo's cost of routing the request in `ctx` to worker `i` (see the module comment). */
export function kvCost(ctx: RoutingContext, i: number, overlapWeight = DEFAULT_OVERLAP_WEIGHT): number {
  const bs = ctx.blockSize;
  const overlap = ctx.overlapBlocks[i]!;
  const prefillBlocks = (ctx.islTokens - overlap * bs + ctx.activePrefillTokens[i]!) / bs;
  const decodeBlocks = ctx.activeBlocks[i]! + ctx.newBlocks[i]!;
  return overlapWeight * prefillBlocks + decodeBlocks;
}

/**
 * Samples an index from softmax(-normalised cost / temperature) over `costs[0..count)`.
 * Equal costs give a uniform pick.
 */
export function softmaxSample(
  costs: ArrayLike<number>,
  count: number,
  temperature: number,
  random: RandomSource,
): number {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < count; i++) {
    const c = costs[i]!;
    if (c < min) min = c;
    if (c > max) max = c;
  }
  const range = max - min;
  if (!(range > 0)) return randomIndex(random, count);
  let total = 0;
  const weights = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    // The cheapest worker gets weight 1, the others less; no overflow possible.
    const w = Math.exp(-((costs[i]! - min) / range) / temperature);
    weights[i] = w;
    total += w;
  }
  let r = random() * total;
  for (let i = 0; i < count; i++) {
    r -= weights[i]!;
    if (r < 0) return i;
  }
  // Rounding left r >= 0: the last worker with a non-zero weight.
  for (let i = count - 1; i >= 0; i--) if (weights[i]! > 0) return i;
  return count - 1;
}

/** The `kv` strategy: see the module comment. */
export class KvScheduler implements RoutingStrategy {
  /** Always `'kv'`. */
  readonly name = 'kv';
  /** Weight of the prefill term. */
  readonly overlapWeight: number;
  /** Softmax temperature (0: deterministic). */
  readonly temperature: number;
  private costs = new Float64Array(16);
  private ties = new Int32Array(16);

  constructor(options: KvSchedulerOptions = {}) {
    this.overlapWeight = checkNonNegative(options.overlapWeight ?? DEFAULT_OVERLAP_WEIGHT, 'overlapWeight');
    this.temperature = checkNonNegative(options.temperature ?? DEFAULT_TEMPERATURE, 'temperature');
  }

  /** Costs computed by the last {@link KvScheduler.select} (first `count` entries). */
  get lastCosts(): Float64Array {
    return this.costs;
  }

  /** Picks the worker with the lowest cost (or samples, with a temperature). */
  select(ctx: RoutingContext): RoutingChoice {
    const n = ctx.count;
    if (this.costs.length < n) {
      this.costs = new Float64Array(n * 2);
      this.ties = new Int32Array(n * 2);
    }
    const costs = this.costs;
    let min = Infinity;
    for (let i = 0; i < n; i++) {
      const c = kvCost(ctx, i, this.overlapWeight);
      costs[i] = c;
      if (c < min) min = c;
    }
    if (this.temperature > 0) {
      const i = softmaxSample(costs, n, this.temperature, ctx.random);
      return { index: i, cost: costs[i]! };
    }
    // Ties (within rounding) on cost, then on cached blocks, then random.
    const eps = 1e-9 * Math.max(1, Math.abs(min));
    const ties = this.ties;
    let nt = 0;
    let minCached = Infinity;
    for (let i = 0; i < n; i++) {
      if (costs[i]! - min > eps) continue;
      const cached = ctx.cachedBlocks[i]!;
      if (cached < minCached) {
        minCached = cached;
        nt = 0;
      }
      if (cached === minCached) ties[nt++] = i;
    }
    const pick = nt === 1 ? ties[0]! : ties[randomIndex(ctx.random, nt)]!;
    return { index: pick, cost: costs[pick]! };
  }
}
