/**
 * A small seeded pseudo-random generator (mulberry32) for simulations that must be deterministic
 * for a seed.
 * @packageDocumentation
 */
import type { RandomSource } from './common';

/** mulberry32: a uniform source in [0, 1) whose state starts at `seed`'s low 32 bits. */
export function mulberry32(seed: number): RandomSource {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniform source in [0, 1) determined by `seed` (any finite number; its low 32 bits count). */
export function seededRandom(seed: number): RandomSource {
  return mulberry32((Math.trunc(seed) >>> 0) ^ 0x9e3779b9);
}
