/**
 * `BoundedSearch`: picks the workers a decision must score, so that its cost is proportional to the
 * workers sharing the prompt's prefix plus a constant, not to all workers, and its pick has the
 * exhaustive scan's minimum cost (the same worker unless more than {@link SEARCH_TIES} others tie it
 * exactly; then one of a rotating sample of the tied ones).
 *
 * 1. The workers sharing leading blocks with the prompt (indexed or active) come from the last
 *    scores of the KV index and the load tracker. `level` is the smallest overlap such that at
 *    most {@link INDIVIDUAL} of the index's sharing workers, and at most that many of the running
 *    requests' workers, share more (e.g. a system prompt every worker holds: level = its length;
 *    0 when few share). The index lists its sharing workers in ascending overlap, so its part is
 *    read off the end of that list; the running requests' from a histogram of their overlaps.
 * 2. Those sharing more than `level` are scored one by one.
 * 3. Every other worker shares at most `level` blocks, so its cost is at least
 *    `requestFloor(level) + loadKey(w)` (`cost-bound.ts`). They are walked in ascending `loadKey`
 *    from a heap kept up to date as load changes (the load tracker marks changed slots; a fresh
 *    report is re-keyed when it expires, since the effective load then drops), each one scored,
 *    until `requestFloor + loadKey` exceeds the best cost so far plus the tie tolerance, or
 *    {@link SEARCH_TIES} workers that could at best tie were scored (equal keys come first in,
 *    first out, and the sampled ones go to the back: many exact ties are sampled in rotation).
 *
 * Per decision: O(INDIVIDUAL + workers sharing running requests + (scored + changed workers) *
 * (log(workers) + load classes)), on top of the index's own walk (O(sharing workers) to list them).
 * @packageDocumentation
 */
import type { BlockIndex } from './block-index';
import type { CostBound } from './cost-bound';
import type { LoadTracker } from './load';
import type { EffectiveLoad, WorkerLoadState } from './load-state';
import type { RoutingContext } from './strategies/strategy';
import type { EngineProfile } from './ttft-cost';
import { WorkerHeap } from './worker-heap';

/** Sharing workers scored one by one at most (unless fewer share a longer prefix). */
export const INDIVIDUAL = 32;

/**
 * Workers that can at best tie the best cost (their bound equals it) scored at most: past that
 * many, the walk stops. Equal load keys are common (idle workers, equal queues of equal prompts),
 * and scoring every tied worker would make the decision O(workers) again; the heaps give equal
 * keys first in, first out and the sampled ones go to the back, so the sample rotates over all.
 */
export const SEARCH_TIES = 8;

/**
 * Slack added to the best cost when deciding whether a worker could still tie: above the
 * scheduler's own tie tolerance (1e-9 relative) and the rounding of the bound's sums.
 */
const TOLERANCE = 1e-8;

/** What the search reads from its router. */
export interface SearchHost {
  /** The context the router fills (arrays at least as long as the workers). */
  readonly ctx: RoutingContext;
  /** Fills context entry `i` with the worker at position `pos` (registration order). */
  fill(i: number, pos: number): void;
  /** The load state of the worker at `pos`. */
  loadAt(pos: number): WorkerLoadState;
  /** The engine profile of the worker at `pos` (undefined: the strategy's). */
  profileAt(pos: number): EngineProfile | undefined;
  /** Every distinct profile in use (undefined for the strategy's own). */
  profilesInUse(): readonly (EngineProfile | undefined)[];
  /**
   * Sets the context's `busyShare` (workers outside load class 0 over all workers) and
   * `queuedRequests` (the sum of the workers' queued or prefilling requests) before the floors,
   * which may read them, are computed.
   */
  setFleetLoad(busyShare: number, queuedRequests: number): void;
}

/** See the module comment. */
export class BoundedSearch {
  /** Load slot -> worker position, or -1. */
  private posOfLoad = new Int32Array(16).fill(-1);
  /** Index slot -> worker position, or -1. */
  private posOfCore = new Int32Array(16).fill(-1);
  /** Worker position -> its index slot and load slot. */
  private coreOfPos = new Int32Array(16);
  private loadOfPos = new Int32Array(16);
  /** Per load class, its load slots by `loadKey`. */
  private readonly heaps: WorkerHeap[];
  /** Load slot -> the class heap it is in, or -1. */
  private classOf = new Int8Array(16).fill(-1);
  /** Per class: the request floor of the current decision. */
  private readonly floors: Float64Array;
  /** Load slots keyed with a fresh report, by the report's time. */
  private readonly expiry = new WorkerHeap();
  private epoch = 0;
  /** Context entry -> worker position, for the last decision. */
  private picked = new Int32Array(16);
  /** Per position: the epoch it was picked in. */
  private pickedAt = new Int32Array(16);
  private levels = new Int32Array(64);
  /** Load slots scored by the last walk. */
  private walked = new Int32Array(16);
  private readonly fig: EffectiveLoad = {
    activeBlocks: 0,
    activePrefillTokens: 0,
    inflight: 0,
    prefillRequests: 0,
    waiting: 0,
  };

  constructor(
    private readonly bound: CostBound,
    private readonly core: BlockIndex,
    private readonly load: LoadTracker,
    private readonly host: SearchHost,
  ) {
    if (!Number.isInteger(bound.classes) || bound.classes < 1 || bound.classes > 127) {
      throw new RangeError(`costBound.classes must be an integer in [1, 127], got ${bound.classes}`);
    }
    core.trackCountChanges();
    this.heaps = Array.from({ length: bound.classes }, () => new WorkerHeap());
    this.floors = new Float64Array(bound.classes);
  }

  /** Workers scored, over all decisions. */
  scored = 0;
  /** Each load slot's queued or prefilling requests when it was last keyed, and their sum. */
  private queuedOf = new Float64Array(16);
  private queuedTotal = 0;
  /** Decisions whose walk stopped at {@link SEARCH_TIES} workers that could at best tie. */
  sampledTies = 0;

  /** Workers in the heaps (test aid). */
  get size(): number {
    let n = 0;
    for (const h of this.heaps) n += h.size;
    return n;
  }

  /** Puts load slot `s` in class `cls` with `key`. */
  private place(s: number, cls: number, key: number, second: number): void {
    if (s >= this.classOf.length) {
      const c = new Int8Array(Math.max(s + 1, this.classOf.length * 2)).fill(-1);
      c.set(this.classOf);
      this.classOf = c;
    }
    const old = this.classOf[s]!;
    if (old >= 0 && old !== cls) this.heaps[old]!.delete(s);
    this.classOf[s] = cls;
    this.heaps[cls]!.set(s, key, second);
  }

  /** Drops load slot `s` from its class heap. */
  private unplace(s: number): void {
    const old = s < this.classOf.length ? this.classOf[s]! : -1;
    if (old < 0) return;
    this.heaps[old]!.delete(s);
    this.classOf[s] = -1;
    this.setQueued(s, 0);
  }

  /** Records load slot `s`'s queued requests in the fleet's sum. */
  private setQueued(s: number, q: number): void {
    if (s >= this.queuedOf.length) {
      const next = new Float64Array(Math.max(s + 1, this.queuedOf.length * 2));
      next.set(this.queuedOf);
      this.queuedOf = next;
    }
    const v = q > 0 && Number.isFinite(q) ? q : 0;
    this.queuedTotal += v - this.queuedOf[s]!;
    this.queuedOf[s] = v;
    // Rounding drift of the running sum stays below a request; it cannot go negative.
    if (this.queuedTotal < 0.5) this.queuedTotal = Math.max(0, Math.round(this.queuedTotal));
  }

  private placed(s: number): boolean {
    return s < this.classOf.length && this.classOf[s]! >= 0;
  }

  /**
   * The workers changed: `coreSlots[pos]` and `loadSlots[pos]` for each position `pos < n`. Workers
   * that left are dropped from the heap; new ones are keyed at the next {@link BoundedSearch.choose}.
   */
  setWorkers(coreSlots: Int32Array, loadSlots: Int32Array, n: number): void {
    const old = this.posOfLoad.slice();
    let need = 0;
    for (let i = 0; i < n; i++) need = Math.max(need, loadSlots[i]! + 1, coreSlots[i]! + 1);
    if (need > this.posOfLoad.length) {
      this.posOfLoad = new Int32Array(need * 2);
      this.posOfCore = new Int32Array(need * 2);
    }
    this.posOfLoad.fill(-1);
    this.posOfCore.fill(-1);
    if (this.coreOfPos.length < n) {
      this.coreOfPos = new Int32Array(n * 2);
      this.loadOfPos = new Int32Array(n * 2);
    }
    for (let i = 0; i < n; i++) {
      this.posOfLoad[loadSlots[i]!] = i;
      this.posOfCore[coreSlots[i]!] = i;
      this.coreOfPos[i] = coreSlots[i]!;
      this.loadOfPos[i] = loadSlots[i]!;
      if (!this.placed(loadSlots[i]!)) this.load.columns.markChanged(loadSlots[i]!);
    }
    for (let s = 0; s < old.length; s++) {
      if (old[s]! >= 0 && this.posOfLoad[s]! < 0) {
        this.unplace(s);
        this.expiry.delete(s);
      }
    }
    if (this.pickedAt.length < n) {
      const m = n * 2;
      this.picked = new Int32Array(m);
      this.pickedAt = new Int32Array(m);
      this.epoch = 0;
    }
  }

  /** A worker's key changed without a load change (e.g. its profile): re-key it next time. */
  touch(loadSlot: number): void {
    this.load.columns.markChanged(loadSlot);
  }

  /** An index slot's cached-block count changed: re-key its worker. */
  private readonly onCountChange = (cs: number): void => {
    const pos = cs < this.posOfCore.length ? this.posOfCore[cs]! : -1;
    if (pos >= 0) this.load.columns.markChanged(this.loadOfPos[pos]!);
  };

  /**
   * Re-keys the workers whose load or cached-block count changed, or whose report expired by
   * `now`. Equal keys are ordered by cached blocks (fewest first), the scheduler's tiebreak, so a
   * sample of tied workers holds the emptiest caches.
   */
  private refresh(now: number, ttl: number, blockSize: number): void {
    const cols = this.load.columns;
    const expiry = this.expiry;
    this.core.takeCountChanges(this.onCountChange);
    for (let s = expiry.peek(); s >= 0 && now - expiry.keyOf(s) > ttl; s = expiry.peek()) {
      expiry.delete(s);
      cols.markChanged(s);
    }
    const changes = cols.changes;
    const n = changes.count;
    const changed = changes.slots;
    const reportedAt = cols.reportedAt;
    for (let k = 0; k < n; k++) {
      const s = changed[k]!;
      const pos = s < this.posOfLoad.length ? this.posOfLoad[s]! : -1;
      if (pos < 0) continue;
      const f = this.host.loadAt(pos).figures(now, ttl, this.fig);
      const cls = this.bound.loadClass(f);
      if (!(cls >= 0 && cls < this.heaps.length) || !Number.isInteger(cls)) {
        throw new RangeError(`costBound.loadClass must give an integer in [0, ${this.heaps.length}), got ${cls}`);
      }
      const cached = this.core.cachedBlocks(this.coreOfPos[pos]!);
      this.place(s, cls, this.bound.loadKey(f, this.host.profileAt(pos), blockSize), cached);
      this.setQueued(s, f.prefillRequests);
      if (now - reportedAt[s]! <= ttl) expiry.set(s, reportedAt[s]!);
      else expiry.delete(s);
    }
    changes.clear();
  }

  /**
   * Chooses the workers to score for the prompt of the host's context (`promptBlocks` full
   * blocks) just scored by the index and the load tracker, and fills the context with them in
   * position order. `blocked(pos)`: workers not to consider (fenced, excluded).
   * @returns how many; their positions are {@link BoundedSearch.positions}
   */
  choose(
    now: number,
    ttl: number,
    blockSize: number,
    promptBlocks: number,
    blocked: ((pos: number) => boolean) | undefined,
  ): number {
    this.refresh(now, ttl, blockSize);
    const heaps = this.heaps;
    if (heaps.length > 1) {
      let all = 0;
      for (const h of heaps) all += h.size;
      this.host.setFleetLoad(all > 0 ? (all - heaps[0]!.size) / all : 0, this.queuedTotal);
    } else this.host.setFleetLoad(0, this.queuedTotal);
    if (++this.epoch >= 0x7fffffff) {
      this.epoch = 1;
      this.pickedAt.fill(0);
    }
    const epoch = this.epoch;
    const core = this.core;
    const load = this.load;
    const nc = core.scoredCount;
    const na = load.activeScoredCount;
    // 1. The level: the index lists its sharing workers in ascending overlap, so its part is read
    // off the end of that list; the running requests' part from a histogram of their overlaps.
    // Any level is correct (the floor holds for every worker sharing at most it); this one keeps
    // the workers scored one by one to at most INDIVIDUAL from each list.
    let level = nc > INDIVIDUAL ? core.overlap(core.scoredSlot(nc - 1 - INDIVIDUAL)) : 0;
    if (na > INDIVIDUAL) level = Math.max(level, this.activeLevel(promptBlocks));
    // 2. Those sharing more than `level` (the end of the index's list, and the active ones), one
    // by one.
    const bound = this.bound;
    const host = this.host;
    const picked = this.picked;
    const pickedAt = this.pickedAt;
    let m = 0;
    let best = Infinity;
    const posOfCore = this.posOfCore;
    const posOfLoad = this.posOfLoad;
    for (let k = nc - 1; k >= 0; k--) {
      const cs = core.scoredSlot(k);
      if (core.overlap(cs) <= level) break;
      const pos = cs < posOfCore.length ? posOfCore[cs]! : -1;
      if (pos < 0 || pickedAt[pos] === epoch || (blocked !== undefined && blocked(pos))) continue;
      best = Math.min(best, this.take(m++, pos));
    }
    for (let k = 0; k < na; k++) {
      const ls = load.activeScoredSlot(k);
      if (load.activeOverlapAt(ls) <= level) continue;
      const pos = ls < posOfLoad.length ? posOfLoad[ls]! : -1;
      if (pos < 0 || pickedAt[pos] === epoch || (blocked !== undefined && blocked(pos))) continue;
      best = Math.min(best, this.take(m++, pos));
    }
    // 3. The others, least bound first (a merge of the class heaps' walks), while one could still
    // win or tie.
    const floors = this.floors;
    const profiles = host.profilesInUse();
    for (let c = 0; c < heaps.length; c++) {
      let floor = Infinity;
      if (heaps[c]!.size > 0) {
        for (const p of profiles) {
          floor = Math.min(floor, bound.requestFloor(host.ctx, level, p, c));
        }
        heaps[c]!.begin();
      }
      floors[c] = floor;
    }
    let walked = this.walked;
    let nw = 0;
    let nt = 0;
    let cut = false;
    for (;;) {
      let lb = Infinity;
      let hc = -1;
      for (let c = 0; c < heaps.length; c++) {
        const f = floors[c]!;
        if (f === Infinity) continue;
        const h = heaps[c]!;
        const u = h.upcoming();
        if (u < 0) {
          floors[c] = Infinity;
          continue;
        }
        const b = bound.bound(host.ctx, c, f, h.keyOf(u));
        if (b < lb) {
          lb = b;
          hc = c;
        }
      }
      if (hc < 0) break;
      const slack = TOLERANCE * Math.max(1, Math.abs(best));
      if (lb > best + slack) break;
      const h = heaps[hc]!;
      const s = h.next();
      const pos = this.posOfLoad[s]!;
      if (pos < 0 || pickedAt[pos] === epoch || (blocked !== undefined && blocked(pos))) continue;
      if (lb >= best - slack) {
        // This one and all after it can at best tie: a sample of SEARCH_TIES of them is enough.
        if (nt === SEARCH_TIES) {
          cut = true;
          break;
        }
        nt++;
      }
      if (nw === walked.length) {
        walked = new Int32Array(nw * 2);
        walked.set(this.walked);
        this.walked = walked;
      }
      walked[nw++] = s;
      best = Math.min(best, this.take(m++, pos));
    }
    // The walk's workers go behind their equals, so the next such walk samples the next ones.
    if (cut) {
      this.sampledTies++;
      for (let k = 0; k < nw; k++) heaps[this.classOf[walked[k]!]!]!.rotate(walked[k]!);
    }
    this.scored += m;
    // In registration order, as the exhaustive scan sees them.
    const order = picked.subarray(0, m).sort();
    for (let i = 0; i < m; i++) host.fill(i, order[i]!);
    return m;
  }

  /** Scores the worker at `pos` as context entry `i`; @returns its cost. */
  private take(i: number, pos: number): number {
    this.host.fill(i, pos);
    this.pickedAt[pos] = this.epoch;
    this.picked[i] = pos;
    return this.bound.cost(this.host.ctx, i);
  }

  /** Positions of the workers the last {@link BoundedSearch.choose} filled, in context order. */
  get positions(): Int32Array {
    return this.picked;
  }

  /**
   * The smallest overlap such that at most {@link INDIVIDUAL} of the running requests' workers
   * share more of the prompt (a histogram of the load tracker's overlaps: O(active sharers)).
   */
  private activeLevel(promptBlocks: number): number {
    if (this.levels.length <= promptBlocks) this.levels = new Int32Array(promptBlocks * 2 + 1);
    const levels = this.levels;
    levels.fill(0, 0, promptBlocks + 1);
    const load = this.load;
    for (let k = 0; k < load.activeScoredCount; k++) {
      levels[Math.min(promptBlocks, load.activeOverlapAt(load.activeScoredSlot(k)))]!++;
    }
    let above = 0;
    for (let l = promptBlocks; l > 0; l--) {
      above += levels[l]!;
      if (above > INDIVIDUAL) return l;
    }
    return 0;
  }
}
