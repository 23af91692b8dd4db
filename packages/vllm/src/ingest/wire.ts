import { decode } from '@msgpack/msgpack';

/**
 * The byte layout of vLLM's (and SGLang's) KV-event stream, decoded from untrusted bytes.
 *
 * A PUB message is three frames: topic, an 8-byte big-endian sequence number (per batch, from 0,
 * reset when the engine restarts), and a msgpack `KVEventBatch`. The batch is `[ts, events]` or
 * `[ts, events, dp_rank]` (msgspec `array_like`), or, from newer publishers, a map
 * `{ts, events, data_parallel_rank | attn_dp_rank}`. Each event is a tagged array
 * `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium, ...]`,
 * `["BlockRemoved", block_hashes, medium, ...]`, `["AllBlocksCleared"]`, or a map with a `type`
 * key and the same field names. A block hash is an integer (up to 64 bits: decoded as BigInt
 * beyond 2^53 so it is never rounded) or bytes (sha256 digests in some versions).
 */

/** An engine's block hash, normalised to a string key (`i<hex>` for integers, `b<hex>` for bytes). */
export type EngineHash = string;

/** A `BlockStored` event. */
export interface VllmBlockStored {
  type: 'BlockStored';
  blockHashes: EngineHash[];
  parentBlockHash: EngineHash | null;
  tokenIds: number[];
  blockSize: number;
  loraId: number | null;
  medium: string | null;
}

/** A `BlockRemoved` event. */
export interface VllmBlockRemoved {
  type: 'BlockRemoved';
  blockHashes: EngineHash[];
  medium: string | null;
}

/** An `AllBlocksCleared` event. */
export interface VllmAllCleared {
  type: 'AllBlocksCleared';
}

/** One engine KV event. */
export type VllmEvent = VllmBlockStored | VllmBlockRemoved | VllmAllCleared;

/** A decoded batch: its events, and the reasons events in it were skipped. */
export interface VllmEventBatch {
  ts: number;
  events: VllmEvent[];
  dpRank: number | undefined;
  /** One entry per event that could not be read (the others are kept). */
  skipped: string[];
}

/** Limits on what one batch may hold (a huge batch is refused, not decoded into memory). */
export interface WireLimits {
  /** Largest payload accepted, bytes. */
  maxPayloadBytes: number;
  /** Most events in one batch. */
  maxEvents: number;
  /** Most block hashes in one event. */
  maxBlocksPerEvent: number;
}

/** Defaults of {@link WireLimits}. */
export const DEFAULT_WIRE_LIMITS: WireLimits = {
  maxPayloadBytes: 16 * 1024 * 1024,
  maxEvents: 65536,
  maxBlocksPerEvent: 65536,
};

/** The end-of-replay sequence number (`-1` as 8 signed big-endian bytes). */
export const END_SEQ = -1n;

/** Reads an 8-byte big-endian sequence frame; throws on any other length. */
export function readSeq(frame: Uint8Array): bigint {
  if (frame.length !== 8) throw new Error(`sequence frame must be 8 bytes, got ${frame.length}`);
  return Buffer.from(frame.buffer, frame.byteOffset, 8).readBigInt64BE(0);
}

/** Writes a sequence number as 8 big-endian bytes (the replay request, and the doubles). */
export function seqFrame(seq: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(seq));
  return b;
}

/** Normalises an engine block hash; throws on anything else. */
export function engineHash(v: unknown): EngineHash {
  if (typeof v === 'bigint') {
    if (v < -(1n << 63n) || v >= 1n << 64n) throw new Error('block hash beyond 64 bits');
    return `i${BigInt.asUintN(64, v).toString(16)}`;
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error(`block hash ${v} is not an integer`);
    return `i${BigInt.asUintN(64, BigInt(v)).toString(16)}`;
  }
  if (v instanceof Uint8Array) {
    if (v.length === 0 || v.length > 64) throw new Error(`block hash of ${v.length} bytes`);
    return `b${Buffer.from(v.buffer, v.byteOffset, v.length).toString('hex')}`;
  }
  throw new Error(`block hash must be an integer or bytes, got ${typeof v}`);
}

function hashList(v: unknown, limits: WireLimits): EngineHash[] {
  if (!Array.isArray(v)) throw new Error('block_hashes must be an array');
  if (v.length > limits.maxBlocksPerEvent) throw new Error(`${v.length} block hashes in one event`);
  return v.map(engineHash);
}

function smallInt(v: unknown, name: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a natural number`);
  return n;
}

function tokenList(v: unknown, limits: WireLimits): number[] {
  if (!Array.isArray(v)) throw new Error('token_ids must be an array');
  if (v.length > limits.maxBlocksPerEvent * 4096) throw new Error(`${v.length} token ids in one event`);
  const out = new Array<number>(v.length);
  for (let i = 0; i < v.length; i++) {
    const t: unknown = v[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 0xffffffff) throw new Error('bad token id');
    out[i] = t;
  }
  return out;
}

const optString = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const optInt = (v: unknown): number | null =>
  typeof v === 'number' ? v : typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Reads one event, tagged array or map. */
export function readEvent(raw: unknown, limits: WireLimits = DEFAULT_WIRE_LIMITS): VllmEvent {
  let f: Record<string, unknown>;
  if (Array.isArray(raw)) {
    const [type, ...rest] = raw as unknown[];
    if (type === 'BlockStored') {
      const [block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium] = rest;
      f = { type, block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium };
    } else if (type === 'BlockRemoved') f = { type, block_hashes: rest[0], medium: rest[1] };
    else f = { type };
  } else if (isMap(raw)) f = raw;
  else throw new Error('event must be a tagged array or a map');
  switch (f.type) {
    case 'BlockStored': {
      const parent = f.parent_block_hash;
      return {
        type: 'BlockStored',
        blockHashes: hashList(f.block_hashes, limits),
        parentBlockHash: parent === null || parent === undefined ? null : engineHash(parent),
        tokenIds: tokenList(f.token_ids, limits),
        blockSize: smallInt(f.block_size, 'block_size'),
        loraId: optInt(f.lora_id),
        medium: optString(f.medium),
      };
    }
    case 'BlockRemoved':
      return { type: 'BlockRemoved', blockHashes: hashList(f.block_hashes, limits), medium: optString(f.medium) };
    case 'AllBlocksCleared':
      return { type: 'AllBlocksCleared' };
    default:
      throw new Error(`unknown event type ${JSON.stringify(String(f.type)).slice(0, 64)}`);
  }
}

/**
 * Decodes a `KVEventBatch` payload (either encoding). Throws when the payload is not a batch at
 * all (garbage, truncated msgpack, too large); an event that cannot be read is listed in
 * `skipped` and the rest of the batch kept.
 */
export function decodeBatch(payload: Uint8Array, limits: WireLimits = DEFAULT_WIRE_LIMITS): VllmEventBatch {
  if (payload.length > limits.maxPayloadBytes) throw new Error(`batch of ${payload.length} bytes is too large`);
  // BigInt only where a value does not fit a double exactly: block hashes stay exact.
  const raw = decode(payload, { useBigInt64: true, maxArrayLength: limits.maxEvents * 8 + 16 });
  let ts: unknown;
  let events: unknown;
  let rank: unknown;
  if (Array.isArray(raw)) [ts, events, rank] = raw as unknown[];
  else if (isMap(raw)) {
    ts = raw.ts;
    events = raw.events;
    rank = raw.data_parallel_rank ?? raw.attn_dp_rank ?? raw.dp_rank;
  } else throw new Error('batch must be an array or a map');
  if (!Array.isArray(events)) throw new Error('batch events must be an array');
  if (events.length > limits.maxEvents) throw new Error(`batch of ${events.length} events is too large`);
  const out: VllmEventBatch = {
    ts: typeof ts === 'number' ? ts : 0,
    events: [],
    dpRank: rank === null || rank === undefined ? undefined : smallInt(rank, 'dp_rank'),
    skipped: [],
  };
  for (const e of events as unknown[]) {
    try {
      out.events.push(readEvent(e, limits));
    } catch (err) {
      out.skipped.push((err as Error).message);
    }
  }
  return out;
}
