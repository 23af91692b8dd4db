/**
 * An open-addressing hash table keyed by 64-bit values given as (lo, hi) u32 halves, with one or
 * two u32 value words per entry, interleaved in one Uint32Array so that a probe touches one cache
 * line and no per-entry object exists (nothing for the garbage collector to trace):
 * - one value word: `[keyLo, keyHi, v0]`, 12 bytes per slot; a free slot has v0 = 0xFFFFFFFF, so
 *   that value cannot be stored;
 * - two value words: `[keyLo, keyHi, v0, v1, used]`, 20 bytes per slot.
 * Linear probing with backward-shift deletion (no tombstones); the load factor stays within
 * [1/8, 5/8] above the minimum capacity.
 *
 * {@link U64Table.find} and {@link U64Table.insert} return the entry's offset `e` in
 * {@link U64Table.data}; its values are `data[e + V0]` and `data[e + V1]`. Offsets are stable until
 * the next insertion or removal (either may rehash).
 * Internal module.
 * @packageDocumentation
 */

const MAX_LOAD = 0.625;
const MIN_CAPACITY = 16;
const KEY_LO = 0;
const KEY_HI = 1;
/** Offset of the first value word in an entry. */
export const V0 = 2;
/** Offset of the second value word in an entry (tables with two value words). */
export const V1 = 3;
/** Offset of the low key half in an entry. */
export const KEY_LO_OFFSET = KEY_LO;
/** Offset of the high key half in an entry. */
export const KEY_HI_OFFSET = KEY_HI;
/** The value word marking a free slot in one-value tables. */
export const FREE = 0xffffffff;

/** Home slot of a key: a cheap mix of both halves (keys are usually hashes already). */
function home(lo: number, hi: number, mask: number): number {
  let h = Math.imul(lo ^ (hi >>> 16), 0x9e3779b1) ^ Math.imul(hi, 0x85ebca77);
  h ^= h >>> 15;
  return h & mask;
}

/** See the module comment. */
export class U64Table {
  /** Interleaved entries; see the module comment. */
  data: Uint32Array;
  /** Words per slot: 3 (one value word) or 5 (two). */
  readonly stride: number;
  /** Number of entries. */
  size = 0;
  /** Whether the last {@link U64Table.insert} added a new entry. */
  inserted = false;
  private mask: number;
  /** Offset of the word telling whether a slot is used, and its value when free. */
  private readonly occ: number;
  private readonly free: number;

  constructor(options: { twoWords?: boolean; capacity?: number } = {}) {
    const two = options.twoWords === true;
    this.stride = two ? 5 : 3;
    this.occ = two ? 4 : V0;
    this.free = two ? 0 : FREE;
    let cap = MIN_CAPACITY;
    while (cap * MAX_LOAD < (options.capacity ?? 0)) cap *= 2;
    this.mask = cap - 1;
    this.data = this.allocate(cap);
  }

  /** Number of slots. */
  get capacity(): number {
    return this.mask + 1;
  }

  /** Bytes held by the table. */
  get byteLength(): number {
    return this.data.byteLength;
  }

  /** Offset of the key's entry, or -1. */
  find(lo: number, hi: number): number {
    const mask = this.mask;
    const d = this.data;
    const st = this.stride;
    const occ = this.occ;
    const free = this.free;
    let i = home(lo, hi, mask);
    for (;;) {
      const e = i * st;
      if (d[e + occ] === free) return -1;
      if (d[e + KEY_LO] === lo && d[e + KEY_HI] === hi) return e;
      i = (i + 1) & mask;
    }
  }

  /**
   * Offset of the key's entry, inserting it (values zeroed) when absent; {@link U64Table.inserted}
   * tells which.
   */
  insert(lo: number, hi: number): number {
    if (this.size + 1 > (this.mask + 1) * MAX_LOAD) this.rehash((this.mask + 1) * 2);
    const mask = this.mask;
    const d = this.data;
    const st = this.stride;
    const occ = this.occ;
    const free = this.free;
    let i = home(lo, hi, mask);
    for (;;) {
      const e = i * st;
      if (d[e + occ] === free) {
        d[e + KEY_LO] = lo;
        d[e + KEY_HI] = hi;
        d[e + V0] = 0;
        if (st === 5) {
          d[e + V1] = 0;
          d[e + 4] = 1;
        }
        this.size++;
        this.inserted = true;
        return e;
      }
      if (d[e + KEY_LO] === lo && d[e + KEY_HI] === hi) {
        this.inserted = false;
        return e;
      }
      i = (i + 1) & mask;
    }
  }

  /** Whether the slot at offset `e` (a multiple of the stride) holds an entry. */
  isUsed(e: number): boolean {
    return this.data[e + this.occ] !== this.free;
  }

  /** Removes the entry at offset `e`; may shrink the table. */
  removeAt(e: number): void {
    const mask = this.mask;
    const d = this.data;
    const st = this.stride;
    const occ = this.occ;
    const free = this.free;
    let i = e / st;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const ej = j * st;
      if (d[ej + occ] === free) break;
      const k = home(d[ej + KEY_LO]!, d[ej + KEY_HI]!, mask);
      // Move j back to i unless its home lies cyclically in (i, j].
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (!stays) {
        const to = i * st;
        for (let w = 0; w < st; w++) d[to + w] = d[ej + w]!;
        i = j;
      }
    }
    d[i * st + occ] = free;
    this.size--;
    const cap = mask + 1;
    if (cap > MIN_CAPACITY && this.size * 8 < cap) this.rehash(cap / 2);
  }

  /** Removes the key; returns whether it was present. */
  delete(lo: number, hi: number): boolean {
    const e = this.find(lo, hi);
    if (e < 0) return false;
    this.removeAt(e);
    return true;
  }

  /** Removes every entry and returns to the minimum capacity. */
  clear(): void {
    this.size = 0;
    this.rehash(MIN_CAPACITY);
  }

  private allocate(cap: number): Uint32Array {
    const d = new Uint32Array(cap * this.stride);
    if (this.free !== 0) for (let e = this.occ; e < d.length; e += this.stride) d[e] = this.free;
    return d;
  }

  private rehash(cap: number): void {
    const old = this.data;
    const st = this.stride;
    const occ = this.occ;
    const free = this.free;
    const mask = cap - 1;
    const d = this.allocate(cap);
    this.mask = mask;
    this.data = d;
    if (this.size === 0) return;
    for (let e = 0; e < old.length; e += st) {
      if (old[e + occ] === free) continue;
      let i = home(old[e + KEY_LO]!, old[e + KEY_HI]!, mask);
      while (d[i * st + occ] !== free) i = (i + 1) & mask;
      const to = i * st;
      for (let w = 0; w < st; w++) d[to + w] = old[e + w]!;
    }
  }
}
