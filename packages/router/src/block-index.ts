/**
 * The shared core of both indexers: which workers hold which blocks, keyed by sequence hash, and
 * the per-worker overlap of a request.
 *
 * Layout (all typed arrays, no per-block objects):
 * - `blocks`: sequence hash -> owner code. A code below 2^31 is the slot of the single worker that
 *   holds the block (by far the common case); otherwise it points to a small array of slots in
 *   `multi` (a slot may appear several times: one per reference, see {@link BlockIndex.acquire}).
 * - workers get dense slot numbers, reused after removal; per-slot arrays hold the number of
 *   distinct blocks each worker holds.
 *
 * A sequence hash names a whole prefix, so "worker w holds the first k blocks of the request" is
 * "w owns seq[0..k-1]"; {@link BlockIndex.score} walks the request's hashes once, advancing the
 * workers still matching, and stops at the first block nobody (still matching) holds.
 * Internal module.
 * @packageDocumentation
 */
import { KEY_HI_OFFSET, KEY_LO_OFFSET, U64Table, V0 } from './u64-table';

const MULTI = 0x80000000;

/** See the module comment. */
export class BlockIndex {
  private readonly blocks = new U64Table();
  private multi: number[][] = [];
  private freeMulti: number[] = [];
  private ids: (string | undefined)[] = [];
  private readonly slots = new Map<string, number>();
  private freeSlots: number[] = [];
  private cached: number[] = [];
  private entries = 0;
  private depth = new Int32Array(16);
  private touched = new Int32Array(16);
  private touchedCount = 0;

  /** Number of distinct blocks indexed. */
  get size(): number {
    return this.blocks.size;
  }

  /** Number of (worker, block) pairs: the sum of every worker's distinct blocks. */
  get totalEntries(): number {
    return this.entries;
  }

  /** Bytes of the typed arrays behind the block table (not counting `multi` arrays). */
  get byteLength(): number {
    return this.blocks.byteLength;
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
      this.ids.push(undefined);
      this.cached.push(0);
      if (slot >= this.depth.length) {
        // Fresh, zeroed arrays: the previous overlaps are simply forgotten.
        this.depth = new Int32Array(this.depth.length * 2);
        this.touched = new Int32Array(this.depth.length);
        this.touchedCount = 0;
      }
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

  /**
   * Adds one reference from `slot` to the block `seq`. A worker may reference the same block more
   * than once (two block ids with the same content); it holds the block while any reference is
   * left, and counts it once.
   */
  acquire(slot: number, seqLo: number, seqHi: number): void {
    const b = this.blocks;
    const s = b.insert(seqLo, seqHi) + V0;
    if (b.inserted) {
      b.data[s] = slot;
      this.cached[slot]!++;
      this.entries++;
      return;
    }
    const code = b.data[s]!;
    if (code >= MULTI) {
      const arr = this.multi[code - MULTI]!;
      if (!arr.includes(slot)) {
        this.cached[slot]!++;
        this.entries++;
      }
      arr.push(slot);
      return;
    }
    if (code !== slot) {
      this.cached[slot]!++;
      this.entries++;
    }
    let id = this.freeMulti.pop();
    if (id === undefined) {
      id = this.multi.length;
      this.multi.push([code, slot]);
    } else this.multi[id] = [code, slot];
    b.data[s] = MULTI + id;
  }

  /**
   * Adds a reference from `slot` to `seq` unless it already holds one; one hash-table probe.
   * @returns whether a reference was added
   */
  acquireOnce(slot: number, seqLo: number, seqHi: number): boolean {
    const b = this.blocks;
    const s = b.insert(seqLo, seqHi) + V0;
    if (b.inserted) {
      b.data[s] = slot;
      this.cached[slot]!++;
      this.entries++;
      return true;
    }
    const code = b.data[s]!;
    if (code === slot || (code >= MULTI && this.multi[code - MULTI]!.includes(slot))) return false;
    if (code >= MULTI) this.multi[code - MULTI]!.push(slot);
    else {
      let id = this.freeMulti.pop();
      if (id === undefined) {
        id = this.multi.length;
        this.multi.push([code, slot]);
      } else this.multi[id] = [code, slot];
      b.data[s] = MULTI + id;
    }
    this.cached[slot]!++;
    this.entries++;
    return true;
  }

  /** Number of references from `slot` to `seq` (0 when it does not hold it). */
  refCount(slot: number, seqLo: number, seqHi: number): number {
    const e = this.blocks.find(seqLo, seqHi);
    if (e < 0) return 0;
    const code = this.blocks.data[e + V0]!;
    if (code < MULTI) return code === slot ? 1 : 0;
    let n = 0;
    for (const w of this.multi[code - MULTI]!) if (w === slot) n++;
    return n;
  }

  /**
   * Every reference `slot` holds, as (lo, hi) pairs (a block appears once per reference). O(blocks).
   */
  referencesOf(slot: number): Uint32Array {
    const b = this.blocks;
    const d = b.data;
    let n = 0;
    let out = new Uint32Array(2 * Math.max(16, this.cached[slot] ?? 0));
    for (let e = 0; e < d.length; e += b.stride) {
      if (!b.isUsed(e)) continue;
      const code = d[e + V0]!;
      let refs = 0;
      if (code < MULTI) refs = code === slot ? 1 : 0;
      else for (const w of this.multi[code - MULTI]!) if (w === slot) refs++;
      for (let k = 0; k < refs; k++) {
        if (2 * n + 2 > out.length) {
          const grown = new Uint32Array(out.length * 2);
          grown.set(out);
          out = grown;
        }
        out[2 * n] = d[e + KEY_LO_OFFSET]!;
        out[2 * n + 1] = d[e + KEY_HI_OFFSET]!;
        n++;
      }
    }
    return out.subarray(0, 2 * n);
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
    const code = b.data[e + V0]!;
    if (code < MULTI) {
      if (code !== slot) return;
      b.removeAt(e);
      this.cached[slot]!--;
      this.entries--;
      return;
    }
    const id = code - MULTI;
    const arr = this.multi[id]!;
    const at = arr.indexOf(slot);
    if (at < 0) return;
    arr[at] = arr[arr.length - 1]!;
    arr.pop();
    if (!arr.includes(slot)) {
      this.cached[slot]!--;
      this.entries--;
    }
    if (arr.length === 1) {
      b.data[e + V0] = arr[0]!;
      this.multi[id] = EMPTY;
      this.freeMulti.push(id);
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
    let tc = 0;
    this.touchedCount = 0;
    if (count === 0) return 0;
    const b = this.blocks;
    let e = b.find(words[at]!, words[at + 1]!);
    if (e < 0) return 0;
    let code = b.data[e + V0]!;
    if (code < MULTI) {
      depth[code] = 1;
      touched[tc++] = code;
    } else {
      const arr = this.multi[code - MULTI]!;
      for (let k = 0; k < arr.length; k++) {
        const w = arr[k]!;
        if (depth[w] === 0) {
          depth[w] = 1;
          touched[tc++] = w;
        }
      }
    }
    this.touchedCount = tc;
    let i = 1;
    for (; i < count; i++) {
      const k = at + stride * i;
      e = b.find(words[k]!, words[k + 1]!);
      if (e < 0) break;
      code = b.data[e + V0]!;
      let advanced = 0;
      if (code < MULTI) {
        if (depth[code] === i) {
          depth[code] = i + 1;
          advanced = 1;
        }
      } else {
        const arr = this.multi[code - MULTI]!;
        for (let k = 0; k < arr.length; k++) {
          const w = arr[k]!;
          if (depth[w] === i) {
            depth[w] = i + 1;
            advanced++;
          }
        }
      }
      if (advanced === 0) break;
    }
    return i;
  }

  /** Overlap of the worker in `slot` from the last {@link BlockIndex.score}. */
  overlap(slot: number): number {
    return this.depth[slot]!;
  }

  /** Worker slots holding the block `seq` (with repetitions for multiple references). */
  ownersOf(seqLo: number, seqHi: number): number[] {
    const e = this.blocks.find(seqLo, seqHi);
    if (e < 0) return [];
    const code = this.blocks.data[e + V0]!;
    return code < MULTI ? [code] : [...this.multi[code - MULTI]!];
  }

  /**
   * Scans the whole structure for references to `slot` (test and debugging aid, O(blocks)).
   * @returns the number of blocks referencing it
   */
  scanReferences(slot: number): number {
    const b = this.blocks;
    let n = 0;
    for (let e = 0; e < b.data.length; e += b.stride) {
      if (!b.isUsed(e)) continue;
      const code = b.data[e + V0]!;
      if (code < MULTI ? code === slot : this.multi[code - MULTI]!.includes(slot)) n++;
    }
    return n;
  }

  /** Every block as [lo, hi, owner slots] (test and debugging aid, O(blocks)). */
  *allBlocks(): IterableIterator<[number, number, number[]]> {
    const b = this.blocks;
    for (let e = 0; e < b.data.length; e += b.stride) {
      if (!b.isUsed(e)) continue;
      const code = b.data[e + V0]!;
      yield [b.data[e + KEY_LO_OFFSET]!, b.data[e + KEY_HI_OFFSET]!, code < MULTI ? [code] : [...this.multi[code - MULTI]!]];
    }
  }

  /** Number of live shared-block arrays (for memory accounting). */
  get sharedBlocks(): number {
    return this.multi.length - this.freeMulti.length;
  }
}

const EMPTY: number[] = [];
