/**
 * `OwnerSets`: the KV index's sets of workers sharing a block, as bitsets of `words` 32-bit words
 * each, laid out one after another in `masks` (set `id` at `masks[id * words ...]`), with the
 * number of bits set per set. Freed sets are reused. The index's hot loop reads `masks` and
 * `words` directly.
 * @packageDocumentation
 */

/** Most sets at once: the index codes a set as `2^31 + id` below `2^32 - 1`. */
const MAX_SETS = 0xffffffff - 0x80000000;

/** See the module comment. */
export class OwnerSets {
  /** 32-bit words per set (grows with the number of workers). */
  words = 1;
  /** The sets' bits, `words` per set. */
  masks = new Uint32Array(16);
  /** Bits set per set. */
  size = new Int32Array(16);
  private count = 0;
  private readonly free: number[] = [];

  /** Sets in use. */
  get live(): number {
    return this.count - this.free.length;
  }

  /** Bytes held. */
  get byteLength(): number {
    return this.masks.byteLength + this.size.byteLength;
  }

  /** Whether set `id` holds `slot`. */
  has(id: number, slot: number): boolean {
    return ((this.masks[id * this.words + (slot >>> 5)]! >>> (slot & 31)) & 1) === 1;
  }

  /** Adds `slot` to set `id` (it must not hold it). */
  add(id: number, slot: number): void {
    const i = id * this.words + (slot >>> 5);
    this.masks[i] = this.masks[i]! | (1 << (slot & 31));
    this.size[id]!++;
  }

  /** Removes `slot` from set `id` (it must hold it). */
  remove(id: number, slot: number): void {
    const i = id * this.words + (slot >>> 5);
    this.masks[i] = this.masks[i]! & ~(1 << (slot & 31));
    this.size[id]!--;
  }

  /** The lowest slot in set `id`, or -1. */
  first(id: number): number {
    const W = this.words;
    for (let w = 0; w < W; w++) {
      const m = this.masks[id * W + w]!;
      if (m !== 0) return w * 32 + 31 - Math.clz32(m & -m);
    }
    return -1;
  }

  /** A new empty set's id. @throws Error past {@link MAX_SETS} */
  create(): number {
    const free = this.free.pop();
    if (free !== undefined) return free;
    if (this.count >= MAX_SETS) throw new Error('too many shared blocks for one index (2^31 - 1)');
    const id = this.count++;
    if (id >= this.size.length) {
      const size = new Int32Array(this.size.length * 2);
      size.set(this.size);
      this.size = size;
      const masks = new Uint32Array(size.length * this.words);
      masks.set(this.masks);
      this.masks = masks;
    }
    return id;
  }

  /** Empties set `id` and gives its id back for reuse. */
  release(id: number): void {
    const W = this.words;
    for (let w = 0; w < W; w++) this.masks[id * W + w] = 0;
    this.size[id] = 0;
    this.free.push(id);
  }

  /** Re-lays the sets out with `words` words each (more workers). */
  widen(words: number): void {
    const old = this.masks;
    const W = this.words;
    const masks = new Uint32Array(this.size.length * words);
    for (let id = 0; id < this.count; id++) {
      for (let w = 0; w < W; w++) masks[id * words + w] = old[id * W + w]!;
    }
    this.masks = masks;
    this.words = words;
  }
}
