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
    const { workerId, blockSize, publish } = this.options;
    const cached = this.matchPrefix(tokens, hashes);
    for (let from = cached; from < hashes.length; from += MAX_EVENT_BLOCKS) {
      const to = Math.min(from + MAX_EVENT_BLOCKS, hashes.length);
      const parent = from === 0 ? null : hashes[from - 1]!;
      publish(
        storedEventFromTokens(
          workerId,
          this.nextEventId++,
          tokens.slice(from * blockSize, to * blockSize),
          blockSize,
          parent,
        ),
      );
    }
    // Touch children before parents, so a parent is never evicted before its descendants.
    for (let i = hashes.length - 1; i >= 0; i--) {
      this.blocks.delete(hashes[i]!);
      this.blocks.set(hashes[i]!, true);
    }
    this.evict();
  }

  private evict(): void {
    let over = this.blocks.size - this.options.capacityBlocks;
    while (over > 0) {
      const removed: bigint[] = [];
      for (const h of this.blocks.keys()) {
        if (removed.length >= Math.min(over, MAX_EVENT_BLOCKS)) break;
        removed.push(h);
      }
      for (const h of removed) this.blocks.delete(h);
      over -= removed.length;
      this.options.publish(removedEvent(this.options.workerId, this.nextEventId++, removed));
    }
  }
}
