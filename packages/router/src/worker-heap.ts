/**
 * `WorkerHeap`: an indexed binary min-heap of worker slots by a numeric key, with keys changed in
 * place (O(log n)) and a walk over the slots in ascending key order that stops wherever the caller
 * wants: the k smallest cost O(k log k), whatever the number of slots.
 *
 * Equal keys are ordered by a secondary key given with the key (0 by default), then first in, first
 * out: by when the slot was last set or {@link WorkerHeap.rotate}d. A walk that stops among many equal keys and rotates the slots it took
 * sees the next ones the following time, so a sample of equals cycles through all of them (a
 * random salt would not: re-drawing only the smallest leaves the largest behind for ever).
 * @packageDocumentation
 */

/** See the module comment. Slots are small non-negative integers (dense, as the indexes give them). */
export class WorkerHeap {
  /** Heap order: `heap[0]` has the smallest key. */
  private heap = new Int32Array(16);
  /** Slot -> its position in `heap`, or -1. */
  private at = new Int32Array(16).fill(-1);
  /** Slot -> its key (meaningful while the slot is in the heap). */
  private keys = new Float64Array(16);
  /** Slot -> its secondary key. */
  private seconds = new Float64Array(16);
  /** Slot -> its place among equal keys: the tick it was last set or rotated at. */
  private ticks = new Float64Array(16);
  private tick = 0;
  private n = 0;
  // The walk's frontier: heap positions, a min-heap by key of their slot.
  private frontier = new Int32Array(16);
  private fn = 0;

  /** Slots in the heap. */
  get size(): number {
    return this.n;
  }

  /** Whether `slot` is in the heap. */
  has(slot: number): boolean {
    return slot < this.at.length && this.at[slot]! >= 0;
  }

  /** The key of `slot` (NaN when absent). */
  keyOf(slot: number): number {
    return this.has(slot) ? this.keys[slot]! : NaN;
  }

  /** The slot with the smallest key, or -1 when empty. */
  peek(): number {
    return this.n > 0 ? this.heap[0]! : -1;
  }

  /**
   * Inserts `slot` with `key` (and `second`, the order among equal keys), or changes them.
   * @throws RangeError for a negative or non-integer slot, or a NaN key
   */
  set(slot: number, key: number, second = 0): void {
    if (!Number.isInteger(slot) || slot < 0) throw new RangeError(`slot must be an integer >= 0, got ${slot}`);
    if (Number.isNaN(key)) throw new RangeError('key must not be NaN');
    if (slot >= this.at.length) this.growSlots(slot);
    const p = this.at[slot]!;
    if (p < 0) {
      if (this.n === this.heap.length) {
        const h = new Int32Array(this.heap.length * 2);
        h.set(this.heap);
        this.heap = h;
      }
      this.keys[slot] = key;
      this.seconds[slot] = second;
      this.ticks[slot] = ++this.tick;
      this.heap[this.n] = slot;
      this.at[slot] = this.n++;
      this.up(this.n - 1);
      return;
    }
    this.keys[slot] = key;
    this.seconds[slot] = second;
    this.ticks[slot] = ++this.tick;
    this.up(p);
    this.down(this.at[slot]!);
  }

  /** Moves `slot` behind every other slot of its key; no-op when absent. */
  rotate(slot: number): void {
    if (!this.has(slot)) return;
    this.ticks[slot] = ++this.tick;
    this.down(this.at[slot]!);
  }

  /** Whether slot `a` comes before slot `b`: smaller key, then smaller second, then set earlier. */
  private before(a: number, b: number): boolean {
    const ka = this.keys[a]!;
    const kb = this.keys[b]!;
    if (ka !== kb) return ka < kb;
    const sa = this.seconds[a]!;
    const sb = this.seconds[b]!;
    return sa < sb || (sa === sb && this.ticks[a]! < this.ticks[b]!);
  }

  /** Removes `slot`. @returns whether it was in the heap */
  delete(slot: number): boolean {
    if (!this.has(slot)) return false;
    const p = this.at[slot]!;
    this.at[slot] = -1;
    const last = this.heap[--this.n]!;
    if (p === this.n) return true;
    this.heap[p] = last;
    this.at[last] = p;
    this.up(p);
    this.down(this.at[last]!);
    return true;
  }

  /** Starts a walk in ascending key order (ends the previous one); read it with {@link WorkerHeap.next}. */
  begin(): void {
    this.fn = 0;
    if (this.frontier.length < this.n + 1) this.frontier = new Int32Array(this.heap.length + 1);
    if (this.n > 0) this.frontier[this.fn++] = 0;
  }

  /** The slot the walk's {@link WorkerHeap.next} would give, without taking it; -1 at the end. */
  upcoming(): number {
    return this.fn > 0 ? this.heap[this.frontier[0]!]! : -1;
  }

  /**
   * The walk's next slot (keys never decrease along a walk), or -1 once every slot was given. The
   * heap must not change during a walk.
   */
  next(): number {
    if (this.fn === 0) return -1;
    const f = this.frontier;
    const p = f[0]!;
    // Pop the frontier's minimum, then push p's children.
    const lastP = f[--this.fn]!;
    if (this.fn > 0) {
      f[0] = lastP;
      this.frontierDown(0);
    }
    const c = 2 * p + 1;
    if (c < this.n) this.frontierPush(c);
    if (c + 1 < this.n) this.frontierPush(c + 1);
    return this.heap[p]!;
  }

  private frontierPush(p: number): void {
    const f = this.frontier;
    const h = this.heap;
    let i = this.fn++;
    const s = h[p]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(s, h[f[parent]!]!)) break;
      f[i] = f[parent]!;
      i = parent;
    }
    f[i] = p;
  }

  private frontierDown(i: number): void {
    const f = this.frontier;
    const h = this.heap;
    const n = this.fn;
    const p = f[i]!;
    const s = h[p]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.before(h[f[c + 1]!]!, h[f[c]!]!)) c++;
      if (!this.before(h[f[c]!]!, s)) break;
      f[i] = f[c]!;
      i = c;
    }
    f[i] = p;
  }

  private up(i: number): void {
    const h = this.heap;
    const s = h[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const ps = h[parent]!;
      if (!this.before(s, ps)) break;
      h[i] = ps;
      this.at[ps] = i;
      i = parent;
    }
    h[i] = s;
    this.at[s] = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = this.n;
    const s = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.before(h[c + 1]!, h[c]!)) c++;
      const cs = h[c]!;
      if (!this.before(cs, s)) break;
      h[i] = cs;
      this.at[cs] = i;
      i = c;
    }
    h[i] = s;
    this.at[s] = i;
  }

  private growSlots(slot: number): void {
    let n = this.at.length;
    while (n <= slot) n *= 2;
    const at = new Int32Array(n).fill(-1);
    at.set(this.at);
    this.at = at;
    const keys = new Float64Array(n);
    keys.set(this.keys);
    this.keys = keys;
    const seconds = new Float64Array(n);
    seconds.set(this.seconds);
    this.seconds = seconds;
    const ticks = new Float64Array(n);
    ticks.set(this.ticks);
    this.ticks = ticks;
  }
}
