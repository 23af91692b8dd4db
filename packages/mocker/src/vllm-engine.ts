/**
 * `VllmSimEngine`: a simulated engine closer to vLLM's scheduler than {@link SimEngine} (the
 * mocker model, still the `mocker` choice of the bench):
 *
 * - KV blocks are allocated **on demand**: a prompt's blocks as its chunks are computed, one more
 *   each time a generated token starts a block. When none is free (after evicting idle cached
 *   blocks), the most recently admitted running sequence is **preempted**: its blocks are released
 *   (computed prompt blocks stay cached, so recomputing may hit them) and it goes back to the front of
 *   the queue, to recompute its prompt and the tokens it generated so far (vLLM's recompute mode).
 * - **Chunked prefill**: each step decodes every running sequence (one token each) and spends the
 *   rest of `maxBatchedTokens` on prefill chunks; at most `maxPartialPrefills` sequences prefill at
 *   once, of which at most `maxLongPartialPrefills` have more than `longPrefillTokens` to compute, so
 *   a short prompt can overtake a long one waiting ahead of it, and no chunk is longer than
 *   `longPrefillTokens`, so a long prefill leaves room in the step for short ones (vLLM's
 *   `max_num_partial_prefills`, `max_long_partial_prefills`, `long_prefill_token_threshold`).
 * - **Timing** ({@link VllmTiming}): a chunk of `n` tokens after `c` tokens of context (cached or
 *   computed) costs `per_token * n + attention * n * (c + n / 2)`, plus `prefill_fixed` for a
 *   sequence's first chunk; a step adds `decode_base + decode_per_seq * batch + decode_per_ctx *
 *   context tokens of the decoding sequences`. With no cached prefix and one chunk this is exactly the
 *   mocker's prefill curve; see docs/router.md for the calibration.
 * @packageDocumentation
 */
import {
  RouterInvalidArgumentError,
  type KvEvent,
  type KvStoredBlock,
  type LoadMetrics,
  BlockHasher,
} from '@dynamo-ts/router';
import { blockHexHashes, checkSimRequest } from './request';
import { PagedKvCache } from './kv-cache';
import type { SimAdmission, SimRequest, SimStep, SimTokenOutput } from './engine';

/** Step timing of {@link VllmSimEngine}, ms before the speedup ratio. */
export interface VllmTiming {
  /** Fixed cost of a sequence's first prefill chunk. */
  prefillFixedMs: number;
  /** Per prompt token computed. */
  prefillPerTokenMs: number;
  /** Per (new token x context token) pair. */
  prefillAttentionMs: number;
  /** Per step. */
  decodeBaseMs: number;
  /** Per decoding sequence in the step. */
  decodePerSeqMs: number;
  /** Per context token of the decoding sequences. */
  decodePerContextTokenMs: number;
}

/** Default {@link VllmTiming}: the mocker's curves (docs/router.md, "Simulators"). */
export const VLLM_SIM_TIMING: Readonly<VllmTiming> = {
  prefillFixedMs: 26.2,
  prefillPerTokenMs: 0.0741,
  prefillAttentionMs: 2.5e-6,
  decodeBaseMs: 19.44,
  decodePerSeqMs: 0.05,
  decodePerContextTokenMs: 38.41 / (16384 * 64),
};

/** Options of {@link VllmSimEngine}. */
export interface VllmSimEngineOptions {
  /** The worker id stamped on events and load metrics. */
  workerId: string;
  /** KV cache capacity in blocks; default 16384. */
  numBlocks?: number;
  /** Tokens per block; default 64. */
  blockSize?: number;
  /** Most sequences running at once; default 256. */
  maxNumSeqs?: number;
  /** Most tokens per step; default 8192. */
  maxBatchedTokens?: number;
  /** Most sequences in partial prefill at once; default 4. */
  maxPartialPrefills?: number;
  /** Most of those with more than `longPrefillTokens` to compute; default 1. */
  maxLongPartialPrefills?: number;
  /** Threshold of a long prefill, tokens; default 4096. */
  longPrefillTokens?: number;
  /** Time divisor; default 1. */
  speedupRatio?: number;
  /** Step timing; default {@link VLLM_SIM_TIMING}. */
  timing?: Partial<VllmTiming>;
}

interface Seq {
  id: string;
  prompt: number;
  maxTokens: number;
  seqHashes: string[];
  localHashes: string[];
  /** Tokens to compute before decoding: the prompt, plus the generated tokens after a preemption. */
  target: number;
  /** Tokens whose KV is held. */
  kv: number;
  /** Named (prompt) blocks referenced: a prefix of seqHashes. */
  held: number;
  /** Private blocks owned. */
  priv: number;
  generated: number;
  /** Prompt tokens found cached at first admission (for the hit rate). */
  cachedAtAdmission: number;
  admittedOnce: boolean;
  /** Context at the start of this prefill (cached tokens), for the fixed cost. */
  prefillStart: number;
  /** While waiting: tokens to compute, less the prefix cached when it was queued (load report). */
  estUncached: number;
}

/** See the module comment. */
export class VllmSimEngine {
  /** The worker id. */
  readonly workerId: string;
  /** The KV cache. */
  readonly cache: PagedKvCache;
  /** Timing in force. */
  readonly timing: VllmTiming;
  private readonly o: Required<Omit<VllmSimEngineOptions, 'timing'>>;
  private readonly hasher: BlockHasher;
  private waiting: Seq[] = [];
  private readonly running: Seq[] = [];
  private readonly byId = new Map<string, Seq>();
  private nextEventId = 0;
  private busyMs = 0;
  /** Preemptions so far. */
  preemptions = 0;
  /** Sequences preempted during the current step (their planned work is dropped). */
  private readonly preempted = new Set<Seq>();

  constructor(options: VllmSimEngineOptions) {
    if (typeof options?.workerId !== 'string' || options.workerId.length === 0) {
      throw new RouterInvalidArgumentError('workerId must be a non-empty string');
    }
    const o = {
      numBlocks: options.numBlocks ?? 16384,
      blockSize: options.blockSize ?? 64,
      maxNumSeqs: options.maxNumSeqs ?? 256,
      maxBatchedTokens: options.maxBatchedTokens ?? 8192,
      maxPartialPrefills: options.maxPartialPrefills ?? 4,
      maxLongPartialPrefills: options.maxLongPartialPrefills ?? 1,
      longPrefillTokens: options.longPrefillTokens ?? 4096,
      speedupRatio: options.speedupRatio ?? 1,
      workerId: options.workerId,
    };
    for (const k of Object.keys(o) as (keyof typeof o)[]) {
      if (k === 'workerId') continue;
      const v = o[k];
      const ok = k === 'speedupRatio' ? v > 0 && Number.isFinite(v) : Number.isSafeInteger(v) && v > 0;
      if (!ok)
        throw new RouterInvalidArgumentError(
          `${k} must be a positive ${k === 'speedupRatio' ? 'number' : 'integer'}, got ${String(v)}`,
        );
    }
    const t = { ...VLLM_SIM_TIMING, ...(options.timing ?? {}) };
    for (const [k, v] of Object.entries(t)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new RouterInvalidArgumentError(`timing.${k} must be a finite number >= 0, got ${String(v)}`);
      }
    }
    this.o = o;
    this.timing = t;
    this.workerId = o.workerId;
    this.cache = new PagedKvCache(o.numBlocks, o.blockSize);
    this.hasher = new BlockHasher(o.blockSize);
  }

  /** Whether there is anything to run. */
  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  /** Total simulated time spent in steps, ms. */
  get busyTimeMs(): number {
    return this.busyMs;
  }

  /**
   * Queues a request.
   * @returns the load after queueing it
   * @throws RouterInvalidArgumentError for a malformed or duplicate request, or one that could never
   *   fit the cache
   */
  submit(request: SimRequest): LoadMetrics {
    const { requestId, tokenIds, maxTokens } = checkSimRequest(request, this.byId, this.o.blockSize, this.o.numBlocks);
    const bs = this.o.blockSize;
    const { seqHashes, localHashes } = blockHexHashes(this.hasher, tokenIds);
    const s: Seq = {
      id: requestId,
      prompt: tokenIds.length,
      maxTokens,
      seqHashes,
      localHashes,
      target: tokenIds.length,
      kv: 0,
      held: 0,
      priv: 0,
      generated: 0,
      cachedAtAdmission: 0,
      admittedOnce: false,
      prefillStart: 0,
      estUncached: tokenIds.length - this.cache.matchPrefix(seqHashes) * bs,
    };
    this.byId.set(requestId, s);
    this.waiting.push(s);
    return this.loadMetrics();
  }

  /** The engine's load, as a worker reports it. */
  loadMetrics(): LoadMetrics {
    let prefill = 0;
    for (const s of this.waiting) prefill += s.estUncached;
    for (const s of this.running) if (s.kv < s.target) prefill += s.target - s.kv;
    return {
      worker_id: this.workerId,
      active_blocks: this.cache.activeBlocks,
      total_blocks: this.o.numBlocks,
      active_prefill_tokens: prefill,
      waiting: this.waiting.length,
    };
  }

  /** Runs one step starting at `now`; null when there is no work. */
  step(now: number): SimStep | null {
    if (!this.hasWork) return null;
    const o = this.o;
    const t = this.timing;
    const bs = o.blockSize;
    const events: KvEvent[] = [];
    const evicted: string[] = [];
    const tokens: SimTokenOutput[] = [];
    const admitted: SimAdmission[] = [];
    let budget = o.maxBatchedTokens;
    let ms = t.decodeBaseMs;
    // 1. Decode: each running sequence past its prefill writes one token (a new block when it
    // starts one), preempting the newest sequences when memory runs out.
    const decoding: Seq[] = [];
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const s = this.running[i]!;
      if (s.kv < s.target) continue;
      if (!this.grow(s, s.kv + 1, evicted)) continue; // s itself was preempted
      decoding.push(s);
      budget--;
    }
    let ctx = 0;
    for (const s of decoding) ctx += s.kv;
    ms += t.decodePerSeqMs * decoding.length + t.decodePerContextTokenMs * ctx;
    // 2. Prefill chunks of running sequences, then admissions, within the partial-prefill limits.
    const chunks: Array<{ s: Seq; n: number }> = [];
    let partial = 0;
    let long = 0;
    for (const s of this.running) {
      if (s.kv >= s.target) continue;
      partial++;
      if (s.target - s.kv > o.longPrefillTokens) long++;
    }
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const s = this.running[i]!;
      if (s.kv >= s.target) continue;
      const n = Math.min(s.target - s.kv, budget, o.longPrefillTokens);
      if (!this.grow(s, s.kv + n, evicted)) continue;
      chunks.push({ s, n });
      budget -= n;
    }
    while (budget > 0 && this.running.length < o.maxNumSeqs && partial < o.maxPartialPrefills) {
      const at = this.nextAdmissible(long < o.maxLongPartialPrefills);
      if (at < 0) break;
      const s = this.waiting[at]!;
      let cached = this.cache.matchPrefix(s.seqHashes);
      if (cached * bs >= s.target) cached = Math.ceil(s.target / bs) - 1;
      this.cache.acquire(s.seqHashes, 0, cached);
      s.held = cached;
      s.kv = cached * bs;
      const n = Math.min(s.target - s.kv, budget, o.longPrefillTokens);
      if (!this.allocate(s, Math.ceil((s.kv + n) / bs) - s.held - s.priv, evicted, false)) {
        this.cache.release(s.seqHashes, cached);
        s.held = 0;
        s.kv = 0;
        break;
      }
      this.waiting.splice(at, 1);
      this.running.push(s);
      s.prefillStart = s.kv;
      if (!s.admittedOnce) {
        s.admittedOnce = true;
        s.cachedAtAdmission = s.kv;
        admitted.push({ requestId: s.id, promptTokens: s.prompt, cachedTokens: s.kv });
      }
      if (s.target - s.kv > o.longPrefillTokens) long++;
      partial++;
      chunks.push({ s, n });
      budget -= n;
    }
    if (this.preempted.size > 0) {
      const gone = this.preempted;
      const keep = (s: Seq): boolean => !gone.has(s);
      decoding.splice(0, decoding.length, ...decoding.filter(keep));
      chunks.splice(0, chunks.length, ...chunks.filter((c) => keep(c.s)));
      gone.clear();
    }
    let prefillTokens = 0;
    for (const { s, n } of chunks) {
      if (s.kv === s.prefillStart) ms += t.prefillFixedMs;
      ms += t.prefillPerTokenMs * n + t.prefillAttentionMs * n * (s.kv + n / 2);
      prefillTokens += n;
    }
    if (evicted.length > 0) {
      events.push({ type: 'removed', worker_id: this.workerId, event_id: this.nextEventId++, block_hashes: evicted });
    }
    // Effects: KV written, blocks committed, tokens sampled.
    for (const s of decoding) {
      s.kv++;
      tokens.push({ requestId: s.id, index: s.generated, done: s.generated + 1 >= s.maxTokens });
      s.generated++;
    }
    for (const { s, n } of chunks) {
      s.kv += n;
      this.commit(s, events);
      if (s.kv >= s.target) {
        // The step that ends a prefill samples a token (the first one, or the next after a recompute).
        tokens.push({ requestId: s.id, index: s.generated, done: s.generated + 1 >= s.maxTokens });
        s.generated++;
        s.target = s.kv; // decoding from here: later tokens are not recomputed unless preempted
      }
    }
    for (const tk of tokens) {
      if (!tk.done) continue;
      const s = this.byId.get(tk.requestId)!;
      this.byId.delete(s.id);
      this.running.splice(this.running.indexOf(s), 1);
      this.free(s);
    }
    const durationMs = ms / o.speedupRatio;
    this.busyMs += durationMs;
    return {
      startedAt: now,
      durationMs,
      endsAt: now + durationMs,
      tokens,
      admitted,
      kvEvents: events,
      load: this.loadMetrics(),
      prefillTokens,
      decodeSeqs: decoding.length,
    };
  }

  /**
   * The waiting sequence to admit next: the first, unless it is long and no long slot is free; then
   * the first short one behind it (overtaking). -1 when none.
   */
  private nextAdmissible(longSlotFree: boolean): number {
    const lim = Math.min(this.waiting.length, 64);
    for (let i = 0; i < lim; i++) {
      const s = this.waiting[i]!;
      if (longSlotFree || s.target <= this.o.longPrefillTokens) return i;
    }
    return -1;
  }

  /** Gives `s` the blocks for `kvTokens` tokens, preempting newer sequences; false if `s` was preempted. */
  private grow(s: Seq, kvTokens: number, evicted: string[]): boolean {
    const need = Math.ceil(kvTokens / this.o.blockSize) - s.held - s.priv;
    return need <= 0 || this.allocate(s, need, evicted, true);
  }

  private allocate(s: Seq, n: number, evicted: string[], preempt: boolean): boolean {
    if (n <= 0) return true;
    while (!this.cache.allocate(n, evicted)) {
      if (!preempt) return false;
      const victim = this.running[this.running.length - 1]!;
      this.preempt(victim);
      if (victim === s) return false;
    }
    s.priv += n;
    return true;
  }

  /** Releases a running sequence's blocks and queues it first, to recompute what it had. */
  private preempt(s: Seq): void {
    this.running.splice(this.running.indexOf(s), 1);
    this.free(s);
    s.target = s.prompt + s.generated;
    s.kv = 0;
    s.estUncached = s.target;
    this.waiting.unshift(s);
    this.preempted.add(s);
    this.preemptions++;
  }

  /** Commits the sequence's computed full prompt blocks, announcing new ones. */
  private commit(s: Seq, out: KvEvent[]): void {
    const full = Math.min(Math.floor(Math.min(s.kv, s.prompt) / this.o.blockSize), s.seqHashes.length);
    let run: KvStoredBlock[] = [];
    let parent: string | null = null;
    const flush = (): void => {
      if (run.length === 0) return;
      out.push({
        type: 'stored',
        worker_id: this.workerId,
        event_id: this.nextEventId++,
        parent_hash: parent,
        blocks: run,
      });
      run = [];
    };
    for (let i = s.held; i < full; i++) {
      const h = s.seqHashes[i]!;
      s.priv--;
      if (this.cache.commit(h)) {
        if (run.length === 0) parent = i === 0 ? null : s.seqHashes[i - 1]!;
        run.push({ block_hash: h, tokens_hash: s.localHashes[i]! });
      } else flush();
    }
    flush();
    if (full > s.held) s.held = full;
  }

  private free(s: Seq): void {
    this.cache.release(s.seqHashes, s.held);
    this.cache.freePrivate(s.priv);
    s.held = 0;
    s.priv = 0;
  }
}
