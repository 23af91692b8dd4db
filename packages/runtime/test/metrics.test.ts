import { Registry } from 'prom-client';
import { metrics } from '../src';

function pair(): {
  fast: ReturnType<typeof metrics.histogram<'model'>>;
  slow: ReturnType<typeof metrics.histogram<'model'>>;
  registry: Registry;
} {
  const registry = new Registry();
  const make = (name: string) =>
    metrics.histogram({
      name,
      help: 'h',
      labelNames: ['model'],
      buckets: [0.001, 0.01, 0.1, 1],
      registers: [registry],
    });
  return { fast: make('fast_seconds'), slow: make('slow_seconds'), registry };
}

describe('metrics.seriesObserver', () => {
  it('gives the same series as the public observe, through resets and odd values', async () => {
    const { fast, slow, registry } = pair();
    const f = metrics.seriesObserver(fast, { model: 'm' });
    const s = slow.labels({ model: 'm' });
    const other = metrics.seriesObserver(fast, { model: 'other' });
    const otherSlow = slow.labels({ model: 'other' });
    const values = [0.0005, 0.001, 0.002, 0.05, 0.5, 1, 3, 0, 0.01];
    const both = (v: number): void => {
      f.observe(v);
      s.observe(v);
    };
    for (const v of values) both(v);
    other.observe(0.02);
    otherSlow.observe(0.02);
    const text = async (): Promise<string> =>
      (await registry.metrics()).replace(/fast_seconds/g, 'X').replace(/slow_seconds/g, 'X');
    const sections = async (): Promise<string[]> => (await text()).split(/\n(?=# HELP)/);
    let [a, b] = await sections();
    expect(a).toBe(b);
    expect(a).toContain('X_count{model="m"} 9');
    expect(a).toContain('X_bucket{le="0.01",model="m"} 5');
    fast.reset();
    slow.reset();
    for (const v of [0.2, 0.003]) both(v);
    [a, b] = await sections();
    expect(a).toBe(b);
    expect(a).toContain('X_count{model="m"} 2');
    expect(() => f.observe(Number.NaN)).toThrow(TypeError);
  });
});
