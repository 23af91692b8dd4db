import { KvEventBuilder, sequenceHashes, type KvEvent } from '@dynamo-ts/router';

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
 * The dummy worker's simulated KV cache: which prompt blocks it holds (by sequence hash), with
 * LRU eviction, announcing every store and removal as a KV event so the Router's index follows.
 */
export class KvCache {
  /** Sequence hash -> true, in LRU order (oldest first). */
  private readonly blocks = new Map<bigint, true>();
  private readonly events: KvEventBuilder;

  constructor(private readonly options: KvCacheOptions) {
    this.events = new KvEventBuilder(options.workerId, options.blockSize);
  }

  /** Blocks held. */
  get size(): number {
    return this.blocks.size;
  }

  /** How many leading full blocks of `tokens` are cached. */
  matchPrefix(tokens: readonly number[]): number {
    const hashes = sequenceHashes(tokens, this.options.blockSize);
    let n = 0;
    while (n < hashes.length && this.blocks.has(hashes[n]!)) n++;
    return n;
  }

  /** Records the full blocks of `tokens` as cached (prefilled), announcing the new ones. */
  store(tokens: readonly number[]): void {
    const hashes = sequenceHashes(tokens, this.options.blockSize);
    let cached = 0;
    while (cached < hashes.length && this.blocks.has(hashes[cached]!)) cached++;
    if (cached < hashes.length) this.options.publish(this.events.stored(tokens, cached));
    // Touch children before parents, so a parent is never evicted before its descendants.
    for (let i = hashes.length - 1; i >= 0; i--) {
      this.blocks.delete(hashes[i]!);
      this.blocks.set(hashes[i]!, true);
    }
    this.evict();
  }

  private evict(): void {
    const over = this.blocks.size - this.options.capacityBlocks;
    if (over <= 0) return;
    const removed: bigint[] = [];
    for (const h of this.blocks.keys()) {
      if (removed.length >= over) break;
      removed.push(h);
    }
    for (const h of removed) this.blocks.delete(h);
    this.options.publish(this.events.removed(removed));
  }
}
