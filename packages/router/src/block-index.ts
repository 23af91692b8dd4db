/**
 * The shared core of both indexers: which workers hold which blocks, keyed by sequence hash, and
 * the per-worker overlap of a request.
 *
 * Layout (typed arrays, no per-block objects):
 * - `blocks`: sequence hash -> position in `run`, 12 bytes per table slot.
 * - `run`: one `[hash lo, hash hi, owner code]` record per distinct block, appended in the order
 *   blocks are first indexed, so the blocks of one `stored` event (a prompt's chain) sit next to
 *   each other. A walk down a request's chain first checks the record right after the previous
 *   block's: while the request follows a stored chain, that is a sequential read instead of a
 *   random probe into a table of tens of megabytes (one cache and TLB miss per block). Records of
 *   removed blocks stay as dead holes until the store is compacted (when it is full and at least
 *   half dead), which keeps the order of the live ones.
 * - Owner codes: a code below 2^31 is the slot of
 *   the single worker that holds the block (the common case for a worker's own suffixes);
 *   otherwise it names a shared-owner set: a bitmask over worker slots (one bit per worker,
 *   `words` u32 per set, in one pool), so a block every worker holds (a system prompt) costs
 *   `workers / 8` bytes more, and a set operation costs `workers / 32` word operations.
 * - A worker may reference a block more than once (two block ids with the same content, or two
 *   running requests sharing a prefix); references beyond the first are counted in a small map.
 * - Workers get dense slot numbers, reused after removal; per-slot arrays hold the number of
 *   distinct blocks each worker holds.
 *
 * A sequence hash names a whole prefix, so "worker w holds the first k blocks of the request" is
 * "w owns seq[0..k-1]". {@link BlockIndex.score} walks the request's hashes once, keeping the set
 * of workers still matching (one slot, or a bitmask intersected with each block's owners), and
 * stops at the first block none of them holds: one hash lookup per matched block, whatever the
 * number of workers.
 *
 * Used by {@link KvIndexer} (cached blocks), {@link ApproxKvIndexer} and {@link LoadTracker}
 * (blocks of running requests). Exported for routers built on this package; most users only need
 * {@link KvRouter}.
 * @packageDocumentation
 */
import { ChangedSlots } from './changed-slots';
import { OwnerSets } from './owner-sets';
import { KEY_HI_OFFSET, KEY_LO_OFFSET, U64Table, V0 } from './u64-table';

/** Owner codes at or above this point name a shared-owner set (ids stay far below 2^31 - 1). */
const MULTI = 0x80000000;
/** Extra-reference keys: set id * 2^21 + slot (slots stay below 2^21). */
const EXTRA_SHIFT = 2 ** 21;
/** Owner code of a removed block's record in the run store. */
const DEAD = 0xffffffff;
/** Words per run record: hash lo, hash hi, owner code. */
const RS = 3;

/**
 * Which workers hold which blocks (by sequence hash), with per-worker distinct block counts and
 * the overlap computation; see the module comment.
 */
export class BlockIndex {
  /** Sequence hash -> position of its record in `run`. */
  private readonly blocks = new U64Table();
  /** Run store, see the module comment: `RS` words per record, `runLen` records used. */
  private run = new Uint32Array(RS * 64);
  private runLen = 0;
  private runDead = 0;
  /** Position of the block last added (see `add`), or -1. */
  private hint = -1;
  /** Shared-owner sets (workers holding a block held by more than one). */
  private readonly sets = new OwnerSets();
  /** References beyond the first, by set id * 2^21 + slot. */
  private readonly extra = new Map<number, number>();
  private ids: (string | undefined)[] = [];
  private readonly slots = new Map<string, number>();
  private freeSlots: number[] = [];
  private cached: number[] = [];
  private entries = 0;
  private depth = new Int32Array(32);
  private touched = new Int32Array(32);
  private touchedCount = 0;
  private alive = new Uint32Array(1);

  /** Number of distinct blocks indexed. */
  get size(): number {
    return this.blocks.size;
  }

  /** Number of (worker, block) pairs: the sum of every worker's distinct blocks. */
  get totalEntries(): number {
    return this.entries;
  }

  /** Bytes of the typed arrays behind the index. */
  get byteLength(): number {
    return this.blocks.byteLength + this.run.byteLength + this.sets.byteLength;
  }

  /** Slot of a worker, or -1. */
  slotOf(workerId: string): number {
    return this.slots.get(workerId) ?? -1;
  }

  /** Worker id of a slot, or undefined. */
  workerAt(slot: number): string | undefined {
    return this.ids[slot];
  }

  /** Registered worker ids. */
  workerIds(): string[] {
    return [...this.slots.keys()];
  }

  /** Number of registered workers. */
  get workerCount(): number {
    return this.slots.size;
  }

  /** Highest slot number + 1 (size of per-slot arrays). */
  get slotCapacity(): number {
    return this.ids.length;
  }

  /** Slot of a worker, registering it when new. */
  ensureWorker(workerId: string): number {
    const known = this.slots.get(workerId);
    if (known !== undefined) return known;
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.ids.length;
      if (slot >= EXTRA_SHIFT) throw new Error('too many workers for one index (2^21)');
      this.ids.push(undefined);
      this.cached.push(0);
      if (slot >= this.depth.length) {
        // Fresh, zeroed arrays: the previous overlaps are simply forgotten.
        this.depth = new Int32Array(this.depth.length * 2);
        this.touched = new Int32Array(this.depth.length);
        this.touchedCount = 0;
      }
      if (slot >= this.sets.words * 32) this.sets.widen(this.sets.words * 2);
    }
    this.ids[slot] = workerId;
    this.cached[slot] = 0;
    this.slots.set(workerId, slot);
    return slot;
  }

  /**
   * Unregisters a worker whose blocks were all released (see {@link BlockIndex.release}); its slot
   * may be reused.
   */
  dropWorker(slot: number): void {
    const id = this.ids[slot];
    if (id === undefined) return;
    this.slots.delete(id);
    this.ids[slot] = undefined;
    this.cached[slot] = 0;
    this.depth[slot] = 0;
    this.freeSlots.push(slot);
  }

  /** Number of distinct blocks the worker in `slot` holds. */
  cachedBlocks(slot: number): number {
    return this.cached[slot] ?? 0;
  }

  /** With {@link BlockIndex.trackCountChanges}: the slots whose count changed since read. */
  private countChanges: ChangedSlots | undefined;

  /**
   * From now on, remembers the slots whose {@link BlockIndex.cachedBlocks} changed, for
   * {@link BlockIndex.takeCountChanges} (the router's search orders equal loads by it).
   */
  trackCountChanges(): void {
    this.countChanges ??= new ChangedSlots();
  }

  /** Calls `f` with each slot whose count changed since the last call (each once), and forgets them. */
  takeCountChanges(f: (slot: number) => void): void {
    const c = this.countChanges;
    if (c === undefined) return;
    for (let k = 0; k < c.count; k++) f(c.slots[k]!);
    c.clear();
  }

  /**
   * Adds one reference from `slot` to the block `seq`. A worker holds a block while any of its
   * references is left, and counts it once.
   */
  acquire(slot: number, seqLo: number, seqHi: number): void {
    this.add(slot, seqLo, seqHi, true);
  }

  /**
   * Adds a reference from `slot` to `seq` unless it already holds one; one hash-table probe.
   * @returns whether a reference was added
   */
  acquireOnce(slot: number, seqLo: number, seqHi: number): boolean {
    return this.add(slot, seqLo, seqHi, false);
  }

  private add(slot: number, seqLo: number, seqHi: number, again: boolean): boolean {
    const run = this.run;
    // Blocks usually come in chain order: look right after the previous block's record first,
    // as the walk does (another worker storing a prefix that is already indexed).
    let v = (this.hint + 1) * RS;
    if (v >= this.runLen * RS || run[v] !== seqLo || run[v + 1] !== seqHi || run[v + 2] === DEAD) {
      const b = this.blocks;
      const e = b.insert(seqLo, seqHi);
      if (b.inserted) {
        const pos = this.appendRecord(seqLo, seqHi, slot);
        b.data[e + V0] = pos;
        this.hint = pos;
        this.cached[slot]!++;
        this.countChanges?.mark(slot);
        this.entries++;
        return true;
      }
      v = b.data[e + V0]! * RS;
    }
    this.hint = v / RS;
    v += 2;
    const code = run[v]!;
    if (code < MULTI) {
      if (code === slot && !again) return false;
      const id = this.sets.create();
      this.sets.add(id, code);
      run[v] = MULTI + id;
      if (code === slot) {
        this.extra.set(id * EXTRA_SHIFT + slot, 1);
        return true;
      }
      this.sets.add(id, slot);
      this.cached[slot]!++;
      this.countChanges?.mark(slot);
      this.entries++;
      return true;
    }
    const id = code - MULTI;
    if (this.sets.has(id, slot)) {
      if (!again) return false;
      const k = id * EXTRA_SHIFT + slot;
      this.extra.set(k, (this.extra.get(k) ?? 0) + 1);
      return true;
    }
    this.sets.add(id, slot);
    this.cached[slot]!++;
    this.countChanges?.mark(slot);
    this.entries++;
    return true;
  }

  /** Number of references from `slot` to `seq` (0 when it does not hold it). */
  refCount(slot: number, seqLo: number, seqHi: number): number {
    const e = this.blocks.find(seqLo, seqHi);
    return e < 0 ? 0 : this.refsAt(e, slot);
  }

  /**
   * Every reference `slot` holds, as (lo, hi) pairs (a block appears once per reference). O(blocks).
   */
  referencesOf(slot: number): Uint32Array {
    const out: number[] = [];
    const b = this.blocks;
    const d = b.data;
    for (let e = 0; e < d.length; e += b.stride) {
      if (!b.isUsed(e)) continue;
      const refs = this.refsAt(e, slot);
      for (let k = 0; k < refs; k++) out.push(d[e + KEY_LO_OFFSET]!, d[e + KEY_HI_OFFSET]!);
    }
    return Uint32Array.from(out);
  }

  /** Removes every reference of `slot`. @returns the number of references removed */
  releaseAllOf(slot: number): number {
    const refs = this.referencesOf(slot);
    for (let i = 0; i < refs.length; i += 2) this.release(slot, refs[i]!, refs[i + 1]!);
    return refs.length / 2;
  }

  /** Removes one reference from `slot` to the block `seq` (no-op when it holds none). */
  release(slot: number, seqLo: number, seqHi: number): void {
    const b = this.blocks;
    const e = b.find(seqLo, seqHi);
    if (e < 0) return;
    const pos = b.data[e + V0]!;
    const code = this.run[pos * RS + 2]!;
    if (code < MULTI) {
      if (code !== slot) return;
      b.removeAt(e);
      this.killRecord(pos);
      this.cached[slot]!--;
      this.countChanges?.mark(slot);
      this.entries--;
      return;
    }
    const id = code - MULTI;
    if (!this.sets.has(id, slot)) return;
    const k = id * EXTRA_SHIFT + slot;
    const more = this.extra.get(k);
    if (more !== undefined) {
      if (more > 1) this.extra.set(k, more - 1);
      else this.extra.delete(k);
      return;
    }
    this.sets.remove(id, slot);
    this.cached[slot]!--;
    this.countChanges?.mark(slot);
    this.entries--;
    const left = this.sets.size[id]!;
    if (left === 0) {
      b.removeAt(e);
      this.killRecord(pos);
      this.sets.release(id);
    } else if (left === 1) {
      // Back to a single owner, unless it holds extra references.
      const only = this.sets.first(id);
      if (!this.extra.has(id * EXTRA_SHIFT + only)) {
        this.run[pos * RS + 2] = only;
        this.sets.release(id);
      }
    }
  }

  /**
   * Computes every worker's overlap with a request: the number of its leading blocks the worker
   * holds. Sequence hash `i` of the request is `words[at + stride * i]` (low 32 bits) and
   * `words[at + stride * i + 1]`. Read the result with {@link BlockIndex.overlap} until the next
   * call.
   * @returns the number of leading blocks held by at least one worker
   */
  score(words: Uint32Array, at: number, stride: number, count: number): number {
    const depth = this.depth;
    const touched = this.touched;
    for (let k = 0; k < this.touchedCount; k++) depth[touched[k]!] = 0;
    this.touchedCount = 0;
    if (count === 0) return 0;
    const b = this.blocks;
    const d = b.data;
    const run = this.run;
    // The record of block i is looked for right after block i - 1's (see the module comment);
    // `next` is that guess's offset in `run`, and `end` the end of the used records.
    const end = this.runLen * RS;
    let e = b.find(words[at]!, words[at + 1]!);
    if (e < 0) return 0;
    let r = d[e + V0]! * RS;
    let code = run[r + 2]!;
    let i = 1;
    if (code >= MULTI) {
      // Several workers match block 0: intersect their set with each next block's owners.
      const W = this.sets.words;
      if (this.alive.length < W) this.alive = new Uint32Array(W);
      const alive = this.alive;
      const masks = this.sets.masks;
      let base = (code - MULTI) * W;
      let found = true;
      for (let w = 0; w < W; w++) alive[w] = masks[base + w]!;
      for (; i < count; i++) {
        const k = at + stride * i;
        const lo = words[k]!;
        const hi = words[k + 1]!;
        r += RS;
        if (r >= end || run[r] !== lo || run[r + 1] !== hi || run[r + 2] === DEAD) {
          e = b.find(lo, hi);
          if (e < 0) {
            found = false;
            break;
          }
          r = d[e + V0]! * RS;
        }
        code = run[r + 2]!;
        if (code < MULTI) {
          if (((alive[code >>> 5]! >>> (code & 31)) & 1) === 0) {
            // Nobody still matching holds block i.
            this.assignAll(alive, W, i);
            return i;
          }
          // Only `code` goes on (below): the others stop at i.
          alive[code >>> 5] = alive[code >>> 5]! & ~(1 << (code & 31));
          this.assignAll(alive, W, i);
          break;
        }
        base = (code - MULTI) * W;
        let any = 0;
        for (let w = 0; w < W; w++) any |= alive[w]! & masks[base + w]!;
        if (any === 0) break;
        for (let w = 0; w < W; w++) {
          const a = alive[w]!;
          const dropped = a & ~masks[base + w]!;
          if (dropped !== 0) this.assignBits(w, dropped, i);
          alive[w] = a & masks[base + w]!;
        }
      }
      if (code >= MULTI || !found || i === count) {
        this.assignAll(alive, W, i);
        return i;
      }
    }
    // A single worker goes on: follow it alone.
    const only = code;
    for (; i < count; i++) {
      const k = at + stride * i;
      const lo = words[k]!;
      const hi = words[k + 1]!;
      r += RS;
      if (r >= end || run[r] !== lo || run[r + 1] !== hi || run[r + 2] === DEAD) {
        e = b.find(lo, hi);
        if (e < 0) break;
        r = d[e + V0]! * RS;
      }
      const c = run[r + 2]!;
      if (c < MULTI ? c !== only : !this.sets.has(c - MULTI, only)) break;
    }
    depth[only] = i;
    touched[this.touchedCount++] = only;
    return i;
  }

  /** Overlap of the worker in `slot` from the last {@link BlockIndex.score}. */
  overlap(slot: number): number {
    return this.depth[slot]!;
  }

  /** Slots the last {@link BlockIndex.score} gave an overlap, each once, in ascending overlap. */
  get scoredCount(): number {
    return this.touchedCount;
  }

  /** The `k`-th slot with an overlap from the last score, `k < scoredCount`. */
  scoredSlot(k: number): number {
    return this.touched[k]!;
  }

  /** Worker slots holding the block `seq` (with repetitions for multiple references). */
  ownersOf(seqLo: number, seqHi: number): number[] {
    const e = this.blocks.find(seqLo, seqHi);
    return e < 0 ? [] : this.ownersAt(e);
  }

  /**
   * Scans the whole structure for references to `slot` (test and debugging aid, O(blocks)).
   * @returns the number of blocks referencing it
   */
  scanReferences(slot: number): number {
    const b = this.blocks;
    let n = 0;
    for (let e = 0; e < b.data.length; e += b.stride) if (b.isUsed(e) && this.refsAt(e, slot) > 0) n++;
    return n;
  }

  /** Every block as [lo, hi, owner slots with repetitions] (test and debugging aid, O(blocks)). */
  *allBlocks(): IterableIterator<[number, number, number[]]> {
    const b = this.blocks;
    for (let e = 0; e < b.data.length; e += b.stride) {
      if (!b.isUsed(e)) continue;
      yield [b.data[e + KEY_LO_OFFSET]!, b.data[e + KEY_HI_OFFSET]!, this.ownersAt(e)];
    }
  }

  /** Number of live shared-owner sets (for memory accounting). */
  get sharedBlocks(): number {
    return this.sets.live;
  }

  // ---- internals ----

  /** Owner code of the block whose table entry is at offset `e`. */
  private codeAt(e: number): number {
    return this.run[this.blocks.data[e + V0]! * RS + 2]!;
  }

  /** Appends a record for a newly indexed block; @returns its position. */
  private appendRecord(lo: number, hi: number, code: number): number {
    if ((this.runLen + 1) * RS > this.run.length) this.makeRoom();
    const pos = this.runLen++;
    const r = pos * RS;
    this.run[r] = lo;
    this.run[r + 1] = hi;
    this.run[r + 2] = code;
    return pos;
  }

  /** Marks the record of a removed block dead. */
  private killRecord(pos: number): void {
    this.run[pos * RS + 2] = DEAD;
    this.runDead++;
    if (this.runDead === this.runLen) {
      // Nothing live: start over (cheap, and the common end of a worker's life).
      this.runLen = 0;
      this.runDead = 0;
      this.hint = -1;
    }
  }

  /**
   * The run store is full: compacts it when at least half of it is dead (keeping the live records'
   * order and renumbering the table's positions), otherwise doubles it. O(records), amortized O(1)
   * per block.
   */
  private makeRoom(): void {
    const old = this.run;
    const n = this.runLen;
    if (this.runDead * 2 < n) {
      const grown = new Uint32Array(Math.max(RS * 64, old.length * 2));
      grown.set(old.subarray(0, n * RS));
      this.run = grown;
      return;
    }
    const moved = new Int32Array(n);
    let live = 0;
    for (let p = 0; p < n; p++) {
      const r = p * RS;
      if (old[r + 2] === DEAD) continue;
      moved[p] = live;
      const to = live * RS;
      old[to] = old[r]!;
      old[to + 1] = old[r + 1]!;
      old[to + 2] = old[r + 2]!;
      live++;
    }
    const b = this.blocks;
    const d = b.data;
    for (let e = 0; e < d.length; e += b.stride) if (b.isUsed(e)) d[e + V0] = moved[d[e + V0]!]!;
    this.runLen = live;
    this.runDead = 0;
    this.hint = -1;
    // Shrink when mostly empty, so a worker's departure gives memory back.
    if (live * RS * 4 < old.length && old.length > RS * 64) {
      const small = new Uint32Array(Math.max(RS * 64, old.length / 2));
      small.set(old.subarray(0, live * RS));
      this.run = small;
    }
  }

  private refsAt(e: number, slot: number): number {
    const code = this.codeAt(e);
    if (code < MULTI) return code === slot ? 1 : 0;
    const id = code - MULTI;
    return this.sets.has(id, slot) ? 1 + (this.extra.get(id * EXTRA_SHIFT + slot) ?? 0) : 0;
  }

  private ownersAt(e: number): number[] {
    const code = this.codeAt(e);
    if (code < MULTI) return [code];
    const out: number[] = [];
    for (let s = 0; s < this.sets.words * 32; s++) {
      const refs = this.refsAt(e, s);
      for (let k = 0; k < refs; k++) out.push(s);
    }
    return out;
  }

  /** Gives every slot set in word `w` of `bits` overlap `level`. */
  private assignBits(w: number, bits: number, level: number): void {
    const depth = this.depth;
    const touched = this.touched;
    while (bits !== 0) {
      const low = bits & -bits;
      const slot = w * 32 + 31 - Math.clz32(low);
      depth[slot] = level;
      touched[this.touchedCount++] = slot;
      bits ^= low;
    }
  }

  private assignAll(alive: Uint32Array, W: number, level: number): void {
    for (let w = 0; w < W; w++) if (alive[w] !== 0) this.assignBits(w, alive[w]!, level);
  }
}
