/**
 * A minimal WebAssembly assembler: LEB128 encoders, the instructions the XXH3 module uses, and
 * `assemble` (one module with one memory, its functions and a data segment). Internal to
 * `xxh3-wasm.ts`, which writes the hash functions with it.
 * @packageDocumentation
 */
/** Encoded instruction bytes. */
export type Code = number[];
/** One byte or a piece of code. */
export type Part = number | Code;
const M64 = (1n << 64n) - 1n;
export const I32 = 0x7f;
export const I64 = 0x7e;

export function uleb(n: number): Code {
  const out: Code = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(v: bigint): Code {
  const out: Code = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/** Concatenates instruction parts. */
export function c(...parts: Part[]): Code {
  const out: Code = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else for (const b of p) out.push(b);
  }
  return out;
}

export const get = (i: number): Code => [0x20, ...uleb(i)];
export const set = (i: number, ...v: Part[]): Code => c(...v, 0x21, ...uleb(i));
export const i32 = (v: number): Code => [0x41, ...sleb(BigInt(v | 0))];
export const i64 = (v: bigint): Code => {
  const u = v & M64;
  return [0x42, ...sleb(u >= 1n << 63n ? u - (1n << 64n) : u)];
};
export const call = (f: number, ...args: Part[]): Code => c(...args, 0x10, ...uleb(f));
export const load64 = (addr: Part, offset = 0): Code => c(addr, 0x29, 0, ...uleb(offset));
export const load32u = (addr: Part, offset = 0): Code => c(addr, 0x28, 0, ...uleb(offset), 0xad);
export const store64 = (addr: Part, value: Part, offset = 0): Code => c(addr, value, 0x37, 0, ...uleb(offset));
export const bin =
  (op: number) =>
  (a: Part, b: Part): Code =>
    c(a, b, op);
export const add32 = bin(0x6a);
export const sub32 = bin(0x6b);
export const mul32 = bin(0x6c);
export const divu32 = bin(0x6e);
export const ltu32 = bin(0x49);
export const gtu32 = bin(0x4b);
export const leu32 = bin(0x4d);
export const eq32 = bin(0x46);
export const add64 = bin(0x7c);
export const sub64 = bin(0x7d);
export const mul64 = bin(0x7e);
export const and64 = bin(0x83);
export const or64 = bin(0x84);
export const xor64 = bin(0x85);
export const shl64 = bin(0x86);
export const shr64 = bin(0x88);
export const rotl64 = bin(0x89);
export const ext = (a: Part): Code => c(a, 0xad); // i64.extend_i32_u
export const ret = (v: Part): Code => c(v, 0x0f);
/** `if (cond) { then }` with no value. */
export const when = (cond: Part, ...then: Part[]): Code => c(cond, 0x04, 0x40, ...then, 0x0b);
/** `while (cond) { body }`: block { loop { br_if 1 (!cond); body; br 0 } }. */
export const whileLoop = (cond: Part, ...body: Part[]): Code =>
  c(0x02, 0x40, 0x03, 0x40, cond, 0x45, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b);

export interface Func {
  params: number[];
  results: number[];
  locals: number[];
  body: Code;
  export?: string;
}

export function assemble(funcs: Func[], data: Uint8Array): Uint8Array {
  const vec = (items: Code[]): Code => c(uleb(items.length), ...items);
  const section = (id: number, body: Code): Code => c(id, uleb(body.length), body);
  const types = funcs.map((f) => c(0x60, vec(f.params.map((t) => [t])), vec(f.results.map((t) => [t]))));
  const codes = funcs.map((f) => {
    const locals = vec(f.locals.map((t) => [1, t]));
    const body = c(locals, f.body, 0x0b);
    return c(uleb(body.length), body);
  });
  const exportEntries: Code[] = [
    c(
      uleb(3),
      [...'mem'].map((ch) => ch.charCodeAt(0)),
      0x02,
      0,
    ),
  ];
  funcs.forEach((f, i) => {
    if (f.export !== undefined) {
      exportEntries.push(
        c(
          uleb(f.export.length),
          [...f.export].map((ch) => ch.charCodeAt(0)),
          0x00,
          uleb(i),
        ),
      );
    }
  });
  const bytes = c(
    [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    section(1, vec(types)),
    section(3, vec(funcs.map((_, i) => uleb(i)))),
    section(5, vec([[0x00, 1]])),
    section(7, vec(exportEntries)),
    section(10, vec(codes)),
    section(11, vec([c(0x00, i32(0), 0x0b, uleb(data.length), [...data])])),
  );
  return Uint8Array.from(bytes);
}
