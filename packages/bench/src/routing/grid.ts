/**
 * `dynamo-ts bench routing --grid`: every strategy over a grid of generated workloads, worker counts
 * and engine speeds (light to overloaded), as one markdown table: per cell the `kv` TTFT p50/p99,
 * the best other policy's, and whether `kv` has the lowest of both. The cells are split into a
 * `tune` part (the ones the cost was adjusted on) and a `check` part (held out).
 *
 * A cell's load is its offered load: the engines' mean busy time in the `kv` run over the arrival
 * window (first to last arrival), i.e. the work the arrivals bring per engine-second. Busy time
 * over the makespan (`utilization`, also reported) cannot exceed 1 and falls when an overloaded
 * fleet drains unevenly, so it called a run whose queues reached minutes "heavy".
 * With `seeds > 1` each cell runs seeds `seed .. seed + seeds - 1` (the generated workloads and the
 * routers' random choices; the trace chunks are the same requests) and takes the percentiles over
 * all their requests pooled: a workload of 256 requests has its p99 in its 3rd-worst request,
 * which one seed's coincidences decide.
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import type { StrategyName, StrategyOptions } from '../strategies';
import { type EngineModel, percentile, runRoutingBench } from '../routing-bench';
import { parseMooncakeTrace, traceRequests, type BenchRequest } from './trace';
import { mixedLengthWorkload, sharedPrefixWorkload } from './workload';

/** One workload of the grid. */
export interface GridWorkload {
  /** Short name. */
  name: string;
  /** Whether the cost was tuned on it or it is held out. */
  split: 'tune' | 'check';
  /** Builds its requests. */
  build(): BenchRequest[];
}

/** One cell's outcome. */
export interface GridCell {
  workload: string;
  split: 'tune' | 'check';
  workers: number;
  speedup: number;
  /** Mean engine busy time / makespan in the `kv` run (the first seed's). */
  utilization: number;
  /** Offered load: mean engine busy time in the `kv` run / the arrival window (mean over seeds). */
  offered: number;
  /** From `offered`: `light` (< 0.5), `moderate` (< 0.8), `heavy` (< 0.95) or `overloaded`. */
  load: string;
  kv: { p50: number; p99: number };
  /** The other policy with the lowest p50, and the lowest p99 among the others. */
  bestP50: { strategy: string; ms: number };
  bestP99: { strategy: string; ms: number };
  /** `kv` p50 and p99 are both the lowest (ties within 1% count as wins). */
  wins: boolean;
}

/** The grid's workloads; the two Mooncake chunks only when the trace is given. */
export function gridWorkloads(tracePath: string | undefined, seed: number): GridWorkload[] {
  // The seed only changes the generated workloads (the trace chunks are fixed requests).
  const out: GridWorkload[] = [];
  if (tracePath !== undefined) {
    const all = traceRequests(parseMooncakeTrace(readFileSync(tracePath, 'utf8'), 512, tracePath), 512);
    const chunk = (from: number, n: number): BenchRequest[] => {
      const part = all.slice(from, from + n);
      const t0 = part[0]?.arrivalMs ?? 0;
      return part.map((r) => ({ ...r, arrivalMs: r.arrivalMs - t0 }));
    };
    out.push({ name: 'mooncake[0,1000)', split: 'tune', build: () => chunk(0, 1000) });
    out.push({ name: 'mooncake[2000,3000)', split: 'check', build: () => chunk(2000, 1000) });
  }
  const sp = (name: string, split: 'tune' | 'check', o: Parameters<typeof sharedPrefixWorkload>[0]): GridWorkload => ({
    name,
    split,
    build: () => sharedPrefixWorkload(o, seed),
  });
  out.push(sp('shared-prefix 64x8', 'tune', { sessions: 64, prefixGroups: 8, turns: 4, sessionRate: 4 }));
  out.push(
    sp('shared-prefix 512x64', 'check', {
      sessions: 512,
      prefixGroups: 64,
      turns: 2,
      prefixLength: 2048,
      sessionRate: 16,
    }),
  );
  out.push(
    sp('shared-prefix 512x8', 'check', {
      sessions: 512,
      prefixGroups: 8,
      turns: 2,
      prefixLength: 2048,
      sessionRate: 16,
    }),
  );
  out.push(
    sp('chat (think time)', 'check', {
      sessions: 96,
      prefixGroups: 96,
      prefixLength: 512,
      userTokens: 384,
      outputTokens: 192,
      turns: 6,
      sessionRate: 2,
      thinkTimeMs: 6000,
    }),
  );
  out.push({
    name: 'long/short mix',
    split: 'check',
    build: () => mixedLengthWorkload({ requests: 800, rate: 3 }, seed),
  });
  return out;
}

/** Options of {@link runRoutingGrid}. */
export interface GridOptions {
  /** The Mooncake trace (optional). */
  tracePath?: string;
  /** Strategies; `kv` must be among them. */
  strategies: readonly StrategyName[];
  /** Worker counts; default [4, 16]. */
  workers?: readonly number[];
  /** Engine speeds (higher: lighter load); default [4, 1.5, 0.75]. */
  speedups?: readonly number[];
  /** Seed; default 1. */
  seed?: number;
  /** Seeds per cell, pooled (see the module comment); default 1. */
  seeds?: number;
  /** Only the workloads with these names (default: all). */
  only?: readonly string[];
  /** Engine model; default `vllm`. */
  engineModel?: EngineModel;
  /** Options of the strategies (e.g. the `kv` preset and weights). */
  strategyOptions?: StrategyOptions;
  /** Called after each cell. */
  onCell?(cell: GridCell, done: number, total: number): void;
}

const loadLabel = (u: number): string => (u < 0.5 ? 'light' : u < 0.8 ? 'moderate' : u < 0.95 ? 'heavy' : 'overloaded');

/** Runs every cell (see the module comment). */
export async function runRoutingGrid(o: GridOptions): Promise<GridCell[]> {
  if (!o.strategies.includes('kv') || o.strategies.length < 2) {
    throw new Error('strategies must include kv and at least one policy to compare it with');
  }
  const seed = o.seed ?? 1;
  const seeds = o.seeds ?? 1;
  if (!Number.isSafeInteger(seeds) || seeds < 1)
    throw new Error(`seeds must be a positive integer, got ${String(seeds)}`);
  const pick = (ws: GridWorkload[]): GridWorkload[] =>
    o.only === undefined ? ws : ws.filter((w) => o.only!.includes(w.name));
  const perSeed = Array.from({ length: seeds }, (_, k) => pick(gridWorkloads(o.tracePath, seed + k)));
  if (perSeed[0]!.length === 0) throw new Error(`only: no grid workload is named ${JSON.stringify(o.only)}`);
  const workloads = perSeed[0]!;
  const workerCounts = o.workers ?? [4, 16];
  const speedups = o.speedups ?? [4, 1.5, 0.75];
  const total = workloads.length * workerCounts.length * speedups.length;
  const cells: GridCell[] = [];
  for (let wi = 0; wi < workloads.length; wi++) {
    const w = workloads[wi]!;
    const requestSets = perSeed.map((ws) => ws[wi]!.build());
    for (const workers of workerCounts) {
      for (const speedup of speedups) {
        const pooled = new Map<string, number[]>();
        let utilization = 0;
        let offered = 0;
        for (let k = 0; k < seeds; k++) {
          const requests = requestSets[k]!;
          const r = await runRoutingBench({
            requests,
            workers,
            speedup,
            seed: seed + k,
            strategies: o.strategies,
            engineModel: o.engineModel ?? 'vllm',
            ...(o.strategyOptions !== undefined ? { strategyOptions: o.strategyOptions } : {}),
          });
          for (const d of r.details) {
            const xs = pooled.get(d.strategy) ?? [];
            for (const x of d.ttftSamples) xs.push(x);
            pooled.set(d.strategy, xs);
          }
          const d = r.details[r.runs.findIndex((x) => x.strategy === 'kv')]!;
          const busy = d.busyMs.reduce((a, b) => a + b, 0) / d.busyMs.length;
          if (k === 0) utilization = d.makespanMs > 0 ? busy / d.makespanMs : 0;
          offered += busy / arrivalWindowMs(requests, d.makespanMs) / seeds;
        }
        const stats = o.strategies.map((strategy) => {
          const xs = pooled.get(strategy)!.sort((a, b) => a - b);
          return { strategy, p50: percentile(xs, 50), p99: percentile(xs, 99) };
        });
        const kv = stats.find((x) => x.strategy === 'kv')!;
        const others = stats.filter((x) => x.strategy !== 'kv');
        const b50 = others.reduce((a, b) => (b.p50 < a.p50 ? b : a), others[0]!);
        const b99 = others.reduce((a, b) => (b.p99 < a.p99 ? b : a), others[0]!);
        const r3 = (x: number): number => Math.round(x * 1000) / 1000;
        const cell: GridCell = {
          workload: w.name,
          split: w.split,
          workers,
          speedup,
          utilization: r3(utilization),
          offered: r3(offered),
          load: loadLabel(offered),
          kv: { p50: r3(kv.p50), p99: r3(kv.p99) },
          bestP50: { strategy: b50.strategy, ms: r3(b50.p50) },
          bestP99: { strategy: b99.strategy, ms: r3(b99.p99) },
          wins: kv.p50 <= b50.p50 * 1.01 && kv.p99 <= b99.p99 * 1.01,
        };
        cells.push(cell);
        o.onCell?.(cell, cells.length, total);
      }
    }
  }
  return cells;
}

/** First to last arrival, ms; the makespan when they all arrive at once. */
export function arrivalWindowMs(requests: readonly BenchRequest[], makespanMs: number): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of requests) {
    if (r.arrivalMs < lo) lo = r.arrivalMs;
    if (r.arrivalMs > hi) hi = r.arrivalMs;
  }
  const w = hi - lo;
  return w > 0 ? w : makespanMs > 0 ? makespanMs : 1;
}

const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

/** The grid as a markdown table, with the win counts per split and load. */
export function formatGridMarkdown(cells: readonly GridCell[]): string {
  const lines = [
    '| workload | split | workers | speedup | util | offered | load | kv p50 | best other p50 | kv p99 | best other p99 | kv wins |',
    '|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|',
  ];
  for (const c of cells) {
    lines.push(
      `| ${c.workload} | ${c.split} | ${c.workers} | ${c.speedup} | ${c.utilization.toFixed(2)} | ${c.offered.toFixed(2)} | ${c.load} | ` +
        `${fmt(c.kv.p50)} | ${fmt(c.bestP50.ms)} (${c.bestP50.strategy}) | ${fmt(c.kv.p99)} | ` +
        `${fmt(c.bestP99.ms)} (${c.bestP99.strategy}) | ${c.wins ? 'yes' : '**no**'} |`,
    );
  }
  lines.push('');
  for (const split of ['tune', 'check'] as const) {
    for (const load of ['light', 'moderate', 'heavy', 'overloaded']) {
      const cs = cells.filter((c) => c.split === split && c.load === load);
      if (cs.length > 0) lines.push(`- ${split}, ${load}: kv wins ${cs.filter((c) => c.wins).length} of ${cs.length}`);
    }
  }
  return lines.join('\n');
}
