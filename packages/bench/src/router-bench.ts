/**
 * `dynamo-ts bench router`: how fast `@dynamo-ts/router` decides, ingests KV events, and how much
 * memory its index takes per block.
 *
 * 1. Fill: `workers` workers store `blocks` blocks in all, as KV events built from token sequences
 *    of `isl` tokens (shared "system prompt" prefixes, stored once per worker, plus unique suffixes).
 *    Only `router.applyEvent` is timed: `events_per_s` counts blocks applied per second.
 * 2. Memory: heap + array buffers after a full GC, minus the same before the router existed,
 *    per indexed (worker, block) entry.
 * 3. Decisions: prompts of `isl` tokens that share a random number of leading blocks with an
 *    indexed sequence (partial overlaps), routed with load tracking on (a window of `2 * workers`
 *    in-flight requests, timed once it is full and after at least 500 decisions). Each prompt is also hashed alone with the router's own hasher, in the same run,
 *    alternating which goes first: `hash_us` is the baseline `decision_us` is compared with.
 *
 * Deterministic for a seed except for the timings. Imports only `@dynamo-ts/router`.
 * @packageDocumentation
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import {
  BlockHasher,
  createStrategy,
  KvRouter,
  type KvStoredEvent,
  type RoutingStrategy,
  storedEventForBlocks,
} from '@dynamo-ts/router';
import { mulberry32 } from '@dynamo-ts/mocker';

/** Options of {@link runRouterBench}. */
export interface RouterBenchOptions {
  /** Workers; default 64. */
  workers?: number;
  /** (worker, block) entries to index; default 1 000 000. */
  blocks?: number;
  /** Prompt length in tokens; default 4096. */
  isl?: number;
  /** Tokens per block; default 64. */
  blockSize?: number;
  /** Timed decisions; default 5000. */
  decisions?: number;
  /** Seed of the workload; default 1. */
  seed?: number;
  /**
   * Score every worker in each decision (the `kv` strategy behind a wrapper without its cost
   * bound), as the router did before its bounded search: the baseline of the sweep; default false.
   */
  fullScan?: boolean;
}

/** Progress callbacks (e.g. for a progress bar). */
export interface RouterBenchHooks {
  /** Called as phases progress: `fill` (blocks), `decisions` (decisions). */
  onProgress?(phase: string, done: number, total: number): void;
}

/** Percentiles in microseconds. */
export interface Percentiles {
  p50: number;
  p99: number;
}

/** Machine-readable result (`--json`). */
export interface RouterBenchResult {
  workers: number;
  indexed_blocks: number;
  decision_us: Percentiles;
  hash_us: Percentiles;
  events_per_s: number;
  heap_bytes_per_block: number;
}

/** The targets the result is judged against (docs/benchmarks.md). */
export const ROUTER_BENCH_TARGETS = {
  /** decision p50 at most this many times hash p50 */
  decisionOverHashP50: 2,
  decisionP99Us: 150,
  eventsPerS: 1_000_000,
  heapBytesPerBlock: 200,
} as const;

/** Fills `out[from..to)` with tokens derived from `seed` (deterministic, vocabulary of 128k). */
function fillTokens(out: Uint32Array | number[], from: number, to: number, seed: number): void {
  const rnd = mulberry32(seed);
  for (let i = from; i < to; i++) out[i] = Math.floor(rnd() * 128_000);
}

function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50: round(at(0.5)), p99: round(at(0.99)) };
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function getGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function memoryNow(gc: () => void): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;

function positiveInt(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** One point of the benchmark: filled once, then timed in slices (a sweep interleaves them). */
interface BenchPoint {
  /** Untimed decisions until the in-flight window is full (and at least 500). */
  warm(): Promise<void>;
  /** `n` timed decisions. */
  timed(n: number): void;
  result(): RouterBenchResult;
}

/**
 * Fills a point: its router, its index and the memory it takes (see the module comment).
 * @throws RangeError for options that are not positive integers, or isl < blockSize
 */
async function preparePoint(options: RouterBenchOptions, hooks: RouterBenchHooks): Promise<BenchPoint> {
  const W = positiveInt(options.workers ?? 64, 'workers');
  const totalBlocks = positiveInt(options.blocks ?? 1_000_000, 'blocks');
  const isl = positiveInt(options.isl ?? 4096, 'isl');
  const bs = positiveInt(options.blockSize ?? 64, 'blockSize');
  positiveInt(options.decisions ?? 5000, 'decisions');
  const seed = options.seed ?? 1;
  const seqBlocks = Math.floor(isl / bs);
  if (seqBlocks < 1) throw new RangeError('isl must be at least blockSize');
  const progress = hooks.onProgress ?? (() => undefined);
  const rnd = mulberry32(seed);
  const gc = getGc();
  // Shared prefixes ("system prompts"): stored once per worker that uses them.
  const families = 32;
  const familyBlocks = Array.from({ length: families }, () => 1 + Math.floor(rnd() * Math.max(1, seqBlocks / 4)));
  const familySeed = Array.from({ length: families }, (_, f) => (seed * 7919 + f * 104729) >>> 0);
  // Sequence descriptors, allocated before the baseline so they are not counted as router memory.
  const maxSeqs = totalBlocks + W;
  const seqSeed = new Uint32Array(maxSeqs);
  const seqFamily = new Int16Array(maxSeqs);
  const seqLen = new Uint16Array(maxSeqs);
  const tokens = new Uint32Array(seqBlocks * bs);
  let clock = 0;
  const ids = Array.from({ length: W }, (_, w) => `worker-${w}`);

  const before = memoryNow(gc);
  let strategy: RoutingStrategy | undefined;
  if (options.fullScan === true) {
    const kv = createStrategy('kv');
    strategy = { name: kv.name, select: (ctx) => kv.select(ctx) };
  }
  const router = new KvRouter({
    blockSize: bs,
    now: () => clock,
    random: mulberry32(seed ^ 0x5bd1e995),
    ...(strategy !== undefined ? { strategy } : {}),
  });
  for (const id of ids) router.addWorker(id);

  // 1. Fill.
  const budget = ids.map((_, w) => Math.floor(totalBlocks / W) + (w < totalBlocks % W ? 1 : 0));
  const eventIds = new Array<number>(W).fill(0);
  const hasFamily: Set<number>[] = ids.map(() => new Set());
  let nSeqs = 0;
  let applied = 0;
  let applyUs = 0;
  let w = 0;
  const chunk: KvStoredEvent[] = [];
  let chunkBlocks = 0;
  const flush = (): void => {
    // The harness's own garbage (the chunk's event objects) is collected outside the timed region.
    gc();
    const t0 = nowUs();
    for (const ev of chunk) router.applyEvent(ev);
    applyUs += nowUs() - t0;
    applied += chunkBlocks;
    chunk.length = 0;
    chunkBlocks = 0;
  };
  while (budget.some((b) => b > 0)) {
    while (budget[w]! <= 0) w = (w + 1) % W;
    const f = rnd() < 0.6 ? Math.floor(rnd() * families) : -1;
    const s = (seed * 31 + nSeqs * 2654435761) >>> 0;
    const pre = f >= 0 ? familyBlocks[f]! : 0;
    if (pre > 0) fillTokens(tokens, 0, pre * bs, familySeed[f]!);
    fillTokens(tokens, pre * bs, seqBlocks * bs, s);
    const from = f >= 0 && hasFamily[w]!.has(f) ? pre : 0;
    const to = Math.min(seqBlocks, from + budget[w]!);
    if (to > from) {
      const ev = storedEventForBlocks(ids[w]!, eventIds[w]!++, tokens, bs, { fromBlock: from, toBlock: to });
      chunk.push(ev);
      chunkBlocks += to - from;
      budget[w]! -= to - from;
      if (f >= 0 && to >= pre) hasFamily[w]!.add(f);
      seqSeed[nSeqs] = s;
      seqFamily[nSeqs] = f;
      seqLen[nSeqs] = to;
      nSeqs++;
    }
    w = (w + 1) % W;
    if (chunkBlocks >= 20_000) {
      flush();
      progress('fill', applied, totalBlocks);
      await tick();
    }
  }
  flush();
  progress('fill', applied, totalBlocks);
  const eventsPerS = applyUs > 0 ? Math.round(applied / (applyUs / 1e6)) : 0;
  const indexed = router.stats().indexEntries;
  const after = memoryNow(gc);
  const heapPerBlock = round((after - before) / Math.max(1, indexed), 1);

  // 3. Decisions.
  const hasher = new BlockHasher(bs);
  const prompt: number[] = new Array<number>(isl).fill(0);
  const makePrompt = (): void => {
    const j = Math.floor(rnd() * nSeqs);
    const f = seqFamily[j]!;
    const pre = f >= 0 ? familyBlocks[f]! : 0;
    const keep = Math.floor(rnd() * (seqLen[j]! + 1)); // shared leading blocks
    if (pre > 0) fillTokens(prompt, 0, Math.min(pre, keep) * bs, familySeed[f]!);
    if (keep > pre) {
      fillTokens(tokens, pre * bs, seqBlocks * bs, seqSeed[j]!); // as in the fill

      for (let i = pre * bs; i < keep * bs; i++) prompt[i] = tokens[i]!;
    }
    fillTokens(prompt, keep * bs, isl, (seqSeed[j]! ^ 0x9e3779b9 ^ clock) >>> 0);
  };
  const hashUs: number[] = [];
  const decideUs: number[] = [];
  const inflight: string[] = [];
  const window = 2 * W;
  let i = 0;
  const decide = (timed: boolean): void => {
    clock += 1;
    makePrompt();
    let th: number;
    let td: number;
    const requestId = `bench-${i}`;
    if (i % 2 === 0) {
      let t0 = nowUs();
      hasher.hash(prompt);
      th = nowUs() - t0;
      t0 = nowUs();
      router.route({ tokenIds: prompt, requestId });
      td = nowUs() - t0;
    } else {
      let t0 = nowUs();
      router.route({ tokenIds: prompt, requestId });
      td = nowUs() - t0;
      t0 = nowUs();
      hasher.hash(prompt);
      th = nowUs() - t0;
    }
    i++;
    inflight.push(requestId);
    if (inflight.length > window) {
      const done = inflight.shift()!;
      router.onFirstToken(done);
      router.onFinished(done);
    }
    if (timed) {
      hashUs.push(th);
      decideUs.push(td);
    }
  };
  const decisions = options.decisions ?? 5000;
  return {
    async warm() {
      // Untimed until the in-flight window is full, so that every size is timed in its steady state.
      const warmup = Math.max(Math.min(500, decisions), window);
      for (let k = 0; k < warmup; k++) {
        decide(false);
        if (k % 500 === 499) await tick();
      }
    },
    timed(n: number) {
      for (let k = 0; k < n; k++) decide(true);
      progress('decisions', decideUs.length, decisions);
    },
    result: () => ({
      workers: W,
      indexed_blocks: indexed,
      decision_us: percentiles(decideUs),
      hash_us: percentiles(hashUs),
      events_per_s: eventsPerS,
      heap_bytes_per_block: heapPerBlock,
    }),
  };
}

/** Timed decisions per slice: a sweep alternates its points slice by slice. */
const SLICE = 50;

/**
 * Runs the router benchmark (see the module comment).
 * @throws RangeError for options that are not positive integers, or isl < blockSize
 */
export async function runRouterBench(
  options: RouterBenchOptions = {},
  hooks: RouterBenchHooks = {},
): Promise<RouterBenchResult> {
  return (await runPoints([options], hooks))[0]!;
}

/** Fills every point in order, warms each, then times them slice by slice in turn. */
async function runPoints(list: readonly RouterBenchOptions[], hooks: RouterBenchHooks): Promise<RouterBenchResult[]> {
  const points: BenchPoint[] = [];
  const tag = (k: number): string => (list.length > 1 ? ` ${k + 1}/${list.length}` : '');
  for (const [k, o] of list.entries()) {
    points.push(await preparePoint(o, { onProgress: (phase, d, t) => hooks.onProgress?.(phase + tag(k), d, t) }));
  }
  for (const p of points) await p.warm();
  const want = list.map((o) => o.decisions ?? 5000);
  const done = want.map(() => 0);
  for (let more = true; more;) {
    more = false;
    for (const [k, p] of points.entries()) {
      const n = Math.min(SLICE, want[k]! - done[k]!);
      if (n <= 0) continue;
      p.timed(n);
      done[k]! += n;
      more = true;
    }
    await tick();
  }
  return points.map((p) => p.result());
}

/** A human-readable table of a result, with the targets. */
export function formatRouterBenchTable(r: RouterBenchResult): string {
  const T = ROUTER_BENCH_TARGETS;
  const ratio = r.hash_us.p50 > 0 ? r.decision_us.p50 / r.hash_us.p50 : Infinity;
  const ok = (pass: boolean): string => (pass ? 'ok' : 'MISSED');
  const num = (x: number): string => x.toLocaleString('en-US');
  const rows: [string, string, string, string][] = [
    ['workers', num(r.workers), '', ''],
    ['indexed blocks', num(r.indexed_blocks), '', ''],
    ['hash only p50 / p99 (us)', `${r.hash_us.p50} / ${r.hash_us.p99}`, 'baseline', ''],
    [
      'decision p50 (us)',
      `${r.decision_us.p50} (${ratio.toFixed(2)}x hash)`,
      `<= ${T.decisionOverHashP50}x hash p50`,
      ok(ratio <= T.decisionOverHashP50),
    ],
    ['decision p99 (us)', String(r.decision_us.p99), `<= ${T.decisionP99Us}`, ok(r.decision_us.p99 <= T.decisionP99Us)],
    ['block events / s', num(r.events_per_s), `>= ${num(T.eventsPerS)}`, ok(r.events_per_s >= T.eventsPerS)],
    [
      'heap bytes / block',
      String(r.heap_bytes_per_block),
      `<= ${T.heapBytesPerBlock}`,
      ok(r.heap_bytes_per_block <= T.heapBytesPerBlock),
    ],
  ];
  const header: [string, string, string, string] = ['metric', 'value', 'target', ''];
  const all = [header, ...rows];
  const widths = [0, 1, 2].map((c) => Math.max(...all.map((row) => row[c]!.length)));
  const line = (row: [string, string, string, string]): string =>
    `${row[0].padEnd(widths[0]!)}  ${row[1].padEnd(widths[1]!)}  ${row[2].padEnd(widths[2]!)}  ${row[3]}`.trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** The fleet-scale targets (docs/benchmarks.md, "Router at fleet scale"), judged in one sweep. */
export const ROUTER_SCALE_TARGETS = {
  /** decision p50 of the largest point at most this many times the smallest point's */
  p50OverSmallest: 2,
  /** decision p99 of every point, us */
  decisionP99Us: 100,
  heapBytesPerBlock: 64,
} as const;

/** One point of a sweep. */
export interface RouterSweepPoint {
  workers: number;
  blocks: number;
}

/** Result of {@link runRouterSweep}: each point's result, in order, and the p50 ratio. */
export interface RouterSweepResult {
  points: RouterBenchResult[];
  /** decision p50 of the last point / of the first (points are run in the order given) */
  p50_ratio: number;
}

/**
 * Pairs `workers` and `blocks` lists into points: equal lengths pair up, a single value of either
 * applies to every point of the other.
 * @throws RangeError naming the flag when the lengths cannot be paired
 */
export function sweepPoints(workers: readonly number[], blocks: readonly number[]): RouterSweepPoint[] {
  const n = Math.max(workers.length, blocks.length);
  if (workers.length !== n && workers.length !== 1) {
    throw new RangeError(`--workers has ${workers.length} values but --blocks has ${blocks.length}; give 1 or ${n}`);
  }
  if (blocks.length !== n && blocks.length !== 1) {
    throw new RangeError(`--blocks has ${blocks.length} values but --workers has ${workers.length}; give 1 or ${n}`);
  }
  return Array.from({ length: n }, (_, i) => ({
    workers: workers[workers.length === 1 ? 0 : i]!,
    blocks: blocks[blocks.length === 1 ? 0 : i]!,
  }));
}

/**
 * Runs every point in this process: each is filled in order, then their timed decisions alternate
 * in slices of {@link SLICE}, so that every point is timed under the same machine state (on a
 * shared VM the speed of a whole process drifts by 1.5x for seconds at a time, which timing the
 * points one after the other turned into the ratio).
 */
export async function runRouterSweep(
  points: readonly RouterSweepPoint[],
  options: Omit<RouterBenchOptions, 'workers' | 'blocks'> = {},
  hooks: RouterBenchHooks = {},
): Promise<RouterSweepResult> {
  if (points.length === 0) throw new RangeError('a sweep needs at least one point');
  const out = await runPoints(
    points.map((p) => ({ ...options, workers: p.workers, blocks: p.blocks })),
    hooks,
  );
  const first = out[0]!.decision_us.p50;
  const last = out[out.length - 1]!.decision_us.p50;
  return { points: out, p50_ratio: first > 0 ? round(last / first) : Infinity };
}

/** A table of a sweep: one row per point, then the targets. */
export function formatRouterSweepTable(s: RouterSweepResult): string {
  const T = ROUTER_SCALE_TARGETS;
  const num = (x: number): string => x.toLocaleString('en-US');
  const header = ['workers', 'blocks', 'decision p50 / p99 (us)', 'hash p50 / p99 (us)', 'events/s', 'B/block'];
  const rows = s.points.map((r) => [
    num(r.workers),
    num(r.indexed_blocks),
    `${r.decision_us.p50} / ${r.decision_us.p99}`,
    `${r.hash_us.p50} / ${r.hash_us.p99}`,
    num(r.events_per_s),
    String(r.heap_bytes_per_block),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (row: string[]): string =>
    row
      .map((x, c) => x.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  const ok = (pass: boolean): string => (pass ? 'ok' : 'MISSED');
  const worstP99 = Math.max(...s.points.map((r) => r.decision_us.p99));
  const worstHeap = Math.max(...s.points.map((r) => r.heap_bytes_per_block));
  const first = s.points[0]!;
  const last = s.points[s.points.length - 1]!;
  return [
    line(header),
    ...rows.map(line),
    '',
    `decision p50 ratio (${num(last.workers)} / ${num(first.workers)} workers): ${s.p50_ratio.toFixed(2)}x` +
      `  target <= ${T.p50OverSmallest}x  ${ok(s.p50_ratio <= T.p50OverSmallest)}`,
    `decision p99, worst point: ${worstP99} us  target <= ${T.decisionP99Us}  ${ok(worstP99 <= T.decisionP99Us)}`,
    `heap bytes / block, worst point: ${worstHeap}  target <= ${T.heapBytesPerBlock}  ${ok(worstHeap <= T.heapBytesPerBlock)}`,
  ].join('\n');
}
