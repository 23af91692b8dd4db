import { writeFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { positiveIntFlag } from '../flags';
import { formatRouterBenchTable, runRouterBench } from '../router-bench';
import { routingBenchCommand } from './bench-routing-command';
import { benchHttpCommand } from './bench-http-command';
import { progressBar } from './progress';

/** The benchmarks under `dynamo-ts bench`, as `bench` alone lists them. */
export const BENCH_NAMES = ['router', 'routing', 'http'] as const;

/**
 * Adds the `bench` subcommands (router, routing, http) to the `bench` command's builder: the sdk's
 * CLI calls this only when `bench` is the command, so `serve` never loads a benchmark.
 */
export function benchCommands<T>(y: Argv<T>, fail: (e: unknown) => never): Argv<T> {
  return y
    .command(
      'router',
      'index KV events for many workers, then time routing decisions against hashing alone',
      (b) =>
        b
          .option('workers', { type: 'number', default: 64 })
          .option('blocks', { type: 'number', default: 1_000_000, describe: 'indexed blocks' })
          .option('isl', { type: 'number', default: 4096, describe: 'prompt tokens' })
          .option('block-size', { type: 'number', default: 64 })
          .option('decisions', { type: 'number', default: 5000 })
          .option('seed', { type: 'number', default: 1 })
          .option('json', { type: 'string', describe: 'write the result as JSON to this file' }),
      async (argv) => {
        try {
          const options = {
            workers: positiveIntFlag('workers', argv.workers),
            blocks: positiveIntFlag('blocks', argv.blocks),
            isl: positiveIntFlag('isl', argv.isl),
            blockSize: positiveIntFlag('block-size', argv['block-size']),
            decisions: positiveIntFlag('decisions', argv.decisions),
            seed: positiveIntFlag('seed', argv.seed),
          };
          const bar = progressBar();
          const result = await runRouterBench(options, { onProgress: (p, d, t) => bar.update(p, d, t) });
          bar.stop();
          process.stdout.write(formatRouterBenchTable(result) + '\n');
          if (argv.json) writeFileSync(argv.json, JSON.stringify(result, null, 2) + '\n');
        } catch (e) {
          fail(e);
        }
      },
    )
    .command(benchHttpCommand(fail))
    .command(routingBenchCommand<T>(fail))
    .demandCommand(1, `name a benchmark: ${BENCH_NAMES.join(', ')}`);
}
