/**
 * Block hashing, bit-compatible with Dynamo.
 *
 * A prompt's tokens are u32 little-endian; only full blocks of `blockSize` tokens are hashed.
 * - local block hash: `xxh3_64(le32(tokens of the block), seed = 1337)`;
 * - sequence hash: `seq[0] = local[0]`, `seq[i] = xxh3_64(le64(seq[i-1]) ++ le64(local[i]), seed = 1337)`.
 *
 * The sequence hash of block `i` names the whole prefix up to and including that block, which is
 * what the indexer keys on. The public functions return unsigned 64-bit `bigint`s; the
 * {@link BlockHasher} gives the same values packed as u32 pairs without allocating, which is what
 * the router uses on its hot path.
 *
 * Implementation: a WebAssembly XXH3 (xxh3-wasm.ts) hashes a whole prompt in one call; where
 * WebAssembly is unavailable (`node --jitless`, big-endian hosts) blocks are hashed with the native
 * `@node-rs/xxhash` and chained in JavaScript. Both give identical results.
 * @packageDocumentation
 */
import { xxh3 } from '@node-rs/xxhash';
import { RouterInvalidArgumentError } from './errors';
import { Xxh3Pair } from './xxh3';
import { createWasmHasher, WASM_HEAP_BASE, type WasmHasher } from './xxh3-wasm';

/** The xxh3 seed Dynamo uses for block hashes. */
export const HASH_SEED = 1337n;

const pairHasher = new Xxh3Pair(HASH_SEED);
const M64 = (1n << 64n) - 1n;

/** Joins a (lo, hi) pair of u32 into an unsigned 64-bit bigint. */
export function joinHash(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Throws unless `blockSize` is a positive integer. */
export function checkBlockSize(blockSize: number, name = 'blockSize'): void {
  if (!Number.isSafeInteger(blockSize) || blockSize < 1 || blockSize > 1 << 24) {
    throw new RouterInvalidArgumentError(`${name} must be an integer in [1, 2^24], got ${String(blockSize)}`);
  }
}

function checkHash(h: bigint, name: string): void {
  if (typeof h !== 'bigint' || h < 0n || h > M64) {
    throw new RouterInvalidArgumentError(`${name} must be an unsigned 64-bit bigint, got ${String(h)}`);
  }
}

/**
 * The hashes of one token sequence, packed as u32 words: block `i`'s local hash is
 * `words[base + 4i]` (low 32 bits) and `words[base + 4i + 1]` (high 32 bits), its sequence hash
 * `words[base + 4i + 2]` and `words[base + 4i + 3]`. Returned by {@link BlockHasher.hash} and valid
 * until its next call: copy what you keep.
 */
export interface PackedHashes {
  /** Number of full blocks hashed. */
  readonly count: number;
  /** Number of tokens given (including a trailing partial block). */
  readonly tokens: number;
  /** The words (see the interface comment). */
  readonly words: Uint32Array;
  /** Index of block 0's first word. */
  readonly base: number;
}

/** Word stride between blocks in {@link PackedHashes}. */
export const PACKED_STRIDE = 4;

/** The sequence hash of block `i` of packed hashes, as a bigint. */
export function packedSequenceHash(p: PackedHashes, i: number): bigint {
  return joinHash(p.words[p.base + 4 * i + 2]!, p.words[p.base + 4 * i + 3]!);
}

/** The local hash of block `i` of packed hashes, as a bigint. */
export function packedLocalHash(p: PackedHashes, i: number): bigint {
  return joinHash(p.words[p.base + 4 * i]!, p.words[p.base + 4 * i + 1]!);
}

/**
 * Hashes token sequences for one block size without allocating per call: tokens are validated as
 * u32 while they are copied into WebAssembly memory, and the whole prompt is hashed in one call.
 * Not re-entrant: the result of {@link BlockHasher.hash} is overwritten by the next call.
 */
export class BlockHasher {
  /** Tokens per block. */
  readonly blockSize: number;
  private readonly wasm: WasmHasher | undefined;
  private fallbackWords = new Uint32Array(0);
  private fallbackBytes = new Uint8Array(0);
  private readonly result: { count: number; tokens: number; words: Uint32Array; base: number } = {
    count: 0,
    tokens: 0,
    words: new Uint32Array(0),
    base: 0,
  };

  /**
   * @param blockSize tokens per block
   * @param options `webAssembly: false` forces the fallback path (native addon per block), which
   *   is otherwise used only where WebAssembly is unavailable; results are identical
   */
  constructor(blockSize: number, options: { webAssembly?: boolean } = {}) {
    checkBlockSize(blockSize);
    this.blockSize = blockSize;
    this.wasm = options.webAssembly === false ? undefined : createWasmHasher();
  }

  /** Whether hashing runs in WebAssembly (else: native addon per block). */
  get usesWebAssembly(): boolean {
    return this.wasm !== undefined;
  }

  /**
   * Hashes the full blocks of `tokens`.
   * @param tokens token ids, each an integer in [0, 2^32)
   * @returns the packed local and sequence hashes (valid until the next call)
   * @throws RouterInvalidArgumentError when a token is not a u32
   */
  hash(tokens: ArrayLike<number>): PackedHashes {
    const n = tokens.length;
    const bs = this.blockSize;
    const count = Math.floor(n / bs);
    const used = count * bs;
    const r = this.result;
    r.count = count;
    r.tokens = n;
    const w = this.wasm;
    if (w !== undefined) {
      // Tokens at WASM_HEAP_BASE, hashes after them (8-byte aligned).
      const outAt = (WASM_HEAP_BASE + used * 4 + 15) & ~7;
      w.reserve(outAt + count * 16);
      copyTokens(tokens, n, used, w.u32, WASM_HEAP_BASE / 4);
      if (count > 0) w.hashBlocks(WASM_HEAP_BASE, count, bs * 4, outAt);
      r.words = w.u32;
      r.base = outAt / 4;
      return r;
    }
    this.hashFallback(tokens, n, count, used);
    return r;
  }

  private hashFallback(tokens: ArrayLike<number>, n: number, count: number, used: number): void {
    const bs = this.blockSize;
    if (this.fallbackWords.length < count * 4) {
      this.fallbackWords = new Uint32Array(count * 8);
    }
    if (this.fallbackBytes.length < used * 4) this.fallbackBytes = new Uint8Array(used * 8);
    const bytes = this.fallbackBytes;
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < n; i++) {
      const t = tokens[i]!;
      if (t >>> 0 !== t) throw badToken(i, t);
      if (i < used) view.setUint32(i * 4, t, true);
    }
    const out = this.fallbackWords;
    let pLo = 0;
    let pHi = 0;
    for (let b = 0; b < count; b++) {
      const h = xxh3.xxh64(bytes.subarray(b * bs * 4, (b + 1) * bs * 4), HASH_SEED);
      const lo = Number(h & 0xffffffffn);
      const hi = Number(h >> 32n);
      out[4 * b] = lo;
      out[4 * b + 1] = hi;
      if (b > 0) {
        pairHasher.hashPair(pLo, pHi, lo, hi);
        pLo = pairHasher.lo;
        pHi = pairHasher.hi;
      } else {
        pLo = lo;
        pHi = hi;
      }
      out[4 * b + 2] = pLo;
      out[4 * b + 3] = pHi;
    }
    this.result.words = out;
    this.result.base = 0;
  }
}

/** Copies `used` tokens into `dst` at word `at`, validating all `n` as u32. */
function copyTokens(tokens: ArrayLike<number>, n: number, used: number, dst: Uint32Array, at: number): void {
  if (tokens instanceof Uint32Array) {
    dst.set(used === n ? tokens : tokens.subarray(0, used), at);
    return;
  }
  for (let i = 0; i < used; i++) {
    const t = tokens[i]!;
    if (t >>> 0 !== t) throw badToken(i, t);
    dst[at + i] = t;
  }
  for (let i = used; i < n; i++) {
    const t = tokens[i]!;
    if (t >>> 0 !== t) throw badToken(i, t);
  }
}

function badToken(i: number, t: unknown): RouterInvalidArgumentError {
  return new RouterInvalidArgumentError(`tokens[${i}] must be an integer in [0, 2^32), got ${String(t)}`);
}

const hashers = new Map<number, BlockHasher>();
/** A shared hasher per block size (for the convenience functions). @internal */
export function sharedHasher(blockSize: number): BlockHasher {
  let h = hashers.get(blockSize);
  if (h === undefined) {
    checkBlockSize(blockSize);
    h = new BlockHasher(blockSize);
    if (hashers.size < 16) hashers.set(blockSize, h);
  }
  return h;
}

/**
 * Local block hashes of the full blocks of `tokens`: `xxh3_64(le32(block), seed=1337)`.
 * @param tokens token ids, integers in [0, 2^32); a trailing partial block is ignored
 * @param blockSize tokens per block
 * @returns one unsigned 64-bit bigint per full block
 */
export function blockHashes(tokens: ArrayLike<number>, blockSize: number): bigint[] {
  const p = sharedHasher(blockSize).hash(tokens);
  const out = new Array<bigint>(p.count);
  for (let i = 0; i < p.count; i++) out[i] = packedLocalHash(p, i);
  return out;
}

/**
 * Sequence hashes of the full blocks of `tokens` (each names the prefix ending at its block).
 * @param tokens token ids, integers in [0, 2^32); a trailing partial block is ignored
 * @param blockSize tokens per block
 * @returns one unsigned 64-bit bigint per full block
 */
export function sequenceHashes(tokens: ArrayLike<number>, blockSize: number): bigint[] {
  const p = sharedHasher(blockSize).hash(tokens);
  const out = new Array<bigint>(p.count);
  for (let i = 0; i < p.count; i++) out[i] = packedSequenceHash(p, i);
  return out;
}

/**
 * The local hash of one block: all of `blockTokens` is hashed, whatever its length (at least 1).
 * @param blockTokens the block's token ids, integers in [0, 2^32)
 */
export function localBlockHash(blockTokens: ArrayLike<number>): bigint {
  if (blockTokens.length === 0) throw new RouterInvalidArgumentError('a block has at least one token');
  return blockHashes(blockTokens, blockTokens.length)[0]!;
}

/**
 * The sequence hash of a block from its parent's sequence hash and its own local hash:
 * `xxh3_64(le64(parent) ++ le64(local), seed=1337)`, or `local` itself for a first block.
 * @param parent the previous block's sequence hash, or `null`/`undefined` for the first block
 * @param local the block's local hash
 */
export function sequenceHash(parent: bigint | null | undefined, local: bigint): bigint {
  checkHash(local, 'local');
  if (parent === null || parent === undefined) return local;
  checkHash(parent, 'parent');
  pairHasher.hashPair(
    Number(parent & 0xffffffffn),
    Number(parent >> 32n),
    Number(local & 0xffffffffn),
    Number(local >> 32n),
  );
  return joinHash(pairHasher.lo, pairHasher.hi);
}

/**
 * The sequence-hash step on packed halves, result in `out[0]` (lo) and `out[1]` (hi).
 * @internal
 */
export function chainPacked(pLo: number, pHi: number, lLo: number, lHi: number, out: Uint32Array): void {
  pairHasher.hashPair(pLo, pHi, lLo, lHi);
  out[0] = pairHasher.lo;
  out[1] = pairHasher.hi;
}
