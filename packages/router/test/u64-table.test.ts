import { U64Table, V0, V1 } from '../src/u64-table';
import { prng } from './model';

describe('U64Table', () => {
  it('behaves like a Map under random inserts and deletes (growing and shrinking)', () => {
    const r = prng(3);
    const t = new U64Table({ twoWords: true });
    const m = new Map<string, [number, number]>();
    const keyOf = (lo: number, hi: number): string => `${lo}:${hi}`;
    // a small key space so that updates, deletes of present keys and collisions all happen
    const rand32 = (): number => (r() < 0.5 ? Math.floor(r() * 64) : Math.floor(r() * 2 ** 32));
    const mismatches: string[] = [];
    for (let step = 0; step < 20_000; step++) {
      const lo = rand32();
      const hi = r() < 0.5 ? 0 : rand32();
      const phase = step < 12_000 ? 0.7 : 0.2; // grow, then shrink
      if (r() < phase) {
        const e = t.insert(lo, hi);
        if (t.inserted === m.has(keyOf(lo, hi))) mismatches.push(`insert ${step}`);
        t.data[e + V0] = step;
        t.data[e + V1] = lo ^ hi;
        m.set(keyOf(lo, hi), [step, (lo ^ hi) >>> 0]);
      } else {
        if (t.delete(lo, hi) !== m.delete(keyOf(lo, hi))) mismatches.push(`delete ${step}`);
      }
      if (t.size !== m.size) mismatches.push(`size ${step}`);
    }
    expect(mismatches).toEqual([]);
    for (const [k, [v0, v1]] of m) {
      const [lo, hi] = k.split(':').map(Number) as [number, number];
      const e = t.find(lo, hi);
      expect(e).toBeGreaterThanOrEqual(0);
      expect([t.data[e + V0], t.data[e + V1]]).toEqual([v0, v1]);
    }
    expect(t.capacity).toBeLessThanOrEqual(Math.max(16, m.size * 8));
    t.clear();
    expect(t.size).toBe(0);
    expect(t.find(1, 0)).toBe(-1);
  });

  it('sizes itself for a capacity hint', () => {
    expect(new U64Table({ capacity: 1000 }).capacity).toBe(2048);
    expect(new U64Table().byteLength).toBe(16 * 12);
    expect(new U64Table({ twoWords: true }).byteLength).toBe(16 * 20);
  });
});
