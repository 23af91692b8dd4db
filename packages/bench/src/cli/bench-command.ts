import { writeFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import { positiveIntFlag, positiveIntListFlag } from '../flags';
import {
  formatRouterBenchTable,
  formatRouterSweepTable,
  runRouterSweep,
  sweepPoints,
  type RouterSweepPoint,
} from '../router-bench';
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
          .option('workers', {
            type: 'string',
            default: '64',
            describe: 'workers; a list (64,1024) runs a sweep in this process and prints the p50 ratio',
          })
          .option('blocks', {
            type: 'string',
            default: '1000000',
            describe: 'indexed blocks; one value, or one per --workers value',
          })
          .option('isl', { type: 'number', default: 4096, describe: 'prompt tokens' })
          .option('block-size', { type: 'number', default: 64 })
          .option('decisions', { type: 'number', default: 5000 })
          .option('seed', { type: 'number', default: 1 })
          .option('full-scan', {
            type: 'boolean',
            default: false,
            describe: 'score every worker per decision (the baseline before the bounded search)',
          })
          .option('json', { type: 'string', describe: 'write the result as JSON to this file' }),
      async (argv) => {
        try {
          let points: RouterSweepPoint[];
          try {
            points = sweepPoints(
              positiveIntListFlag('workers', argv.workers),
              positiveIntListFlag('blocks', argv.blocks),
            );
          } catch (e) {
            throw e instanceof RangeError ? new InvalidArgumentError(e.message) : e;
          }
          const options = {
            isl: positiveIntFlag('isl', argv.isl),
            blockSize: positiveIntFlag('block-size', argv['block-size']),
            decisions: positiveIntFlag('decisions', argv.decisions),
            seed: positiveIntFlag('seed', argv.seed),
            fullScan: argv['full-scan'],
          };
          const bar = progressBar();
          const sweep = await runRouterSweep(points, options, { onProgress: (p, d, t) => bar.update(p, d, t) });
          bar.stop();
          const single = sweep.points.length === 1 ? sweep.points[0]! : undefined;
          process.stdout.write((single ? formatRouterBenchTable(single) : formatRouterSweepTable(sweep)) + '\n');
          if (argv.json) writeFileSync(argv.json, JSON.stringify(single ?? sweep, null, 2) + '\n');
        } catch (e) {
          fail(e);
        }
      },
    )
    .command(benchHttpCommand(fail))
    .command(routingBenchCommand<T>(fail))
    .demandCommand(1, `name a benchmark: ${BENCH_NAMES.join(', ')}`);
}
