/**
 * Builders of the KV events a worker publishes (see `events.ts` for the wire format): a `stored`
 * event from a prompt's tokens, `removed` and `cleared` events, and {@link KvEventBuilder}, which
 * numbers a worker's events.
 * @packageDocumentation
 */
import { RouterInvalidArgumentError } from './errors';
import { chainPacked as chainInto, checkBlockSize, PACKED_STRIDE, sharedHasher } from './hashing';
import {
  hashToWire,
  isWireHash,
  packedToHex,
  parseHexInto,
  type KvClearedEvent,
  type KvRemovedEvent,
  type KvStoredBlock,
  type KvStoredEvent,
  type WireHash,
} from './events';

function checkEventHeader(workerId: string, eventId: number): void {
  if (typeof workerId !== 'string' || workerId.length === 0) {
    throw new RouterInvalidArgumentError('workerId must be a non-empty string');
  }
  if (!Number.isSafeInteger(eventId) || eventId < 0) {
    throw new RouterInvalidArgumentError(`eventId must be a non-negative safe integer, got ${String(eventId)}`);
  }
}

function wireOf(h: bigint | WireHash | null | undefined, name: string): WireHash | null {
  if (h === null || h === undefined) return null;
  if (typeof h === 'bigint') return hashToWire(h);
  if (!isWireHash(h)) throw new RouterInvalidArgumentError(`${name} must be a hex hash or bigint, got ${String(h)}`);
  return h;
}

/** Options of {@link storedEventForBlocks}. */
export interface StoredBlocksRange {
  /** First block to include (earlier blocks are the cached prefix); default 0. */
  fromBlock?: number;
  /** One past the last block to include; default: all full blocks. */
  toBlock?: number;
}

/**
 * Builds the `stored` event for blocks `fromBlock..toBlock` of a whole token sequence, Dynamo-style:
 * `block_hash` is each block's sequence hash, `tokens_hash` its local hash, and `parent_hash` the
 * sequence hash of block `fromBlock - 1` (null when `fromBlock` is 0). Use it when a worker has
 * computed the KV of a prompt whose first `fromBlock` blocks were already cached.
 */
export function storedEventForBlocks(
  workerId: string,
  eventId: number,
  tokens: ArrayLike<number>,
  blockSize: number,
  range: StoredBlocksRange = {},
): KvStoredEvent {
  checkEventHeader(workerId, eventId);
  const p = sharedHasher(blockSize).hash(tokens);
  const from = range.fromBlock ?? 0;
  const to = range.toBlock ?? p.count;
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from || to > p.count) {
    throw new RouterInvalidArgumentError(
      `block range [${String(from)}, ${String(to)}) must lie within the ${p.count} full blocks of the tokens`,
    );
  }
  const blocks: KvStoredBlock[] = [];
  const w = p.words;
  for (let i = from; i < to; i++) {
    const at = p.base + PACKED_STRIDE * i;
    blocks.push({ block_hash: packedToHex(w[at + 2]!, w[at + 3]!), tokens_hash: packedToHex(w[at]!, w[at + 1]!) });
  }
  const pa = p.base + PACKED_STRIDE * (from - 1);
  const parent = from === 0 ? null : packedToHex(w[pa + 2]!, w[pa + 3]!);
  return { type: 'stored', worker_id: workerId, event_id: eventId, parent_hash: parent, blocks };
}

/**
 * Builds the `stored` event for the full blocks of `tokens`. With `parentHash` (the sequence hash of
 * the block just before `tokens`), the blocks continue that sequence and their `block_hash`es are
 * chained from it; without, `tokens` start a sequence.
 * @param parentHash the sequence hash the tokens continue, as bigint or wire hex, or null
 */
export function storedEventFromTokens(
  workerId: string,
  eventId: number,
  tokens: ArrayLike<number>,
  blockSize: number,
  parentHash?: bigint | WireHash | null,
): KvStoredEvent {
  checkEventHeader(workerId, eventId);
  const parent = wireOf(parentHash, 'parentHash');
  if (parent === null) return storedEventForBlocks(workerId, eventId, tokens, blockSize);
  const p = sharedHasher(blockSize).hash(tokens);
  const ph = new Uint32Array(2);
  parseHexInto(parent, ph, 0);
  let lo = ph[0]!;
  let hi = ph[1]!;
  const blocks: KvStoredBlock[] = [];
  for (let i = 0; i < p.count; i++) {
    const lLo = p.words[p.base + PACKED_STRIDE * i]!;
    const lHi = p.words[p.base + PACKED_STRIDE * i + 1]!;
    chainInto(lo, hi, lLo, lHi, ph);
    lo = ph[0]!;
    hi = ph[1]!;
    blocks.push({ block_hash: packedToHex(lo, hi), tokens_hash: packedToHex(lLo, lHi) });
  }
  return { type: 'stored', worker_id: workerId, event_id: eventId, parent_hash: parent, blocks };
}

/** Builds a `removed` event. */
export function removedEvent(
  workerId: string,
  eventId: number,
  blockHashes: ReadonlyArray<bigint | WireHash>,
): KvRemovedEvent {
  checkEventHeader(workerId, eventId);
  return {
    type: 'removed',
    worker_id: workerId,
    event_id: eventId,
    block_hashes: blockHashes.map((h, i) => wireOf(h, `blockHashes[${i}]`) as WireHash),
  };
}

/** Builds a `cleared` event. */
export function clearedEvent(workerId: string, eventId: number): KvClearedEvent {
  checkEventHeader(workerId, eventId);
  return { type: 'cleared', worker_id: workerId, event_id: eventId };
}

/**
 * Stamps a worker's events with consecutive event ids (starting at `firstEventId`, default 0), for
 * worker authors: `const kv = new KvEventBuilder(id, 64); publish(kv.stored(promptTokens, cachedBlocks))`.
 */
export class KvEventBuilder {
  /** The worker the events come from. */
  readonly workerId: string;
  /** Tokens per block. */
  readonly blockSize: number;
  private next: number;

  constructor(workerId: string, blockSize: number, firstEventId = 0) {
    checkEventHeader(workerId, firstEventId);
    checkBlockSize(blockSize);
    this.workerId = workerId;
    this.blockSize = blockSize;
    this.next = firstEventId;
  }

  /** The event id the next event will carry. */
  get nextEventId(): number {
    return this.next;
  }

  /**
   * A `stored` event for the full blocks of `tokens` from block `fromBlock` on (the first
   * `fromBlock` blocks being already cached and announced), up to `toBlock`.
   */
  stored(tokens: ArrayLike<number>, fromBlock = 0, toBlock?: number): KvStoredEvent {
    const range: StoredBlocksRange = toBlock === undefined ? { fromBlock } : { fromBlock, toBlock };
    return storedEventForBlocks(this.workerId, this.next++, tokens, this.blockSize, range);
  }

  /** A `removed` event. */
  removed(blockHashes: ReadonlyArray<bigint | WireHash>): KvRemovedEvent {
    return removedEvent(this.workerId, this.next++, blockHashes);
  }

  /** A `cleared` event. */
  cleared(): KvClearedEvent {
    return clearedEvent(this.workerId, this.next++);
  }
}
