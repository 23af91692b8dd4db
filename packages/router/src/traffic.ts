/**
 * What the `ttft` cost's work term needs to know about the traffic (`ttft-cost.ts`): how fast
 * requests arrive at the fleet, and each worker's share of the recent decisions. `KvRouter` feeds it
 * its own decisions and, with replicas, its peers' (their `routed` messages), so every replica
 * estimates the fleet's rate, not its own 1/N of it. No clock of its own: times are the router's
 * injected `now`.
 * @packageDocumentation
 */

/** Arrivals averaged one by one before the moving average takes over. */
const WARMUP = 20;
/** Weight of a new gap in the moving average of the gaps between arrivals. */
const GAP_ALPHA = 0.05;
/** A worker's share halves over this many decisions per registered worker. */
export const SHARE_HALF_LIFE_PER_WORKER = 4;

/** Arrival rate and per-worker decision shares (worker slots are the load tracker's). */
export class TrafficTracker {
  private last = NaN;
  private gaps = 0;
  private meanGap = 0;
  private counts = new Float64Array(16);
  private total = 0;
  /** Counts are stored multiplied by `scale`; decaying every count is growing the scale. */
  private scale = 1;

  /** A request arrived at `now` (ms); a clock that goes back counts as no gap. */
  arrive(now: number): void {
    if (!Number.isFinite(now)) return;
    if (this.last === this.last) {
      const gap = now > this.last ? now - this.last : 0;
      if (this.gaps < WARMUP) this.meanGap = (this.meanGap * this.gaps + gap) / (this.gaps + 1);
      else this.meanGap += GAP_ALPHA * (gap - this.meanGap);
      this.gaps++;
    }
    if (!(now < this.last)) this.last = now;
  }

  /**
   * Requests per ms arriving at the fleet: 0 until two have arrived. Arrivals at the same instant
   * count, so a burst raises it without bound; callers cap what they derive from it.
   */
  get rate(): number {
    if (this.gaps === 0) return 0;
    return this.meanGap > 0 ? 1 / this.meanGap : Infinity;
  }

  /** A decision went to the worker in `slot`, among `workers` registered workers. */
  routed(slot: number, workers: number): void {
    if (slot >= this.counts.length) {
      const next = new Float64Array(Math.max(slot + 1, this.counts.length * 2));
      next.set(this.counts);
      this.counts = next;
    }
    // Every count decays by 0.5^(1 / half-life) per decision: grow the unit instead.
    this.scale *= Math.pow(2, 1 / (SHARE_HALF_LIFE_PER_WORKER * Math.max(1, workers)));
    this.counts[slot] = this.counts[slot]! + this.scale;
    this.total += this.scale;
    if (this.scale > 1e100) {
      const s = this.scale;
      for (let i = 0; i < this.counts.length; i++) this.counts[i] = this.counts[i]! / s;
      this.total /= s;
      this.scale = 1;
    }
  }

  /** The worker in `slot`'s share of the recent decisions, in [0, 1]. */
  share(slot: number): number {
    if (this.total <= 0 || slot >= this.counts.length) return 0;
    const s = this.counts[slot]! / this.total;
    return s < 1 ? s : 1;
  }

  /** The worker in `slot` left: its decisions no longer count. */
  forget(slot: number): void {
    if (slot >= this.counts.length) return;
    this.total -= this.counts[slot]!;
    if (this.total < 0) this.total = 0;
    this.counts[slot] = 0;
  }
}
