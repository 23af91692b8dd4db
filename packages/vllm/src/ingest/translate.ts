import { blockHashes, hashToWire, sequenceHash, type KvEvent } from '@dynamo-ts/router';
import type { EngineHash, VllmEvent } from './wire';

/** What the translator reports (the ingest logs it). */
export interface TranslateWarning {
  message: string;
  fields: Record<string, unknown>;
}

/** Options of {@link EngineKvTranslator}. */
export interface EngineKvTranslatorOptions {
  /** The router's worker id the events are published for. */
  workerId: string;
  /** The router's block size; a `BlockStored` of another size is refused. */
  blockSize: number;
  /** Most engine blocks remembered per rank (the engine's cache size is a good bound). */
  maxBlocks: number;
  /** Receives the router's events. */
  emit(event: KvEvent): void;
  warn(w: TranslateWarning): void;
}

/** What one rank's engine cache holds, as the translator knows it. */
interface RankState {
  /** Engine block hash -> the router's sequence hash of the same block. */
  blocks: Map<EngineHash, bigint>;
}

/**
 * Turns one engine's KV events (all its DP ranks) into the router's events, Dynamo-style: the
 * router hashes of each stored block are recomputed from its `token_ids` (chained xxh3, seed
 * 1337) and the engine's own hashes kept only to link a block to its parent and to apply
 * removals. The ranks of one engine are one router worker: a block is announced when the first
 * rank stores it and withdrawn when the last rank holding it drops it. Bounded: at most
 * `maxBlocks` engine blocks per rank (the oldest are withdrawn when an engine overflows it).
 */
export class EngineKvTranslator {
  private readonly ranks = new Map<number, RankState>();
  /** Router hash -> number of ranks holding it. */
  private readonly holders = new Map<bigint, number>();
  private eventId = 0;
  private warnedBlockSize = false;

  constructor(private readonly o: EngineKvTranslatorOptions) {}

  /** Engine blocks known over all ranks. */
  get size(): number {
    let n = 0;
    for (const r of this.ranks.values()) n += r.blocks.size;
    return n;
  }

  /** The router hashes of the blocks the engine holds (for comparisons in tests and diagnostics). */
  routerHashes(): bigint[] {
    return [...this.holders.keys()];
  }

  private rank(r: number): RankState {
    let s = this.ranks.get(r);
    if (!s) this.ranks.set(r, (s = { blocks: new Map() }));
    return s;
  }

  /** Applies one engine event of rank `r`. */
  apply(r: number, e: VllmEvent): void {
    if (e.type === 'AllBlocksCleared') return this.clearRank(r);
    // Only the device cache is routed on; offloaded tiers (CPU, disk) have their own events.
    if (e.medium !== null && e.medium !== 'GPU') return;
    if (e.type === 'BlockRemoved') return this.remove(r, e.blockHashes);
    const bs = this.o.blockSize;
    if (e.blockSize !== bs) {
      if (!this.warnedBlockSize) {
        this.warnedBlockSize = true;
        this.o.warn({
          message: 'engine block size differs from the router: its KV events are ignored (fix --block-size)',
          fields: { worker_id: this.o.workerId, engine_block_size: e.blockSize, router_block_size: bs },
        });
      }
      return;
    }
    if (e.tokenIds.length !== e.blockHashes.length * bs) {
      this.o.warn({
        message: 'BlockStored token count does not match its blocks; skipped',
        fields: { worker_id: this.o.workerId, blocks: e.blockHashes.length, tokens: e.tokenIds.length },
      });
      return;
    }
    const state = this.rank(r);
    let parent: bigint | null = null;
    if (e.parentBlockHash !== null) {
      const p = state.blocks.get(e.parentBlockHash);
      if (p === undefined) {
        this.o.warn({
          message: 'BlockStored for an unknown parent block; skipped',
          fields: { worker_id: this.o.workerId, dp_rank: r, blocks: e.blockHashes.length },
        });
        return;
      }
      parent = p;
    }
    const locals = blockHashes(e.tokenIds, bs);
    const blocks: { block_hash: string; tokens_hash: string }[] = [];
    const firstParent = parent;
    for (let i = 0; i < locals.length; i++) {
      const seq = sequenceHash(parent, locals[i]!);
      parent = seq;
      const engineKey = e.blockHashes[i]!;
      const had = state.blocks.get(engineKey);
      if (had !== undefined) continue;
      state.blocks.set(engineKey, seq);
      const n = this.holders.get(seq) ?? 0;
      this.holders.set(seq, n + 1);
      blocks.push({ block_hash: hashToWire(seq), tokens_hash: hashToWire(locals[i]!) });
    }
    // Blocks of the chain already known are announced again with the new ones (idempotent).
    if (blocks.length > 0) {
      const chain =
        blocks.length === locals.length
          ? blocks
          : e.blockHashes.map((h, i) => ({
              block_hash: hashToWire(state.blocks.get(h)!),
              tokens_hash: hashToWire(locals[i]!),
            }));
      this.emit({ type: 'stored', parent_hash: firstParent === null ? null : hashToWire(firstParent), blocks: chain });
    }
    this.bound(r, state);
  }

  private remove(r: number, hashes: readonly EngineHash[]): void {
    const state = this.rank(r);
    const gone: string[] = [];
    let unknown = 0;
    for (const h of hashes) {
      const seq = state.blocks.get(h);
      if (seq === undefined) {
        unknown++;
        continue;
      }
      state.blocks.delete(h);
      if (this.release(seq)) gone.push(hashToWire(seq));
    }
    if (unknown > 0) {
      this.o.warn({
        message: 'BlockRemoved for blocks never stored; those ignored',
        fields: { worker_id: this.o.workerId, dp_rank: r, unknown },
      });
    }
    if (gone.length > 0) this.emit({ type: 'removed', block_hashes: gone });
  }

  /** True when no rank holds `seq` any more. */
  private release(seq: bigint): boolean {
    const n = (this.holders.get(seq) ?? 1) - 1;
    if (n > 0) {
      this.holders.set(seq, n);
      return false;
    }
    this.holders.delete(seq);
    return true;
  }

  /** Rank `r` dropped its cache (AllBlocksCleared, a restart, or a gap that could not be replayed). */
  clearRank(r: number): void {
    const state = this.ranks.get(r);
    if (!state) return;
    this.ranks.delete(r);
    if (this.ranks.size === 0) {
      this.holders.clear();
      this.emit({ type: 'cleared' });
      return;
    }
    const gone: string[] = [];
    for (const seq of state.blocks.values()) if (this.release(seq)) gone.push(hashToWire(seq));
    if (gone.length > 0) this.emit({ type: 'removed', block_hashes: gone });
  }

  /** Forgets everything (the router gets one `cleared`). */
  clearAll(): void {
    this.ranks.clear();
    this.holders.clear();
    this.emit({ type: 'cleared' });
  }

  private bound(r: number, state: RankState): void {
    const over = state.blocks.size - this.o.maxBlocks;
    if (over <= 0) return;
    // Maps iterate in insertion order: the oldest blocks go first.
    const gone: string[] = [];
    let k = 0;
    for (const [h, seq] of state.blocks) {
      if (k++ >= over) break;
      state.blocks.delete(h);
      if (this.release(seq)) gone.push(hashToWire(seq));
    }
    this.o.warn({
      message: 'engine holds more blocks than configured; the oldest forgotten',
      fields: { worker_id: this.o.workerId, dp_rank: r, forgotten: over, max_blocks: this.o.maxBlocks },
    });
    if (gone.length > 0) this.emit({ type: 'removed', block_hashes: gone });
  }

  private emit(body: Omit<KvEvent, 'worker_id' | 'event_id'> & Record<string, unknown>): void {
    this.o.emit({ ...body, worker_id: this.o.workerId, event_id: this.eventId++ } as KvEvent);
  }
}
