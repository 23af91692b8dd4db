/**
 * The `kv` strategy's default cost: each worker's predicted time to first token for this request,
 * in milliseconds, from what the router knows and the engine's timing curve ({@link EngineProfile},
 * configuration or worker metadata, never a constant of the router), plus the delay its compute is
 * expected to add to the requests that come after it there.
 *
 * ```
 * cached(w)  = max(indexed overlap, blocks in flight there) * block_size       tokens
 * new(w)     = max(1, isl - cached(w))                                         tokens
 * queue(w)   = queued prefill on w (this router's decisions + peers', or the worker's report)
 * ahead(w)   = requests queued or prefilling on w (sent without a first token yet, or reported waiting)
 * prefill_ms = fixed * (ahead + 1) + per_token * (queue + new) + attention * new * (cached + new / 2)
 * steps      = ceil((queue + new) / max_batched_tokens)
 * held(w)    = max(0, active(w) - queue(w) / block_size)                         blocks
 * decode_ms  = steps * (decode_base + decode_per_seq * running(w) + decode_per_ctx * held(w) * block_size)
 * memory_ms  = per_token * block_size * max(0, held(w) + new_blocks(w) - total_blocks(w))
 * ttft_ms    = prefill_ms + decode_ms + memory_ms
 * own_ms     = per_token * new + attention * new * (cached + new / 2)
 * delayed(w) = min(max_delayed, queued + 1,
 *                 work_weight * rate * max(1 / fleet, routed_share(w)) * ttft_ms / (1 - busy))
 * share(w)   = 1 if ahead(w) > 0, else 1 / (1 + sharers * (1 - busy))
 * cost(w)    = ttft_ms + delayed(w) * share(w) * (own_ms + memory_ms)
 * ```
 *
 * - `prefill_ms`: the queue ahead is computed first (each request in it paying the fixed cost),
 *   then this prompt's uncached tokens, whose attention also reads the cached prefix (so a hit
 *   saves its linear cost, not its attention);
 * - `held(w)`: the KV the request finds when it is admitted. The active blocks count every request
 *   routed there and not finished, but a prompt still queued holds none of its uncached blocks
 *   until it is admitted, and computing the queue ahead takes long enough for the sequences
 *   running now to finish: the queue, in blocks, is left out. Counting it made a backlogged fleet
 *   look out of memory and sent a session's next turn away from the worker queueing its history
 *   (on 4 overloaded engines a third of the follow-up turns moved, and the hit rate fell from 48%
 *   to 44%). Taking instead what the engine reports holding now (raised from the tracked blocks
 *   less the queue) was measured worse there: it counts the blocks of a long prefill in progress,
 *   long finished by the time a queued request is admitted;
 * - `decode_ms`: with chunked prefill every step also decodes the running sequences, so each step the
 *   prefill needs costs one decode step at the worker's batch and context;
 * - `memory_ms`: blocks beyond the worker's capacity must wait for others to finish (or be
 *   recomputed after a preemption): priced as recomputing them.
 * - The work term: the compute this request adds on `w` (`own_ms`: its tokens' prefill, not the
 *   fixed cost, which it pays wherever it goes and which a step shares among the prefills it
 *   batches; plus the recompute its memory overflow forces on others) delays every request that reaches `w` before `w`'s backlog clears.
 *   `delayed(w)` estimates how many: requests arrive at `w` at `rate` (the fleet's, requests per
 *   ms, from the decisions this router and its peers made) times `w`'s share of the recent
 *   decisions (at least an even share), during the time this request keeps `w` busy (`ttft_ms`),
 *   stretched by `1 / (1 - busy)` (`busy`: the share of workers with a request ahead, at most
 *   {@link MAX_BUSY_SHARE}) as in a queue's busy period; capped at `max_delayed`, since beyond a
 *   few requests the arrivals to come are not known, and at one more than the requests queued or
 *   prefilling on the whole fleet now (`queued`): arrivals at that rate waiting that long would
 *   keep about as many queued (Little's law), so a rate that the queues do not show (a closed-loop
 *   client, or a profile predicting far slower engines than the real ones) counts one at most. A quiet fleet counts a cache miss almost
 *   only by its own TTFT, a busy one counts it for every request it will hold up, and a worker
 *   that draws many decisions (a hot prefix's home) counts more than an idle one.
 * - `share(w)`: an idle worker recomputing a prefix that running requests share (`sharers`:
 *   running requests anywhere whose prompt starts with the same block) holds nobody up now and
 *   serves the later requests of that prefix, so the term fades there; that replicates a hot
 *   prefix whose home worker's queue costs more than recomputing it elsewhere, while a session's
 *   private history (no sharers) keeps its full weight. The busier the fleet, the sooner an idle
 *   worker has requests of its own to delay: the sharers count by `1 - busy`, so a nearly busy
 *   fleet does not spend its few idle engines recomputing long prompts.
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

/** The most of the fleet counted busy in the work term's `1 / (1 - busy)` (see the module comment). */
export const MAX_BUSY_SHARE = 0.9;

/** Default cap of the requests one request's work is counted as delaying (`maxDelayed`). */
export const MAX_DELAYED_REQUESTS = 12;

/** The context's busy share, clamped to [0, {@link MAX_BUSY_SHARE}]. */
function busyShare(ctx: RoutingContext): number {
  const b = ctx.busyShare ?? 0;
  return b > 0 ? (b < MAX_BUSY_SHARE ? b : MAX_BUSY_SHARE) : 0;
}

/**
 * The work term's `share` for a worker with no request ahead (see the module comment): it fades
 * with the prefix's heat, the less so the busier the fleet. Depends on decision-wide fields only
 * (the cost bound relies on it).
 */
export function idleWorkShare(ctx: RoutingContext): number {
  return 1 / (1 + (ctx.prefixSharers ?? 0) * (1 - busyShare(ctx)));
}

/**
 * The work term's `delayed`: requests expected to reach a worker whose share of the recent
 * decisions is `routedShare` while a request with TTFT `ttftMs` keeps it busy (see the module
 * comment). Non-decreasing in `ttftMs` and `routedShare` (the cost bound relies on it); 0 while the
 * arrival rate is unknown.
 */
export function delayedRequests(
  ctx: RoutingContext,
  routedShare: number,
  ttftMs: number,
  workWeight: number,
  maxDelayed: number,
): number {
  const rate = ctx.arrivalRate ?? 0;
  if (!(rate > 0) || workWeight === 0) return 0;
  const fleet = ctx.fleetSize ?? ctx.count;
  const even = 1 / (fleet > 1 ? fleet : 1);
  const busy = busyShare(ctx);
  const n = (workWeight * rate * (routedShare > even ? routedShare : even) * ttftMs) / (1 - busy);
  // Little's law check: arrivals at `rate` waiting `ttftMs` would keep about `rate * ttft` requests
  // queued; no more than one beyond those the fleet holds now are counted (a TTFT predicted far
  // above the engines' real one, or a closed-loop client, would otherwise count phantom requests).
  const q = ctx.queuedRequests;
  const cap = q !== undefined && q >= 0 && q + 1 < maxDelayed ? q + 1 : maxDelayed;
  // An infinite rate (arrivals at one instant) times a zero TTFT is NaN: count it as the cap.
  return n < cap ? n : cap;
}

/**
 * The KV blocks a request finds on a worker when it is admitted (`held(w)`, see the module
 * comment): the worker's active blocks less the uncached prompt tokens queued there.
 */
export function heldBlocks(activeBlocks: number, queuedTokens: number, blockSize: number): number {
  const held = activeBlocks - queuedTokens / blockSize;
  return held > 0 ? held : 0;
}

/**
 * Predicted time to first token of the request in `ctx` on worker `i`, ms, plus the work term
 * (see the module comment). `overlap` is the cached prefix used, in blocks.
 */
export function predictTtftMs(
  ctx: RoutingContext,
  i: number,
  overlap: number,
  p: EngineProfile,
  workWeight = 0,
  maxDelayed = MAX_DELAYED_REQUESTS,
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
  const held = heldBlocks(active, queue, bs);
  const decode = steps * (p.decodeBaseMs + p.decodePerSeqMs * running + p.decodePerContextTokenMs * held * bs);
  const total = ctx.totalBlocks?.[i] ?? 0;
  const over = total > 0 ? held + ctx.newBlocks[i]! - total : 0;
  const memory = over > 0 ? p.prefillPerTokenMs * bs * over : 0;
  const ttft = prefill + decode + memory;
  if (workWeight === 0) return ttft;
  const delayed = delayedRequests(ctx, ctx.routedShare?.[i] ?? 0, ttft, workWeight, maxDelayed);
  if (delayed === 0) return ttft;
  // The fixed cost is not in it: every placement pays it, and a step batches several prefills.
  const own = p.prefillPerTokenMs * fresh + p.prefillAttentionMs * fresh * (cached + fresh / 2);
  const share = ahead > 0 ? 1 : idleWorkShare(ctx);
  return ttft + delayed * share * (own + memory);
}
