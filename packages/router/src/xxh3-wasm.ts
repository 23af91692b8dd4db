/**
 * XXH3-64 with seed 1337 as a tiny WebAssembly module, assembled at load time (wasm-asm.ts) from the
 * instructions below (no binary blob, no build step). WebAssembly has native 64-bit integers, so a
 * 256-byte block hashes in a few tens of nanoseconds, and a whole prompt is hashed in one call:
 * several times faster than calling the native addon once per block (each N-API call costs
 * ~0.3-0.6 us) or than JavaScript on (lo, hi) halves.
 *
 * It follows xxHash 0.8.x (`XXH3_64bits_withSeed`) path for path: 4-8, 9-16, 17-128, 129-240 and
 * more than 240 bytes (inputs here are whole u32 words, so lengths 0-3 never occur). It is checked
 * bit for bit against `@node-rs/xxhash` and Python's `xxhash` in test/hashing.test.ts.
 *
 * Internal module. {@link createWasmHasher} returns undefined where WebAssembly is unavailable
 * (e.g. `node --jitless`) or the host is big-endian; callers then use the native addon.
 * @packageDocumentation
 */

import {
  type Code,
  I32,
  I64,
  c,
  get,
  set,
  i32,
  i64,
  call,
  load64,
  load32u,
  store64,
  add32,
  sub32,
  mul32,
  divu32,
  ltu32,
  gtu32,
  leu32,
  eq32,
  add64,
  sub64,
  mul64,
  and64,
  or64,
  xor64,
  shl64,
  shr64,
  rotl64,
  ext,
  ret,
  when,
  whileLoop,
  type Func,
  assemble,
} from './wasm-asm';

const SEED = 1337n;
const M64 = (1n << 64n) - 1n;
const K_SECRET_HEX =
  'b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f' +
  'cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c' +
  '3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8' +
  'a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364' +
  'eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e' +
  '2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e';
const PRIME32_1 = 0x9e3779b1n;
const PRIME32_2 = 0x85ebca77n;
const PRIME32_3 = 0xc2b2ae3dn;
const PRIME64_1 = 0x9e3779b185ebca87n;
const PRIME64_2 = 0xc2b2ae3d27d4eb4fn;
const PRIME64_3 = 0x165667b19e3779f9n;
const PRIME64_4 = 0x85ebca77c2b2ae63n;
const PRIME64_5 = 0x27d4eb2f165667c5n;
const PRIME_MX1 = 0x165667919e3779f9n;
const PRIME_MX2 = 0x9fb21c651e98df25n;

/** Memory layout: custom secret (long inputs), default secret (short inputs), then free space. */
const CS = 0;
const KS = 192;
/** First byte callers may use. */
export const WASM_HEAP_BASE = 512;

// ---- XXH3 ----------------------------------------------------------------------------------

function readLE64(b: Uint8Array, off: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[off + i]!);
  return v;
}

function buildModule(): Uint8Array {
  const ks = Uint8Array.from(K_SECRET_HEX.match(/../g)!.map((h) => parseInt(h, 16)));
  const data = new Uint8Array(KS + 192);
  // XXH3_initCustomSecret: per 16-byte pair, first += seed, second -= seed (long inputs).
  for (let i = 0; i < 12; i++) {
    const a = (readLE64(ks, 16 * i) + SEED) & M64;
    const b = (readLE64(ks, 16 * i + 8) - SEED) & M64;
    for (let k = 0; k < 8; k++) {
      data[CS + 16 * i + k] = Number((a >> BigInt(8 * k)) & 0xffn);
      data[CS + 16 * i + 8 + k] = Number((b >> BigInt(8 * k)) & 0xffn);
    }
  }
  data.set(ks, KS);
  const sl = SEED & 0xffffffffn;
  const swapped = ((sl & 0xffn) << 24n) | ((sl & 0xff00n) << 8n) | ((sl >> 8n) & 0xff00n) | ((sl >> 24n) & 0xffn);
  const flip4 = (readLE64(ks, 8) ^ readLE64(ks, 16)) - (SEED ^ (swapped << 32n));
  const flip1 = (readLE64(ks, 24) ^ readLE64(ks, 32)) + SEED;
  const flip2 = (readLE64(ks, 40) ^ readLE64(ks, 48)) - SEED;
  const M32 = i64(0xffffffffn);

  // Function indices.
  const FOLD = 0;
  const AVAL = 1;
  const RRMXMX = 2;
  const BSWAP = 3;
  const PAIR = 4;
  const MIX16 = 5;
  const LEN4 = 6;
  const LEN9 = 7;
  const LEN17 = 8;
  const LEN129 = 9;
  const LONG = 10;
  const XXH3 = 11;

  const funcs: Func[] = [];
  // 0 fold(a, b): 64x64 -> 128 multiply, low ^ high. Locals: 2 ll, 3 hl, 4 lh, 5 cross.
  {
    const [a, b, ll, hl, lh, cross] = [0, 1, 2, 3, 4, 5];
    funcs.push({
      params: [I64, I64],
      results: [I64],
      locals: [I64, I64, I64, I64],
      body: c(
        set(ll, mul64(and64(get(a), M32), and64(get(b), M32))),
        set(hl, mul64(shr64(get(a), i64(32n)), and64(get(b), M32))),
        set(lh, mul64(and64(get(a), M32), shr64(get(b), i64(32n)))),
        set(cross, add64(add64(shr64(get(ll), i64(32n)), and64(get(hl), M32)), get(lh))),
        xor64(
          or64(shl64(get(cross), i64(32n)), and64(get(ll), M32)),
          add64(
            add64(shr64(get(hl), i64(32n)), shr64(get(cross), i64(32n))),
            mul64(shr64(get(a), i64(32n)), shr64(get(b), i64(32n))),
          ),
        ),
      ),
    });
  }
  // 1 avalanche(h)
  funcs.push({
    params: [I64],
    results: [I64],
    locals: [],
    body: c(
      set(0, xor64(get(0), shr64(get(0), i64(37n)))),
      set(0, mul64(get(0), i64(PRIME_MX1))),
      xor64(get(0), shr64(get(0), i64(32n))),
    ),
  });
  // 2 rrmxmx(h, len)
  funcs.push({
    params: [I64, I64],
    results: [I64],
    locals: [],
    body: c(
      set(0, xor64(get(0), xor64(rotl64(get(0), i64(49n)), rotl64(get(0), i64(24n))))),
      set(0, mul64(get(0), i64(PRIME_MX2))),
      set(0, xor64(get(0), add64(shr64(get(0), i64(35n)), get(1)))),
      set(0, mul64(get(0), i64(PRIME_MX2))),
      xor64(get(0), shr64(get(0), i64(28n))),
    ),
  });
  // 3 bswap64(x)
  funcs.push({
    params: [I64],
    results: [I64],
    locals: [],
    body: c(
      set(
        0,
        or64(
          shl64(and64(get(0), i64(0x00ff00ff00ff00ffn)), i64(8n)),
          and64(shr64(get(0), i64(8n)), i64(0x00ff00ff00ff00ffn)),
        ),
      ),
      set(
        0,
        or64(
          shl64(and64(get(0), i64(0x0000ffff0000ffffn)), i64(16n)),
          and64(shr64(get(0), i64(16n)), i64(0x0000ffff0000ffffn)),
        ),
      ),
      rotl64(get(0), i64(32n)),
    ),
  });
  // 4 pair(a, b): XXH3 of le64(a) ++ le64(b), the 16-byte sequence-hash step.
  funcs.push({
    params: [I64, I64],
    results: [I64],
    locals: [],
    body: c(
      set(0, xor64(get(0), i64(flip1))),
      set(1, xor64(get(1), i64(flip2))),
      call(AVAL, add64(add64(add64(i64(16n), call(BSWAP, get(0))), get(1)), call(FOLD, get(0), get(1)))),
    ),
  });
  // 5 mix16(ip, so): XXH3_mix16B with the default secret at KS + so and the seed.
  funcs.push({
    params: [I32, I32],
    results: [I64],
    locals: [],
    body: call(
      FOLD,
      xor64(load64(get(0)), add64(load64(get(1), KS), i64(SEED))),
      xor64(load64(get(0), 8), sub64(load64(get(1), KS + 8), i64(SEED))),
    ),
  });
  // 6 len 4..8
  funcs.push({
    params: [I32, I32],
    results: [I64],
    locals: [],
    body: call(
      RRMXMX,
      xor64(add64(load32u(sub32(add32(get(0), get(1)), i32(4))), shl64(load32u(get(0)), i64(32n))), i64(flip4)),
      ext(get(1)),
    ),
  });
  // 7 len 9..16. Locals: 2 lo, 3 hi.
  funcs.push({
    params: [I32, I32],
    results: [I64],
    locals: [I64, I64],
    body: c(
      set(2, xor64(load64(get(0)), i64(flip1))),
      set(3, xor64(load64(sub32(add32(get(0), get(1)), i32(8))), i64(flip2))),
      call(AVAL, add64(add64(add64(ext(get(1)), call(BSWAP, get(2))), get(3)), call(FOLD, get(2), get(3)))),
    ),
  });
  // 8 len 17..128. Local 2: acc.
  {
    const p = get(0);
    const len = get(1);
    const end = (k: number): Code => sub32(add32(p, len), i32(k));
    const acc = (ip: Code, so: number): Code => set(2, add64(get(2), call(MIX16, ip, i32(so))));
    funcs.push({
      params: [I32, I32],
      results: [I64],
      locals: [I64],
      body: c(
        set(2, mul64(ext(len), i64(PRIME64_1))),
        when(
          gtu32(len, i32(32)),
          when(
            gtu32(len, i32(64)),
            when(gtu32(len, i32(96)), acc(add32(p, i32(48)), 96), acc(end(64), 112)),
            acc(add32(p, i32(32)), 64),
            acc(end(48), 80),
          ),
          acc(add32(p, i32(16)), 32),
          acc(end(32), 48),
        ),
        acc(p, 0),
        acc(end(16), 16),
        call(AVAL, get(2)),
      ),
    });
  }
  // 9 len 129..240. Locals: 2 acc, 3 i (i32), 4 rounds (i32).
  {
    const [p, len, acc, i, rounds] = [0, 1, 2, 3, 4];
    funcs.push({
      params: [I32, I32],
      results: [I64],
      locals: [I64, I32, I32],
      body: c(
        set(acc, mul64(ext(get(len)), i64(PRIME64_1))),
        set(i, i32(0)),
        whileLoop(
          ltu32(get(i), i32(8)),
          set(acc, add64(get(acc), call(MIX16, add32(get(p), mul32(get(i), i32(16))), mul32(get(i), i32(16))))),
          set(i, add32(get(i), i32(1))),
        ),
        set(acc, call(AVAL, get(acc))),
        set(rounds, divu32(get(len), i32(16))),
        whileLoop(
          ltu32(get(i), get(rounds)),
          set(
            acc,
            add64(
              get(acc),
              call(MIX16, add32(get(p), mul32(get(i), i32(16))), add32(mul32(sub32(get(i), i32(8)), i32(16)), i32(3))),
            ),
          ),
          set(i, add32(get(i), i32(1))),
        ),
        set(acc, add64(get(acc), call(MIX16, sub32(add32(get(p), get(len)), i32(16)), i32(136 - 17)))),
        call(AVAL, get(acc)),
      ),
    });
  }
  // 10 long (> 240 bytes). Locals: 2..9 acc lanes, 10 data, 11 key, 12 blk, 13 nbBlocks,
  // 14 s, 15 nbStripes, 16 ip, 17 result.
  {
    const [p, len] = [0, 1];
    const A = (k: number): number => 2 + k;
    const [D, K, BLK, NB, S, NS, IP, R] = [10, 11, 12, 13, 14, 15, 16, 17];
    /** accumulate_512 of the stripe at address `ip` with the custom secret at byte offset `so`. */
    const accumulate = (ip: Code, so: Code): Code => {
      const parts: Code[] = [set(IP, ip)];
      for (let lane = 0; lane < 8; lane++) {
        parts.push(
          set(D, load64(get(IP), 8 * lane)),
          set(K, xor64(get(D), load64(so, CS + 8 * lane))),
          set(A(lane ^ 1), add64(get(A(lane ^ 1)), get(D))),
          set(A(lane), add64(get(A(lane)), mul64(and64(get(K), M32), shr64(get(K), i64(32n))))),
        );
      }
      return c(...parts);
    };
    const scramble = (): Code => {
      const parts: Code[] = [];
      for (let lane = 0; lane < 8; lane++) {
        const a = A(lane);
        parts.push(
          set(a, xor64(get(a), shr64(get(a), i64(47n)))),
          set(a, xor64(get(a), load64(i32(0), CS + 128 + 8 * lane))),
          set(a, mul64(get(a), i64(PRIME32_1))),
        );
      }
      return c(...parts);
    };
    const init = [PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1];
    const merge: Code[] = [set(R, mul64(ext(get(len)), i64(PRIME64_1)))];
    for (let k = 0; k < 4; k++) {
      merge.push(
        set(
          R,
          add64(
            get(R),
            call(
              FOLD,
              xor64(get(A(2 * k)), load64(i32(0), CS + 11 + 16 * k)),
              xor64(get(A(2 * k + 1)), load64(i32(0), CS + 11 + 16 * k + 8)),
            ),
          ),
        ),
      );
    }
    funcs.push({
      params: [I32, I32],
      results: [I64],
      locals: [I64, I64, I64, I64, I64, I64, I64, I64, I64, I64, I32, I32, I32, I32, I32, I64],
      body: c(
        ...init.map((v, k) => set(A(k), i64(v))),
        set(NB, divu32(sub32(get(len), i32(1)), i32(1024))),
        set(BLK, i32(0)),
        whileLoop(
          ltu32(get(BLK), get(NB)),
          set(S, i32(0)),
          whileLoop(
            ltu32(get(S), i32(16)),
            accumulate(add32(add32(get(p), mul32(get(BLK), i32(1024))), mul32(get(S), i32(64))), mul32(get(S), i32(8))),
            set(S, add32(get(S), i32(1))),
          ),
          scramble(),
          set(BLK, add32(get(BLK), i32(1))),
        ),
        set(NS, divu32(sub32(sub32(get(len), i32(1)), mul32(get(NB), i32(1024))), i32(64))),
        set(S, i32(0)),
        whileLoop(
          ltu32(get(S), get(NS)),
          accumulate(add32(add32(get(p), mul32(get(NB), i32(1024))), mul32(get(S), i32(64))), mul32(get(S), i32(8))),
          set(S, add32(get(S), i32(1))),
        ),
        accumulate(sub32(add32(get(p), get(len)), i32(64)), i32(192 - 64 - 7)),
        ...merge,
        call(AVAL, get(R)),
      ),
    });
  }
  // 11 xxh3(p, len) for len >= 4.
  funcs.push({
    params: [I32, I32],
    results: [I64],
    locals: [],
    body: c(
      when(leu32(get(1), i32(8)), ret(call(LEN4, get(0), get(1)))),
      when(leu32(get(1), i32(16)), ret(call(LEN9, get(0), get(1)))),
      when(leu32(get(1), i32(128)), ret(call(LEN17, get(0), get(1)))),
      when(leu32(get(1), i32(240)), ret(call(LEN129, get(0), get(1)))),
      call(LONG, get(0), get(1)),
    ),
  });
  // 12 hashBlocks(p, n, blockLen, out): local then sequence hash of each block, 16 bytes per block.
  // Locals: 4 b, 5 h, 6 prev.
  {
    const [p, n, bl, out, b, h, prev] = [0, 1, 2, 3, 4, 5, 6];
    const at = (): Code => add32(get(out), mul32(get(b), i32(16)));
    funcs.push({
      params: [I32, I32, I32, I32],
      results: [],
      locals: [I32, I64, I64],
      export: 'hashBlocks',
      body: c(
        set(b, i32(0)),
        whileLoop(
          ltu32(get(b), get(n)),
          set(h, call(XXH3, add32(get(p), mul32(get(b), get(bl))), get(bl))),
          store64(at(), get(h)),
          set(prev, c(get(h), call(PAIR, get(prev), get(h)), eq32(get(b), i32(0)), 0x1b)),
          store64(at(), get(prev), 8),
          set(b, add32(get(b), i32(1))),
        ),
      ),
    });
  }
  // 13 chainSeq(tok, tokStride, out, outStride, n, hasParent, parentPtr): sequence hashes from
  // local hashes, continuing the parent's when hasParent. Locals: 7 i, 8 prev, 9 first.
  {
    const [tok, ts, out, os, n, hasParent, parentPtr, i, prev] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const l = load64(add32(get(tok), mul32(get(i), get(ts))));
    funcs.push({
      params: [I32, I32, I32, I32, I32, I32, I32],
      results: [],
      locals: [I32, I64],
      export: 'chainSeq',
      body: c(
        set(prev, i64(0n)),
        when(get(hasParent), set(prev, load64(get(parentPtr)))),
        set(i, i32(0)),
        whileLoop(
          ltu32(get(i), get(n)),
          // prev = (i == 0 && !hasParent) ? l : pair(prev, l)
          set(prev, c(l, call(PAIR, get(prev), l), eq32(add32(get(i), get(hasParent)), i32(0)), 0x1b)),
          store64(add32(get(out), mul32(get(i), get(os))), get(prev)),
          set(i, add32(get(i), i32(1))),
        ),
      ),
    });
  }
  // 14 hashOne(p, len, out): one xxh3 into out.
  funcs.push({
    params: [I32, I32, I32],
    results: [],
    locals: [],
    export: 'hashOne',
    body: store64(get(2), call(XXH3, get(0), get(1))),
  });
  return assemble(funcs, data);
}

/** The slice of the WebAssembly API used here (the ES2022 lib has no WebAssembly types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
/** A compiled module (opaque). */
type WasmModule = object;
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule) => { exports: unknown };
}

/** The exports of an instance. */
interface Xxh3Exports {
  mem: WasmMemory;
  hashBlocks(p: number, n: number, blockLen: number, out: number): void;
  chainSeq(
    tok: number,
    tokStride: number,
    out: number,
    outStride: number,
    n: number,
    hasParent: number,
    parentPtr: number,
  ): void;
  hashOne(p: number, len: number, out: number): void;
}

/**
 * One instance with its own memory. Views ({@link WasmHasher.u32}) are replaced when memory grows:
 * re-read them after {@link WasmHasher.reserve}.
 */
export class WasmHasher {
  /** The memory as u32 words (host-endian = little-endian, checked at creation). */
  u32: Uint32Array;
  private readonly x: Xxh3Exports;

  constructor(api: WasmApi, module: WasmModule) {
    this.x = new api.Instance(module).exports as Xxh3Exports;
    this.u32 = new Uint32Array(this.x.mem.buffer);
  }

  /** Makes sure bytes [0, `bytes`) exist. */
  reserve(bytes: number): void {
    const have = this.x.mem.buffer.byteLength;
    if (bytes <= have) return;
    this.x.mem.grow(Math.ceil((bytes - have) / 65536));
    this.u32 = new Uint32Array(this.x.mem.buffer);
  }

  /** For `n` blocks of `blockLen` bytes at `p`: local hash at out + 16b, sequence hash at + 8. */
  hashBlocks(p: number, n: number, blockLen: number, out: number): void {
    this.x.hashBlocks(p, n, blockLen, out);
  }

  /** Sequence hashes from `n` local hashes (see the module's chainSeq). */
  chainSeq(
    tok: number,
    tokStride: number,
    out: number,
    outStride: number,
    n: number,
    hasParent: boolean,
    parentPtr: number,
  ): void {
    this.x.chainSeq(tok, tokStride, out, outStride, n, hasParent ? 1 : 0, parentPtr);
  }

  /** xxh3 of `len` (>= 4) bytes at `p`, written at `out`. */
  hashOne(p: number, len: number, out: number): void {
    this.x.hashOne(p, len, out);
  }
}

let compiled: { api: WasmApi; module: WasmModule } | null | undefined;

/**
 * A new WebAssembly hasher, or undefined where WebAssembly is unavailable or the host is
 * big-endian (typed-array views would not match wasm's little-endian memory).
 */
export function createWasmHasher(): WasmHasher | undefined {
  if (compiled === undefined) {
    compiled = null;
    const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
    const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    if (littleEndian && api !== undefined && typeof api.Module === 'function') {
      try {
        compiled = { api, module: new api.Module(buildModule()) };
      } catch {
        compiled = null;
      }
    }
  }
  return compiled === null ? undefined : new WasmHasher(compiled.api, compiled.module);
}

/** The module's bytes (for tests). @internal */
export const wasmModuleBytes = (): Uint8Array => buildModule();
