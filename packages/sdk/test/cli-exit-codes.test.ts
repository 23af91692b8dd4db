import { execFile } from 'node:child_process';
import path from 'node:path';

/** The built CLI: a usage error names the flag and exits 2, whatever the command. */
describe('dynamo-ts usage errors (built CLI)', () => {
  const main = path.resolve(__dirname, '../dist/cli/main.js');
  const run = (args: string[]) =>
    new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [main, ...args],
        { timeout: 20_000, cwd: path.resolve(__dirname, '../../..') },
        (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });

  it.each([
    [['bench', 'router', '--workers', '0'], /--workers must be a positive integer/],
    [['bench', 'router', '--workers', 'abc'], /--workers must be a positive integer, got a value that is not a number/],
    [['bench'], /name a benchmark: router, routing, http/],
    [['nope'], /Unknown command: nope/],
    [[], /name a command: serve or bench/],
    [['bench', 'routing', '--workers', '8'], /one of --trace FILE or --workload/],
    [['bench', 'routing', '--workload', 'shared-prefix', '--strategies', 'nope'], /--strategies: unknown strategy/],
    [['serve', 'examples/hello-world/components/graph.ts:Frontend', '--drain-timeout', '-1'], /--drain-timeout/],
    [['serve', 'examples/hello-world/components/graph.ts:Frontend', '--bogus', '1'], /unknown option --bogus/],
  ])('%j exits 2 naming the problem', async (args, message) => {
    const r = await run(args as string[]);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });
});
