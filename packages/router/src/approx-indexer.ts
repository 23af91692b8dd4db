/**
 * The approximate indexer, for workers that publish no KV events: it assumes a worker caches the
 * blocks of every request routed to it, for `ttlMs` after the last such request (default 120 s),
 * like Dynamo's ApproxKvIndexer.
 *
 * Expiry is exact and needs no timer: every (worker, block) entry sits in one list ordered by
 * expiry (a refresh moves it to the tail, since it then expires last), and each call first drops
 * the expired head of the list, using the injected clock.
 * @packageDocumentation
 */
import { BlockIndex } from './block-index';
import type { Clock } from './common';
import { RouterInvalidArgumentError } from './errors';
import { packBigints } from './packing';
import { KEY_HI_OFFSET, KEY_LO_OFFSET, U64Table, V0 } from './u64-table';

/** Default time a routed block is assumed cached: 120 s. */
export const DEFAULT_APPROX_TTL_MS = 120_000;

/** Options of {@link ApproxKvIndexer}. */
export interface ApproxKvIndexerOptions {
  /** How long a routed block is assumed cached, in ms; default 120 000. */
  ttlMs?: number;
  /** Clock in ms; default `Date.now`. */
  now?: Clock;
}

/** See the module comment. */
export class ApproxKvIndexer {
  /** The shared block table (low-level access for routers built on this package). */
  readonly core = new BlockIndex();
  /** Time a routed block is assumed cached, in ms. */
  readonly ttlMs: number;
  private readonly now: Clock;
  private tables: (U64Table | undefined)[] = [];
  // Expiry list: node pool in typed arrays; -1 terminates.
  private prev: Int32Array = new Int32Array(64);
  private next: Int32Array = new Int32Array(64);
  private nodeSlot: Int32Array = new Int32Array(64);
  private nodeLo: Uint32Array = new Uint32Array(64);
  private nodeHi: Uint32Array = new Uint32Array(64);
  private expiry: Float64Array = new Float64Array(64);
  private head = -1;
  private tail = -1;
  private freeHead = -1;
  private used = 0;

  constructor(options: ApproxKvIndexerOptions = {}) {
    const ttl = options.ttlMs ?? DEFAULT_APPROX_TTL_MS;
    if (!(ttl > 0) || !Number.isFinite(ttl)) {
      throw new RouterInvalidArgumentError(`ttlMs must be a positive number of milliseconds, got ${String(ttl)}`);
    }
    this.ttlMs = ttl;
    this.now = options.now ?? Date.now;
    this.initFree(0);
  }

  /** Number of distinct blocks currently assumed cached (after expiring). */
  get size(): number {
    this.expire();
    return this.core.size;
  }

  /** Workers known to the indexer. */
  workers(): string[] {
    return this.core.workerIds();
  }

  /** Distinct blocks assumed cached on the worker (after expiring). */
  cachedBlocks(workerId: string): number {
    this.expire();
    const slot = this.core.slotOf(workerId);
    return slot < 0 ? 0 : this.core.cachedBlocks(slot);
  }

  /** Registers a worker with no blocks and returns its slot. */
  addWorker(workerId: string): number {
    const slot = this.core.ensureWorker(workerId);
    if (this.tables[slot] === undefined) this.tables[slot] = new U64Table();
    return slot;
  }

  /** Forgets a worker and its blocks. @returns whether it was known */
  removeWorker(workerId: string): boolean {
    const slot = this.core.slotOf(workerId);
    if (slot < 0) return false;
    const t = this.tables[slot]!;
    const d = t.data;
    for (let e = 0; e < d.length; e += t.stride) {
      if (!t.isUsed(e)) continue;
      this.core.release(slot, d[e + KEY_LO_OFFSET]!, d[e + KEY_HI_OFFSET]!);
      this.unlink(d[e + V0]!);
    }
    this.tables[slot] = undefined;
    this.core.dropWorker(slot);
    return true;
  }

  /**
   * Records that a request with these sequence hashes was routed to `workerId`: its blocks are
   * assumed cached there until `now() + ttlMs` (refreshing earlier records).
   */
  record(workerId: string, sequenceHashes: readonly bigint[]): void {
    this.recordPacked(this.addWorker(workerId), packBigints(sequenceHashes), 0, 2, sequenceHashes.length);
  }

  /**
   * {@link ApproxKvIndexer.record} on packed hashes (hash `i` at `words[at + stride * i]` low and
   * `+ 1` high) and a slot from {@link ApproxKvIndexer.addWorker}.
   */
  recordPacked(slot: number, words: Uint32Array, at: number, stride: number, count: number): void {
    const t = this.tables[slot];
    if (t === undefined) throw new RouterInvalidArgumentError(`no worker in slot ${slot}`);
    const now = this.now();
    this.expireAt(now);
    const exp = now + this.ttlMs;
    for (let i = 0; i < count; i++) {
      const lo = words[at + stride * i]!;
      const hi = words[at + stride * i + 1]!;
      const s = t.insert(lo, hi);
      let node: number;
      if (t.inserted) {
        node = this.alloc();
        this.nodeSlot[node] = slot;
        this.nodeLo[node] = lo;
        this.nodeHi[node] = hi;
        t.data[s + V0] = node;
        this.core.acquire(slot, lo, hi);
      } else {
        node = t.data[s + V0]!;
        this.detach(node);
      }
      this.expiry[node] = exp;
      this.append(node);
    }
  }

  /**
   * Drops the entries whose time is up (every other method does it first).
   * @returns how many (worker, block) entries expired
   */
  expire(): number {
    return this.expireAt(this.now());
  }

  private expireAt(now: number): number {
    let n = 0;
    while (this.head >= 0 && this.expiry[this.head]! <= now) {
      const node = this.head;
      const slot = this.nodeSlot[node]!;
      const lo = this.nodeLo[node]!;
      const hi = this.nodeHi[node]!;
      this.core.release(slot, lo, hi);
      this.tables[slot]!.delete(lo, hi);
      this.unlink(node);
      n++;
    }
    return n;
  }

  /**
   * Per-worker overlap of a request (see {@link KvIndexer.findMatches}), after expiring.
   * @returns worker id -> overlap in blocks, for workers with at least one block
   */
  findMatches(sequenceHashes: readonly bigint[]): Map<string, number> {
    this.expire();
    this.core.score(packBigints(sequenceHashes), 0, 2, sequenceHashes.length);
    const out = new Map<string, number>();
    for (const id of this.core.workerIds()) {
      const o = this.core.overlap(this.core.slotOf(id));
      if (o > 0) out.set(id, o);
    }
    return out;
  }

  /** Entries of the worker in its own table and in the shared table (test aid; O(blocks)). */
  footprint(workerId: string): { blockIds: number; references: number; expiryEntries: number } {
    const slot = this.core.slotOf(workerId);
    let expiryEntries = 0;
    for (let node = this.head; node >= 0; node = this.next[node]!) if (this.nodeSlot[node] === slot) expiryEntries++;
    if (slot < 0) return { blockIds: 0, references: 0, expiryEntries: 0 };
    return { blockIds: this.tables[slot]?.size ?? 0, references: this.core.scanReferences(slot), expiryEntries };
  }

  /** Number of live expiry entries (test aid). */
  get entryCount(): number {
    return this.used;
  }

  private initFree(from: number): void {
    const cap = this.next.length;
    for (let i = from; i < cap; i++) this.next[i] = i + 1 < cap ? i + 1 : -1;
    this.freeHead = from < cap ? from : -1;
  }

  private alloc(): number {
    if (this.freeHead < 0) this.grow();
    const node = this.freeHead;
    this.freeHead = this.next[node]!;
    this.used++;
    return node;
  }

  private grow(): void {
    const old = this.next.length;
    const cap = old * 2;
    const g32 = (a: Int32Array): Int32Array => {
      const b = new Int32Array(cap);
      b.set(a);
      return b;
    };
    const gu = (a: Uint32Array): Uint32Array => {
      const b = new Uint32Array(cap);
      b.set(a);
      return b;
    };
    this.prev = g32(this.prev);
    this.next = g32(this.next);
    this.nodeSlot = g32(this.nodeSlot);
    this.nodeLo = gu(this.nodeLo);
    this.nodeHi = gu(this.nodeHi);
    const e = new Float64Array(cap);
    e.set(this.expiry);
    this.expiry = e;
    this.initFree(old);
  }

  private append(node: number): void {
    this.prev[node] = this.tail;
    this.next[node] = -1;
    if (this.tail >= 0) this.next[this.tail] = node;
    else this.head = node;
    this.tail = node;
  }

  private detach(node: number): void {
    const p = this.prev[node]!;
    const n = this.next[node]!;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }

  private unlink(node: number): void {
    this.detach(node);
    this.nodeSlot[node] = -1;
    this.next[node] = this.freeHead;
    this.freeHead = node;
    this.used--;
  }
}
