/**
 * `SimEngine`: a simulated LLM engine (Dynamo's "mocker"), for measuring routing without GPUs.
 *
 * - KV cache: {@link PagedKvCache} (`numBlocks` x `blockSize`), prefix reuse of full prompt blocks,
 *   LRU eviction of blocks no running sequence references; a `stored` event for every newly
 *   computed full block and a `removed` event for every eviction, in the router's wire format with
 *   consecutive per-worker event ids.
 * - Continuous batching, one batch per {@link SimEngine.step}: every decoding sequence generates one
 *   token, prefilling sequences continue in chunks, and waiting requests are admitted in arrival
 *   order while there are fewer than `maxNumSeqs` running, the batch has fewer than
 *   `maxBatchedTokens` tokens (decode tokens count one each; prefill is chunked to fit) and the
 *   cache can hold the request (prompt plus `maxTokens`, reserved at admission, so running
 *   sequences are never preempted). A request whose whole prompt is cached still computes its last
 *   token, as vLLM does.
 * - Timing: Dynamo's mocker formulas (see `timing.ts`), divided by `speedupRatio`.
 * - Generated tokens are not cached for reuse (only prompt blocks are named and announced).
 *
 * No clock and no timers: the caller passes `now` and delivers each step's outputs, events and
 * load at `step.endsAt` (see `VirtualEventLoop` and `RealTimeEngine`).
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
import { decodeStepTimeMs, prefillChunkTimeMs } from './timing';

/** Options of {@link SimEngine}. */
export interface SimEngineOptions {
  /** The worker id stamped on events and load metrics. */
  workerId: string;
  /** KV cache capacity in blocks; default 16384. */
  numBlocks?: number;
  /** Tokens per block; default 64. */
  blockSize?: number;
  /** Most sequences running at once; default 256. */
  maxNumSeqs?: number;
  /** Most tokens per batch; default 8192. */
  maxBatchedTokens?: number;
  /** Time divisor: 10 runs ten times faster than the formulas; default 1. */
  speedupRatio?: number;
}

/** Defaults of {@link SimEngineOptions} (DESIGN.md section 6). */
export const SIM_ENGINE_DEFAULTS = {
  numBlocks: 16384,
  blockSize: 64,
  maxNumSeqs: 256,
  maxBatchedTokens: 8192,
  speedupRatio: 1,
} as const;

/** A request for the engine. */
export interface SimRequest {
  /** Unique among the engine's requests in flight. */
  requestId: string;
  /** The prompt (u32 token ids, at least one). */
  tokenIds: ArrayLike<number>;
  /** Tokens to generate (at least 1). */
  maxTokens: number;
}

/** Tokens one request produced in a step. */
export interface SimTokenOutput {
  /** The request. */
  requestId: string;
  /** Index of this token in the output (0: the first token, ending prefill). */
  index: number;
  /** Whether the request is finished (it generated `maxTokens`). */
  done: boolean;
}

/** A request admitted in a step. */
export interface SimAdmission {
  /** The request. */
  requestId: string;
  /** Prompt tokens. */
  promptTokens: number;
  /** Prompt tokens found in the cache (full blocks). */
  cachedTokens: number;
}

/** What a step did; all of it takes effect at `endsAt`. */
export interface SimStep {
  /** When the step started (the `now` given). */
  startedAt: number;
  /** Its duration, ms (after speedup). */
  durationMs: number;
  /** `startedAt + durationMs`. */
  endsAt: number;
  /** Tokens produced, in batch order. */
  tokens: SimTokenOutput[];
  /** Requests admitted. */
  admitted: SimAdmission[];
  /** KV events, in the order they happened. */
  kvEvents: KvEvent[];
  /** Load after the step. */
  load: LoadMetrics;
  /** Prompt tokens computed in the step. */
  prefillTokens: number;
  /** Sequences that decoded in the step. */
  decodeSeqs: number;
}

interface Sequence {
  id: string;
  prompt: number;
  maxTokens: number;
  /** Sequence hashes (hex) of the full prompt blocks. */
  seqHashes: string[];
  /** Local hashes (hex) of the full prompt blocks. */
  localHashes: string[];
  /** Blocks reserved: prompt plus output. */
  blocks: number;
  /** Named blocks referenced (a prefix of seqHashes). */
  held: number;
  /** Prompt tokens cached at admission. */
  cachedTokens: number;
  /** Uncached prompt tokens estimated when queued (for the load report). */
  estUncached: number;
  /** Prompt tokens computed (including cached ones). */
  computed: number;
  /** Tokens generated. */
  generated: number;
  admitted: boolean;
}

/** See the module comment. */
export class SimEngine {
  /** The worker id. */
  readonly workerId: string;
  /** Options with defaults. */
  readonly options: Required<SimEngineOptions>;
  /** The KV cache. */
  readonly cache: PagedKvCache;
  private readonly hasher: BlockHasher;
  private readonly waiting: Sequence[] = [];
  private waitingHead = 0;
  private readonly running: Sequence[] = [];
  private readonly byId = new Map<string, Sequence>();
  private nextEventId = 0;
  private busyMs = 0;
  private steps = 0;

  constructor(options: SimEngineOptions) {
    if (typeof options?.workerId !== 'string' || options.workerId.length === 0) {
      throw new RouterInvalidArgumentError('workerId must be a non-empty string');
    }
    const o: Required<SimEngineOptions> = {
      ...SIM_ENGINE_DEFAULTS,
      ...stripUndefined(options),
      workerId: options.workerId,
    };
    for (const k of ['numBlocks', 'blockSize', 'maxNumSeqs', 'maxBatchedTokens'] as const) {
      if (!Number.isSafeInteger(o[k]) || o[k] <= 0) {
        throw new RouterInvalidArgumentError(`${k} must be a positive integer, got ${String(o[k])}`);
      }
    }
    if (typeof o.speedupRatio !== 'number' || !(o.speedupRatio > 0) || !Number.isFinite(o.speedupRatio)) {
      throw new RouterInvalidArgumentError(`speedupRatio must be a positive number, got ${String(o.speedupRatio)}`);
    }
    this.workerId = o.workerId;
    this.options = o;
    this.cache = new PagedKvCache(o.numBlocks, o.blockSize);
    this.hasher = new BlockHasher(o.blockSize);
  }

  /** Whether there is anything to run (waiting or running requests). */
  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > this.waitingHead;
  }

  /** Requests waiting for admission. */
  get waitingCount(): number {
    return this.waiting.length - this.waitingHead;
  }

  /** Requests running (prefilling or decoding). */
  get runningCount(): number {
    return this.running.length;
  }

  /** Total simulated time spent in steps, ms. */
  get busyTimeMs(): number {
    return this.busyMs;
  }

  /** Steps run. */
  get stepCount(): number {
    return this.steps;
  }

  /** The event id the next KV event will carry. */
  get nextKvEventId(): number {
    return this.nextEventId;
  }

  /**
   * Queues a request.
   * @returns the load after queueing it (publish it so routers see the queue)
   * @throws RouterInvalidArgumentError for a malformed request, a duplicate id, or a request that
   *   could never fit in the cache (prompt plus `maxTokens` over `numBlocks` blocks)
   */
  submit(request: SimRequest): LoadMetrics {
    const { requestId, tokenIds, maxTokens } = checkSimRequest(
      request,
      this.byId,
      this.options.blockSize,
      this.options.numBlocks,
    );
    const bs = this.options.blockSize;
    const prompt = tokenIds.length;
    const blocks = Math.ceil((prompt + maxTokens) / bs);
    const { seqHashes, localHashes } = blockHexHashes(this.hasher, tokenIds);
    const seq: Sequence = {
      id: requestId,
      prompt,
      maxTokens,
      seqHashes,
      localHashes,
      blocks,
      held: 0,
      cachedTokens: 0,
      estUncached: prompt - this.cache.matchPrefix(seqHashes) * bs,
      computed: 0,
      generated: 0,
      admitted: false,
    };
    this.byId.set(requestId, seq);
    this.waiting.push(seq);
    return this.loadMetrics();
  }

  /**
   * Drops a request (cancelled by its client), freeing its blocks: the blocks it computed stay
   * cached (idle), so no KV event is due.
   * @returns whether it was in flight
   */
  cancel(requestId: string): boolean {
    const seq = this.byId.get(requestId);
    if (seq === undefined) return false;
    this.byId.delete(requestId);
    if (seq.admitted) {
      this.running.splice(this.running.indexOf(seq), 1);
      this.free(seq);
    } else {
      const i = this.waiting.indexOf(seq, this.waitingHead);
      this.waiting.splice(i, 1);
    }
    return true;
  }

  /**
   * Drops every idle cached block (e.g. a cache reset).
   * @returns the events to publish: `cleared` when the cache is now empty, else `removed` for the
   *   dropped blocks (none when nothing was idle)
   */
  clearCache(): KvEvent[] {
    const dropped = this.cache.clearIdle();
    const out: KvEvent[] = [];
    if (this.cache.usedBlocks === 0)
      out.push({ type: 'cleared', worker_id: this.workerId, event_id: this.nextEventId++ });
    else if (dropped.length > 0) out.push(this.removed(dropped));
    return out;
  }

  /** The engine's load, as a worker reports it. */
  loadMetrics(): LoadMetrics {
    let prefill = 0;
    for (let i = this.waitingHead; i < this.waiting.length; i++) prefill += this.waiting[i]!.estUncached;
    for (const s of this.running) prefill += s.prompt - s.computed;
    return {
      worker_id: this.workerId,
      active_blocks: this.cache.activeBlocks,
      total_blocks: this.options.numBlocks,
      active_prefill_tokens: prefill,
      waiting: this.waitingCount,
    };
  }

  /**
   * Runs one batch starting at `now`.
   * @returns what it did, or null when there is no work
   */
  step(now: number): SimStep | null {
    if (!this.hasWork) return null;
    const o = this.options;
    const bs = o.blockSize;
    const events: KvEvent[] = [];
    const tokens: SimTokenOutput[] = [];
    const admitted: SimAdmission[] = [];
    let budget = o.maxBatchedTokens;
    // 1. Decoding sequences: one token each.
    const decoding: Sequence[] = [];
    for (const s of this.running) {
      if (s.computed >= s.prompt && budget > 0) {
        decoding.push(s);
        budget--;
      }
    }
    // 2. Prefills already running, in admission order, then 3. new admissions.
    const chunks: Array<{ seq: Sequence; from: number; n: number }> = [];
    for (const s of this.running) {
      if (budget <= 0) break;
      if (s.computed < s.prompt) {
        const n = Math.min(s.prompt - s.computed, budget);
        chunks.push({ seq: s, from: s.computed, n });
        budget -= n;
      }
    }
    const evicted: string[] = [];
    while (budget > 0 && this.running.length < o.maxNumSeqs && this.waitingHead < this.waiting.length) {
      const s = this.waiting[this.waitingHead]!;
      let cached = this.cache.matchPrefix(s.seqHashes);
      // A fully cached prompt still computes its last token.
      if (cached * bs >= s.prompt) cached = Math.ceil(s.prompt / bs) - 1;
      const need = s.blocks - cached;
      if (need > this.cache.allocatableBlocks - countInactiveAmong(this.cache, s.seqHashes, cached)) break;
      this.cache.acquire(s.seqHashes, 0, cached);
      if (!this.cache.allocate(need, evicted)) {
        this.cache.release(s.seqHashes, cached);
        break;
      }
      this.waitingHead++;
      s.admitted = true;
      s.held = cached;
      s.cachedTokens = cached * bs;
      s.computed = s.cachedTokens;
      this.running.push(s);
      admitted.push({ requestId: s.id, promptTokens: s.prompt, cachedTokens: s.cachedTokens });
      const n = Math.min(s.prompt - s.computed, budget);
      chunks.push({ seq: s, from: s.computed, n });
      budget -= n;
    }
    if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
    if (evicted.length > 0) events.push(this.removed(evicted));
    // Timing: decode step at the current KV occupancy plus each chunk's prefill increment.
    let ms = decodeStepTimeMs(this.cache.activeBlocks / o.numBlocks);
    let prefillTokens = 0;
    for (const c of chunks) {
      ms += prefillChunkTimeMs(c.from - c.seq.cachedTokens, c.n);
      prefillTokens += c.n;
    }
    const durationMs = ms / o.speedupRatio;
    // Effects.
    for (const c of chunks) {
      const s = c.seq;
      s.computed += c.n;
      const full = Math.min(Math.floor(s.computed / bs), s.seqHashes.length);
      if (full > s.held) events.push(...this.storeBlocks(s, full));
    }
    for (const s of decoding) {
      tokens.push({ requestId: s.id, index: s.generated, done: s.generated + 1 >= s.maxTokens });
      s.generated++;
    }
    for (const c of chunks) {
      const s = c.seq;
      if (s.computed >= s.prompt && s.generated === 0) {
        tokens.push({ requestId: s.id, index: 0, done: s.maxTokens <= 1 });
        s.generated = 1;
      }
    }
    for (const t of tokens) {
      if (!t.done) continue;
      const s = this.byId.get(t.requestId)!;
      this.byId.delete(s.id);
      this.running.splice(this.running.indexOf(s), 1);
      this.free(s);
    }
    this.busyMs += durationMs;
    this.steps++;
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

  /** Commits computed full blocks `s.held..full` and returns their `stored` events. */
  private storeBlocks(s: Sequence, full: number): KvEvent[] {
    const out: KvEvent[] = [];
    let run: KvStoredBlock[] = [];
    let parent: string | null = null;
    const flush = (): void => {
      if (run.length > 0) {
        out.push({
          type: 'stored',
          worker_id: this.workerId,
          event_id: this.nextEventId++,
          parent_hash: parent,
          blocks: run,
        });
        run = [];
      }
    };
    for (let i = s.held; i < full; i++) {
      const h = s.seqHashes[i]!;
      if (this.cache.commit(h)) {
        if (run.length === 0) parent = i === 0 ? null : s.seqHashes[i - 1]!;
        run.push({ block_hash: h, tokens_hash: s.localHashes[i]! });
      } else flush();
    }
    flush();
    s.held = full;
    return out;
  }

  private free(s: Sequence): void {
    this.cache.release(s.seqHashes, s.held);
    this.cache.freePrivate(s.blocks - s.held);
  }

  private removed(hashes: string[]): KvEvent {
    return { type: 'removed', worker_id: this.workerId, event_id: this.nextEventId++, block_hashes: hashes };
  }
}

/** Idle blocks among the first `n` of `hashes`: acquiring them takes them out of the evictable pool. */
function countInactiveAmong(cache: PagedKvCache, hashes: readonly string[], n: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) if (cache.refCount(hashes[i]!) === 0) k++;
  return k;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
