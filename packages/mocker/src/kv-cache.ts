/**
 * The simulated engine's paged KV cache: `numBlocks` blocks of `blockSize` tokens. Full prompt
 * blocks are named by their sequence hash (wire hex) and shared between sequences (prefix reuse);
 * a block nobody references stays cached until space is needed, then the least recently used is
 * evicted. Partial blocks, blocks still being computed and blocks reserved for generated tokens are
 * private (counted, not named).
 * @packageDocumentation
 */
import { RouterInvalidArgumentError } from '@dynamo-ts/router';

interface Block {
  hash: string;
  ref: number;
  /** LRU neighbours while idle (ref 0). */
  prev: Block | null;
  next: Block | null;
}

/** See the module comment. */
export class PagedKvCache {
  /** Capacity in blocks. */
  readonly numBlocks: number;
  /** Tokens per block. */
  readonly blockSize: number;
  /** Named blocks by hash. */
  private readonly blocks = new Map<string, Block>();
  /** Idle blocks: a list from least (head) to most (tail) recently used. */
  private head: Block | null = null;
  private tail: Block | null = null;
  private idle = 0;
  private privateCount = 0;

  constructor(numBlocks: number, blockSize: number) {
    if (!Number.isSafeInteger(numBlocks) || numBlocks <= 0) {
      throw new RouterInvalidArgumentError(`numBlocks must be a positive integer, got ${String(numBlocks)}`);
    }
    if (!Number.isSafeInteger(blockSize) || blockSize <= 0) {
      throw new RouterInvalidArgumentError(`blockSize must be a positive integer, got ${String(blockSize)}`);
    }
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
  }

  /** Blocks occupied: named (referenced or cached) plus private. */
  get usedBlocks(): number {
    return this.blocks.size + this.privateCount;
  }

  /** Blocks in use by sequences: referenced named blocks plus private ones. */
  get activeBlocks(): number {
    return this.blocks.size - this.idle + this.privateCount;
  }

  /** Named blocks nobody references (evictable). */
  get cachedIdleBlocks(): number {
    return this.idle;
  }

  /** Private blocks. */
  get privateBlocks(): number {
    return this.privateCount;
  }

  /** Blocks that could be allocated now, evicting idle cached blocks as needed. */
  get allocatableBlocks(): number {
    return this.numBlocks - this.activeBlocks;
  }

  /** Whether the block named `hash` is cached (referenced or idle). */
  has(hash: string): boolean {
    return this.blocks.has(hash);
  }

  /** Reference count of a named block (undefined when absent). */
  refCount(hash: string): number | undefined {
    return this.blocks.get(hash)?.ref;
  }

  /** How many leading `hashes` are cached. */
  matchPrefix(hashes: readonly string[]): number {
    let n = 0;
    while (n < hashes.length && this.blocks.has(hashes[n]!)) n++;
    return n;
  }

  /** References cached blocks (which must be present, e.g. from {@link matchPrefix}). */
  acquire(hashes: readonly string[], from = 0, to = hashes.length): void {
    for (let i = from; i < to; i++) {
      const b = this.blocks.get(hashes[i]!);
      if (b === undefined) throw new RouterInvalidArgumentError(`block ${hashes[i]!} is not cached`);
      this.ref(b);
    }
  }

  /**
   * Allocates `n` private blocks, evicting least recently used idle blocks as needed.
   * @param evicted receives the hashes of evicted blocks, in eviction order
   * @returns false (and allocates nothing) when fewer than `n` blocks can be freed
   */
  allocate(n: number, evicted: string[]): boolean {
    if (n > this.allocatableBlocks) return false;
    let free = this.numBlocks - this.usedBlocks;
    while (free < n) {
      const victim = this.head!;
      this.unlink(victim);
      this.blocks.delete(victim.hash);
      evicted.push(victim.hash);
      free++;
    }
    this.privateCount += n;
    return true;
  }

  /** Frees `n` private blocks. */
  freePrivate(n: number): void {
    if (n > this.privateCount) {
      throw new RouterInvalidArgumentError(`cannot free ${n} of ${this.privateCount} private blocks`);
    }
    this.privateCount -= n;
  }

  /**
   * Turns one private block into the named block `hash` (its KV is now computed), referenced once.
   * When `hash` is already cached (another sequence computed the same block meanwhile), the
   * private block is freed and the cached one referenced instead.
   * @returns true when the block is new (to be announced in a `stored` event)
   */
  commit(hash: string): boolean {
    if (this.privateCount <= 0) throw new RouterInvalidArgumentError('no private block to commit');
    this.privateCount--;
    const b = this.blocks.get(hash);
    if (b !== undefined) {
      this.ref(b);
      return false;
    }
    this.blocks.set(hash, { hash, ref: 1, prev: null, next: null });
    return true;
  }

  /**
   * Drops one reference to each of `hashes`, the last first (so a sequence's tail is evicted
   * before its prefix); blocks reaching 0 become idle, most recently used.
   */
  release(hashes: readonly string[], count = hashes.length): void {
    for (let i = count - 1; i >= 0; i--) {
      const b = this.blocks.get(hashes[i]!);
      if (b === undefined || b.ref === 0) throw new RouterInvalidArgumentError(`block ${hashes[i]!} is not referenced`);
      if (--b.ref === 0) {
        b.prev = this.tail;
        b.next = null;
        if (this.tail !== null) this.tail.next = b;
        else this.head = b;
        this.tail = b;
        this.idle++;
      }
    }
  }

  /**
   * Drops every idle cached block (referenced ones stay).
   * @returns the dropped hashes
   */
  clearIdle(): string[] {
    const out: string[] = [];
    while (this.head !== null) {
      const b = this.head;
      this.unlink(b);
      this.blocks.delete(b.hash);
      out.push(b.hash);
    }
    return out;
  }

  private ref(b: Block): void {
    if (b.ref === 0) this.unlink(b);
    b.ref++;
  }

  private unlink(b: Block): void {
    if (b.prev !== null) b.prev.next = b.next;
    else this.head = b.next;
    if (b.next !== null) b.next.prev = b.prev;
    else this.tail = b.prev;
    b.prev = null;
    b.next = null;
    this.idle--;
  }
}
