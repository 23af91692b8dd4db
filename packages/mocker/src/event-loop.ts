/**
 * A discrete-event loop on a virtual clock: callbacks scheduled at virtual times run in time order
 * (equal times in scheduling order), and the clock jumps from one to the next. No real time passes,
 * so a simulation is deterministic and as fast as its callbacks.
 * @packageDocumentation
 */
import { RouterInvalidArgumentError } from '@dynamo-ts/router';

interface Entry {
  at: number;
  seq: number;
  fn: () => void;
}

/** See the module comment. */
export class VirtualEventLoop {
  private heap: Entry[] = [];
  private seq = 0;
  private current: number;
  private ran = 0;

  /** @param start the initial virtual time, ms; default 0 */
  constructor(start = 0) {
    this.current = start;
  }

  /** The virtual time, ms. */
  get now(): number {
    return this.current;
  }

  /** Callbacks waiting. */
  get pending(): number {
    return this.heap.length;
  }

  /** Callbacks run so far. */
  get executed(): number {
    return this.ran;
  }

  /** A clock function reading this loop's time (for `KvRouter({ now })`). */
  readonly clock = (): number => this.current;

  /**
   * Runs `fn` at virtual time `at` (not before now: earlier times run now).
   * @throws RouterInvalidArgumentError when `at` is not a finite number
   */
  schedule(at: number, fn: () => void): void {
    if (typeof at !== 'number' || !Number.isFinite(at)) {
      throw new RouterInvalidArgumentError(`schedule time must be a finite number, got ${String(at)}`);
    }
    const e: Entry = { at: at < this.current ? this.current : at, seq: this.seq++, fn };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(e, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  /** Runs `fn` `delay` ms from now. */
  after(delay: number, fn: () => void): void {
    this.schedule(this.current + delay, fn);
  }

  /**
   * Runs callbacks in time order until none is left (or the next is after `until`).
   * @returns callbacks run by this call
   */
  run(until = Infinity): number {
    let n = 0;
    const h = this.heap;
    while (h.length > 0 && h[0]!.at <= until) {
      const top = h[0]!;
      const last = h.pop()!;
      if (h.length > 0) {
        let i = 0;
        const len = h.length;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= len) break;
          const r = l + 1;
          const c = r < len && less(h[r]!, h[l]!) ? r : l;
          if (!less(h[c]!, last)) break;
          h[i] = h[c]!;
          i = c;
        }
        h[i] = last;
      }
      this.current = top.at;
      n++;
      this.ran++;
      top.fn();
    }
    if (until !== Infinity && until > this.current) this.current = until;
    return n;
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
