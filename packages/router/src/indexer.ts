/**
 * The KV indexer: what each worker caches, from the workers' KV events, and how many leading blocks
 * of a request each worker holds.
 *
 * Semantics (Dynamo's radix tree, stored flat):
 * - a `stored` event's blocks form a chain: the first continues `parent_hash` (a `block_hash` the
 *   same worker stored before) or starts a sequence; the indexer keys each block by the sequence
 *   hash it computes itself from the parent's and the block's `tokens_hash`, so any `block_hash`
 *   scheme works (Dynamo's own, or an engine's) as long as `tokens_hash` is Dynamo's local hash;
 * - a store whose parent the worker never stored (or already removed) is **rejected whole**: the
 *   indexer cannot know which prefix its blocks extend, and indexing them under a guess would let
 *   requests match blocks the worker does not hold. It is reported (`unknown_parent`) and warned;
 * - `removed` drops the named blocks of that worker; unknown ones are counted and ignored;
 * - `cleared` drops all of the worker's blocks;
 * - event ids: the first event seen from a worker sets its baseline; then each must be the previous
 *   +1. A repeated or older id is ignored (`stale_event`). A jump is a gap: warned, reported in the
 *   result, and with `gapPolicy: 'clear'` (default) the worker is resynced: its blocks are dropped,
 *   since a missed `removed` would otherwise leave blocks indexed forever; it refills as it stores.
 *
 * Events are validated as they are applied; a malformed one is rejected (`invalid`) without
 * changing anything.
 *
 * Storage: the shared {@link BlockIndex} (sequence hash -> workers holding it). When a worker's
 * `block_hash` is the sequence hash (Dynamo's workers, and this package's event builders) that is
 * all: one 12-byte slot per block, and a block id is found by looking the hash up there. Only
 * workers with engine-specific ids get a per-worker alias table (block_hash -> sequence hash).
 * A worker holds a block while any of its ids maps to it.
 * @packageDocumentation
 */
import { BlockIndex } from './block-index';
import { ignoreWarnings, type WarningHandler } from './common';
import { RouterInvalidArgumentError } from './errors';
import { type KvEvent, parseHexInto, validateKvEvent } from './events';
import { chainPacked } from './hashing';
import { packBigints } from './packing';
import {
  type ApplyResult,
  DEFAULT_MAX_BLOCKS_PER_WORKER,
  type GapPolicy,
  type KvIndexerCounters,
  type KvIndexerOptions,
} from './indexer-types';
import { StoreOrder } from './store-order';
import { U64Table, V0, V1 } from './u64-table';
import { createWasmHasher, WASM_HEAP_BASE, type WasmHasher } from './xxh3-wasm';

// Parse scratch layout (u32 words; in WebAssembly memory when available, so sequence hashes of a
// whole stored event are chained in one call): the parent hash at P, then per block i, from
// B + 6i: block_hash (2 words), tokens_hash (2), computed sequence hash (2).
const P = WASM_HEAP_BASE / 4;
const B = P + 2;
const STRIDE = 6;

export type {
  ApplyReason,
  ApplyResult,
  ApplyStatus,
  GapPolicy,
  KvIndexerCounters,
  KvIndexerOptions,
} from './indexer-types';
export { DEFAULT_MAX_BLOCKS_PER_WORKER } from './indexer-types';

/**
 * See the module comment. Cost: applying a block is a few hash-table operations and one 16-byte
 * xxh3; a query is one lookup per request block until no worker matches.
 */
export class KvIndexer {
  /** The shared block table (low-level access for routers built on this package). */
  readonly core = new BlockIndex();
  // Per slot, only for workers whose block_hash differs from the sequence hash (engine-specific
  // ids): block_hash -> sequence hash, and sequence hash -> number of such aliases.
  private aliases: (U64Table | undefined)[] = [];
  private aliasCounts: (U64Table | undefined)[] = [];
  private lastIds: number[] = [];
  /** Per slot: store order (for eviction) and block cap. */
  private orders: StoreOrder[] = [];
  private caps: number[] = [];
  private readonly maxBlocks: number;
  private readonly popped = new Uint32Array(2);
  /** Blocks evicted because a worker's index was over its cap. */
  evictedOverCap = 0;
  private gapCounts: number[] = [];
  private readonly warn: WarningHandler;
  private readonly gapPolicy: GapPolicy;
  private readonly wasm: WasmHasher | undefined;
  private scratch: Uint32Array;
  private readonly chain = new Uint32Array(2);
  private readonly resolved = new Uint32Array(2);
  private readonly counts: KvIndexerCounters = { applied: 0, rejected: 0, ignored: 0, gaps: 0 };

  constructor(options: KvIndexerOptions = {}) {
    this.warn = options.onWarning ?? ignoreWarnings;
    this.gapPolicy = options.gapPolicy ?? 'clear';
    if (this.gapPolicy !== 'clear' && this.gapPolicy !== 'keep') {
      throw new RouterInvalidArgumentError(`gapPolicy must be 'clear' or 'keep', got ${String(this.gapPolicy)}`);
    }
    this.wasm = options.webAssembly === false ? undefined : createWasmHasher();
    this.scratch = this.wasm?.u32 ?? new Uint32Array(B + STRIDE * 64);
    const max = options.maxBlocksPerWorker ?? DEFAULT_MAX_BLOCKS_PER_WORKER;
    if (!Number.isSafeInteger(max) || max <= 0) {
      throw new RouterInvalidArgumentError(`maxBlocksPerWorker must be a positive integer, got ${String(max)}`);
    }
    this.maxBlocks = max;
  }

  /**
   * Caps the worker's index at its capacity in blocks (plus 1/16, at least 64, for events in
   * flight), never above `maxBlocksPerWorker`; 0 or less: back to `maxBlocksPerWorker`.
   * @returns whether the worker is known
   */
  setWorkerCapacity(workerId: string, blocks: number): boolean {
    const slot = this.core.slotOf(workerId);
    if (slot < 0) return false;
    const cap = blocks > 0 && Number.isFinite(blocks) ? Math.ceil(blocks + Math.max(64, blocks / 16)) : this.maxBlocks;
    this.caps[slot] = Math.min(cap, this.maxBlocks);
    this.enforceCap(slot, workerId);
    return true;
  }

  /** The worker's current cap in blocks (undefined when unknown). */
  capOf(workerId: string): number | undefined {
    const slot = this.core.slotOf(workerId);
    return slot < 0 ? undefined : this.caps[slot];
  }

  /** Evicts the worker's oldest stored blocks while it is over its cap. */
  private enforceCap(slot: number, workerId: string): void {
    const core = this.core;
    const cap = this.caps[slot]!;
    const order = this.orders[slot]!;
    if (core.cachedBlocks(slot) <= cap) {
      if (order.length > 2 * core.cachedBlocks(slot) + 1024) {
        order.compact((lo, hi) => core.refCount(slot, lo, hi) > 0);
      }
      return;
    }
    const aliases = this.aliases[slot];
    const before = core.cachedBlocks(slot);
    if (aliases !== undefined && aliases.size > 0) {
      // Engine-specific ids: evicting by sequence hash would leave aliases; resync instead.
      this.releaseAll(slot);
    } else {
      const out = this.popped;
      while (core.cachedBlocks(slot) > cap && order.shift(out)) {
        if (core.refCount(slot, out[0]!, out[1]!) > 0) core.release(slot, out[0]!, out[1]!);
      }
    }
    const evicted = before - core.cachedBlocks(slot);
    this.evictedOverCap += evicted;
    this.warn('kv index over cap: evicted oldest blocks', { worker_id: workerId, cap, evicted });
  }

  /** Cumulative event counts. */
  get counters(): Readonly<KvIndexerCounters> {
    return { ...this.counts };
  }

  /** Number of distinct blocks indexed. */
  get size(): number {
    return this.core.size;
  }

  /** Number of (worker, block) pairs indexed. */
  get totalEntries(): number {
    return this.core.totalEntries;
  }

  /** Workers the indexer has seen events from (and not removed). */
  workers(): string[] {
    return this.core.workerIds();
  }

  /** Distinct blocks the worker holds (0 when unknown). */
  cachedBlocks(workerId: string): number {
    const slot = this.core.slotOf(workerId);
    return slot < 0 ? 0 : this.core.cachedBlocks(slot);
  }

  /** The last event id accepted from the worker, or undefined. */
  lastEventId(workerId: string): number | undefined {
    const slot = this.core.slotOf(workerId);
    const id = slot < 0 ? -1 : this.lastIds[slot]!;
    return id < 0 ? undefined : id;
  }

  /** Number of event-id gaps seen from the worker. */
  eventGaps(workerId: string): number {
    const slot = this.core.slotOf(workerId);
    return slot < 0 ? 0 : this.gapCounts[slot]!;
  }

  /**
   * Registers a worker with no blocks (optional: events register their worker) and returns its slot.
   */
  addWorker(workerId: string): number {
    const known = this.core.slotOf(workerId);
    if (known >= 0) return known;
    const slot = this.core.ensureWorker(workerId);
    this.aliases[slot] = undefined;
    this.aliasCounts[slot] = undefined;
    this.lastIds[slot] = -1;
    this.gapCounts[slot] = 0;
    this.orders[slot] = this.orders[slot] ?? new StoreOrder();
    this.orders[slot].clear();
    this.caps[slot] = this.maxBlocks;
    return slot;
  }

  /**
   * Forgets a worker entirely (it left discovery): its blocks, event id and slot.
   * @returns whether it was known
   */
  removeWorker(workerId: string): boolean {
    const slot = this.core.slotOf(workerId);
    if (slot < 0) return false;
    this.releaseAll(slot);
    this.aliases[slot] = undefined;
    this.aliasCounts[slot] = undefined;
    this.lastIds[slot] = -1;
    this.gapCounts[slot] = 0;
    this.core.dropWorker(slot);
    return true;
  }

  /**
   * Resyncs a worker: drops its blocks and forgets its last event id (the next event is a new
   * baseline). The worker stays registered.
   * @returns whether it was known
   */
  clearWorker(workerId: string): boolean {
    const slot = this.core.slotOf(workerId);
    if (slot < 0) return false;
    this.releaseAll(slot);
    this.lastIds[slot] = -1;
    return true;
  }

  /** Applies an event (untrusted input is fine: it is validated). Never throws on bad input. */
  applyEvent(event: KvEvent | unknown): ApplyResult {
    const ev = event as Partial<Record<string, unknown>> | null;
    if (typeof ev !== 'object' || ev === null) return this.invalid(event);
    const workerId = ev.worker_id;
    const eventId = ev.event_id;
    if (typeof workerId !== 'string' || workerId.length === 0) return this.invalid(event);
    if (typeof eventId !== 'number' || !Number.isSafeInteger(eventId) || eventId < 0) return this.invalid(event);
    // Parse (and so validate) the payload before touching any state.
    let n = 0;
    let hasParent = false;
    const type = ev.type;
    if (type === 'stored') {
      const blocks = ev.blocks;
      const parent = ev.parent_hash;
      if (!Array.isArray(blocks)) return this.invalid(event);
      this.reserve(blocks.length);
      const sc = this.scratch;
      if (parent !== null) {
        if (typeof parent !== 'string' || !parseHexInto(parent, sc, P)) return this.invalid(event);
        hasParent = true;
      }
      for (let i = 0; i < blocks.length; i++) {
        const b = blocks[i] as { block_hash?: unknown; tokens_hash?: unknown } | null;
        if (typeof b !== 'object' || b === null) return this.invalid(event);
        const bh = b.block_hash;
        const th = b.tokens_hash;
        if (typeof bh !== 'string' || typeof th !== 'string') return this.invalid(event);
        const at = B + STRIDE * i;
        if (!parseHexInto(bh, sc, at) || !parseHexInto(th, sc, at + 2)) return this.invalid(event);
      }
      n = blocks.length;
    } else if (type === 'removed') {
      const hs = ev.block_hashes;
      if (!Array.isArray(hs)) return this.invalid(event);
      this.reserve(hs.length);
      for (let i = 0; i < hs.length; i++) {
        const h: unknown = hs[i];
        if (typeof h !== 'string' || !parseHexInto(h, this.scratch, B + STRIDE * i)) return this.invalid(event);
      }
      n = hs.length;
    } else if (type !== 'cleared') return this.invalid(event);

    const slot = this.addWorker(workerId);
    const last = this.lastIds[slot]!;
    let gap: ApplyResult['gap'];
    let resynced = false;
    if (last >= 0) {
      if (eventId <= last) {
        this.counts.ignored++;
        this.warn('kv event ignored: stale event id', { worker_id: workerId, event_id: eventId, last_event_id: last });
        return { status: 'ignored', reason: 'stale_event', blocks: 0 };
      }
      if (eventId > last + 1) {
        gap = { expected: last + 1, received: eventId };
        this.counts.gaps++;
        this.gapCounts[slot]!++;
        resynced = this.gapPolicy === 'clear';
        if (resynced) this.releaseAll(slot);
        this.warn('kv event gap', {
          worker_id: workerId,
          expected: last + 1,
          received: eventId,
          missed: eventId - last - 1,
          action: resynced ? 'cleared worker blocks' : 'kept worker blocks',
        });
      }
    }
    this.lastIds[slot] = eventId;

    let result: ApplyResult;
    if (type === 'stored') result = this.applyStored(slot, workerId, eventId, hasParent, n);
    else if (type === 'removed') result = this.applyRemoved(slot, n);
    else result = { status: 'applied', blocks: this.releaseAll(slot) };
    if (gap !== undefined) {
      result.gap = gap;
      result.resynced = resynced;
    }
    if (result.status === 'applied') this.counts.applied++;
    else this.counts.rejected++;
    return result;
  }

  private applyStored(slot: number, workerId: string, eventId: number, hasParent: boolean, n: number): ApplyResult {
    let sc = this.scratch;
    if (hasParent) {
      if (!this.resolve(slot, sc[P]!, sc[P + 1]!)) {
        this.warn('kv store rejected: unknown parent block', {
          worker_id: workerId,
          event_id: eventId,
          parent_hash: hexOf(sc[P]!, sc[P + 1]!),
          blocks: n,
        });
        return { status: 'rejected', reason: 'unknown_parent', blocks: 0 };
      }
      // The parent's sequence hash replaces its block_hash in the scratch.
      sc[P] = this.resolved[0]!;
      sc[P + 1] = this.resolved[1]!;
    }
    this.chainSequence(hasParent, n);
    sc = this.scratch;
    const core = this.core;
    for (let i = 0; i < n; i++) {
      const at = B + STRIDE * i;
      const eLo = sc[at]!;
      const eHi = sc[at + 1]!;
      const sLo = sc[at + 4]!;
      const sHi = sc[at + 5]!;
      const aliases = this.aliases[slot];
      if ((aliases === undefined || aliases.size === 0) && eLo === sLo && eHi === sHi) {
        // The usual case (Dynamo-style ids): block_hash is the sequence hash, no alias table.
        if (core.acquireOnce(slot, sLo, sHi)) this.orders[slot]!.push(sLo, sHi);
        continue;
      }
      this.storeGeneral(slot, eLo, eHi, sLo, sHi);
    }
    this.enforceCap(slot, workerId);
    return { status: 'applied', blocks: n };
  }

  /** Maps block id `e` of the worker to sequence hash `s`, whatever it mapped to before. */
  private storeGeneral(slot: number, eLo: number, eHi: number, sLo: number, sHi: number): void {
    const core = this.core;
    const identity = eLo === sLo && eHi === sHi;
    const aliases = this.aliases[slot];
    const ae = aliases === undefined ? -1 : aliases.find(eLo, eHi);
    if (ae >= 0) {
      const oLo = aliases!.data[ae + V0]!;
      const oHi = aliases!.data[ae + V1]!;
      if (oLo === sLo && oHi === sHi) return;
      core.release(slot, oLo, oHi);
      this.countAlias(slot, oLo, oHi, -1);
      if (identity) aliases!.removeAt(ae);
      else {
        aliases!.data[ae + V0] = sLo;
        aliases!.data[ae + V1] = sHi;
        this.countAlias(slot, sLo, sHi, 1);
      }
      core.acquire(slot, sLo, sHi);
      return;
    }
    if (this.hasIdentity(slot, eLo, eHi)) {
      if (identity) return;
      core.release(slot, eLo, eHi);
    }
    if (!identity) this.addAlias(slot, eLo, eHi, sLo, sHi);
    core.acquire(slot, sLo, sHi);
  }

  private addAlias(slot: number, eLo: number, eHi: number, sLo: number, sHi: number): void {
    let t = this.aliases[slot];
    if (t === undefined) {
      t = new U64Table({ twoWords: true });
      this.aliases[slot] = t;
      this.aliasCounts[slot] = new U64Table();
    }
    const e = t.insert(eLo, eHi);
    t.data[e + V0] = sLo;
    t.data[e + V1] = sHi;
    this.countAlias(slot, sLo, sHi, 1);
  }

  private countAlias(slot: number, sLo: number, sHi: number, delta: number): void {
    const counts = this.aliasCounts[slot]!;
    const e = counts.insert(sLo, sHi);
    const v = counts.data[e + V0]! + delta;
    if (v <= 0) counts.removeAt(e);
    else counts.data[e + V0] = v;
  }

  /** Whether the worker holds block id `e` as its own sequence hash (not only through aliases). */
  private hasIdentity(slot: number, eLo: number, eHi: number): boolean {
    const refs = this.core.refCount(slot, eLo, eHi);
    if (refs === 0) return false;
    const counts = this.aliasCounts[slot];
    if (counts === undefined || counts.size === 0) return true;
    const c = counts.find(eLo, eHi);
    return refs > (c < 0 ? 0 : counts.data[c + V0]!);
  }

  /** Resolves a block id of the worker to its sequence hash, into `resolved`. */
  private resolve(slot: number, eLo: number, eHi: number): boolean {
    const aliases = this.aliases[slot];
    if (aliases !== undefined && aliases.size > 0) {
      const ae = aliases.find(eLo, eHi);
      if (ae >= 0) {
        this.resolved[0] = aliases.data[ae + V0]!;
        this.resolved[1] = aliases.data[ae + V1]!;
        return true;
      }
    }
    if (!this.hasIdentity(slot, eLo, eHi)) return false;
    this.resolved[0] = eLo;
    this.resolved[1] = eHi;
    return true;
  }

  /** Drops the worker's block id `e`; returns false when it has no such id. */
  private dropId(slot: number, eLo: number, eHi: number): boolean {
    const aliases = this.aliases[slot];
    if (aliases !== undefined && aliases.size > 0) {
      const ae = aliases.find(eLo, eHi);
      if (ae >= 0) {
        const sLo = aliases.data[ae + V0]!;
        const sHi = aliases.data[ae + V1]!;
        aliases.removeAt(ae);
        this.countAlias(slot, sLo, sHi, -1);
        this.core.release(slot, sLo, sHi);
        return true;
      }
    }
    if (!this.hasIdentity(slot, eLo, eHi)) return false;
    this.core.release(slot, eLo, eHi);
    return true;
  }

  /** Fills the sequence-hash words of the scratch from the tokens hashes (and the parent's). */
  private chainSequence(hasParent: boolean, n: number): void {
    const w = this.wasm;
    if (w !== undefined) {
      w.chainSeq(4 * (B + 2), 4 * STRIDE, 4 * (B + 4), 4 * STRIDE, n, hasParent, 4 * P);
      return;
    }
    const sc = this.scratch;
    const chain = this.chain;
    let pLo = sc[P]!;
    let pHi = sc[P + 1]!;
    for (let i = 0; i < n; i++) {
      const at = B + STRIDE * i;
      if (hasParent || i > 0) {
        chainPacked(pLo, pHi, sc[at + 2]!, sc[at + 3]!, chain);
        pLo = chain[0]!;
        pHi = chain[1]!;
      } else {
        pLo = sc[at + 2]!;
        pHi = sc[at + 3]!;
      }
      sc[at + 4] = pLo;
      sc[at + 5] = pHi;
    }
  }

  private applyRemoved(slot: number, n: number): ApplyResult {
    const sc = this.scratch;
    let missing = 0;
    for (let i = 0; i < n; i++) {
      if (!this.dropId(slot, sc[B + STRIDE * i]!, sc[B + STRIDE * i + 1]!)) missing++;
    }
    const result: ApplyResult = { status: 'applied', blocks: n - missing };
    if (missing > 0) result.missing = missing;
    return result;
  }

  /** Drops every block id of a slot; returns how many it held. */
  private releaseAll(slot: number): number {
    const n = this.core.releaseAllOf(slot);
    this.orders[slot]?.clear();
    this.aliases[slot]?.clear();
    this.aliasCounts[slot]?.clear();
    return n;
  }

  private invalid(event: unknown): ApplyResult {
    const v = validateKvEvent(event);
    const errors = v.ok ? ['malformed event'] : v.errors;
    this.counts.rejected++;
    const e = event as { worker_id?: unknown; event_id?: unknown } | null;
    this.warn('kv event rejected: invalid', {
      worker_id: typeof e === 'object' && e !== null ? e.worker_id : undefined,
      event_id: typeof e === 'object' && e !== null ? e.event_id : undefined,
      errors,
    });
    return { status: 'rejected', reason: 'invalid', blocks: 0, errors };
  }

  /** Makes room in the scratch for `blocks` blocks. */
  private reserve(blocks: number): void {
    const words = B + STRIDE * blocks;
    if (this.wasm !== undefined) {
      this.wasm.reserve(4 * words);
      this.scratch = this.wasm.u32;
    } else if (this.scratch.length < words) {
      this.scratch = new Uint32Array(Math.max(words, this.scratch.length * 2));
    }
  }

  /**
   * Per-worker overlap of a request: how many of its leading blocks each worker holds.
   * @param sequenceHashes the request's sequence hashes (see {@link sequenceHashes})
   * @returns worker id -> overlap in blocks, for workers with at least one block
   */
  findMatches(sequenceHashes: readonly bigint[]): Map<string, number> {
    const packed = packBigints(sequenceHashes);
    this.core.score(packed, 0, 2, sequenceHashes.length);
    const out = new Map<string, number>();
    for (const id of this.core.workerIds()) {
      const o = this.core.overlap(this.core.slotOf(id));
      if (o > 0) out.set(id, o);
    }
    return out;
  }

  /** Overlap of one worker with a request (see {@link KvIndexer.findMatches}). */
  overlap(workerId: string, sequenceHashes: readonly bigint[]): number {
    return this.findMatches(sequenceHashes).get(workerId) ?? 0;
  }

  /**
   * What the index holds for a worker slot (test and debugging aid; O(blocks)): the blocks of the
   * shared table that reference it and the size of its alias tables. All zero for a slot whose
   * worker was removed.
   */
  slotFootprint(slot: number): {
    workerId: string | undefined;
    references: number;
    aliases: number;
    aliasTargets: number;
  } {
    return {
      workerId: this.core.workerAt(slot),
      references: this.core.scanReferences(slot),
      aliases: this.aliases[slot]?.size ?? 0,
      aliasTargets: this.aliasCounts[slot]?.size ?? 0,
    };
  }
}

function hexOf(lo: number, hi: number): string {
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}
