/**
 * Load tracking: how busy each worker is, from the router's own decisions and from the load metrics
 * workers report.
 *
 * - Tracked, from this router's decisions (Dynamo's `ActiveSequences`):
 *   {@link LoadTracker.onRouted} adds the request's prefill tokens and its blocks to its worker;
 *   {@link LoadTracker.onFirstToken} releases the prefill tokens (prefill is over);
 *   {@link LoadTracker.onFinished} releases the blocks. Blocks given by sequence hash are counted
 *   once per worker however many running requests share them (a shared system prompt occupies
 *   its blocks once), so a worker's active blocks are the distinct blocks of its running requests.
 *   Blocks given only as a number (and a prompt's trailing partial block) are not shared.
 * - Reported ({@link LoadMetrics}): the worker's own view, which also counts other routers'
 *   traffic. A report is used until `metricsTtlMs` after it arrived.
 * - Effective load = the larger of the two per figure: a report lags behind this router's fresh
 *   decisions, and this router does not see the others'.
 *
 * Requests whose end is never signalled are released `requestTimeoutMs` after they were routed
 * (checked lazily, no timer) with a warning.
 * @packageDocumentation
 */
import { BlockIndex } from './block-index';
import { LoadColumns, maxLcpOnWorker, type TrackedRequestView, WorkerLoadState } from './load-state';
import { ignoreWarnings, type Clock, type WarningHandler } from './common';
import { RouterInvalidArgumentError } from './errors';
import { type LoadMetrics, validateLoadMetrics } from './events';
import { packBigints } from './packing';
import { U64Table, V0 } from './u64-table';

export { LoadColumns, WorkerLoadState, type TrackedRequestView } from './load-state';

/** Default time a worker's reported load metrics stay valid: 10 s. */
export const DEFAULT_LOAD_METRICS_TTL_MS = 10_000;
/** Default time after which a request never finished is released: 10 min. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 600_000;
/** Default most requests tracked at once; beyond, the oldest is released. */
export const DEFAULT_MAX_TRACKED_REQUESTS = 131_072;

/** Options of {@link LoadTracker}. */
export interface LoadTrackerOptions {
  /** Clock in ms; default `Date.now`. */
  now?: Clock;
  /** How long a reported metric is used, in ms; default 10 000. */
  metricsTtlMs?: number;
  /** Release requests not finished after this many ms; default 600 000. */
  requestTimeoutMs?: number;
  /** Receives warnings (timed-out requests, invalid metrics). */
  onWarning?: WarningHandler;
  /**
   * Most requests tracked at once (local and peers'); routing one more releases the oldest, with a
   * warning, so that requests whose end never comes cannot grow memory without bound. Default 131 072.
   */
  maxTrackedRequests?: number;
}

/** What a routed request adds to its worker. */
export interface RequestLoad {
  /** Tokens the worker must prefill (prompt tokens not cached there). */
  prefillTokens: number;
  /**
   * The request's full blocks by sequence hash: counted once per worker even when other running
   * requests share them.
   */
  sequenceHashes?: readonly bigint[];
  /**
   * The request's blocks in all (default: `sequenceHashes.length`); those beyond
   * `sequenceHashes` (e.g. a trailing partial block) are counted as not shared.
   */
  blocks?: number;
}

/** A worker's load as the router sees it. */
export interface WorkerLoad {
  /** Effective active blocks: max(tracked, fresh report). */
  activeBlocks: number;
  /** Effective active prefill tokens: max(tracked, fresh report). */
  activePrefillTokens: number;
  /** Requests routed to the worker and not finished. */
  inflightRequests: number;
  /** Reported queued requests (0 without a fresh report). */
  waiting: number;
  /** Reported KV capacity in blocks, if known. */
  totalBlocks?: number;
  /** Requests routed to the worker since it was added. */
  routedTotal: number;
  /** From the router's own decisions. */
  tracked: { activeBlocks: number; activePrefillTokens: number };
  /** The last report while fresh, with the time it arrived. */
  reported?: Omit<LoadMetrics, 'worker_id'> & { at: number };
}

interface TrackedRequest {
  worker: WorkerLoadState;
  prefillTokens: number;
  privateBlocks: number;
  /**
   * (lo, hi) pairs of the request's shared blocks, or null. A plain array: allocating a typed
   * array of this size costs an off-heap buffer per request.
   */
  hashes: number[] | null;
  /** Its group (requests with the same first block), or -1 without shared blocks. */
  group: number;
  /** Whether its blocks are registered in the active-block index. */
  indexed: boolean;
  prefillDone: boolean;
  routedAt: number;
}

/**
 * Running requests per group compared chain to chain; a larger group is indexed. Comparing costs
 * a decision O(members x shared blocks), indexing O(blocks) hash-table writes per request routed
 * and finished: at 1,024 workers with 2 requests in flight each (`bench router`), groups of ~40
 * made a limit of 16 index every prompt's 64 blocks: recording a request took 11-13 us at p50
 * against 1-2 us with 64, comparing chains 2 against 3-9 us (docs/benchmarks.md, "Router at fleet
 * scale").
 */
const SMALL_GROUP = 64;

/** See the module comment. */
export class LoadTracker {
  /** Reported metrics validity, ms. */
  readonly metricsTtlMs: number;
  /** Request release timeout, ms. */
  readonly requestTimeoutMs: number;
  /** Running requests with one first block compared chain to chain before they are indexed. */
  static readonly SMALL_GROUP = SMALL_GROUP;
  /** Most requests tracked at once. */
  readonly maxTrackedRequests: number;
  private readonly now: Clock;
  private readonly warn: WarningHandler;
  /**
   * Blocks of running requests, per worker, with one reference per request; only for requests
   * of large groups (more than `SMALL_GROUP` (64) running requests with the same first block).
   * Requests of a small group are kept as a list and compared chain to chain: a sequence hash
   * names its whole prefix, so two chains share exactly their longest common prefix, and the
   * distinct blocks a worker holds for a group are the size of the union (a trie) of its chains.
   * Most prompts are alone with their first block or in a small group; for them recording and
   * scoring cost a few array comparisons instead of one table operation per block.
   */
  private readonly active = new BlockIndex();
  /** Every worker's hot figures, by slot (read by the router's scoring loop). */
  readonly columns = new LoadColumns();
  /** First block (sequence hash) -> group id. */
  private readonly groups = new U64Table();
  /** Per group: running requests. */
  private groupSize: number[] = [];
  /** Per group: its requests while it is small (arrays reused across group ids). */
  private groupMembers: TrackedRequest[][] = [];
  /** Per group: whether its requests are in the active-block index (it grew beyond small). */
  private groupIndexed: boolean[] = [];
  private freeGroups: number[] = [];
  /** Hash arrays of finished requests, for reuse (at most `HASH_POOL_SIZE`). */
  private readonly hashPool: number[][] = [];
  // Result of the last scoreActive: 0 nobody shares, 1 read `scoreDepth` (small group), 2 read the
  // active-block index.
  private scoreMode = 0;
  /** Small-group scoring: leading blocks active per worker slot, and the slots set. */
  private scoreDepth = new Int32Array(16);
  private scoreTouched = new Int32Array(16);
  private scoreTouchedCount = 0;
  private readonly states = new Map<string, WorkerLoadState>();
  // Insertion-ordered, hence ordered by routing time: the oldest request is first.
  private readonly requests = new Map<string, TrackedRequest>();
  /** No request expires before this time (ms); lets most calls skip the scan. */
  private nextExpiry = Number.NEGATIVE_INFINITY;

  constructor(options: LoadTrackerOptions = {}) {
    this.now = options.now ?? Date.now;
    this.warn = options.onWarning ?? ignoreWarnings;
    this.metricsTtlMs = positive(options.metricsTtlMs ?? DEFAULT_LOAD_METRICS_TTL_MS, 'metricsTtlMs');
    this.requestTimeoutMs = positive(options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, 'requestTimeoutMs');
    const max = options.maxTrackedRequests ?? DEFAULT_MAX_TRACKED_REQUESTS;
    if (!Number.isSafeInteger(max) || max <= 0) {
      throw new RouterInvalidArgumentError(`maxTrackedRequests must be a positive integer, got ${String(max)}`);
    }
    this.maxTrackedRequests = max;
  }

  /** Calls `fn` for every tracked request, oldest first (e.g. to share them with peer routers). */
  forEachRequest(fn: (r: TrackedRequestView) => void): void {
    for (const [id, r] of this.requests) {
      fn({
        requestId: id,
        workerId: r.worker.workerId,
        prefillTokens: r.prefillTokens,
        prefillDone: r.prefillDone,
        hashes: r.hashes,
        privateBlocks: r.privateBlocks,
      });
    }
  }

  /** Distinct blocks the running requests of the worker in `slot` hold in the active-block index. */
  indexedActiveBlocks(slot: number): number {
    return this.active.cachedBlocks(slot);
  }

  /** Registers a worker (idempotent) and returns its live state. */
  addWorker(workerId: string): WorkerLoadState {
    let s = this.states.get(workerId);
    if (s === undefined) {
      const slot = this.active.ensureWorker(workerId);
      if (slot >= this.scoreDepth.length) {
        // Fresh, zeroed arrays: nothing scored is kept.
        this.scoreDepth = new Int32Array(this.scoreDepth.length * 2);
        this.scoreTouched = new Int32Array(this.scoreDepth.length);
        this.scoreTouchedCount = 0;
      }
      s = new WorkerLoadState(workerId, slot, this.active, this.columns);
      this.states.set(workerId, s);
    }
    return s;
  }

  /** Forgets a worker and the requests routed to it. @returns whether it was known */
  removeWorker(workerId: string): boolean {
    const s = this.states.get(workerId);
    if (s === undefined) return false;
    for (const [id, r] of this.requests) if (r.worker === s) this.onFinished(id);
    this.active.releaseAllOf(s.slot);
    this.active.dropWorker(s.slot);
    this.states.delete(workerId);
    return true;
  }

  /** Live state of a worker, or undefined. */
  stateOf(workerId: string): WorkerLoadState | undefined {
    return this.states.get(workerId);
  }

  /** Number of requests being tracked. */
  get inflightRequests(): number {
    return this.requests.size;
  }

  /** The worker a tracked request went to, or undefined. */
  workerOf(requestId: string): string | undefined {
    return this.requests.get(requestId)?.worker.workerId;
  }

  /**
   * Records a request routed to a worker. A request id already tracked is released first (a retry).
   * @throws RouterInvalidArgumentError when the worker is unknown or the figures are invalid
   */
  onRouted(requestId: string, workerId: string, load: RequestLoad): void {
    const w = this.states.get(workerId);
    if (w === undefined) throw new RouterInvalidArgumentError(`unknown worker ${JSON.stringify(workerId)}`);
    const hashes = load.sequenceHashes === undefined ? null : packBigints(load.sequenceHashes, 'sequenceHashes');
    const shared = hashes === null ? 0 : hashes.length / 2;
    const blocks = load.blocks ?? shared;
    if (!(load.prefillTokens >= 0) || !(blocks >= shared) || !Number.isFinite(blocks)) {
      throw new RouterInvalidArgumentError('prefillTokens must be >= 0 and blocks a number >= sequenceHashes.length');
    }
    this.onRoutedPacked(requestId, w, load.prefillTokens, hashes, 0, 2, shared, blocks - shared, this.now());
  }

  /**
   * {@link LoadTracker.onRouted} for the router's hot path: the request's `count` shared blocks are
   * `words[at + stride * i]` (lo) and `+ 1` (hi); `privateBlocks` more are not shared.
   */
  onRoutedPacked(
    requestId: string,
    w: WorkerLoadState,
    prefillTokens: number,
    words: Uint32Array | null,
    at: number,
    stride: number,
    count: number,
    privateBlocks: number,
    now: number,
  ): void {
    if (this.requests.has(requestId)) this.onFinished(requestId);
    this.expireRequests(now);
    if (this.requests.size >= this.maxTrackedRequests) {
      // Full: the oldest request goes (its end was most likely lost).
      const [oldId, old] = this.requests.entries().next().value as [string, TrackedRequest];
      this.onFinished(oldId);
      this.warn('request released: too many requests tracked', {
        request_id: oldId,
        worker_id: old.worker.workerId,
        max_tracked_requests: this.maxTrackedRequests,
      });
    }
    const r: TrackedRequest = {
      worker: w,
      prefillTokens,
      privateBlocks,
      hashes: null,
      group: -1,
      indexed: false,
      prefillDone: false,
      routedAt: now,
    };
    if (words !== null && count > 0) {
      // A finished request's array when one of the right size is free (prompts of one length are
      // common), so routing allocates no per-block array.
      const pool = this.hashPool;
      const free = pool.length > 0 ? pool[pool.length - 1]! : null;
      let hashes: number[];
      if (free !== null && free.length === 2 * count) {
        pool.pop();
        hashes = free;
      } else {
        hashes = new Array<number>(2 * count);
      }
      for (let i = 0; i < count; i++) {
        hashes[2 * i] = words[at + stride * i]!;
        hashes[2 * i + 1] = words[at + stride * i + 1]!;
      }
      r.hashes = hashes;
      const ge = this.groups.insert(hashes[0]!, hashes[1]!);
      let g: number;
      if (this.groups.inserted) {
        // Alone with its first block: counted, not indexed.
        g = this.newGroup();
        this.groups.data[ge + V0] = g;
        this.groupSize[g] = 0;
      } else {
        g = this.groups.data[ge + V0]!;
      }
      r.group = g;
      this.groupSize[g]!++;
      if (this.groupIndexed[g]) {
        this.index(r);
      } else {
        const members = this.groupMembers[g]!;
        if (members.length < SMALL_GROUP) {
          // Blocks new to the worker: those beyond its longest common prefix with the group.
          w.loneBlocks += count - maxLcpOnWorker(hashes, members, w);
          members.push(r);
        } else {
          this.indexGroup(g);
          this.index(r);
        }
      }
    }
    w.trackedPrefill += prefillTokens;
    w.prefilling++;
    w.privateBlocks += privateBlocks;
    w.inflight++;
    w.routedTotal++;
    this.requests.set(requestId, r);
    if (this.nextExpiry === Number.POSITIVE_INFINITY) this.nextExpiry = now + this.requestTimeoutMs;
  }

  /**
   * How many leading blocks of a request each worker already has active (running requests share
   * whole prefixes, so the active blocks of a worker are closed under prefixes). Read with
   * {@link LoadTracker.activeOverlap} until the next call.
   */
  scoreActive(words: Uint32Array, at: number, stride: number, count: number): void {
    this.scoreMode = 0;
    if (count === 0 || this.groups.size === 0) return;
    const ge = this.groups.find(words[at]!, words[at + 1]!);
    if (ge < 0) return;
    const g = this.groups.data[ge + V0]!;
    if (this.groupIndexed[g]) {
      this.scoreMode = 2;
      this.active.score(words, at, stride, count);
      return;
    }
    // A small group shares the first block: compare the chains.
    const depth = this.scoreDepth;
    const touched = this.scoreTouched;
    for (let k = 0; k < this.scoreTouchedCount; k++) depth[touched[k]!] = 0;
    this.scoreTouchedCount = 0;
    const members = this.groupMembers[g]!;
    for (let m = 0; m < members.length; m++) {
      const r = members[m]!;
      const h = r.hashes!;
      const n = Math.min(count, h.length / 2);
      let k = 1; // the first block is the group's
      while (k < n && h[2 * k] === words[at + stride * k] && h[2 * k + 1] === words[at + stride * k + 1]) k++;
      const slot = r.worker.slot;
      const d = depth[slot]!;
      if (d === 0) touched[this.scoreTouchedCount++] = slot;
      if (k > d) depth[slot] = k;
    }
    this.scoreMode = 1;
  }

  /** Running requests whose first block (sequence hash at `words[at]`, `+ 1`) is this one's; O(1). */
  prefixSharers(words: Uint32Array, at: number, count: number): number {
    if (count === 0 || this.groups.size === 0) return 0;
    const ge = this.groups.find(words[at]!, words[at + 1]!);
    return ge < 0 ? 0 : this.groupSize[this.groups.data[ge + V0]!]!;
  }

  /** A worker's result of the last {@link LoadTracker.scoreActive}. */
  activeOverlap(w: WorkerLoadState): number {
    return this.activeOverlapAt(w.slot);
  }

  /** {@link LoadTracker.activeOverlap} of the worker in `slot` ({@link WorkerLoadState.slot}). */
  activeOverlapAt(slot: number): number {
    const mode = this.scoreMode;
    if (mode === 0) return 0;
    if (mode === 1) return this.scoreDepth[slot]!;
    return this.active.overlap(slot);
  }

  /** Slots the last {@link LoadTracker.scoreActive} gave an active overlap (the others': 0). */
  get activeScoredCount(): number {
    const mode = this.scoreMode;
    return mode === 0 ? 0 : mode === 1 ? this.scoreTouchedCount : this.active.scoredCount;
  }

  /** The `k`-th slot of {@link LoadTracker.activeScoredCount}. */
  activeScoredSlot(k: number): number {
    return this.scoreMode === 1 ? this.scoreTouched[k]! : this.active.scoredSlot(k);
  }

  /** Whether the last {@link LoadTracker.scoreActive} found no running request sharing a block. */
  get activeOverlapNone(): boolean {
    return this.scoreMode === 0;
  }

  /** Registers a request's blocks in the active-block index (its group is indexed). */
  private index(r: TrackedRequest): void {
    const h = r.hashes!;
    const slot = r.worker.slot;
    for (let i = 0; i < h.length; i += 2) this.active.acquire(slot, h[i]!, h[i + 1]!);
    r.indexed = true;
  }

  /** A small group grew too large: moves its requests into the active-block index. */
  private indexGroup(g: number): void {
    const members = this.groupMembers[g]!;
    // Undo their counting, last first (each one's new blocks were counted against the earlier ones).
    for (let m = members.length - 1; m >= 0; m--) {
      const r = members[m]!;
      const h = r.hashes!;
      members.length = m;
      r.worker.loneBlocks -= h.length / 2 - maxLcpOnWorker(h, members, r.worker);
      this.index(r);
    }
    this.groupIndexed[g] = true;
  }

  private newGroup(): number {
    const g = this.freeGroups.pop();
    if (g !== undefined) return g;
    this.groupSize.push(0);
    this.groupMembers.push([]);
    this.groupIndexed.push(false);
    return this.groupSize.length - 1;
  }

  /**
   * The request produced its first token: its prefill is done.
   * @returns whether the request was tracked (and still prefilling)
   */
  onFirstToken(requestId: string): boolean {
    const r = this.requests.get(requestId);
    if (r === undefined || r.prefillDone) return false;
    r.prefillDone = true;
    r.worker.trackedPrefill -= r.prefillTokens;
    r.worker.prefilling--;
    return true;
  }

  /**
   * The request's stream ended (done, failed or cancelled): its blocks are released.
   * @returns whether the request was tracked
   */
  onFinished(requestId: string): boolean {
    const r = this.requests.get(requestId);
    if (r === undefined) return false;
    this.requests.delete(requestId);
    const w = r.worker;
    if (!r.prefillDone) {
      w.trackedPrefill -= r.prefillTokens;
      w.prefilling--;
    }
    w.privateBlocks -= r.privateBlocks;
    const h = r.hashes;
    if (h !== null) {
      const g = r.group;
      if (r.indexed) {
        for (let i = 0; i < h.length; i += 2) this.active.release(w.slot, h[i]!, h[i + 1]!);
      } else {
        const members = this.groupMembers[g]!;
        const at = members.indexOf(r);
        members[at] = members[members.length - 1]!;
        members.pop();
        // Its blocks no other running request of the worker holds: beyond the longest common prefix.
        w.loneBlocks -= h.length / 2 - maxLcpOnWorker(h, members, w);
      }
      if (--this.groupSize[g]! === 0) {
        this.groups.delete(h[0]!, h[1]!);
        this.groupMembers[g]!.length = 0;
        this.groupIndexed[g] = false;
        this.freeGroups.push(g);
      }
      r.hashes = null;
      if (this.hashPool.length < HASH_POOL_SIZE) this.hashPool.push(h);
    }
    w.inflight--;
    return true;
  }

  /**
   * Applies a worker's load report (validated; unknown workers are ignored).
   * @returns whether it was applied
   */
  applyMetrics(metrics: LoadMetrics | unknown): boolean {
    const v = validateLoadMetrics(metrics);
    if (!v.ok) {
      this.warn('load metrics rejected: invalid', { errors: v.errors });
      return false;
    }
    const m = v.value;
    const s = this.states.get(m.worker_id);
    if (s === undefined) return false;
    s.reportedAt = this.now();
    s.reportedBlocks = m.active_blocks ?? -1;
    s.reportedPrefill = m.active_prefill_tokens ?? -1;
    s.reportedWaiting = m.waiting ?? -1;
    s.reportedTotal = m.total_blocks ?? s.reportedTotal;
    return true;
  }

  /** A worker's load, or undefined when unknown. */
  load(workerId: string): WorkerLoad | undefined {
    const s = this.states.get(workerId);
    if (s === undefined) return undefined;
    const now = this.now();
    this.expireRequests(now);
    const ttl = this.metricsTtlMs;
    const fresh = now - s.reportedAt <= ttl;
    const out: WorkerLoad = {
      activeBlocks: s.activeBlocks(now, ttl),
      activePrefillTokens: s.activePrefill(now, ttl),
      inflightRequests: s.inflight,
      waiting: s.waiting(now, ttl),
      routedTotal: s.routedTotal,
      tracked: { activeBlocks: s.trackedBlocks, activePrefillTokens: s.trackedPrefill },
    };
    if (s.reportedTotal >= 0) out.totalBlocks = s.reportedTotal;
    if (fresh) {
      const rep: NonNullable<WorkerLoad['reported']> = { at: s.reportedAt };
      if (s.reportedBlocks >= 0) rep.active_blocks = s.reportedBlocks;
      if (s.reportedPrefill >= 0) rep.active_prefill_tokens = s.reportedPrefill;
      if (s.reportedWaiting >= 0) rep.waiting = s.reportedWaiting;
      if (s.reportedTotal >= 0) rep.total_blocks = s.reportedTotal;
      out.reported = rep;
    }
    return out;
  }

  /**
   * Releases requests routed more than `requestTimeoutMs` ago (every call does it first).
   * @returns how many were released
   */
  expireRequests(now = this.now()): number {
    if (now < this.nextExpiry) return 0;
    let n = 0;
    this.nextExpiry = Number.POSITIVE_INFINITY;
    for (const [id, r] of this.requests) {
      if (now - r.routedAt < this.requestTimeoutMs) {
        // The oldest request left expires then (requests only get younger further on).
        this.nextExpiry = r.routedAt + this.requestTimeoutMs;
        break;
      }
      this.onFinished(id);
      n++;
      this.warn('request released after timeout without onFinished', {
        request_id: id,
        worker_id: r.worker.workerId,
        age_ms: now - r.routedAt,
      });
    }
    return n;
  }

  /**
   * Block references the running requests of a worker hold, one per block per request, whether
   * indexed or kept in a small group (test aid; O(active blocks + requests)).
   */
  activeReferences(workerId: string): number {
    const s = this.states.get(workerId);
    if (s === undefined) return 0;
    let n = this.active.referencesOf(s.slot).length / 2;
    for (const r of this.requests.values())
      if (r.worker === s && !r.indexed && r.hashes !== null) n += r.hashes.length / 2;
    return n;
  }
}

/** Hash arrays of finished requests kept for reuse. */
const HASH_POOL_SIZE = 256;

function positive(v: number, name: string): number {
  if (!(v > 0) || !Number.isFinite(v)) {
    throw new RouterInvalidArgumentError(`${name} must be a positive number of milliseconds, got ${String(v)}`);
  }
  return v;
}
