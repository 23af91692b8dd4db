/**
 * A msgpack writer that makes the bytes msgspec (vLLM's and SGLang's encoder) makes for the KV
 * event types: integers in their smallest format (uint64 `0xcf` above 2^32, as Python ints up to
 * 2^64), floats always float64 (`0xcb`), strings `fixstr`/`str8`/`str16`, bytes `bin`, `None` nil;
 * an `array_like` struct is an array of its fields, a tagged one starts with its class name.
 * Test support: the engine doubles publish these bytes; the committed fixtures were written by it.
 */
export type Msg = null | boolean | number | bigint | string | Uint8Array | Msg[] | { [k: string]: Msg };

/** A float that msgspec would write as a float even when it is integral (Python `float`). */
export class F64 {
  constructor(readonly value: number) {}
}

export function pack(v: Msg | F64): Buffer {
  const out: number[] = [];
  write(v, out);
  return Buffer.from(out);
}

function be(n: bigint, bytes: number, out: number[]): void {
  for (let i = bytes - 1; i >= 0; i--) out.push(Number((n >> BigInt(8 * i)) & 0xffn));
}

function writeInt(n: bigint, out: number[]): void {
  if (n >= 0n) {
    if (n < 128n) out.push(Number(n));
    else if (n < 256n) out.push(0xcc, Number(n));
    else if (n < 65536n) {
      out.push(0xcd);
      be(n, 2, out);
    } else if (n < 1n << 32n) {
      out.push(0xce);
      be(n, 4, out);
    } else {
      out.push(0xcf);
      be(n, 8, out);
    }
  } else if (n >= -32n) out.push(Number(n & 0xffn));
  else {
    out.push(0xd3);
    be(BigInt.asUintN(64, n), 8, out);
  }
}

function writeLen(
  n: number,
  fix: number,
  fixMax: number,
  c8: number | undefined,
  c16: number,
  c32: number,
  out: number[],
): void {
  if (n <= fixMax) out.push(fix | n);
  else if (c8 !== undefined && n < 256) out.push(c8, n);
  else if (n < 65536) {
    out.push(c16);
    be(BigInt(n), 2, out);
  } else {
    out.push(c32);
    be(BigInt(n), 4, out);
  }
}

function write(v: Msg | F64, out: number[]): void {
  if (v === null) out.push(0xc0);
  else if (v === true) out.push(0xc3);
  else if (v === false) out.push(0xc2);
  else if (v instanceof F64 || (typeof v === 'number' && !Number.isInteger(v))) {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v instanceof F64 ? v.value : v);
    out.push(0xcb, ...b);
  } else if (typeof v === 'number') writeInt(BigInt(v), out);
  else if (typeof v === 'bigint') writeInt(v, out);
  else if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    writeLen(b.length, 0xa0, 31, 0xd9, 0xda, 0xdb, out);
    out.push(...b);
  } else if (v instanceof Uint8Array) {
    if (v.length < 256) out.push(0xc4, v.length);
    else {
      out.push(0xc5);
      be(BigInt(v.length), 2, out);
    }
    out.push(...v);
  } else if (Array.isArray(v)) {
    writeLen(v.length, 0x90, 15, undefined, 0xdc, 0xdd, out);
    for (const x of v) write(x, out);
  } else {
    const keys = Object.keys(v);
    writeLen(keys.length, 0x80, 15, undefined, 0xde, 0xdf, out);
    for (const k of keys) {
      write(k, out);
      write(v[k]!, out);
    }
  }
}
