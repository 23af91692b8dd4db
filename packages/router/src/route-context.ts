/**
 * The mutable {@link RoutingContext} `KvRouter` fills for each decision, and the one function that
 * fills an entry of it from a worker's index and load state.
 * @packageDocumentation
 */
import type { BlockIndex } from './block-index';
import type { RandomSource } from './common';
import type { LoadTracker } from './load';
import type { EffectiveLoad, WorkerLoadState } from './load-state';
import type { RoutingContext } from './strategies/strategy';
import type { TrafficTracker } from './traffic';
import type { EngineProfile } from './ttft-cost';

/** A registered worker as the router keeps it. */
export interface Candidate {
  id: string;
  /** Its slot in the KV index. */
  slot: number;
  load: WorkerLoadState;
  profile: EngineProfile | undefined;
}

/** A context whose arrays are reused across decisions (entries beyond `count` are stale). */
export class RouteContext implements RoutingContext {
  count = 0;
  workerIds: string[] = [];
  overlapBlocks: Float64Array = new Float64Array(16);
  activeBlocks: Float64Array = new Float64Array(16);
  newBlocks: Float64Array = new Float64Array(16);
  activePrefillTokens: Float64Array = new Float64Array(16);
  cachedBlocks: Float64Array = new Float64Array(16);
  waiting: Float64Array = new Float64Array(16);
  inflight: Float64Array = new Float64Array(16);
  prefillRequests: Float64Array = new Float64Array(16);
  totalBlocks: Float64Array = new Float64Array(16);
  routedShare: Float64Array = new Float64Array(16);
  profiles: (EngineProfile | undefined)[] = [];
  tokenIds: ArrayLike<number> | undefined = undefined;
  islTokens = 0;
  requestBlocks = 0;
  prefixSharers = 0;
  arrivalRate = 0;
  busyShare = 0;
  queuedRequests = 0;
  fleetSize = 0;
  // The decision's inputs the entries are filled from (see `fill`).
  now = 0;
  ttl = 0;
  anyCached = false;
  anyActive = false;
  private readonly fig: EffectiveLoad = {
    activeBlocks: 0,
    activePrefillTokens: 0,
    inflight: 0,
    prefillRequests: 0,
    waiting: 0,
  };

  constructor(
    readonly blockSize: number,
    readonly random: RandomSource,
    private readonly core: BlockIndex,
    private readonly load: LoadTracker,
    private readonly traffic: TrafficTracker,
  ) {}

  /** Makes the arrays hold at least `n` entries. */
  ensure(n: number): void {
    const cap = this.overlapBlocks.length;
    if (n <= cap) return;
    const grow = (): Float64Array => new Float64Array(Math.max(n, cap * 2));
    this.overlapBlocks = grow();
    this.activeBlocks = grow();
    this.newBlocks = grow();
    this.activePrefillTokens = grow();
    this.cachedBlocks = grow();
    this.waiting = grow();
    this.inflight = grow();
    this.prefillRequests = grow();
    this.totalBlocks = grow();
    this.routedShare = grow();
  }

  /**
   * Fills entry `i` with worker `c`, after the index and the load tracker scored the prompt
   * (`anyCached`, `anyActive`: whether anyone shares a block, else the scores are not read).
   */
  fill(i: number, c: Candidate): void {
    const ls = c.load.slot;
    this.overlapBlocks[i] = this.anyCached ? this.core.overlap(c.slot) : 0;
    this.newBlocks[i] = this.anyActive ? this.requestBlocks - this.load.activeOverlapAt(ls) : this.requestBlocks;
    this.cachedBlocks[i] = this.core.cachedBlocks(c.slot);
    const total = this.load.columns.reportedTotal[ls]!;
    this.totalBlocks[i] = total > 0 ? total : 0;
    this.profiles[i] = c.profile;
    this.routedShare[i] = this.traffic.share(ls);
    const f = c.load.figures(this.now, this.ttl, this.fig);
    this.inflight[i] = f.inflight;
    this.activeBlocks[i] = f.activeBlocks;
    this.activePrefillTokens[i] = f.activePrefillTokens;
    this.waiting[i] = f.waiting;
    this.prefillRequests[i] = f.prefillRequests;
  }
}
