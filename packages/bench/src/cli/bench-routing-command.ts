/**
 * `dynamo-ts bench routing`: the CLI of {@link runRoutingBench} (progress on stderr, table on
 * stdout, `--json FILE`, `--chart FILE.svg`).
 * @packageDocumentation
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { StrategyName } from '../strategies';
import type { Argv, CommandModule } from 'yargs';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import {
  DEFAULT_BENCH_STRATEGIES,
  formatRoutingBenchTable,
  parseMooncakeTrace,
  routingBenchJson,
  routingChartSvg,
  runRoutingBench,
  SHARED_PREFIX_DEFAULTS,
  sharedPrefixWorkload,
  traceRequests,
  type BenchRequest,
  type EngineModel,
} from '../routing-bench';
import { positiveIntFlag, positiveNumberFlag } from '../flags';
import { progressBar } from './progress';
import { formatGridMarkdown, runRoutingGrid } from '../routing/grid';

/** Parsed flags of `bench routing`. */
interface RoutingArgs {
  trace?: string;
  'trace-block-size': number;
  workload?: string;
  sessions: number;
  turns: number;
  'prefix-groups': number;
  'prefix-length': number;
  'user-tokens': number;
  'output-tokens': number;
  'session-rate': number;
  'think-time-ms': number;
  workers: number;
  strategies: string;
  speedup: number;
  seed: number;
  limit?: number;
  'num-blocks': number;
  'block-size': number;
  'max-num-seqs': number;
  'max-batched-tokens': number;
  'kv-preset': string;
  'router-replicas': number;
  'engine-model': string;
  'kv-work-weight'?: number;
  'kv-max-delayed'?: number;
  grid: boolean;
  'grid-workers': string;
  'grid-speedups': string;
  'grid-seeds': number;
  'replica-sharing': boolean;
  json?: string;
  chart?: string;
}

/** Builds the requests named by the flags. */
function loadRequests(a: RoutingArgs): BenchRequest[] {
  if ((a.trace === undefined) === (a.workload === undefined)) {
    throw new InvalidArgumentError('give exactly one of --trace FILE or --workload shared-prefix');
  }
  let requests: BenchRequest[];
  if (a.trace !== undefined) {
    const bs = positiveIntFlag('trace-block-size', a['trace-block-size']);
    let text: string;
    try {
      text = readFileSync(a.trace, 'utf8');
    } catch (e) {
      throw new InvalidArgumentError(`--trace: cannot read ${a.trace}: ${(e as Error).message}`);
    }
    requests = traceRequests(parseMooncakeTrace(text, bs, a.trace), bs);
  } else {
    if (a.workload !== 'shared-prefix') {
      throw new InvalidArgumentError(`--workload must be shared-prefix, got ${JSON.stringify(a.workload)}`);
    }
    requests = sharedPrefixWorkload(
      {
        sessions: positiveIntFlag('sessions', a.sessions),
        turns: positiveIntFlag('turns', a.turns),
        prefixGroups: positiveIntFlag('prefix-groups', a['prefix-groups']),
        prefixLength: positiveIntFlag('prefix-length', a['prefix-length']),
        userTokens: positiveIntFlag('user-tokens', a['user-tokens']),
        outputTokens: positiveIntFlag('output-tokens', a['output-tokens']),
        sessionRate: positiveNumberFlag('session-rate', a['session-rate']),
        thinkTimeMs: positiveNumberFlag('think-time-ms', a['think-time-ms']),
      },
      a.seed,
    );
  }
  if (a.limit !== undefined) requests = requests.slice(0, positiveIntFlag('limit', a.limit));
  return requests;
}

/** Checks `--strategies` against the known names. */
function parseStrategies(list: string): StrategyName[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new InvalidArgumentError('--strategies must name at least one strategy');
  const known = new Set<string>([...DEFAULT_BENCH_STRATEGIES, 'least-loaded']);
  for (const n of names) {
    if (!known.has(n))
      throw new InvalidArgumentError(
        `--strategies: unknown strategy ${JSON.stringify(n)}; known: ${[...known].join(', ')}`,
      );
  }
  return names as StrategyName[];
}

/** The `bench routing` command, for `yargs.command(...)`. */
export function routingBenchCommand<T>(fail: (e: unknown) => never): CommandModule<T, RoutingArgs> {
  const d = SHARED_PREFIX_DEFAULTS;
  return {
    command: 'routing',
    describe: 'replay a trace or a synthetic workload on simulated engines, once per routing strategy',
    builder: (b: Argv<T>) =>
      b
        .option('trace', { type: 'string', describe: 'Mooncake-format trace (JSONL)' })
        .option('trace-block-size', { type: 'number', default: 512, describe: 'tokens per hash id of the trace' })
        .option('workload', { type: 'string', describe: 'synthetic workload instead of a trace: shared-prefix' })
        .option('sessions', { type: 'number', default: d.sessions, describe: 'shared-prefix: sessions' })
        .option('turns', { type: 'number', default: d.turns, describe: 'shared-prefix: turns per session' })
        .option('prefix-groups', {
          type: 'number',
          default: d.prefixGroups,
          describe: 'shared-prefix: distinct system prompts',
        })
        .option('prefix-length', {
          type: 'number',
          default: d.prefixLength,
          describe: 'shared-prefix: system prompt tokens',
        })
        .option('user-tokens', {
          type: 'number',
          default: d.userTokens,
          describe: 'shared-prefix: tokens per user message',
        })
        .option('output-tokens', {
          type: 'number',
          default: d.outputTokens,
          describe: 'shared-prefix: tokens generated per turn',
        })
        .option('session-rate', {
          type: 'number',
          default: d.sessionRate,
          describe: 'shared-prefix: sessions started per second',
        })
        .option('think-time-ms', {
          type: 'number',
          default: d.thinkTimeMs,
          describe: 'shared-prefix: mean time between turns',
        })
        .option('workers', { type: 'number', default: 8, describe: 'simulated engines' })
        .option('strategies', {
          type: 'string',
          default: DEFAULT_BENCH_STRATEGIES.join(','),
          describe: 'comma-separated',
        })
        .option('speedup', { type: 'number', default: 1, describe: 'engine speedup ratio (higher: less load)' })
        .option('seed', { type: 'number', default: 1 })
        .option('limit', { type: 'number', describe: 'replay only the first N requests' })
        .option('num-blocks', { type: 'number', default: 16384, describe: 'KV blocks per engine' })
        .option('block-size', { type: 'number', default: 64, describe: 'tokens per KV block' })
        .option('max-num-seqs', { type: 'number', default: 256 })
        .option('max-batched-tokens', { type: 'number', default: 8192 })
        .option('kv-preset', {
          type: 'string',
          default: 'ttft',
          describe: "kv strategy cost: ttft (predicted time to first token), tuned or dynamo (Dynamo's cost)",
        })
        .option('grid', {
          type: 'boolean',
          default: false,
          describe: 'run the grid of generated workloads (plus --trace if given) and print a markdown table',
        })
        .option('grid-workers', { type: 'string', default: '4,16', describe: 'with --grid: worker counts' })
        .option('grid-seeds', {
          type: 'number',
          default: 1,
          describe: 'with --grid: seeds per cell, their requests pooled for the percentiles',
        })
        .option('grid-speedups', {
          type: 'string',
          default: '4,1.5,0.75',
          describe: 'with --grid: engine speeds (light to overloaded)',
        })
        .option('kv-work-weight', {
          type: 'number',
          describe: 'kv strategy, ttft cost: multiplier of the requests a miss is counted as delaying (default 1)',
        })
        .option('kv-max-delayed', {
          type: 'number',
          describe: 'kv strategy, ttft cost: most requests one miss is counted as delaying (default 12)',
        })
        .option('engine-model', {
          type: 'string',
          default: 'vllm',
          describe: 'simulated engine: vllm (preemption, chunked prefill limits) or mocker (the earlier model)',
        })
        .option('router-replicas', {
          type: 'number',
          default: 1,
          describe: 'routers taking requests round-robin, sharing state by the replica protocol',
        })
        .option('replica-sharing', {
          type: 'boolean',
          default: true,
          describe: 'with --router-replicas: exchange replica messages (--no-replica-sharing: each sees only its own)',
        })
        .option('json', { type: 'string', describe: 'write the result as JSON to this file' })
        .option('chart', {
          type: 'string',
          describe: 'write an SVG chart of TTFT percentiles to this file',
        }) as unknown as Argv<RoutingArgs>,
    handler: async (argv) => {
      try {
        const strategies = parseStrategies(argv.strategies);
        if (typeof argv.seed !== 'number' || !Number.isSafeInteger(argv.seed)) {
          throw new InvalidArgumentError(`--seed must be an integer, got ${String(argv.seed)}`);
        }
        const preset = argv['kv-preset'];
        if (preset !== 'ttft' && preset !== 'tuned' && preset !== 'dynamo') {
          throw new InvalidArgumentError(`--kv-preset must be ttft, tuned or dynamo, got ${JSON.stringify(preset)}`);
        }
        const model = argv['engine-model'];
        if (model !== 'vllm' && model !== 'mocker') {
          throw new InvalidArgumentError(`--engine-model must be vllm or mocker, got ${JSON.stringify(model)}`);
        }
        const ww = argv['kv-work-weight'];
        if (ww !== undefined && !(typeof ww === 'number' && ww >= 0 && Number.isFinite(ww))) {
          throw new InvalidArgumentError(`--kv-work-weight must be a number >= 0, got ${String(ww)}`);
        }
        const md = argv['kv-max-delayed'];
        if (md !== undefined && !(typeof md === 'number' && md >= 0 && Number.isFinite(md))) {
          throw new InvalidArgumentError(`--kv-max-delayed must be a number >= 0, got ${String(md)}`);
        }
        const strategyOptions = {
          preset,
          ...(ww !== undefined ? { workWeight: ww } : {}),
          ...(md !== undefined ? { maxDelayed: md } : {}),
        } as const;
        if (argv.grid) {
          const list = (flag: string, v: string): number[] => {
            const xs = v.split(',').map((x) => Number(x.trim()));
            if (xs.length === 0 || xs.some((x) => !(x > 0) || !Number.isFinite(x))) {
              throw new InvalidArgumentError(`--${flag} must be a comma-separated list of positive numbers, got ${v}`);
            }
            return xs;
          };
          const workers = list('grid-workers', argv['grid-workers']);
          if (workers.some((w) => !Number.isSafeInteger(w)))
            throw new InvalidArgumentError('--grid-workers must be integers');
          if (!strategies.includes('kv') || strategies.length < 2) {
            throw new InvalidArgumentError(
              '--strategies: with --grid, name kv and at least one policy to compare it with',
            );
          }
          const seeds = argv['grid-seeds'];
          if (!Number.isSafeInteger(seeds) || seeds < 1) {
            throw new InvalidArgumentError(`--grid-seeds must be a positive integer, got ${String(seeds)}`);
          }
          const bar = progressBar();
          const cells = await runRoutingGrid({
            seeds,
            ...(argv.trace !== undefined ? { tracePath: argv.trace } : {}),
            strategies,
            workers,
            speedups: list('grid-speedups', argv['grid-speedups']),
            seed: argv.seed,
            engineModel: model as EngineModel,
            strategyOptions,
            onCell: (_c, done, total) => bar.update('grid', done, total),
          });
          bar.stop();
          process.stdout.write(formatGridMarkdown(cells) + '\n');
          if (argv.json) writeFileSync(argv.json, JSON.stringify({ cells }, null, 2) + '\n');
          return;
        }
        const requests = loadRequests(argv);
        const options = {
          requests,
          strategies,
          workers: positiveIntFlag('workers', argv.workers),
          speedup: positiveNumberFlag('speedup', argv.speedup),
          seed: argv.seed,
          numBlocks: positiveIntFlag('num-blocks', argv['num-blocks']),
          blockSize: positiveIntFlag('block-size', argv['block-size']),
          maxNumSeqs: positiveIntFlag('max-num-seqs', argv['max-num-seqs']),
          maxBatchedTokens: positiveIntFlag('max-batched-tokens', argv['max-batched-tokens']),
          strategyOptions,
          routerReplicas: positiveIntFlag('router-replicas', argv['router-replicas']),
          replicaSharing: argv['replica-sharing'] !== false,
          engineModel: model as EngineModel,
        };
        const bar = progressBar();
        const result = await runRoutingBench(options, { onProgress: (p, done, total) => bar.update(p, done, total) });
        bar.stop();
        process.stdout.write(formatRoutingBenchTable(result) + '\n');
        if (argv.json) writeFileSync(argv.json, JSON.stringify(routingBenchJson(result), null, 2) + '\n');
        if (argv.chart) writeFileSync(argv.chart, routingChartSvg(result));
      } catch (e) {
        fail(e);
      }
    },
  };
}
