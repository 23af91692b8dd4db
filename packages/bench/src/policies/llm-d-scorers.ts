/**
 * `llm-d-scorers`: llm-d inference scheduler's default scoring, re-implemented from its published
 * description (llm-d "inference scheduling" well-lit path and the Gateway API Inference Extension
 * scheduler it builds on): a filter -> score -> pick cycle where each scorer gives every endpoint a
 * score in [0, 1], the scores are summed with weights, and the max-score picker takes the highest
 * (random among equal scores).
 *
 * - `prefix-cache-scorer` (approximate prefix cache): the prompt is cut into blocks of
 *   `hashBlockSize` tokens, chained-hashed; each endpoint has an LRU of the block hashes of the
 *   prompts sent to it (`lruCapacityPerServer` blocks). Score = leading blocks found in the
 *   endpoint's LRU / the prompt's blocks (at most `maxPrefixBlocksToMatch`). After the pick the
 *   prompt's blocks are added to the chosen endpoint's LRU.
 * - `kv-cache-utilization-scorer`: `1 - kv_cache_usage` (active blocks / capacity, as reported).
 * - `queue-scorer`: `(max_waiting - waiting) / (max_waiting - min_waiting)` over the candidates
 *   (1 for all when equal).
 *
 * Defaults: weights prefix 3, kv-cache-utilization 2, queue 2 (llm-d's inference-scheduling guide;
 * the same 3:2 prefix:queue ratio is the documented default profile); `hashBlockSize` 64,
 * `maxPrefixBlocksToMatch` 256, `lruCapacityPerServer` 31250 (the prefix plugin's defaults).
 * @packageDocumentation
 */
import {
  RouterInvalidArgumentError,
  BlockHasher,
  PACKED_STRIDE,
  randomIndex,
  type RoutingChoice,
  type RoutingContext,
  type RoutingStrategy,
} from '@dynamo-ts/router';

/** Options of {@link LlmdScorersPolicy}. */
export interface LlmdScorersOptions {
  /** Weight of the prefix-cache scorer; default 3. */
  prefixWeight?: number;
  /** Weight of the KV-cache utilization scorer; default 2. */
  kvUtilizationWeight?: number;
  /** Weight of the queue scorer; default 2. */
  queueWeight?: number;
  /** Tokens per hashed block; default 64. */
  hashBlockSize?: number;
  /** Most leading blocks matched; default 256. */
  maxPrefixBlocksToMatch?: number;
  /** Block hashes remembered per endpoint; default 31250. */
  lruCapacityPerServer?: number;
  /** Capacity in blocks assumed for endpoints that did not report one; default 16384. */
  defaultTotalBlocks?: number;
}

/** Published defaults of {@link LlmdScorersOptions}. */
export const LLMD_SCORERS_DEFAULTS = {
  prefixWeight: 3,
  kvUtilizationWeight: 2,
  queueWeight: 2,
  hashBlockSize: 64,
  maxPrefixBlocksToMatch: 256,
  lruCapacityPerServer: 31250,
  defaultTotalBlocks: 16384,
} as const;

/** See the module comment. */
export class LlmdScorersPolicy implements RoutingStrategy {
  /** Always `'llm-d-scorers'`. */
  readonly name = 'llm-d-scorers';
  /** Options in force. */
  readonly options: Readonly<Required<LlmdScorersOptions>>;
  private readonly hasher: BlockHasher;
  private readonly lrus = new Map<string, Map<number, true>>();
  /** Scores of the last pick, per candidate: [prefix, kv, queue, total]. For tests and tracing. */
  lastScores: Array<[number, number, number, number]> = [];

  constructor(options: LlmdScorersOptions = {}) {
    const o = { ...LLMD_SCORERS_DEFAULTS };
    for (const [k, v] of Object.entries(options)) {
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new RouterInvalidArgumentError(`${k} must be a finite number >= 0, got ${String(v)}`);
      }
      (o as Record<string, number>)[k] = v;
    }
    for (const k of [
      'hashBlockSize',
      'maxPrefixBlocksToMatch',
      'lruCapacityPerServer',
      'defaultTotalBlocks',
    ] as const) {
      if (!Number.isSafeInteger(o[k]) || o[k] <= 0) {
        throw new RouterInvalidArgumentError(`${k} must be a positive integer, got ${String(o[k])}`);
      }
    }
    this.options = o;
    this.hasher = new BlockHasher(o.hashBlockSize);
  }

  /** Blocks remembered for an endpoint. */
  rememberedBlocks(workerId: string): number {
    return this.lrus.get(workerId)?.size ?? 0;
  }

  /** Weighted max-score pick; records the prompt's blocks for the chosen endpoint. */
  select(ctx: RoutingContext): RoutingChoice {
    const tokens = ctx.tokenIds;
    if (tokens === undefined) throw new RouterInvalidArgumentError('llm-d-scorers needs the token ids in the context');
    const o = this.options;
    const p = this.hasher.hash(tokens);
    const nb = Math.min(p.count, o.maxPrefixBlocksToMatch);
    const keys = new Array<number>(nb);
    for (let i = 0; i < nb; i++) {
      const at = p.base + PACKED_STRIDE * i + 2;
      keys[i] = p.words[at]! * 0x200000 + (p.words[at + 1]! >>> 11);
    }
    const n = ctx.count;
    let minQ = Infinity;
    let maxQ = -Infinity;
    for (let i = 0; i < n; i++) {
      const q = ctx.waiting[i]!;
      if (q < minQ) minQ = q;
      if (q > maxQ) maxQ = q;
    }
    const scores: Array<[number, number, number, number]> = [];
    let best: number[] = [];
    let bestScore = -Infinity;
    for (let i = 0; i < n; i++) {
      const lru = this.lrus.get(ctx.workerIds[i]!);
      let hit = 0;
      if (lru !== undefined) while (hit < nb && lru.has(keys[hit]!)) hit++;
      const prefix = nb === 0 ? 0 : hit / nb;
      const total = ctx.totalBlocks?.[i] || o.defaultTotalBlocks;
      const usage = Math.min(1, ctx.activeBlocks[i]! / total);
      const kv = 1 - usage;
      const queue = maxQ === minQ ? 1 : (maxQ - ctx.waiting[i]!) / (maxQ - minQ);
      const score = o.prefixWeight * prefix + o.kvUtilizationWeight * kv + o.queueWeight * queue;
      scores.push([prefix, kv, queue, score]);
      if (score > bestScore + 1e-12) {
        bestScore = score;
        best = [i];
      } else if (Math.abs(score - bestScore) <= 1e-12) best.push(i);
    }
    this.lastScores = scores;
    const pick = best.length === 1 ? best[0]! : best[randomIndex(ctx.random, best.length)]!;
    const id = ctx.workerIds[pick]!;
    let lru = this.lrus.get(id);
    if (lru === undefined) {
      lru = new Map();
      this.lrus.set(id, lru);
    }
    for (const k of keys) {
      lru.delete(k);
      lru.set(k, true);
    }
    while (lru.size > o.lruCapacityPerServer) lru.delete(lru.keys().next().value as number);
    return { index: pick };
  }
}
