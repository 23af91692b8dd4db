/**
 * The 16-byte XXH3-64 step of the sequence hash, `xxh3_64(le64(a) ++ le64(b), seed)`, in plain
 * JavaScript on (lo, hi) u32 halves: no bigint, no allocation, ~60 ns. Used where WebAssembly is
 * not (see xxh3-wasm.ts) and for single hashes; verified against `@node-rs/xxhash` in the tests.
 *
 * Internal module.
 * @packageDocumentation
 */

const M64 = (1n << 64n) - 1n;
const TWO32 = 4294967296;
const PRIME_MX1 = 0x165667919e3779f9n;
const MX1_LO = Number(PRIME_MX1 & 0xffffffffn);
const MX1_HI = Number(PRIME_MX1 >> 32n);
/** XXH3's default secret, bytes 24..55 (the part the 9-16 byte path reads). */
const SECRET_24_56 = '72 40 a4 a4 b7 b3 67 1f cb 79 e6 4e cc c0 e5 78 82 5a d0 7d cc ff 72 21 b8 08 46 74 f7 43 24 8e';

function le64(bytes: number[], off: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(bytes[off + i]!);
  return v;
}

// Two-value returns of the helpers. A typed array, not module-level `let`s: a number above 2^30
// stored in a closure variable is boxed (one heap allocation per store).
const R = new Uint32Array(2);

/** Full 64-bit product of two u32 into R. */
function mul32(a: number, b: number): void {
  const aL = a & 0xffff;
  const aH = a >>> 16;
  const bL = b & 0xffff;
  const bH = b >>> 16;
  const ll = aL * bL;
  const mid = aL * bH + aH * bL; // < 2^33, exact
  R[0] = Math.imul(a, b) >>> 0;
  R[1] = (aH * bH + ((mid / 65536) | 0) + (((ll >>> 16) + (mid & 0xffff)) >>> 16)) >>> 0;
}

/** Low 64 bits of (aLo,aHi) * (bLo,bHi) into R. */
function mul64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mul32(aLo, bLo);
  R[1] = (R[1]! + Math.imul(aLo, bHi) + Math.imul(aHi, bLo)) >>> 0;
}

/** 64x64 -> 128 multiply, low half XOR high half, into R. */
function mul128Fold64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mul32(aLo, bLo);
  const p0l = R[0]!;
  const p0h = R[1]!;
  mul32(aLo, bHi);
  const p1l = R[0]!;
  const p1h = R[1]!;
  mul32(aHi, bLo);
  const p2l = R[0]!;
  const p2h = R[1]!;
  mul32(aHi, bHi);
  const w1 = p0h + p1l + p2l; // < 3 * 2^32
  const c1 = Math.floor(w1 / TWO32);
  const w2 = p1h + p2h + R[0]! + c1;
  const c2 = Math.floor(w2 / TWO32);
  const w3 = R[1]! + c2; // < 2^32
  R[0] = (p0l ^ w2) >>> 0;
  R[1] = (w1 ^ w3) >>> 0;
}

function bswap32(x: number): number {
  return (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
}

/** XXH3-64 of 16-byte inputs with a fixed seed; the result of each call is in `lo` / `hi`. */
export class Xxh3Pair {
  /** Low 32 bits of the last result. */
  lo = 0;
  /** High 32 bits of the last result. */
  hi = 0;
  private readonly f1Lo: number;
  private readonly f1Hi: number;
  private readonly f2Lo: number;
  private readonly f2Hi: number;

  constructor(seed: bigint) {
    const s = seed & M64;
    const bytes = SECRET_24_56.split(' ').map((h) => parseInt(h, 16));
    const f1 = ((le64(bytes, 0) ^ le64(bytes, 8)) + s) & M64;
    const f2 = ((le64(bytes, 16) ^ le64(bytes, 24)) - s) & M64;
    this.f1Lo = Number(f1 & 0xffffffffn);
    this.f1Hi = Number(f1 >> 32n);
    this.f2Lo = Number(f2 & 0xffffffffn);
    this.f2Hi = Number(f2 >> 32n);
  }

  /** Hashes le64(a) ++ le64(b) (XXH3_len_9to16_64b with len 16). */
  hashPair(aLo: number, aHi: number, bLo: number, bHi: number): void {
    const inLo0 = (aLo ^ this.f1Lo) >>> 0;
    const inLo1 = (aHi ^ this.f1Hi) >>> 0;
    const inHi0 = (bLo ^ this.f2Lo) >>> 0;
    const inHi1 = (bHi ^ this.f2Hi) >>> 0;
    // acc = len + swap64(input_lo) + input_hi + mul128_fold64(input_lo, input_hi)
    mul128Fold64(inLo0, inLo1, inHi0, inHi1);
    let lo = 16 + bswap32(inLo1) + inHi0 + R[0]!; // < 3 * 2^32 + 16
    const carry = Math.floor(lo / TWO32);
    lo = lo >>> 0;
    const hi = (bswap32(inLo0) + inHi1 + R[1]! + carry) >>> 0;
    // avalanche: h ^= h >> 37; h *= PRIME_MX1; h ^= h >> 32
    mul64((lo ^ (hi >>> 5)) >>> 0, hi, MX1_LO, MX1_HI);
    this.lo = (R[0]! ^ R[1]!) >>> 0;
    this.hi = R[1]!;
  }
}
