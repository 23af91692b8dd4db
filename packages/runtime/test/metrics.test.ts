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

  it('records a value several times at once as that many public observes', async () => {
    const { fast, slow, registry } = pair();
    const f = metrics.seriesObserver(fast, { model: 'm' });
    const s = slow.labels({ model: 'm' });
    for (const [v, times] of [
      [0.25, 3],
      [0.004, 1],
      [2, 4],
      [0.25, 0], // nothing
    ] as const) {
      f.observe(v, times);
      for (let i = 0; i < times; i++) s.observe(v);
    }
    const [a, b] = (await registry.metrics())
      .replace(/fast_seconds/g, 'X')
      .replace(/slow_seconds/g, 'X')
      .split(/\n(?=# HELP)/);
    expect(a).toBe(b);
    expect(a).toContain('X_count{model="m"} 8');
    expect(a).toContain('X_sum{model="m"} 8.754');
    expect(a).toContain('X_bucket{le="0.01",model="m"} 1');
    expect(a).toContain('X_bucket{le="1",model="m"} 4');
  });
});

describe('metrics.seriesCounter and metrics.seriesGauge', () => {
  it('give the same exposition as the public inc/dec, through resets and odd values', async () => {
    const registry = new Registry();
    const counter = (name: string) =>
      metrics.counter({ name, help: 'c', labelNames: ['model', 'status'], registers: [registry] });
    const gauge = (name: string) => metrics.gauge({ name, help: 'g', labelNames: ['model'], registers: [registry] });
    const [cf, cs, gf, gs] = [counter('fast_total'), counter('slow_total'), gauge('fast_g'), gauge('slow_g')];
    const fc = metrics.seriesCounter(cf, { model: 'm', status: 'ok' });
    const fcOther = metrics.seriesCounter(cf, { status: 'error', model: 'm' });
    const fg = metrics.seriesGauge(gf, { model: 'm' });
    const steps = (): void => {
      fc.inc();
      cs.inc({ model: 'm', status: 'ok' });
      fc.inc(2.5);
      cs.inc({ model: 'm', status: 'ok' }, 2.5);
      fcOther.inc();
      cs.inc({ status: 'error', model: 'm' });
      fg.inc();
      gs.inc({ model: 'm' });
      fg.inc(3);
      gs.inc({ model: 'm' }, 3);
      fg.dec();
      gs.dec({ model: 'm' });
    };
    const sections = async (): Promise<string[]> =>
      (await registry.metrics())
        .replace(/fast_total|slow_total/g, 'C')
        .replace(/fast_g|slow_g/g, 'G')
        .split(/\n(?=# HELP)/);
    steps();
    steps();
    let [c1, c2, g1, g2] = await sections();
    expect(c1).toBe(c2);
    expect(g1).toBe(g2);
    expect(c1).toContain('C{model="m",status="ok"} 7');
    expect(c1).toContain('C{status="error",model="m"} 2');
    expect(g1).toContain('G{model="m"} 6');
    for (const m of [cf, cs, gf, gs]) m.reset();
    steps();
    [c1, c2, g1, g2] = await sections();
    expect(c1).toBe(c2);
    expect(g1).toBe(g2);
    expect(c1).toContain('C{model="m",status="ok"} 3.5');
    expect(g1).toContain('G{model="m"} 3');
    // What prom-client refuses, these refuse too (they fall back to its own call).
    expect(() => fc.inc(-1)).toThrow();
    expect(() => fc.inc(Number.POSITIVE_INFINITY)).toThrow();
  });
});
