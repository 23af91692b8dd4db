/**
 * Runs the router benchmark from the sources, without a build:
 *
 *   npx tsx packages/router/bench/router.ts [--workers 64] [--blocks 1000000] [--isl 4096]
 *       [--block-size 64] [--decisions 5000] [--seed 1] [--json FILE]
 *
 * Prints the table and the JSON result. The benchmark itself lives in
 * packages/sdk/src/bench/router-bench.ts (also behind `dynamo-ts bench router`).
 */
import { writeFileSync } from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import type * as BenchModule from '../../sdk/src/bench/router-bench';

// Resolve @dynamo-ts/router to this package's sources, as jest does, so no build is needed.
const src = path.resolve(__dirname, '../src/index.ts');
type Resolve = (request: string, ...rest: unknown[]) => string;
const mod = Module as unknown as { _resolveFilename: Resolve };
const original = mod._resolveFilename;
mod._resolveFilename = function (request: string, ...rest: unknown[]): string {
  return original.call(this, request === '@dynamo-ts/router' ? src : request, ...rest);
};

function parseArgs(argv: string[]): { options: Record<string, number>; json?: string } {
  const options: Record<string, number> = {};
  let json: string | undefined;
  const names: Record<string, string> = {
    '--workers': 'workers',
    '--blocks': 'blocks',
    '--isl': 'isl',
    '--block-size': 'blockSize',
    '--decisions': 'decisions',
    '--seed': 'seed',
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    if (flag === '--json') json = value;
    else if (names[flag] !== undefined && value !== undefined && Number.isFinite(Number(value))) {
      options[names[flag]] = Number(value);
    } else {
      console.error(`unknown or incomplete argument: ${argv[i] ?? flag}`);
      process.exit(2);
    }
  }
  return json === undefined ? { options } : { options, json };
}

async function main(): Promise<void> {
  // Required after the resolver hook is in place.
  const { runRouterBench, formatRouterBenchTable } = require('../../sdk/src/bench/router-bench') as typeof BenchModule;
  const { options, json } = parseArgs(process.argv.slice(2));
  let last = '';
  const result = await runRouterBench(options, {
    onProgress(phase, done, total) {
      const line = `${phase}: ${Math.round((100 * done) / Math.max(1, total))}%`;
      if (line !== last) process.stderr.write(`\r${line}   `);
      last = line;
    },
  });
  process.stderr.write('\n');
  console.log(formatRouterBenchTable(result));
  console.log(JSON.stringify(result));
  if (json !== undefined) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
