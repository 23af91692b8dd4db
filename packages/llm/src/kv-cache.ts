import { nextTurn, turnIsLong } from '@dynamo-ts/runtime';
import { removedEvent, sequenceHashes, storedEventFromTokens, type KvEvent } from '@dynamo-ts/router';

/** Options of {@link KvCache}. */
export interface KvCacheOptions {
  /** The worker's instance id (stamped on its KV events). */
  workerId: string;
  blockSize: number;
  /** Blocks held before the least recently used are evicted. */
  capacityBlocks: number;
  /** Receives every KV event, in order. */
  publish(event: KvEvent): void;
}

/**
 * The most blocks one KV event names: a huge prompt's store (or eviction) goes out as several
 * events (a `stored` chunk continues the previous one through its `parent_hash`), so no single
 * event costs its publisher, the event plane or a router's index more than a bounded slice of work.
 */
export const MAX_EVENT_BLOCKS = 1024;

/**
 * The dummy worker's simulated KV cache: which prompt blocks it holds (by sequence hash), with
 * LRU eviction, announcing every store and removal as a KV event so the Router's index follows.
 */
export class KvCache {
  /** Sequence hash -> true, in LRU order (oldest first). */
  private readonly blocks = new Map<bigint, true>();
  /** The id of the next KV event. */
  private nextEventId = 0;

  constructor(private readonly options: KvCacheOptions) {}

  /** Blocks held. */
  get size(): number {
    return this.blocks.size;
  }

  /** Sequence hashes of the full blocks of `tokens` (pass them on so a request is hashed once). */
  hashes(tokens: readonly number[]): bigint[] {
    return sequenceHashes(tokens, this.options.blockSize);
  }

  /** How many leading full blocks of `tokens` are cached. */
  matchPrefix(tokens: readonly number[], hashes: readonly bigint[] = this.hashes(tokens)): number {
    let n = 0;
    while (n < hashes.length && this.blocks.has(hashes[n]!)) n++;
    return n;
  }

  /** Records the full blocks of `tokens` as cached (prefilled), announcing the new ones. */
  store(tokens: readonly number[], hashes: readonly bigint[] = this.hashes(tokens)): void {
    for (const _ of this.storeSteps(tokens, hashes));
  }

  /**
   * {@link KvCache.store} in slices of at most {@link MAX_EVENT_BLOCKS} blocks, letting the event
   * loop turn between them once the turn has run long (`turnIsLong`): a prompt of tens of
   * thousands of blocks does not hold up the other requests of the process.
   */
  async storeAsync(tokens: readonly number[], hashes: readonly bigint[] = this.hashes(tokens)): Promise<void> {
    for (const _ of this.storeSteps(tokens, hashes)) if (turnIsLong()) await nextTurn();
  }

  /** The store, one slice of bounded work per step. */
  private *storeSteps(tokens: readonly number[], hashes: readonly bigint[]): Generator<void> {
    const { workerId, blockSize, publish } = this.options;
    const cached = this.matchPrefix(tokens, hashes);
    for (let from = cached; from < hashes.length; from += MAX_EVENT_BLOCKS) {
      const to = Math.min(from + MAX_EVENT_BLOCKS, hashes.length);
      const parent = from === 0 ? null : hashes[from - 1]!;
      const slice = tokens.slice(from * blockSize, to * blockSize);
      publish(storedEventFromTokens(workerId, this.nextEventId++, slice, blockSize, parent));
      yield;
    }
    // Touch children before parents, so a parent is never evicted before its descendants.
    for (let end = hashes.length; end > 0; end -= MAX_EVENT_BLOCKS) {
      for (let i = end - 1; i >= Math.max(0, end - MAX_EVENT_BLOCKS); i--) {
        this.blocks.delete(hashes[i]!);
        this.blocks.set(hashes[i]!, true);
      }
      yield;
    }
    yield* this.evictSteps();
  }

  /** Evicts the least recently used blocks beyond the capacity, announced in bounded events. */
  private *evictSteps(): Generator<void> {
    const over = this.blocks.size - this.options.capacityBlocks;
    if (over <= 0) return;
    // One pass over the oldest keys (iterating again after deletes would skip the holes each time).
    const victims: bigint[] = [];
    for (const h of this.blocks.keys()) {
      if (victims.length >= over) break;
      victims.push(h);
    }
    for (let from = 0; from < victims.length; from += MAX_EVENT_BLOCKS) {
      const removed = victims.slice(from, from + MAX_EVENT_BLOCKS);
      for (const h of removed) this.blocks.delete(h);
      this.options.publish(removedEvent(this.options.workerId, this.nextEventId++, removed));
      yield;
    }
  }
}
