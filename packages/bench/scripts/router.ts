/**
 * Runs the router benchmark through tsx (the router package built first):
 *
 *   npm run build && npx tsx packages/bench/scripts/router.ts [--workers 64] [--blocks 1000000] [--isl 4096]
 *       [--block-size 64] [--decisions 5000] [--seed 1] [--json FILE]
 *
 * Prints the table and the JSON result. The benchmark itself lives in
 * packages/bench/src/router-bench.ts (also behind `dynamo-ts bench router`).
 */
import { writeFileSync } from 'node:fs';
import { formatRouterBenchTable, runRouterBench } from '../src/router-bench';

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
