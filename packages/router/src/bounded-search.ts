/**
 * `BoundedSearch`: picks the workers a decision must score, so that its cost is proportional to the
 * workers sharing the prompt's prefix plus a constant, not to all workers, and its pick is the
 * exhaustive scan's (same minimum, same ties in the same order, so the same random draw).
 *
 * 1. The workers sharing leading blocks with the prompt (indexed or active) come from the last
 *    scores of the KV index and the load tracker. If more than {@link INDIVIDUAL} do, `level` is
 *    the smallest overlap such that at most that many share more (e.g. a system prompt every
 *    worker holds: level = its length); else 0. The index lists its sharing workers in ascending
 *    overlap, so `level` is read off the end of that list unless many share running requests.
 * 2. Those sharing more than `level` are scored one by one.
 * 3. Every other worker shares at most `level` blocks, so its cost is at least
 *    `requestFloor(level) + loadKey(w)` (`cost-bound.ts`). They are walked in ascending `loadKey`
 *    from a heap kept up to date as load changes (the load tracker marks changed slots; a fresh
 *    report is re-keyed when it expires, since the effective load then drops), each one scored,
 *    until `requestFloor + loadKey` exceeds the best cost so far plus the tie tolerance.
 *
 * Per decision: O(INDIVIDUAL + workers sharing running requests + (scored + changed workers) *
 * log(workers)), on top of the index's own walk (O(sharing workers) to list them).
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
}

/** See the module comment. */
export class BoundedSearch {
  /** Load slot -> worker position, or -1. */
  private posOfLoad = new Int32Array(16).fill(-1);
  /** Index slot -> worker position, or -1. */
  private posOfCore = new Int32Array(16).fill(-1);
  /** Load slots by `loadKey`. */
  private readonly heap = new WorkerHeap();
  /** Load slots keyed with a fresh report, by the report's time. */
  private readonly expiry = new WorkerHeap();
  private epoch = 0;
  /** Per position: the epoch it was seen sharing / picked in. */
  private seen = new Int32Array(16);
  private picked = new Int32Array(16);
  private pickedAt = new Int32Array(16);
  private overlapOf = new Int32Array(16);
  private levels = new Int32Array(64);
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
  ) {}

  /** Workers in the heap (test aid). */
  get size(): number {
    return this.heap.size;
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
    for (let i = 0; i < n; i++) {
      this.posOfLoad[loadSlots[i]!] = i;
      this.posOfCore[coreSlots[i]!] = i;
      if (!this.heap.has(loadSlots[i]!)) this.load.columns.markChanged(loadSlots[i]!);
    }
    for (let s = 0; s < old.length; s++) {
      if (old[s]! >= 0 && this.posOfLoad[s]! < 0) {
        this.heap.delete(s);
        this.expiry.delete(s);
      }
    }
    if (this.seen.length < n) {
      const m = n * 2;
      this.seen = new Int32Array(m);
      this.picked = new Int32Array(m);
      this.pickedAt = new Int32Array(m);
      this.overlapOf = new Int32Array(m);
      this.epoch = 0;
    }
  }

  /** A worker's key changed without a load change (e.g. its profile): re-key it next time. */
  touch(loadSlot: number): void {
    this.load.columns.markChanged(loadSlot);
  }

  /** Re-keys the workers whose load changed or whose report expired by `now`. */
  private refresh(now: number, ttl: number, blockSize: number): void {
    const cols = this.load.columns;
    const expiry = this.expiry;
    for (let s = expiry.peek(); s >= 0 && now - expiry.keyOf(s) > ttl; s = expiry.peek()) {
      expiry.delete(s);
      cols.markChanged(s);
    }
    const n = cols.changedCount;
    const changed = cols.changed;
    const reportedAt = cols.reportedAt;
    for (let k = 0; k < n; k++) {
      const s = changed[k]!;
      const pos = s < this.posOfLoad.length ? this.posOfLoad[s]! : -1;
      if (pos < 0) continue;
      const f = this.host.loadAt(pos).figures(now, ttl, this.fig);
      this.heap.set(s, this.bound.loadKey(f, this.host.profileAt(pos), blockSize));
      if (now - reportedAt[s]! <= ttl) expiry.set(s, reportedAt[s]!);
      else expiry.delete(s);
    }
    cols.clearChanged();
  }

  /**
   * Chooses the workers to score for a prompt of `islTokens` tokens (`promptBlocks` full blocks)
   * just scored by the index and the load tracker, and fills the context with them in position
   * order. `blocked(pos)`: workers not to consider (fenced, excluded).
   * @returns how many; their positions are {@link BoundedSearch.positions}
   */
  choose(
    now: number,
    ttl: number,
    islTokens: number,
    blockSize: number,
    promptBlocks: number,
    blocked: ((pos: number) => boolean) | undefined,
  ): number {
    this.refresh(now, ttl, blockSize);
    if (++this.epoch >= 0x7fffffff) {
      this.epoch = 1;
      this.seen.fill(0);
      this.pickedAt.fill(0);
    }
    const epoch = this.epoch;
    const core = this.core;
    const load = this.load;
    const nc = core.scoredCount;
    const na = load.activeScoredCount;
    // 1. The level: the index lists its sharing workers in ascending overlap, so with few active
    // ones the level is read off the end of that list; otherwise from a histogram of both.
    let level = 0;
    if (na > INDIVIDUAL) level = this.levelFor(promptBlocks);
    else if (nc > INDIVIDUAL) level = core.overlap(core.scoredSlot(nc - 1 - INDIVIDUAL));
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
    // 3. The others, least loaded first, while one could still win or tie.
    let floor = Infinity;
    const sharers = host.ctx.prefixSharers ?? 0;
    for (const p of host.profilesInUse()) {
      floor = Math.min(floor, bound.requestFloor(islTokens, blockSize, level, p, sharers));
    }
    const heap = this.heap;
    heap.begin();
    for (let s = heap.next(); s >= 0; s = heap.next()) {
      if (floor + heap.keyOf(s) > best + TOLERANCE * Math.max(1, Math.abs(best))) break;
      const pos = this.posOfLoad[s]!;
      if (pos < 0 || pickedAt[pos] === epoch || (blocked !== undefined && blocked(pos))) continue;
      best = Math.min(best, this.take(m++, pos));
    }
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
   * The smallest overlap such that at most {@link INDIVIDUAL} workers share more, from a histogram
   * of the index's and the load tracker's overlaps (a worker in both counted at the larger).
   */
  private levelFor(promptBlocks: number): number {
    if (this.levels.length <= promptBlocks) this.levels = new Int32Array(promptBlocks * 2 + 1);
    const levels = this.levels;
    levels.fill(0, 0, promptBlocks + 1);
    const core = this.core;
    const load = this.load;
    const epoch = this.epoch;
    const inCore = this.seen;
    for (let k = 0; k < core.scoredCount; k++) {
      const cs = core.scoredSlot(k);
      const pos = cs < this.posOfCore.length ? this.posOfCore[cs]! : -1;
      if (pos < 0) continue;
      inCore[pos] = epoch;
      this.overlapOf[pos] = core.overlap(cs);
      levels[Math.min(promptBlocks, core.overlap(cs))]!++;
    }
    for (let k = 0; k < load.activeScoredCount; k++) {
      const ls = load.activeScoredSlot(k);
      const pos = ls < this.posOfLoad.length ? this.posOfLoad[ls]! : -1;
      if (pos < 0) continue;
      const d = Math.min(promptBlocks, load.activeOverlapAt(ls));
      if (inCore[pos] !== epoch) levels[d]!++;
      else if (d > this.overlapOf[pos]!) {
        levels[this.overlapOf[pos]!]!--;
        levels[d]!++;
      }
    }
    let above = 0;
    for (let l = promptBlocks; l > 0; l--) {
      above += levels[l]!;
      if (above > INDIVIDUAL) return l;
    }
    return 0;
  }
}
