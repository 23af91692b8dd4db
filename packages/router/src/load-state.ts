/**
 * The per-worker load figures the router's hot path reads: {@link LoadColumns} (one typed array per
 * figure, by slot) and {@link WorkerLoadState} (one worker's view of them). Mutated only by the
 * `LoadTracker`.
 * @packageDocumentation
 */
import type { BlockIndex } from './block-index';
import { ChangedSlots } from './changed-slots';
import type { LoadFigures } from './cost-bound';

/** A worker's effective load figures at one time, as a decision reads them. */
export interface EffectiveLoad extends LoadFigures {
  /** Reported queued requests while fresh, else 0. */
  waiting: number;
}

/**
 * The figures of every worker that a decision reads, one typed array per figure indexed by slot,
 * so that scoring all workers reads a few contiguous arrays instead of one object per worker.
 * {@link WorkerLoadState} is the per-worker view of them.
 */
export class LoadColumns {
  /** See {@link WorkerLoadState.privateBlocks}. */
  privateBlocks = new Float64Array(16);
  /** See {@link WorkerLoadState.loneBlocks}. */
  loneBlocks = new Float64Array(16);
  /** See {@link WorkerLoadState.trackedPrefill}. */
  trackedPrefill = new Float64Array(16);
  /** See {@link WorkerLoadState.inflight}. */
  inflight = new Float64Array(16);
  /** See {@link WorkerLoadState.prefilling}. */
  prefilling = new Float64Array(16);
  /** See {@link WorkerLoadState.reportedAt}. */
  reportedAt = new Float64Array(16);
  /** See {@link WorkerLoadState.reportedTotal}. */
  reportedTotal = new Float64Array(16);
  /** Slots whose figures changed since the router's search last read them. */
  readonly changes = new ChangedSlots();

  /** Notes that a figure of `slot` changed. */
  markChanged(slot: number): void {
    this.changes.mark(slot);
  }

  /** Makes room for `slot` and gives it a new worker's values. */
  reset(slot: number): void {
    if (slot >= this.inflight.length) {
      let n = this.inflight.length;
      while (n <= slot) n *= 2;
      const grow = (a: Float64Array): Float64Array<ArrayBuffer> => {
        const b = new Float64Array(n);
        b.set(a);
        return b;
      };
      this.privateBlocks = grow(this.privateBlocks);
      this.loneBlocks = grow(this.loneBlocks);
      this.trackedPrefill = grow(this.trackedPrefill);
      this.inflight = grow(this.inflight);
      this.prefilling = grow(this.prefilling);
      this.reportedAt = grow(this.reportedAt);
      this.reportedTotal = grow(this.reportedTotal);
    }
    this.privateBlocks[slot] = 0;
    this.loneBlocks[slot] = 0;
    this.trackedPrefill[slot] = 0;
    this.inflight[slot] = 0;
    this.prefilling[slot] = 0;
    this.reportedAt[slot] = Number.NEGATIVE_INFINITY;
    this.reportedTotal[slot] = -1;
    this.markChanged(slot);
  }
}

/**
 * Live per-worker state, read by the router's hot path; mutated only by {@link LoadTracker}.
 * A view of the tracker's {@link LoadColumns} at its slot: once the worker is removed, the slot
 * may go to another worker, so do not keep a state beyond its worker's removal.
 */
export class WorkerLoadState {
  /** Requests routed since the worker was added. */
  routedTotal = 0;
  /** Last reported active blocks, -1 when absent. */
  reportedBlocks = -1;
  /** Last reported active prefill tokens, -1 when absent. */
  reportedPrefill = -1;
  /** Last reported queued requests, -1 when absent. */
  reportedWaiting = -1;

  constructor(
    /** The worker. */
    readonly workerId: string,
    /** Its slot in the tracker's active-block index (and in its {@link LoadColumns}). */
    readonly slot: number,
    private readonly active: BlockIndex,
    private readonly cols: LoadColumns,
  ) {
    cols.reset(slot);
  }

  /** Blocks of running requests that are not shared (numeric loads, partial blocks). */
  get privateBlocks(): number {
    return this.cols.privateBlocks[this.slot]!;
  }
  set privateBlocks(v: number) {
    this.cols.privateBlocks[this.slot] = v;
    this.cols.markChanged(this.slot);
  }

  /**
   * Distinct blocks of running requests in small groups (at most `SMALL_GROUP` (64) requests
   * sharing a first block), which are compared chain to chain instead of indexed.
   */
  get loneBlocks(): number {
    return this.cols.loneBlocks[this.slot]!;
  }
  set loneBlocks(v: number) {
    this.cols.loneBlocks[this.slot] = v;
    this.cols.markChanged(this.slot);
  }

  /** Prompt tokens of running requests not yet prefilled. */
  get trackedPrefill(): number {
    return this.cols.trackedPrefill[this.slot]!;
  }
  set trackedPrefill(v: number) {
    this.cols.trackedPrefill[this.slot] = v;
    this.cols.markChanged(this.slot);
  }

  /** Running requests. */
  get inflight(): number {
    return this.cols.inflight[this.slot]!;
  }
  set inflight(v: number) {
    this.cols.inflight[this.slot] = v;
    this.cols.markChanged(this.slot);
  }

  /** Running requests whose first token has not come (still queued or prefilling). */
  get prefilling(): number {
    return this.cols.prefilling[this.slot]!;
  }
  set prefilling(v: number) {
    this.cols.prefilling[this.slot] = v;
    this.cols.markChanged(this.slot);
  }

  /** When the last report arrived (ms). */
  get reportedAt(): number {
    return this.cols.reportedAt[this.slot]!;
  }
  set reportedAt(v: number) {
    this.cols.reportedAt[this.slot] = v;
    this.cols.markChanged(this.slot);
  }

  /** Last reported capacity in blocks, -1 when never reported. */
  get reportedTotal(): number {
    return this.cols.reportedTotal[this.slot]!;
  }
  set reportedTotal(v: number) {
    this.cols.reportedTotal[this.slot] = v;
    this.cols.markChanged(this.slot);
  }

  /** Active blocks from this router's decisions: distinct shared blocks plus the others. */
  get trackedBlocks(): number {
    return this.active.cachedBlocks(this.slot) + this.loneBlocks + this.privateBlocks;
  }

  /** Effective active blocks at time `now` with reports valid for `ttl` ms. */
  activeBlocks(now: number, ttl: number): number {
    const tracked = this.trackedBlocks;
    return now - this.reportedAt <= ttl && this.reportedBlocks > tracked ? this.reportedBlocks : tracked;
  }

  /** Effective active prefill tokens at time `now`. */
  activePrefill(now: number, ttl: number): number {
    return now - this.reportedAt <= ttl && this.reportedPrefill > this.trackedPrefill
      ? this.reportedPrefill
      : this.trackedPrefill;
  }

  /** Reported waiting requests while fresh, else 0. */
  waiting(now: number, ttl: number): number {
    return now - this.reportedAt <= ttl && this.reportedWaiting > 0 ? this.reportedWaiting : 0;
  }

  /**
   * Writes the effective figures at time `now` into `out`: the tracked ones, each raised to the
   * report's while it is fresh; requests queued or prefilling are the larger of this router's
   * (no first token yet) and the reported waiting.
   */
  figures(now: number, ttl: number, out: EffectiveLoad): EffectiveLoad {
    const prefilling = this.prefilling;
    out.inflight = this.inflight;
    if (now - this.reportedAt <= ttl) {
      out.activeBlocks = this.activeBlocks(now, ttl);
      out.activePrefillTokens = this.activePrefill(now, ttl);
      const waiting = this.waiting(now, ttl);
      out.waiting = waiting;
      out.prefillRequests = waiting > prefilling ? waiting : prefilling;
    } else {
      out.activeBlocks = this.trackedBlocks;
      out.activePrefillTokens = this.trackedPrefill;
      out.waiting = 0;
      out.prefillRequests = prefilling;
    }
    return out;
  }
}

/** One tracked request, as `LoadTracker.forEachRequest` shows it. */
export interface TrackedRequestView {
  /** Its id. */
  requestId: string;
  /** Its worker. */
  workerId: string;
  /** Prompt tokens to prefill (counted until the first token). */
  prefillTokens: number;
  /** Whether its first token came. */
  prefillDone: boolean;
  /** Its shared blocks as (lo, hi) pairs, or null. Valid only during the callback. */
  hashes: readonly number[] | null;
  /** Its blocks that are not shared. */
  privateBlocks: number;
}

/**
 * Longest common prefix, in blocks, of chain `h` with the chains of `members` routed to `w`
 * (all members share `h`'s first block, so it is at least 1 when one is on `w`).
 */
export function maxLcpOnWorker(
  h: readonly number[],
  members: readonly { readonly worker: WorkerLoadState; readonly hashes: readonly number[] | null }[],
  w: WorkerLoadState,
): number {
  let best = 0;
  for (let m = 0; m < members.length; m++) {
    const o = members[m]!;
    if (o.worker !== w) continue;
    const oh = o.hashes!;
    const n = Math.min(h.length, oh.length);
    let k = 2;
    while (k < n && h[k] === oh[k] && h[k + 1] === oh[k + 1]) k += 2;
    if (k / 2 > best) best = k / 2;
  }
  return best;
}
