/**
 * `KvRouter`: what a service uses. It keeps the worker set (from discovery), the KV index (from
 * events, or approximate from its own decisions), the load of each worker, and answers "which
 * worker for these tokens?" with a {@link RouteDecision}, recording the decision as load.
 *
 * ```ts
 * const router = new KvRouter({ blockSize: 64 });
 * router.addWorker('w1');
 * router.applyEvent(JSON.parse(msg));            // KV events from the workers
 * const d = router.route({ tokenIds, requestId }); // -> { worker_id, overlap_blocks, ... }
 * router.onFirstToken(requestId); router.onFinished(requestId);
 * ```
 *
 * Pure: no I/O, no timers; `now()` and `random()` are injected (default `Date.now`, `Math.random`).
 * @packageDocumentation
 */
import { ApproxKvIndexer } from './approx-indexer';
import { BoundedSearch } from './bounded-search';
import type { Clock, WarningHandler } from './common';
import { NoWorkersError, RouterError, RouterInvalidArgumentError } from './errors';
import type { KvEvent, LoadMetrics } from './events';
import { BlockHasher, PACKED_STRIDE } from './hashing';
import { type ApplyResult, KvIndexer } from './indexer';
import { LoadTracker } from './load';
import { type FenceInfo, type ReplicaApplyResult, RouterPeers, routedEntry } from './peers';
import type { ReplicaMessage, ReplicaStateMessage } from './replica';
import type { EffectiveLoad } from './load-state';
import { type Candidate, RouteContext } from './route-context';
import type { RouteDecision, RouteRequest, RouterStats, WorkerStats } from './router-types';
import { type CompiledRouterOptions, compileRouterOptions, type KvRouterOptions } from './router-options';
import type { RoutingContext, RoutingStrategy } from './strategies/strategy';
import { TrafficTracker } from './traffic';
import { checkEngineProfile, type EngineProfile } from './ttft-cost';

export { compileRouterOptions, DEFAULT_BLOCK_SIZE, DEFAULT_FENCE_HOLD_MS } from './router-options';
export type { CompiledRouterOptions, KvRouterOptions } from './router-options';

export type { RouteDecision, RouteRequest, RouterStats, WorkerStats } from './router-types';

const MAX_WARNED_UNKNOWN = 1024;

/** See the module comment. */
export class KvRouter {
  /** The options in force. */
  readonly options: Readonly<CompiledRouterOptions>;
  /** The KV index (events mode) or undefined. */
  readonly indexer: KvIndexer | undefined;
  /** The approximate index (no-events mode) or undefined. */
  readonly approxIndexer: ApproxKvIndexer | undefined;
  /** Per-worker load. */
  readonly load: LoadTracker;
  private readonly core: KvIndexer['core'];
  private readonly hasher: BlockHasher;
  private readonly strategy: RoutingStrategy;
  private readonly now: Clock;
  private readonly warn: WarningHandler;
  private readonly cands: Candidate[] = [];
  private readonly byId = new Map<string, Candidate>();
  private readonly ctx: RouteContext;
  /** With a strategy that has a `costBound`: picks the workers a decision scores. */
  private readonly search: BoundedSearch | undefined;
  /** Distinct engine profiles set on workers (by value), with how many workers use each. */
  private readonly profileUse = new Map<string, { profile: EngineProfile; workers: number }>();
  private profilesInUse: (EngineProfile | undefined)[] = [undefined];
  private pickedIds: string[] = [];
  /** Index and load-tracker slots of `cands[i]`, kept in step with `cands`. */
  private coreSlots = new Int32Array(16);
  private loadSlots = new Int32Array(16);
  private readonly warnedUnknown = new Set<string>();
  private readonly peers: RouterPeers;
  /** Arrival rate and per-worker decision shares, for the `ttft` cost's work term. */
  private readonly traffic = new TrafficTracker();
  private readonly busyFig: EffectiveLoad = {
    activeBlocks: 0,
    activePrefillTokens: 0,
    inflight: 0,
    prefillRequests: 0,
    waiting: 0,
  };
  private decisions = 0;
  private seq = 0;
  private overlapSum = 0;
  private promptBlockSum = 0;
  private ignoredEvents = 0;

  constructor(options: KvRouterOptions = {}) {
    const o = compileRouterOptions(options);
    this.options = o;
    this.now = o.now;
    this.warn = o.onWarning;
    this.strategy = o.strategy;
    this.hasher = new BlockHasher(o.blockSize);
    if (o.useKvEvents) {
      this.indexer = new KvIndexer({
        onWarning: o.onWarning,
        gapPolicy: o.gapPolicy,
        maxBlocksPerWorker: o.maxBlocksPerWorker,
      });
      this.core = this.indexer.core;
    } else {
      this.approxIndexer = new ApproxKvIndexer({ ttlMs: o.approxTtlMs, now: o.now });
      this.core = this.approxIndexer.core;
    }
    this.load = new LoadTracker({
      now: o.now,
      metricsTtlMs: o.loadMetricsTtlMs,
      requestTimeoutMs: o.requestTimeoutMs,
      onWarning: o.onWarning,
      maxTrackedRequests: o.maxTrackedRequests,
    });
    this.peers = new RouterPeers(o.routerId, this.load, (id) => this.byId.get(id)?.load, o.onWarning, o.fenceHoldMs);
    this.ctx = new RouteContext(o.blockSize, o.random, this.core, this.load, this.traffic);
    const bound = this.strategy.costBound;
    if (bound !== undefined) {
      const cands = this.cands;
      this.search = new BoundedSearch(bound, this.core, this.load, {
        ctx: this.ctx,
        fill: (i, pos) => this.ctx.fill(i, cands[pos]!),
        loadAt: (pos) => cands[pos]!.load,
        profileAt: (pos) => cands[pos]!.profile,
        profilesInUse: () => this.profilesInUse,
        setFleetLoad: (busy, queued) => {
          this.ctx.busyShare = busy;
          this.ctx.queuedRequests = queued;
        },
      });
    }
  }

  /** Tokens per block. */
  get blockSize(): number {
    return this.options.blockSize;
  }

  /** Registered worker ids, in registration order. */
  workers(): string[] {
    return this.cands.map((c) => c.id);
  }

  /** Whether a worker is registered. */
  hasWorker(workerId: string): boolean {
    return this.byId.has(workerId);
  }

  /**
   * Registers a worker (it appeared in discovery).
   * @returns false when it was already registered
   */
  addWorker(workerId: string): boolean {
    if (typeof workerId !== 'string' || workerId.length === 0) {
      throw new RouterInvalidArgumentError('workerId must be a non-empty string');
    }
    if (this.byId.has(workerId)) return false;
    const slot =
      this.indexer !== undefined ? this.indexer.addWorker(workerId) : this.approxIndexer!.addWorker(workerId);
    const c: Candidate = { id: workerId, slot, load: this.load.addWorker(workerId), profile: undefined };
    this.cands.push(c);
    this.byId.set(workerId, c);
    this.syncSlots();
    this.ctx.workerIds.push(workerId);
    this.warnedUnknown.delete(workerId);
    this.ctx.ensure(this.cands.length);
    return true;
  }

  /**
   * Sets a worker's engine timing curve (from its metadata), used by the `ttft` cost; undefined
   * goes back to the router's `engineProfile`.
   * @returns whether the worker is registered
   * @throws RouterInvalidArgumentError naming a bad field
   */
  setWorkerProfile(workerId: string, profile: EngineProfile | undefined): boolean {
    const c = this.byId.get(workerId);
    if (c === undefined) return false;
    const next = profile === undefined ? undefined : { ...checkEngineProfile(profile, 'profile') };
    this.useProfile(c.profile, -1);
    c.profile = next;
    this.useProfile(next, 1);
    this.search?.touch(c.load.slot);
    return true;
  }

  /** Counts `delta` more workers using `profile` in {@link KvRouter.profilesInUse}. */
  private useProfile(profile: EngineProfile | undefined, delta: number): void {
    if (profile === undefined) return;
    const key = JSON.stringify(profile);
    const u = this.profileUse.get(key) ?? { profile, workers: 0 };
    u.workers += delta;
    if (u.workers > 0) this.profileUse.set(key, u);
    else this.profileUse.delete(key);
    this.profilesInUse = [undefined, ...Array.from(this.profileUse.values(), (v) => v.profile)];
  }

  /** Rebuilds `coreSlots` and `loadSlots` from `cands`. */
  private syncSlots(): void {
    const n = this.cands.length;
    if (n > this.coreSlots.length) {
      this.coreSlots = new Int32Array(n * 2);
      this.loadSlots = new Int32Array(n * 2);
    }
    for (let i = 0; i < n; i++) {
      this.coreSlots[i] = this.cands[i]!.slot;
      this.loadSlots[i] = this.cands[i]!.load.slot;
    }
    this.search?.setWorkers(this.coreSlots, this.loadSlots, n);
  }

  /**
   * Forgets a worker (it left discovery): its cached blocks, load and in-flight requests.
   * @returns whether it was registered
   */
  removeWorker(workerId: string): boolean {
    const c = this.byId.get(workerId);
    if (c === undefined) return false;
    this.byId.delete(workerId);
    const i = this.cands.indexOf(c);
    this.cands.splice(i, 1);
    this.useProfile(c.profile, -1);
    this.syncSlots();
    this.ctx.workerIds.splice(i, 1);
    if (this.indexer !== undefined) this.indexer.removeWorker(workerId);
    else this.approxIndexer!.removeWorker(workerId);
    this.traffic.forget(c.load.slot);
    this.load.removeWorker(workerId);
    this.peers.fences.delete(workerId);
    return true;
  }

  /**
   * Makes the registered workers exactly `workerIds` (e.g. after a discovery list).
   * @returns the ids added and removed
   */
  setWorkers(workerIds: Iterable<string>): { added: string[]; removed: string[] } {
    const want = new Set(workerIds);
    const removed = this.workers().filter((id) => !want.has(id));
    for (const id of removed) this.removeWorker(id);
    const added: string[] = [];
    for (const id of want) if (this.addWorker(id)) added.push(id);
    return { added, removed };
  }

  /**
   * Applies a KV event (validated; never throws on bad input). Events from unregistered workers are
   * ignored (`unknown_worker`, warned once per worker), as are all events in approximate mode.
   */
  applyEvent(event: KvEvent | unknown): ApplyResult {
    if (this.indexer === undefined) {
      this.ignoredEvents++;
      return { status: 'ignored', reason: 'no_kv_events', blocks: 0 };
    }
    const wid = (event as { worker_id?: unknown } | null)?.worker_id;
    if (typeof wid === 'string' && wid.length > 0 && !this.byId.has(wid)) {
      this.ignoredEvents++;
      if (!this.warnedUnknown.has(wid) && this.warnedUnknown.size < MAX_WARNED_UNKNOWN) {
        this.warnedUnknown.add(wid);
        this.warn('kv event ignored: unknown worker', { worker_id: wid });
      }
      return { status: 'ignored', reason: 'unknown_worker', blocks: 0 };
    }
    if (typeof wid === 'string' && this.peers.fences.size > 0) this.peers.heardFrom(wid, this.now());
    return this.indexer.applyEvent(event);
  }

  /**
   * Resyncs a worker's index: drops its blocks and forgets its event id (events mode).
   * @returns whether the worker was registered
   */
  resyncWorker(workerId: string): boolean {
    if (!this.byId.has(workerId)) return false;
    this.indexer?.clearWorker(workerId);
    return true;
  }

  /**
   * Stops choosing a worker at once (e.g. a caller marked it down, or a request to it failed with
   * no responders). It stays registered, with its index and load; with a `routerId`, a `fence`
   * message for the other replicas is queued. See `peers.ts` for what unfences it.
   * @returns whether it was registered and not fenced yet
   */
  fence(workerId: string, reason = 'marked_down'): boolean {
    if (!this.byId.has(workerId)) return false;
    return this.peers.fence(workerId, String(reason).slice(0, 200), this.now(), true);
  }

  /** Chooses a fenced worker again (it answered). @returns whether it was fenced */
  unfence(workerId: string): boolean {
    return this.peers.unfence(workerId, 'unfenced', true);
  }

  /** Whether a worker is fenced. */
  isFenced(workerId: string): boolean {
    return this.peers.fences.has(workerId);
  }

  /** The fenced workers and why. */
  fencedWorkers(): Map<string, FenceInfo> {
    return new Map(this.peers.fences);
  }

  /**
   * The messages to publish to the other replicas since the last call, oldest first (empty without
   * a `routerId`). A service sends them on the event plane and passes the others' to
   * {@link KvRouter.applyReplicaMessage}.
   */
  takeReplicaMessages(): ReplicaMessage[] {
    return this.peers.take();
  }

  /**
   * This replica's whole picture (its requests in flight, its fences), to publish when it starts
   * and periodically; undefined without a `routerId`.
   */
  replicaState(): ReplicaStateMessage | undefined {
    return this.peers.state();
  }

  /** Applies another replica's message (validated; never throws on bad input). */
  applyReplicaMessage(message: ReplicaMessage | unknown): ReplicaApplyResult {
    const now = this.now();
    const r = this.peers.apply(message, now, (id) => this.byId.has(id));
    // A peer's decision is an arrival at the fleet too (the work term needs the fleet's rate);
    // a redelivered one is not.
    if (r.applied && r.repeat !== true && (message as { type?: unknown }).type === 'routed') {
      const c = this.byId.get((message as { worker_id: string }).worker_id);
      if (c !== undefined) {
        this.traffic.arrive(now);
        this.traffic.routed(c.load.slot, this.cands.length);
      }
    }
    return r;
  }

  /** Releases the requests of a replica that left (e.g. it left discovery). @returns how many */
  dropReplica(routerId: string): number {
    return this.peers.leave(routerId);
  }

  /**
   * Applies a worker's load report (validated).
   * @returns whether it was applied (false for invalid input or an unregistered worker)
   */
  applyLoad(metrics: LoadMetrics | unknown): boolean {
    const ok = this.load.applyMetrics(metrics);
    const total = ok ? (metrics as LoadMetrics).total_blocks : undefined;
    // What the worker says it can hold caps its index (forged events cannot grow it beyond).
    if (total !== undefined && this.indexer !== undefined) {
      const id = (metrics as LoadMetrics).worker_id;
      if (this.indexer.capOf(id) !== capFor(total)) this.indexer.setWorkerCapacity(id, total);
    }
    if (ok && this.peers.fences.size > 0) this.peers.heardFrom((metrics as LoadMetrics).worker_id, this.now());
    return ok;
  }

  /**
   * Picks a worker for a prompt and, unless `record: false`, records the decision as load (and, in
   * approximate mode, as cached blocks).
   * @param input token ids, or a {@link RouteRequest}
   * @throws NoWorkersError (code `UNAVAILABLE`) when no worker is registered
   * @throws RouterInvalidArgumentError for token ids that are not u32
   */
  route(input: ArrayLike<number> | RouteRequest): RouteDecision {
    const req: RouteRequest | undefined = isRouteRequest(input) ? input : undefined;
    const tokens = req !== undefined ? req.tokenIds : (input as ArrayLike<number>);
    if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
      throw new RouterInvalidArgumentError('tokenIds must be an array of token ids');
    }
    const all = this.cands;
    const exclude = req?.excludeWorkers;
    const fences = this.peers.fences;
    const blocked =
      (exclude !== undefined && exclude.size > 0) || fences.size > 0
        ? (c: Candidate): boolean => fences.has(c.id) || exclude?.has(c.id) === true
        : undefined;
    const search = this.search;
    // Without a search, the context holds every available worker in registration order.
    const cands = search === undefined && blocked !== undefined ? all.filter((c) => !blocked(c)) : all;
    if (cands.length === 0 || (blocked !== undefined && all.every(blocked))) {
      throw new NoWorkersError(
        all.length === 0 ? undefined : `no worker is available to route to (${fences.size} of ${all.length} fenced)`,
      );
    }
    const now = this.now();
    const approx = this.approxIndexer;
    if (approx !== undefined) approx.expire();
    const packed = this.hasher.hash(tokens);
    const core = this.core;
    const seqAt = packed.base + 2;
    const matched = core.score(packed.words, seqAt, PACKED_STRIDE, packed.count);
    const bs = this.options.blockSize;
    const isl = packed.tokens;
    const requestBlocks = Math.ceil(isl / bs);
    const load = this.load;
    load.scoreActive(packed.words, seqAt, PACKED_STRIDE, packed.count);
    const ctx = this.ctx;
    ctx.now = now;
    ctx.ttl = load.metricsTtlMs;
    // Only workers that hold some of the prompt (cached or active) differ from 0 / requestBlocks.
    ctx.anyCached = matched > 0;
    ctx.anyActive = !load.activeOverlapNone;
    ctx.islTokens = isl;
    ctx.requestBlocks = requestBlocks;
    ctx.prefixSharers = load.prefixSharers(packed.words, seqAt, packed.count);
    const record = req?.record !== false;
    // This arrival counts in the rate its own decision uses (a probe, `record: false`, does not).
    if (record) this.traffic.arrive(now);
    ctx.arrivalRate = this.traffic.rate;
    ctx.fleetSize = all.length;
    const allIds = ctx.workerIds;
    let n: number;
    if (search !== undefined) {
      const skip = blocked === undefined ? undefined : (pos: number): boolean => blocked(all[pos]!);
      n = search.choose(now, ctx.ttl, bs, packed.count, skip);
      const pos = search.positions;
      const ids = this.pickedIds;
      ids.length = n;
      for (let i = 0; i < n; i++) ids[i] = all[pos[i]!]!.id;
      ctx.workerIds = ids;
    } else {
      n = cands.length;
      for (let i = 0; i < n; i++) ctx.fill(i, cands[i]!);
      this.fleetLoad(now, ctx.ttl);
      // With excluded workers, entry i must name cands[i] for strategies that read ids.
      if (cands !== all) ctx.workerIds = cands.map((c) => c.id);
    }
    ctx.count = n;
    ctx.tokenIds = tokens;
    let choice;
    try {
      choice = this.strategy.select(ctx as RoutingContext);
    } finally {
      ctx.tokenIds = undefined;
      ctx.workerIds = allIds;
    }
    const idx = choice.index;
    if (!Number.isInteger(idx) || idx < 0 || idx >= n) {
      throw new RouterError('INTERNAL', `strategy ${this.strategy.name} returned index ${String(idx)} of ${n} workers`);
    }
    const chosen = search !== undefined ? all[search.positions[idx]!]! : cands[idx]!;
    const overlap = ctx.overlapBlocks[idx]!;
    const uncached = isl - overlap * bs;
    const requestId = req?.requestId ?? `${this.options.requestIdPrefix}-${++this.seq}`;
    if (requestId.charCodeAt(0) === 0) throw new RouterInvalidArgumentError('requestId must not start with NUL');
    if (record) {
      this.traffic.routed(chosen.load.slot, all.length);
      load.onRoutedPacked(
        requestId,
        chosen.load,
        uncached,
        packed.words,
        seqAt,
        PACKED_STRIDE,
        packed.count,
        requestBlocks - packed.count,
        now,
      );
      if (approx !== undefined) approx.recordPacked(chosen.slot, packed.words, seqAt, PACKED_STRIDE, packed.count);
      const rid = this.peers.routerId;
      if (rid !== undefined) {
        const e = routedEntry(
          requestId,
          chosen.id,
          uncached,
          packed.words,
          seqAt,
          PACKED_STRIDE,
          packed.count,
          requestBlocks - packed.count,
          false,
        );
        this.peers.publish({ type: 'routed', router_id: rid, ...e });
      }
    }
    this.decisions++;
    this.overlapSum += overlap;
    this.promptBlockSum += packed.count;
    const decision: RouteDecision = {
      worker_id: chosen.id,
      request_id: requestId,
      overlap_blocks: overlap,
      isl_tokens: isl,
      uncached_tokens: uncached,
      block_size: bs,
      strategy: this.strategy.name,
      recorded: record,
    };
    if (choice.cost !== undefined) decision.cost = choice.cost;
    return decision;
  }

  /**
   * The context's `busyShare` (share of all registered workers with a request queued or
   * prefilling) and `queuedRequests` (their sum), as the bounded search counts them from its load
   * classes; computed here when there is no search.
   */
  private fleetLoad(now: number, ttl: number): void {
    const all = this.cands;
    let busy = 0;
    let queued = 0;
    for (const c of all) {
      const q = c.load.figures(now, ttl, this.busyFig).prefillRequests;
      if (q >= 1) busy++;
      if (q > 0) queued += q;
    }
    this.ctx.busyShare = all.length === 0 ? 0 : busy / all.length;
    this.ctx.queuedRequests = queued;
  }

  /** The request produced its first token (prefill done). @returns whether it was tracked */
  onFirstToken(requestId: string): boolean {
    const worker = this.peers.fences.size > 0 ? this.load.workerOf(requestId) : undefined;
    if (worker !== undefined) this.peers.unfence(worker, 'first_token', true);
    const ok = this.load.onFirstToken(requestId);
    const rid = this.peers.routerId;
    if (ok && rid !== undefined) this.peers.publish({ type: 'first_token', router_id: rid, request_id: requestId });
    return ok;
  }

  /** The request's stream ended (done, failed or cancelled). @returns whether it was tracked */
  onFinished(requestId: string): boolean {
    const ok = this.load.onFinished(requestId);
    const rid = this.peers.routerId;
    if (ok && rid !== undefined) this.peers.publish({ type: 'finished', router_id: rid, request_id: requestId });
    return ok;
  }

  /** Figures for metrics. O(workers). */
  stats(): RouterStats {
    const idx = this.indexer;
    const counters = idx?.counters ?? { applied: 0, rejected: 0, ignored: 0, gaps: 0 };
    this.approxIndexer?.expire();
    const workers: WorkerStats[] = this.cands.map((c) => {
      const w: WorkerStats = {
        workerId: c.id,
        cachedBlocks: this.core.cachedBlocks(c.slot),
        eventGaps: idx?.eventGaps(c.id) ?? 0,
        routedShare: this.traffic.share(c.load.slot),
        ...this.load.load(c.id)!,
      };
      const last = idx?.lastEventId(c.id);
      if (last !== undefined) w.lastEventId = last;
      const f = this.peers.fences.get(c.id);
      if (f !== undefined) w.fenced = { ...f };
      return w;
    });
    return {
      strategy: this.strategy.name,
      blockSize: this.options.blockSize,
      mode: idx !== undefined ? 'kv_events' : 'approximate',
      workers,
      indexedBlocks: this.core.size,
      indexEntries: this.core.totalEntries,
      decisions: this.decisions,
      inflightRequests: this.load.inflightRequests,
      predictedHitRate: this.promptBlockSum === 0 ? 0 : this.overlapSum / this.promptBlockSum,
      events: {
        applied: counters.applied,
        rejected: counters.rejected,
        ignored: counters.ignored + this.ignoredEvents,
        gaps: counters.gaps,
      },
      replicas: { peerRequests: this.peers.peerRequests, peers: this.peers.peerIds().length },
      search: {
        scoredPerDecision: this.search === undefined || this.decisions === 0 ? 0 : this.search.scored / this.decisions,
        sampledTies: this.search?.sampledTies ?? 0,
      },
      arrivalsPerSecond: this.traffic.rate * 1000,
    };
  }
}

/** The index cap `KvIndexer.setWorkerCapacity` derives from a capacity (to skip no-op updates). */
function capFor(total: number): number {
  return Math.ceil(total + Math.max(64, total / 16));
}

function isRouteRequest(x: ArrayLike<number> | RouteRequest): x is RouteRequest {
  return typeof x === 'object' && x !== null && 'tokenIds' in x;
}
