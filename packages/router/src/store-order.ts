/**
 * The order in which a worker's blocks were stored, so that the indexer can evict the oldest when a
 * worker's index outgrows its cap (forged or runaway events cannot grow memory without bound).
 * A FIFO of (lo, hi) sequence hashes, 8 bytes a block; entries of blocks removed since are
 * skipped when popped and dropped when the FIFO is compacted (it is, when it holds more than twice
 * the worker's blocks plus 1,024).
 * @packageDocumentation
 */

/** See the module comment. */
export class StoreOrder {
  private words = new Uint32Array(64);
  private head = 0;
  private tail = 0;

  /** Entries (including stale ones). */
  get length(): number {
    return (this.tail - this.head) / 2;
  }

  /** Appends a stored block. */
  push(lo: number, hi: number): void {
    if (this.tail + 2 > this.words.length) this.makeRoom();
    this.words[this.tail] = lo;
    this.words[this.tail + 1] = hi;
    this.tail += 2;
  }

  /** Removes the oldest entry into `out[0..1]`; false when empty. */
  shift(out: Uint32Array): boolean {
    if (this.head === this.tail) return false;
    out[0] = this.words[this.head]!;
    out[1] = this.words[this.head + 1]!;
    this.head += 2;
    return true;
  }

  /** Keeps only the entries `held(lo, hi)` accepts, in order. */
  compact(held: (lo: number, hi: number) => boolean): void {
    const w = this.words;
    let to = 0;
    for (let i = this.head; i < this.tail; i += 2) {
      if (!held(w[i]!, w[i + 1]!)) continue;
      w[to] = w[i]!;
      w[to + 1] = w[i + 1]!;
      to += 2;
    }
    this.head = 0;
    this.tail = to;
  }

  /** Drops every entry. */
  clear(): void {
    this.head = 0;
    this.tail = 0;
    if (this.words.length > 1024) this.words = new Uint32Array(64);
  }

  private makeRoom(): void {
    const used = this.tail - this.head;
    if (this.head > 0 && used * 2 <= this.words.length) {
      this.words.copyWithin(0, this.head, this.tail);
    } else {
      const w = new Uint32Array(Math.max(64, this.words.length * 2));
      w.set(this.words.subarray(this.head, this.tail));
      this.words = w;
    }
    this.head = 0;
    this.tail = used;
  }
}
