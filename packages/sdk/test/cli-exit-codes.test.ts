import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const GRAPH = 'examples/hello-world/components/graph.ts:Frontend';

/** The built CLI: a usage error names the flag and exits 2, whatever the command. */
describe('dynamo-ts usage errors (built CLI)', () => {
  // Each case starts a node process that loads the graph with tsx: seconds on a shared machine.
  jest.setTimeout(30_000);
  const main = path.resolve(__dirname, '../dist/cli/main.js');
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [main, ...args],
        { timeout: 20_000, cwd: path.resolve(__dirname, '../../..'), env: { ...process.env, ...env } },
        (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });

  it.each([
    // --workers takes a list (a sweep); each entry is checked.
    [['bench', 'router', '--workers', '0'], /--workers: "0" is not a positive integer/],
    [['bench', 'router', '--workers', 'abc'], /--workers: "abc" is not a positive integer/],
    [['bench', 'router', '--workers', '64,x'], /--workers: "x" is not a positive integer/],
    [['bench'], /name a benchmark: router, routing, http/],
    [['nope'], /Unknown command: nope/],
    [[], /name a command: serve or bench/],
    [['bench', 'routing', '--workers', '8'], /one of --trace FILE or --workload/],
    [['bench', 'routing', '--workload', 'shared-prefix', '--strategies', 'nope'], /--strategies: unknown strategy/],
    [['serve', 'examples/hello-world/components/graph.ts:Frontend', '--drain-timeout', '-1'], /--drain-timeout/],
    [['serve', 'examples/hello-world/components/graph.ts:Frontend', '--bogus', '1'], /unknown option --bogus/],
    [['serve', GRAPH, '--Frontnd.port=1'], /Frontnd is not a service of this graph/],
    [['serve', 'examples/hello-world/components/worker.ts:DummyWorker', '--Frontend.port=1'], /Frontend is not a/],
    [['serve', GRAPH, '--Frontend.request_timeout_ms=3000000000'], /Frontend.request_timeout_ms must be <= 2147483647/],
  ])('%j exits 2 naming the problem', async (args, message) => {
    const r = await run(args as string[]);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });

  it.each([
    [{ DYNAMO_LEASE_TTL: '10000000' }, /DYNAMO_LEASE_TTL must be between 1 and 3600/],
    [{ DYNAMO_NAMESPACE: 'n'.repeat(200) }, /DYNAMO_NAMESPACE/],
    [{ DYNAMO_WORKER_NAME: 'a\tb' }, /DYNAMO_WORKER_NAME/],
  ])('serve with %j exits 2 naming the variable', async (env, message) => {
    const r = await run(['serve', GRAPH], env);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });

  it('refuses a 50 MB config file at once and an unknown section in one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dyn-cli-'));
    const big = path.join(dir, 'big.yaml');
    writeFileSync(big, `Frontend:\n  x: "${'y'.repeat(50 * 1024 * 1024)}"\n`);
    const r = await run(['serve', GRAPH, '-f', big]);
    expect(r.stderr).toMatch(/big.yaml is 52428\d+ bytes, over the limit/);
    expect(r.code).toBe(2);
    const typo = path.join(dir, 'typo.yaml');
    writeFileSync(typo, 'Frontend:\n  port: 0\nDummyWorkr:\n  replicas: 2\n');
    const t = await run(['serve', GRAPH, '-f', typo]);
    expect(t.stderr).toMatch(/DummyWorkr is not a service of this graph \(did you mean DummyWorker\?\)/);
    expect(t.code).toBe(2);
  }, 60_000);
});
