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
import {
  blocksLoadKey,
  blocksRequestFloor,
  type CostBound,
  TTFT_CLASSES,
  ttftLoadClass,
  ttftLoadKey,
  ttftBound,
  ttftRequestFloor,
} from './cost-bound';
import { BlockHasher, PACKED_STRIDE } from './hashing';
import { randomIndex, type RoutingChoice, type RoutingContext, type RoutingStrategy } from './strategies/strategy';
import {
  checkEngineProfile,
  type EngineProfile,
  MAX_DELAYED_REQUESTS,
  MOCKER_ENGINE_PROFILE,
  predictTtftMs,
} from './ttft-cost';

/**
 * Named sets of {@link KvSchedulerOptions}: `ttft` (predicted time to first token, the default of
 * the `kv` strategy by name), `dynamo` (Dynamo's cost exactly) and `tuned` (Dynamo's cost
 * reweighted on the Mooncake trace).
 */
export type KvPreset = 'ttft' | 'dynamo' | 'tuned';

/** What the cost measures: Dynamo's blocks, or the predicted TTFT in ms (`ttft-cost.ts`). */
export type KvObjective = 'blocks' | 'ttft';

/** Options of {@link KvScheduler}. */
export interface KvSchedulerOptions {
  /**
   * The preset the other options default to; default `'dynamo'` for `new KvScheduler()`, while the
   * `kv` strategy created by name (`createStrategy`, `KvRouter`) defaults to `'tuned'`.
   */
  preset?: KvPreset;
  /** Weight of the prefill term; default 1. 0 ignores cache hits (pure load balancing). */
  overlapWeight?: number;
  /** Softmax temperature; default 0 (deterministic: lowest cost). */
  temperature?: number;
  /**
   * Count the leading blocks a worker is computing or holding for its running requests (from this
   * router's own decisions) as cached there, when that is more than the KV index says; default true.
   * A prompt sent right after another with the same prefix then follows it, instead of being
   * judged before the first one's blocks are announced. False: Dynamo's cost exactly.
   */
  inflightOverlap?: boolean;
  /**
   * Weight of the worker's queued prefill (`active_prefill_tokens / block_size`) relative to the
   * request's own uncached blocks; default 1, as in Dynamo's cost where both are one term. Below 1
   * the cost values a cache hit more than a shorter prefill queue, which keeps prefixes on fewer
   * workers (less duplication, more hits) at the price of some queueing.
   */
  queueWeight?: number;
  /**
   * Weight in [0, 1] of the blocks this scheduler itself recently sent to a worker (its routing
   * memory) as probable cache there: the overlap used is
   * `max(indexed, in-flight, memoryWeight * remembered)`. Above 0 a prefix keeps going to the
   * worker that had it even after that worker evicted it, so each prefix family stays on few
   * workers (SGLang's and llm-d's routers get their locality from such memories alone). Needs
   * `ctx.tokenIds`; default 0 (off, as in Dynamo).
   */
  memoryWeight?: number;
  /** Blocks remembered per worker (approximately LRU); default 32768. */
  memoryBlocks?: number;
  /** What the cost measures; default from the preset (`ttft` for the `ttft` preset, else `blocks`). */
  objective?: KvObjective;
  /**
   * `ttft` objective: multiplier of the requests the work term counts the request's compute as
   * delaying (`ttft-cost.ts`: the delay a cache miss imposes on the requests after it there, which
   * a greedy TTFT minimum ignores); 0 turns the term off. Default from the preset (1 for `ttft`).
   */
  workWeight?: number;
  /**
   * `ttft` objective: most requests the work term counts one request's compute as delaying;
   * default from the preset ({@link MAX_DELAYED_REQUESTS} for `ttft`).
   */
  maxDelayed?: number;
  /**
   * `ttft` objective: the engines' timing curve, for workers whose own profile the router does not
   * know (`KvRouter.setWorkerProfile`); default {@link MOCKER_ENGINE_PROFILE}.
   */
  engineProfile?: EngineProfile;
}

type PresetValues = Readonly<Required<Omit<KvSchedulerOptions, 'preset' | 'engineProfile'>>>;

/** Dynamo's scheduler settings: `overlap_weight` 1, temperature 0, index overlap only. */
export const DYNAMO_KV_OPTIONS: PresetValues = {
  overlapWeight: 1,
  temperature: 0,
  inflightOverlap: false,
  queueWeight: 1,
  memoryWeight: 0,
  memoryBlocks: 32768,
  objective: 'blocks',
  workWeight: 0,
  maxDelayed: MAX_DELAYED_REQUESTS,
};

/**
 * Settings tuned on simulated engines replaying the Mooncake trace (docs/router.md, "Tuning"):
 * cache hits weigh 16 times the KV-memory term, a worker's queued prefill a tenth of the request's
 * own uncached prefill, and blocks in flight count as cached where they are being computed.
 */
export const TUNED_KV_OPTIONS: PresetValues = {
  overlapWeight: 16,
  temperature: 0,
  inflightOverlap: true,
  queueWeight: 0.1,
  memoryWeight: 0,
  memoryBlocks: 32768,
  objective: 'blocks',
  workWeight: 0,
  maxDelayed: MAX_DELAYED_REQUESTS,
};

/**
 * The predicted-TTFT cost (`ttft-cost.ts`) with in-flight blocks counted as cached where they are
 * being computed, plus the work term: the compute the request adds, times the requests it is
 * expected to delay (from the arrival rate, the worker's share of the decisions and how busy the
 * fleet is; at most `maxDelayed`, 12, and one more than the fleet's queued requests; docs/router.md
 * section 13).
 * `overlapWeight` and `queueWeight` do not apply to it.
 */
export const TTFT_KV_OPTIONS: PresetValues = {
  overlapWeight: 1,
  temperature: 0,
  inflightOverlap: true,
  queueWeight: 1,
  memoryWeight: 0,
  memoryBlocks: 32768,
  objective: 'ttft',
  workWeight: 1,
  maxDelayed: MAX_DELAYED_REQUESTS,
};

/** The values of a preset. */
export function kvPreset(preset: KvPreset): PresetValues {
  if (preset === 'dynamo') return DYNAMO_KV_OPTIONS;
  if (preset === 'tuned') return TUNED_KV_OPTIONS;
  if (preset === 'ttft') return TTFT_KV_OPTIONS;
  throw new RouterInvalidArgumentError(`preset must be 'ttft', 'dynamo' or 'tuned', got ${JSON.stringify(preset)}`);
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
export function kvCost(
  ctx: RoutingContext,
  i: number,
  overlapWeight = DEFAULT_OVERLAP_WEIGHT,
  inflightOverlap = true,
  queueWeight = 1,
  rememberedOverlap = 0,
): number {
  const bs = ctx.blockSize;
  let overlap = ctx.overlapBlocks[i]!;
  if (rememberedOverlap > overlap) overlap = rememberedOverlap;
  if (inflightOverlap) {
    const active = ctx.requestBlocks - ctx.newBlocks[i]!;
    if (active > overlap) overlap = active;
  }
  const prefillBlocks = (ctx.islTokens - overlap * bs + queueWeight * ctx.activePrefillTokens[i]!) / bs;
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
  /** The preset the options started from. */
  readonly preset: KvPreset;
  /** Whether in-flight blocks count as overlap. */
  readonly inflightOverlap: boolean;
  /** Weight of the queued prefill relative to the request's own. */
  readonly queueWeight: number;
  /** Weight of remembered blocks. */
  readonly memoryWeight: number;
  /** What the cost measures. */
  readonly objective: KvObjective;
  /** `ttft` objective: the curve of workers without their own profile. */
  readonly engineProfile: EngineProfile;
  /** `ttft` objective: multiplier of the requests the work term counts as delayed. */
  readonly workWeight: number;
  /** `ttft` objective: most requests the work term counts as delayed. */
  readonly maxDelayed: number;
  /**
   * Lower bounds of the cost (`cost-bound.ts`) that let `KvRouter` score only the workers sharing
   * the prompt's prefix plus the least loaded others; undefined when a pick needs every worker's
   * cost (`temperature > 0`: softmax over all; `memoryWeight > 0`: remembered overlaps).
   */
  readonly costBound: CostBound | undefined;
  private readonly memory: RoutingMemory | undefined;
  private remembered = new Float64Array(16);
  private costs = new Float64Array(16);
  private ties = new Int32Array(16);

  constructor(options: KvSchedulerOptions = {}) {
    const base = kvPreset(options.preset ?? 'dynamo');
    this.preset = options.preset ?? 'dynamo';
    this.overlapWeight = checkNonNegative(options.overlapWeight ?? base.overlapWeight, 'overlapWeight');
    this.temperature = checkNonNegative(options.temperature ?? base.temperature, 'temperature');
    this.inflightOverlap = options.inflightOverlap ?? base.inflightOverlap;
    this.queueWeight = checkNonNegative(options.queueWeight ?? base.queueWeight, 'queueWeight');
    this.memoryWeight = checkNonNegative(options.memoryWeight ?? base.memoryWeight, 'memoryWeight');
    if (this.memoryWeight > 1)
      throw new RouterInvalidArgumentError(`memoryWeight must be in [0, 1], got ${this.memoryWeight}`);
    const mb = options.memoryBlocks ?? base.memoryBlocks;
    if (!Number.isSafeInteger(mb) || mb <= 0) {
      throw new RouterInvalidArgumentError(`memoryBlocks must be a positive integer, got ${String(mb)}`);
    }
    if (this.memoryWeight > 0) this.memory = new RoutingMemory(mb);
    this.objective = options.objective ?? base.objective;
    if (this.objective !== 'blocks' && this.objective !== 'ttft') {
      throw new RouterInvalidArgumentError(`objective must be 'blocks' or 'ttft', got ${String(this.objective)}`);
    }
    this.engineProfile = checkEngineProfile(options.engineProfile ?? MOCKER_ENGINE_PROFILE);
    this.workWeight = checkNonNegative(options.workWeight ?? base.workWeight, 'workWeight');
    this.maxDelayed = checkNonNegative(options.maxDelayed ?? base.maxDelayed, 'maxDelayed');
    this.costBound = this.temperature === 0 && this.memory === undefined ? this.makeBound() : undefined;
  }

  private makeBound(): CostBound {
    const cost = (ctx: RoutingContext, i: number): number => this.costAt(ctx, i, 0);
    if (this.objective === 'ttft') {
      // Without the work term the class changes nothing: one class keeps the walk a single heap.
      const ww = this.workWeight;
      const md = this.maxDelayed;
      return {
        classes: ww > 0 ? TTFT_CLASSES : 1,
        loadClass: ww > 0 ? ttftLoadClass : () => 0,
        loadKey: (f, p, bs) => ttftLoadKey(f, p ?? this.engineProfile, bs),
        requestFloor: (ctx, level, p) => ttftRequestFloor(ctx, level, p ?? this.engineProfile),
        bound: (ctx, cls, own, key) => ttftBound(ctx, cls, own, key, ww, md),
        cost,
      };
    }
    return {
      classes: 1,
      loadClass: () => 0,
      loadKey: (f, _p, bs) => blocksLoadKey(f, this.overlapWeight, this.queueWeight, bs),
      requestFloor: (ctx, level) => blocksRequestFloor(ctx.islTokens, ctx.blockSize, level, this.overlapWeight),
      bound: (_ctx, _cls, floor, key) => floor + key,
      cost,
    };
  }

  /** The cost of context entry `i` with `remembered` blocks recalled by the routing memory. */
  private costAt(ctx: RoutingContext, i: number, remembered: number): number {
    if (this.objective === 'ttft') {
      let overlap = ctx.overlapBlocks[i]!;
      if (remembered > overlap) overlap = remembered;
      if (this.inflightOverlap) overlap = Math.max(overlap, ctx.requestBlocks - ctx.newBlocks[i]!);
      return predictTtftMs(ctx, i, overlap, ctx.profiles?.[i] ?? this.engineProfile, this.workWeight, this.maxDelayed);
    }
    return kvCost(ctx, i, this.overlapWeight, this.inflightOverlap, this.queueWeight, remembered);
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
    const mem = this.memory !== undefined && ctx.tokenIds !== undefined ? this.memory : undefined;
    if (this.remembered.length < n) this.remembered = new Float64Array(n * 2);
    if (mem !== undefined) mem.score(ctx, this.remembered, this.memoryWeight);
    let min = Infinity;
    for (let i = 0; i < n; i++) {
      const c = this.costAt(ctx, i, mem !== undefined ? this.remembered[i]! : 0);
      costs[i] = c;
      if (c < min) min = c;
    }
    if (this.temperature > 0) {
      const i = softmaxSample(costs, n, this.temperature, ctx.random);
      mem?.record(ctx.workerIds[i]!);
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
    mem?.record(ctx.workerIds[pick]!);
    return { index: pick, cost: costs[pick]! };
  }
}

/**
 * The blocks a scheduler sent to each worker, approximately LRU: two generations of at most
 * `capacity / 2` block keys; a full current generation becomes the previous one.
 */
class RoutingMemory {
  private readonly workers = new Map<string, { cur: Set<number>; prev: Set<number> }>();
  private hasher: BlockHasher | undefined;
  private keys: number[] = [];

  constructor(private readonly capacity: number) {}

  /** Writes `weight * remembered leading blocks` per candidate into `out`; keeps the request's keys for {@link record}. */
  score(ctx: RoutingContext, out: Float64Array, weight: number): void {
    if (this.hasher === undefined || this.hasher.blockSize !== ctx.blockSize)
      this.hasher = new BlockHasher(ctx.blockSize);
    const p = this.hasher.hash(ctx.tokenIds!);
    const keys = new Array<number>(p.count);
    for (let b = 0; b < p.count; b++) {
      const at = p.base + PACKED_STRIDE * b + 2;
      keys[b] = p.words[at]! * 0x200000 + (p.words[at + 1]! >>> 11);
    }
    this.keys = keys;
    for (let i = 0; i < ctx.count; i++) {
      const m = this.workers.get(ctx.workerIds[i]!);
      let k = 0;
      if (m !== undefined) while (k < keys.length && (m.cur.has(keys[k]!) || m.prev.has(keys[k]!))) k++;
      out[i] = weight * k;
    }
  }

  /** Remembers the last scored request's blocks for `workerId`. */
  record(workerId: string): void {
    let m = this.workers.get(workerId);
    if (m === undefined) {
      m = { cur: new Set(), prev: new Set() };
      this.workers.set(workerId, m);
    }
    for (const k of this.keys) {
      m.cur.add(k);
      if (m.cur.size >= this.capacity / 2) {
        m.prev = m.cur;
        m.cur = new Set();
      }
    }
  }
}
