import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import {
  fillHashIdTokens,
  formatRoutingBenchTable,
  parseMooncakeTrace,
  percentile,
  routingBenchJson,
  routingChartSvg,
  runRoutingBench,
  mixedLengthWorkload,
  sharedPrefixWorkload,
  traceRequests,
  type BenchRequest,
} from '../src/routing-bench';
import { routingBenchCommand } from '../src/cli/bench-routing-command';
import { arrivalWindowMs, formatGridMarkdown, gridWorkloads, runRoutingGrid, type GridCell } from '../src/routing/grid';

const line = (o: object): string => JSON.stringify(o);

describe('Mooncake trace parsing', () => {
  it('parses records and skips blank lines', () => {
    const text = [
      line({ timestamp: 0, input_length: 600, output_length: 3, hash_ids: [0, 1] }),
      '',
      line({ timestamp: 40, input_length: 512, output_length: 0, hash_ids: [0] }),
    ].join('\n');
    const recs = parseMooncakeTrace(text, 512);
    expect(recs).toEqual([
      { timestamp: 0, inputLength: 600, outputLength: 3, hashIds: [0, 1] },
      { timestamp: 40, inputLength: 512, outputLength: 0, hashIds: [0] },
    ]);
    const reqs = traceRequests(recs, 512);
    expect(reqs[1]!.outputLength).toBe(1); // at least one token is generated
  });

  it.each([
    ['{"timestamp": 0', /t\.jsonl:2: not valid JSON/],
    ['[1, 2]', /t\.jsonl:2: expected a JSON object/],
    [
      line({ timestamp: -1, input_length: 5, output_length: 1, hash_ids: [0] }),
      /t\.jsonl:2: "timestamp" must be a number >= 0/,
    ],
    [line({ timestamp: 0, input_length: 0, output_length: 1, hash_ids: [] }), /t\.jsonl:2: "input_length"/],
    [line({ timestamp: 0, input_length: 5, output_length: 1, hash_ids: ['a'] }), /t\.jsonl:2: "hash_ids"/],
    [
      line({ timestamp: 0, input_length: 1000, output_length: 1, hash_ids: [0] }),
      /t\.jsonl:2: "hash_ids" has 1 ids but input_length 1000 needs 2/,
    ],
  ])('names the bad line: %s', (bad, message) => {
    const ok = line({ timestamp: 0, input_length: 5, output_length: 1, hash_ids: [0] });
    expect(() => parseMooncakeTrace(`${ok}\n${bad}\n`, 512, 't.jsonl')).toThrow(message);
    try {
      parseMooncakeTrace(`${ok}\n${bad}\n`, 512, 't.jsonl');
    } catch (e) {
      expect((e as { line: number; code: string }).line).toBe(2);
      expect((e as { code: string }).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('expands hash ids to deterministic tokens: same id, same block; last block cut to input_length', () => {
    const [a, b] = traceRequests(
      parseMooncakeTrace(
        [
          line({ timestamp: 0, input_length: 1100, output_length: 1, hash_ids: [7, 8, 9] }),
          line({ timestamp: 1, input_length: 700, output_length: 1, hash_ids: [7, 5] }),
        ].join('\n'),
      ),
    );
    const ta = a!.tokens();
    const tb = b!.tokens();
    expect(ta).toHaveLength(1100);
    expect(tb).toHaveLength(700);
    expect(Array.from(ta.subarray(0, 512))).toEqual(Array.from(tb.subarray(0, 512)));
    expect(Array.from(ta.subarray(512, 600))).not.toEqual(Array.from(tb.subarray(512, 600)));
    const block9 = new Uint32Array(512);
    fillHashIdTokens(9, block9, 0, 512);
    expect(Array.from(ta.subarray(1024))).toEqual(Array.from(block9.subarray(0, 76)));
    expect(Array.from(a!.tokens())).toEqual(Array.from(ta)); // rebuilt identically
  });
});

describe('shared-prefix workload', () => {
  it('is deterministic for a seed; sessions grow turn by turn on a shared system prompt', () => {
    const opts = { sessions: 3, turns: 3, prefixGroups: 1, prefixLength: 64, userTokens: 16, outputTokens: 8 };
    const w = sharedPrefixWorkload(opts, 5);
    expect(w).toHaveLength(9);
    expect(w.map((r) => r.arrivalMs)).toEqual(sharedPrefixWorkload(opts, 5).map((r) => r.arrivalMs));
    expect(w.map((r) => r.arrivalMs)).not.toEqual(sharedPrefixWorkload(opts, 6).map((r) => r.arrivalMs));
    const lengths = new Set(w.map((r) => r.inputLength));
    expect(lengths).toEqual(new Set([80, 104, 128])); // 64 + 16, + 8 + 16, + 8 + 16
    const firsts = w.map((r) => Array.from(r.tokens().subarray(0, 64)).join(','));
    expect(new Set(firsts).size).toBe(1); // one group: the same system prompt
  });
});

describe('runRoutingBench', () => {
  const small = (): BenchRequest[] =>
    sharedPrefixWorkload(
      {
        sessions: 12,
        turns: 3,
        prefixGroups: 3,
        prefixLength: 512,
        userTokens: 64,
        outputTokens: 8,
        sessionRate: 20,
        thinkTimeMs: 300,
      },
      3,
    );
  const strategies = [
    'kv',
    'round-robin',
    'random',
    'power-of-two',
    'sglang-cache-aware',
    'vllm-prefix-aware',
    'llm-d-scorers',
  ] as const;

  it('runs every strategy on the same requests; the same seed gives identical JSON', async () => {
    const opts = { requests: small(), workers: 3, strategies, seed: 9, numBlocks: 512, blockSize: 16 };
    const a = await runRoutingBench(opts);
    const b = await runRoutingBench(opts);
    expect(JSON.stringify(routingBenchJson(a))).toBe(JSON.stringify(routingBenchJson(b)));
    expect(Object.keys(routingBenchJson(a))).toEqual(['runs']);
    expect(a.runs.map((r) => r.strategy)).toEqual([...strategies]);
    for (const r of a.runs) {
      expect(Object.keys(r)).toEqual([
        'strategy',
        'requests',
        'failed',
        'ttft_ms',
        'itl_ms',
        'e2e_ms',
        'hit_rate',
        'load_imbalance',
      ]);
      expect(r).toMatchObject({ requests: 36, failed: 0 });
      expect(r.ttft_ms.p50).toBeGreaterThan(0);
      expect(r.ttft_ms.p99).toBeGreaterThanOrEqual(r.ttft_ms.p50);
      expect(r.e2e_ms.p50).toBeGreaterThan(r.ttft_ms.p50);
      expect(r.hit_rate).toBeGreaterThanOrEqual(0);
      expect(r.hit_rate).toBeLessThanOrEqual(1);
      expect(r.load_imbalance).toBeGreaterThanOrEqual(1);
    }
    // cache-aware strategies reuse the shared prompts more than round-robin does
    const hit = (s: string): number => a.runs.find((r) => r.strategy === s)!.hit_rate;
    expect(hit('kv')).toBeGreaterThan(hit('round-robin'));
    const table = formatRoutingBenchTable(a);
    expect(table).toMatch(/36 requests, 3 simulated engines/);
    expect(table.split('\n')).toHaveLength(3 + strategies.length + 1);
    const svg = routingChartSvg(a);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(strategies.length);
  });

  it('replays with several router replicas: deterministic, one replica is the single router, sharing helps', async () => {
    const requests = sharedPrefixWorkload(
      {
        sessions: 32,
        turns: 2,
        prefixGroups: 6,
        prefixLength: 1024,
        userTokens: 256,
        outputTokens: 16,
        sessionRate: 200,
        thinkTimeMs: 100,
      },
      5,
    );
    const base = { requests, workers: 4, strategies: ['kv'] as const, seed: 4, numBlocks: 1024, blockSize: 16 };
    const one = await runRoutingBench(base);
    const single = await runRoutingBench({ ...base, routerReplicas: 1 });
    expect(JSON.stringify(routingBenchJson(single))).toBe(JSON.stringify(routingBenchJson(one)));
    const shared = await runRoutingBench({ ...base, routerReplicas: 4 });
    const again = await runRoutingBench({ ...base, routerReplicas: 4 });
    expect(JSON.stringify(routingBenchJson(again))).toBe(JSON.stringify(routingBenchJson(shared)));
    const blind = await runRoutingBench({ ...base, routerReplicas: 4, replicaSharing: false });
    expect(shared.config.routerReplicas).toBe(4);
    expect(formatRoutingBenchTable(shared)).toMatch(/4 router replicas/);
    const p = (r: typeof one): { p50: number; p99: number } => r.runs[0]!.ttft_ms;
    expect(p(shared).p99).toBeLessThan(p(blind).p99);
    expect(p(shared).p50).toBeLessThanOrEqual(p(blind).p50);
    await expect(runRoutingBench({ ...base, routerReplicas: 0 })).rejects.toThrow(/routerReplicas/);
  }, 30_000);

  it('kv replicates a hot prefix instead of queueing every session on the worker caching it', async () => {
    // 96 sessions on 2 system prompts, 8 engines: keeping each prompt on one worker leaves 6 idle.
    const requests = sharedPrefixWorkload(
      { sessions: 96, prefixGroups: 2, turns: 2, prefixLength: 2048, sessionRate: 16 },
      1,
    );
    const r = await runRoutingBench({ requests, workers: 8, speedup: 1.5, strategies: ['kv', 'round-robin'] });
    const [kv, rr] = r.runs;
    // Each prompt is replicated on at least three engines (llm-d keeps them on two).
    expect(r.details[0]!.busyMs.filter((b) => b > 0).length).toBeGreaterThanOrEqual(6);
    expect(kv!.ttft_ms.p99).toBeLessThan(rr!.ttft_ms.p99);
    expect(kv!.ttft_ms.p50).toBeLessThan(rr!.ttft_ms.p50);
  }, 30_000);

  it('counts requests that can never fit an engine as failed', async () => {
    const reqs: BenchRequest[] = [
      { arrivalMs: 0, inputLength: 8, outputLength: 2, tokens: () => Uint32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) },
      { arrivalMs: 1, inputLength: 200, outputLength: 2, tokens: () => new Uint32Array(200).fill(3) },
    ];
    const r = await runRoutingBench({
      requests: reqs,
      workers: 2,
      strategies: ['round-robin'],
      numBlocks: 4,
      blockSize: 4,
    });
    expect(r.runs[0]).toMatchObject({ requests: 2, failed: 1 });
  });

  it('rejects bad options, naming them', async () => {
    const requests = small();
    await expect(runRoutingBench({ requests, strategies: ['fastest' as never] })).rejects.toThrow(
      /strategies: unknown strategy "fastest"/,
    );
    await expect(runRoutingBench({ requests, workers: 0 })).rejects.toThrow(/workers/);
    await expect(runRoutingBench({ requests, speedup: -1 })).rejects.toThrow(/speedup/);
    await expect(runRoutingBench({ requests: [] })).rejects.toThrow(/requests/);
  });

  it('percentile is nearest-rank', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 99)).toBe(4);
    expect(percentile([], 50)).toBe(0);
  });
});

describe('bench routing command', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'routing-bench-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the command in-process; resolves with the error message it failed with, or undefined. */
  async function run(args: string[]): Promise<string | undefined> {
    let failure: string | undefined;
    const fail = (e: unknown): never => {
      failure = (e as Error).message;
      throw e;
    };
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await yargs(args)
        .command(routingBenchCommand(fail))
        .fail((msg, err) => {
          failure ??= err?.message ?? msg;
        })
        .exitProcess(false)
        .parseAsync();
    } catch {
      // reported through fail
    } finally {
      out.mockRestore();
    }
    return failure;
  }

  it('replays a trace file and writes the JSON and the chart', async () => {
    const trace = join(dir, 'trace.jsonl');
    writeFileSync(
      trace,
      Array.from({ length: 6 }, (_, i) =>
        line({ timestamp: i * 50, input_length: 300, output_length: 4, hash_ids: [i % 2] }),
      ).join('\n'),
    );
    const json = join(dir, 'out.json');
    const chart = join(dir, 'out.svg');
    const failure = await run([
      'routing',
      '--trace',
      trace,
      '--trace-block-size',
      '512',
      '--workers',
      '2',
      '--strategies',
      'kv,round-robin',
      '--limit',
      '5',
      '--block-size',
      '16',
      '--num-blocks',
      '256',
      '--json',
      json,
      '--chart',
      chart,
    ]);
    expect(failure).toBeUndefined();
    const result = JSON.parse(readFileSync(json, 'utf8')) as { runs: Array<{ strategy: string; requests: number }> };
    expect(result.runs.map((r) => [r.strategy, r.requests])).toEqual([
      ['kv', 5],
      ['round-robin', 5],
    ]);
    expect(readFileSync(chart, 'utf8')).toMatch(/^<svg/);
  });

  it.each([
    [['routing'], /exactly one of --trace FILE or --workload/],
    [['routing', '--workload', 'chat'], /--workload must be shared-prefix/],
    [['routing', '--workload', 'shared-prefix', '--workers', '0'], /--workers must be a positive integer/],
    [['routing', '--workload', 'shared-prefix', '--strategies', 'kv,best'], /--strategies: unknown strategy "best"/],
    [['routing', '--workload', 'shared-prefix', '--speedup', '0'], /--speedup must be a positive number/],
    [['routing', '--workload', 'shared-prefix', '--sessions', '1.5'], /--sessions must be a positive integer/],
    [['routing', '--trace', '/nonexistent/trace.jsonl'], /--trace: cannot read/],
    [['routing', '--workload', 'shared-prefix', '--kv-preset', 'fast'], /--kv-preset must be ttft, tuned or dynamo/],
    [['routing', '--workload', 'shared-prefix', '--kv-work-weight', '-1'], /--kv-work-weight must be a number >= 0/],
    [['routing', '--workload', 'shared-prefix', '--kv-max-delayed', '-2'], /--kv-max-delayed must be a number >= 0/],
    [['routing', '--grid', '--grid-seeds', '0'], /--grid-seeds must be a positive integer/],
    [['routing', '--grid', '--strategies', 'kv'], /--strategies: with --grid, name kv and at least one policy/],
    [['routing', '--grid', '--strategies', 'round-robin,random'], /--strategies: with --grid, name kv/],
  ])('%j fails naming the flag', async (args, message) => {
    expect(await run(args)).toMatch(message);
  });
});

describe('grid pieces', () => {
  it('the long/short mix is deterministic, with long prompts sharing document prefixes', () => {
    const a = mixedLengthWorkload({ requests: 200, rate: 10, documents: 2 }, 7);
    const b = mixedLengthWorkload({ requests: 200, rate: 10, documents: 2 }, 7);
    expect(a.map((r) => [r.arrivalMs, r.inputLength])).toEqual(b.map((r) => [r.arrivalMs, r.inputLength]));
    const long = a.filter((r) => r.inputLength >= 8192);
    const short = a.filter((r) => r.inputLength <= 1024);
    expect(long.length + short.length).toBe(200);
    expect(long.length).toBeGreaterThan(20);
    expect(long.length).toBeLessThan(70);
    // Two documents: some pair of long prompts starts with the same 4k tokens.
    const heads = new Set(long.map((r) => Array.from(r.tokens().subarray(0, 4096)).join(',')));
    expect(heads.size).toBeLessThanOrEqual(2);
  });

  it('offered load is busy time over the arrival window', () => {
    const at = (ms: number): BenchRequest => ({
      arrivalMs: ms,
      inputLength: 1,
      outputLength: 1,
      tokens: () => new Uint32Array(1),
    });
    expect(arrivalWindowMs([at(500), at(100), at(2100)], 9000)).toBe(2000);
    // All at once: the makespan is the window.
    expect(arrivalWindowMs([at(7), at(7)], 300)).toBe(300);
  });

  it('pools the requests of several seeds per cell', async () => {
    const only = ['shared-prefix 64x8', 'chat (think time)'];
    expect(gridWorkloads(undefined, 1).map((w) => w.name)).toEqual(expect.arrayContaining(only));
    const grid = { strategies: ['kv', 'round-robin'], workers: [2], speedups: [64], only } as const;
    const cells = await runRoutingGrid({ ...grid, seeds: 2 });
    expect(cells.map((c) => c.workload)).toEqual(only);
    for (const c of cells) {
      expect(c.offered).toBeGreaterThan(0);
      expect(['light', 'moderate', 'heavy', 'overloaded']).toContain(c.load);
      expect(c.kv.p99).toBeGreaterThanOrEqual(c.kv.p50);
    }
    // Two seeds of a generated workload are different requests: the pooled cell differs from seed 1's.
    const one = await runRoutingGrid(grid);
    expect(cells.map((c) => [c.kv, c.offered])).not.toEqual(one.map((c) => [c.kv, c.offered]));
    await expect(runRoutingGrid({ ...grid, seeds: 0 })).rejects.toThrow(/seeds must be a positive integer/);
    await expect(runRoutingGrid({ ...grid, only: ['nope'] })).rejects.toThrow(/no grid workload is named/);
    await expect(runRoutingGrid({ ...grid, strategies: ['kv'] })).rejects.toThrow(/at least one policy to compare/);
  }, 60_000);

  it('the grid table marks losses and counts wins per split and load', () => {
    const cell = (wins: boolean, load: string): GridCell => ({
      workload: 'w',
      split: 'check',
      workers: 4,
      speedup: 1,
      utilization: 0.9,
      offered: 0.93,
      load,
      kv: { p50: 10, p99: 20 },
      bestP50: { strategy: 'llm-d-scorers', ms: 11 },
      bestP99: { strategy: 'sglang-cache-aware', ms: 1500 },
      wins,
    });
    const md = formatGridMarkdown([cell(true, 'heavy'), cell(false, 'heavy')]);
    expect(md).toMatch(
      /\| 0.90 \| 0.93 \| heavy \| 10 ms \| 11 ms \(llm-d-scorers\) \| 20 ms \| 1.50 s \(sglang-cache-aware\) \| yes \|/,
    );
    expect(md).toMatch(/\*\*no\*\*/);
    expect(md).toMatch(/- check, heavy: kv wins 1 of 2/);
  });
});
