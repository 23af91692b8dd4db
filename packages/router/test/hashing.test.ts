import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { xxh3 } from '@node-rs/xxhash';
import {
  BlockHasher,
  blockHashes,
  HASH_SEED,
  localBlockHash,
  packedLocalHash,
  packedSequenceHash,
  RouterInvalidArgumentError,
  sequenceHash,
  sequenceHashes,
} from '@dynamo-ts/router';
import { createWasmHasher, WASM_HEAP_BASE } from '../src/xxh3-wasm';
import { Xxh3Pair } from '../src/xxh3';
import { prng } from './model';

interface Vectors {
  seed: number;
  cases: Case[];
  pairs: { parent: string; local: string; sequence: string }[];
}
interface Case {
  block_size: number;
  tokens: number[];
  local: string[];
  sequence: string[];
}

const vectors = JSON.parse(readFileSync(join(__dirname, 'fixtures/hash-vectors.json'), 'utf8')) as Vectors;
const cases = vectors.cases;

/** Reference: the native addon on explicit little-endian bytes. */
function nativeXxh3(words: ArrayLike<number>): bigint {
  const buf = Buffer.alloc(words.length * 4);
  for (let i = 0; i < words.length; i++) buf.writeUInt32LE(words[i]!, i * 4);
  return xxh3.xxh64(buf, HASH_SEED);
}

describe('block hashing (Dynamo-compatible)', () => {
  it('has vectors generated independently with Python xxhash', () => {
    expect(vectors.seed).toBe(1337);
    expect(cases.length).toBeGreaterThan(30);
  });

  it.each(cases.map((c, i) => [i, c.block_size, c.tokens.length] as const))(
    'matches the Python vectors (case %i: block size %i, %i tokens)',
    (i) => {
      const c = cases[i]!;
      expect(blockHashes(c.tokens, c.block_size)).toEqual(c.local.map(BigInt));
      expect(sequenceHashes(c.tokens, c.block_size)).toEqual(c.sequence.map(BigInt));
      expect(sequenceHashes(Uint32Array.from(c.tokens), c.block_size)).toEqual(c.sequence.map(BigInt));
    },
  );

  it('matches the Python vectors on the fallback path (native addon per block)', () => {
    for (const c of cases) {
      const h = new BlockHasher(c.block_size, { webAssembly: false });
      expect(h.usesWebAssembly).toBe(false);
      const p = h.hash(c.tokens);
      expect(Array.from({ length: p.count }, (_, i) => packedLocalHash(p, i))).toEqual(c.local.map(BigInt));
      expect(Array.from({ length: p.count }, (_, i) => packedSequenceHash(p, i))).toEqual(c.sequence.map(BigInt));
    }
  });

  it('chains sequence hashes like the Python vectors', () => {
    for (const p of vectors.pairs) {
      expect(sequenceHash(BigInt(p.parent), BigInt(p.local))).toBe(BigInt(p.sequence));
    }
    expect(sequenceHash(null, 42n)).toBe(42n);
    expect(sequenceHash(undefined, 42n)).toBe(42n);
  });

  it('hashes every length the same as the native addon (WebAssembly, all xxh3 paths)', () => {
    const w = createWasmHasher();
    expect(w).toBeDefined();
    const rnd = prng(7);
    w!.reserve(WASM_HEAP_BASE + 4 * 4096 + 64);
    for (let n = 1; n <= 700; n += n < 80 ? 1 : 7) {
      const words = Array.from({ length: n }, () => Math.floor(rnd() * 2 ** 32));
      w!.u32.set(words, WASM_HEAP_BASE / 4);
      const out = WASM_HEAP_BASE + 4 * n + 8;
      w!.hashOne(WASM_HEAP_BASE, 4 * n, out);
      const got = (BigInt(w!.u32[out / 4 + 1]!) << 32n) | BigInt(w!.u32[out / 4]!);
      expect([n, got]).toEqual([n, nativeXxh3(words)]);
    }
  });

  it('computes the 16-byte step in JavaScript like the native addon', () => {
    const pair = new Xxh3Pair(HASH_SEED);
    const rnd = prng(11);
    for (let i = 0; i < 500; i++) {
      const w = [0, 1, 2, 3].map(() => Math.floor(rnd() * 2 ** 32));
      if (i < 4) w.fill(i === 0 ? 0 : 0xffffffff);
      pair.hashPair(w[0]!, w[1]!, w[2]!, w[3]!);
      expect((BigInt(pair.hi) << 32n) | BigInt(pair.lo)).toBe(nativeXxh3(w));
    }
  });

  it('hashes one block with localBlockHash, whatever its length', () => {
    const c = cases.find((x) => x.block_size === 64)!;
    expect(localBlockHash(c.tokens.slice(0, 64))).toBe(BigInt(c.local[0]!));
    expect(() => localBlockHash([])).toThrow(RouterInvalidArgumentError);
  });

  it('ignores a trailing partial block and hashes nothing below one block', () => {
    expect(sequenceHashes([1, 2, 3], 4)).toEqual([]);
    expect(sequenceHashes([], 4)).toEqual([]);
    expect(sequenceHashes([1, 2, 3, 4, 5], 2)).toEqual(sequenceHashes([1, 2, 3, 4], 2));
  });

  it('gives the same packed hashes for number[] and Uint32Array input, and reuses its buffers', () => {
    const h = new BlockHasher(16);
    const tokens = Array.from({ length: 1000 }, (_, i) => (i * 2654435761) >>> 0);
    const a = h.hash(tokens);
    const first = Array.from({ length: a.count }, (_, i) => packedSequenceHash(a, i));
    const b = h.hash(Uint32Array.from(tokens));
    expect(b).toBe(a); // the same reused object
    expect(Array.from({ length: b.count }, (_, i) => packedSequenceHash(b, i))).toEqual(first);
    expect(b.count).toBe(62);
    expect(b.tokens).toBe(1000);
    // a longer prompt grows the buffers
    const long = h.hash(Array.from({ length: 100_000 }, (_, i) => i));
    expect(long.count).toBe(6250);
    expect(packedSequenceHash(long, 0)).toBe(
      sequenceHashes(
        Array.from({ length: 16 }, (_, i) => i),
        16,
      )[0],
    );
  });

  it.each([[-1], [1.5], [2 ** 32], [Number.NaN], ['7' as unknown as number]])(
    'rejects the token %p with a clear error',
    (bad) => {
      expect(() => sequenceHashes([1, 2, bad, 4], 2)).toThrow(/tokens\[2\] must be an integer in \[0, 2\^32\)/);
      // also in a trailing partial block
      expect(() => sequenceHashes([1, 2, 3, 4, bad], 2)).toThrow(RouterInvalidArgumentError);
      expect(() => new BlockHasher(2, { webAssembly: false }).hash([1, bad])).toThrow(RouterInvalidArgumentError);
    },
  );

  it.each([[0], [-2], [1.5], [Number.NaN]])('rejects the block size %p', (bs) => {
    expect(() => new BlockHasher(bs)).toThrow(/blockSize must be an integer/);
    expect(() => blockHashes([1], bs)).toThrow(RouterInvalidArgumentError);
  });

  it('rejects hashes outside u64 in sequenceHash', () => {
    expect(() => sequenceHash(-1n, 1n)).toThrow(RouterInvalidArgumentError);
    expect(() => sequenceHash(1n, 1n << 64n)).toThrow(RouterInvalidArgumentError);
  });
});
