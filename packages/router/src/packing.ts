/**
 * Conversions between unsigned 64-bit bigints and packed (lo, hi) u32 pairs.
 * Internal module.
 * @packageDocumentation
 */
import { RouterInvalidArgumentError } from './errors';

const M64 = (1n << 64n) - 1n;

/** Packs bigints into (lo, hi) pairs; throws on values outside [0, 2^64). */
export function packBigints(values: readonly bigint[], name = 'hash'): Uint32Array {
  const out = new Uint32Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (typeof v !== 'bigint' || v < 0n || v > M64) {
      throw new RouterInvalidArgumentError(`${name}[${i}] must be an unsigned 64-bit bigint, got ${String(v)}`);
    }
    out[2 * i] = Number(v & 0xffffffffn);
    out[2 * i + 1] = Number(v >> 32n);
  }
  return out;
}
