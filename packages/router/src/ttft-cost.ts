/**
 * The `kv` strategy's default cost: each worker's predicted time to first token for this request,
 * in milliseconds, from what the router knows and the engine's timing curve ({@link EngineProfile},
 * configuration or worker metadata, never a constant of the router).
 *
 * ```
 * cached(w)  = max(indexed overlap, blocks in flight there) * block_size       tokens
 * new(w)     = max(1, isl - cached(w))                                         tokens
 * queue(w)   = queued prefill on w (this router's decisions + peers', or the worker's report)
 * ahead(w)   = requests queued or prefilling on w (sent without a first token yet, or reported waiting)
 * prefill_ms = fixed * (ahead + 1) + per_token * (queue + new) + attention * new * (cached + new / 2)
 * steps      = ceil((queue + new) / max_batched_tokens)
 * decode_ms  = steps * (decode_base + decode_per_seq * running(w) + decode_per_ctx * active(w) * block_size)
 * memory_ms  = per_token * block_size * max(0, active(w) + new_blocks(w) - total_blocks(w))
 * own_ms     = fixed + per_token * new + attention * new * (cached + new / 2)
 * share(w)   = max(ahead / (ahead + 1), 1 / (1 + sharers))
 * cost(w)    = prefill_ms + decode_ms + memory_ms + work_weight * share(w) * own_ms
 * ```
 *
 * - `prefill_ms`: the queue ahead is computed first (each request in it paying the fixed cost),
 *   then this prompt's uncached tokens, whose attention also reads the cached prefix (so a hit
 *   saves its linear cost, not its attention);
 * - `decode_ms`: with chunked prefill every step also decodes the running sequences, so each step the
 *   prefill needs costs one decode step at the worker's batch and context;
 * - `memory_ms`: blocks beyond the worker's capacity must wait for others to finish (or be
 *   recomputed after a preemption): priced as recomputing them.
 * - `own_ms` (the work term): the compute this request adds to the worker, which delays the requests
 *   behind it there; a cache miss costs the fleet more than its own TTFT shows. `share(w)` is how
 *   much of that delay is expected: the worker's queue (`ahead / (ahead + 1)`, 0 when idle, towards
 *   1 when busy), or the prefix being cold (`sharers`: running requests anywhere whose prompt starts
 *   with the same block; none gives 1). An idle worker recomputing a hot prefix delays nobody now
 *   and serves the later requests of that prefix, so the term fades there: that replicates a hot
 *   prefix whose home worker's queue costs more than recomputing it elsewhere, while a session's
 *   private history (no sharers) keeps its full weight and stays where it is cached.
 * @packageDocumentation
 */
import { RouterInvalidArgumentError } from './errors';
import type { RoutingContext } from './strategies/strategy';

/** An engine's timing curve, as its worker publishes it (milliseconds and tokens). */
export interface EngineProfile {
  /** Fixed cost of a prefill (kernel launches, scheduling), ms. */
  prefillFixedMs: number;
  /** Linear cost per prompt token computed (MLP, projections), ms. */
  prefillPerTokenMs: number;
  /** Attention cost per (new token x context token) pair, ms. */
  prefillAttentionMs: number;
  /** Tokens per engine step (chunked prefill budget). */
  maxBatchedTokens: number;
  /** Decode step cost with an empty batch, ms. */
  decodeBaseMs: number;
  /** Decode step cost per running sequence, ms. */
  decodePerSeqMs: number;
  /** Decode step cost per token of context held by running sequences, ms. */
  decodePerContextTokenMs: number;
}

/**
 * Dynamo's mocker curve (see `sim/timing.ts`): its prefill `1.25e-6 t^2 + 7.41e-2 t + 26.2` ms is
 * this profile with no cached prefix (`attention * t * t / 2` is the quadratic term), and its decode
 * step (19.44 ms empty, 57.85 ms with 16 384 blocks of 64 tokens in use) the linear fit over the
 * context held. Replace it with your engine's (docs/router.md, "Setting the prefill curve").
 */
export const MOCKER_ENGINE_PROFILE: Readonly<EngineProfile> = {
  prefillFixedMs: 26.2,
  prefillPerTokenMs: 0.0741,
  prefillAttentionMs: 2.5e-6,
  maxBatchedTokens: 8192,
  decodeBaseMs: 19.44,
  decodePerSeqMs: 0,
  decodePerContextTokenMs: 38.41 / (16384 * 64),
};

/** Validates a profile, naming the first bad field. */
export function checkEngineProfile(p: EngineProfile, name = 'engineProfile'): EngineProfile {
  if (typeof p !== 'object' || p === null) throw new RouterInvalidArgumentError(`${name} must be an object`);
  for (const k of Object.keys(MOCKER_ENGINE_PROFILE) as (keyof EngineProfile)[]) {
    const v = p[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (k === 'maxBatchedTokens' && !(v >= 1))) {
      throw new RouterInvalidArgumentError(`${name}.${k} must be a finite number >= 0 (>= 1 for maxBatchedTokens)`);
    }
  }
  return p;
}

/**
 * Predicted time to first token of the request in `ctx` on worker `i`, ms (see the module comment).
 * `overlap` is the cached prefix used, in blocks.
 */
export function predictTtftMs(
  ctx: RoutingContext,
  i: number,
  overlap: number,
  p: EngineProfile,
  workWeight = 0,
): number {
  const bs = ctx.blockSize;
  const cached = Math.min(overlap * bs, ctx.islTokens);
  const fresh = Math.max(1, ctx.islTokens - cached);
  const queue = ctx.activePrefillTokens[i]!;
  const active = ctx.activeBlocks[i]!;
  const running = ctx.inflight?.[i] ?? 0;
  const ahead = ctx.prefillRequests?.[i] ?? 0;
  const prefill =
    p.prefillFixedMs * (ahead + 1) +
    p.prefillPerTokenMs * (queue + fresh) +
    p.prefillAttentionMs * fresh * (cached + fresh / 2);
  const steps = Math.ceil((queue + fresh) / p.maxBatchedTokens);
  const decode = steps * (p.decodeBaseMs + p.decodePerSeqMs * running + p.decodePerContextTokenMs * active * bs);
  const total = ctx.totalBlocks?.[i] ?? 0;
  const over = total > 0 ? active + ctx.newBlocks[i]! - total : 0;
  const memory = over > 0 ? p.prefillPerTokenMs * bs * over : 0;
  if (workWeight === 0) return prefill + decode + memory;
  const own = p.prefillFixedMs + p.prefillPerTokenMs * fresh + p.prefillAttentionMs * fresh * (cached + fresh / 2);
  const busy = ahead / (ahead + 1);
  const cold = 1 / (1 + (ctx.prefixSharers ?? 0));
  return prefill + decode + memory + workWeight * (busy > cold ? busy : cold) * own;
}
