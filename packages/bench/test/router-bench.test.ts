import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { benchCommands } from '../src/cli/bench-command';
import { positiveIntListFlag } from '../src/flags';
import { formatRouterSweepTable, sweepPoints, type RouterSweepResult } from '../src/router-bench';

/** `bench router --workers A,B`: a sweep of small points in one process, and its flags. */
describe('bench router sweep', () => {
  it('judges the targets from the sweep figures', () => {
    const point = (workers: number, p50: number, p99: number, heap: number): RouterSweepResult['points'][0] => ({
      workers,
      indexed_blocks: 10,
      decision_us: { p50, p99 },
      hash_us: { p50: 1, p99: 1 },
      events_per_s: 1,
      heap_bytes_per_block: heap,
    });
    const good = formatRouterSweepTable({ points: [point(64, 20, 50, 40), point(1024, 30, 90, 50)], p50_ratio: 1.5 });
    expect(good).not.toContain('MISSED');
    const bad = formatRouterSweepTable({ points: [point(64, 20, 50, 40), point(1024, 50, 190, 70)], p50_ratio: 2.5 });
    expect(bad.match(/MISSED/g)).toHaveLength(3);
  });

  it('pairs --workers and --blocks, naming the flag that cannot be paired', () => {
    expect(sweepPoints([64, 1024], [1_000_000, 10_000_000])).toEqual([
      { workers: 64, blocks: 1_000_000 },
      { workers: 1024, blocks: 10_000_000 },
    ]);
    expect(sweepPoints([8], [1, 2])).toEqual([
      { workers: 8, blocks: 1 },
      { workers: 8, blocks: 2 },
    ]);
    expect(() => sweepPoints([1, 2, 3], [4, 5])).toThrow(/--blocks has 2 values/);
    expect(() => sweepPoints([1, 2], [4, 5, 6])).toThrow(/--workers has 2 values/);
  });

  it('rejects list items that are not positive integers, naming the flag', () => {
    expect(positiveIntListFlag('workers', '64, 1024')).toEqual([64, 1024]);
    expect(positiveIntListFlag('workers', 8)).toEqual([8]);
    expect(() => positiveIntListFlag('workers', '64,x')).toThrow(/--workers: "x" is not a positive integer/);
    expect(() => positiveIntListFlag('blocks', '0')).toThrow(/--blocks: "0"/);
    expect(() => positiveIntListFlag('blocks', '1,,2')).toThrow(/--blocks must be a comma-separated list/);
    expect(() => positiveIntListFlag('workers', '1.5')).toThrow(/--workers/);
  });

  it('the CLI writes the sweep as JSON and fails with INVALID_ARGUMENT on unpaired lists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'router-sweep-'));
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const errors: unknown[] = [];
    const fail = (e: unknown): never => {
      errors.push(e);
      throw e;
    };
    try {
      const file = join(dir, 'r.json');
      const cli = (args: string[]): Promise<unknown> =>
        benchCommands(yargs(args), fail).exitProcess(false).fail(false).parseAsync();
      await cli([
        'router',
        '--workers',
        '3,5',
        '--blocks',
        '800',
        '--isl',
        '64',
        '--block-size',
        '16',
        '--decisions',
        '20',
        '--json',
        file,
      ]);
      const json = JSON.parse(readFileSync(file, 'utf8')) as RouterSweepResult;
      // Every point in order, in this process, with the ratio of the last p50 to the first.
      expect(json.points.map((p) => [p.workers, p.indexed_blocks])).toEqual([
        [3, 800],
        [5, 800],
      ]);
      expect(json.p50_ratio).toBeCloseTo(json.points[1]!.decision_us.p50 / json.points[0]!.decision_us.p50, 2);
      const table = out.mock.calls.map((c) => String(c[0])).join('');
      expect(table).toMatch(/workers\s+blocks\s+decision p50 \/ p99/);
      expect(table).toMatch(/decision p50 ratio \(5 \/ 3 workers\): \d+\.\d\dx {2}target <= 2x/);
      expect(table).toMatch(/heap bytes \/ block, worst point: [\d.]+ {2}target <= 64/);
      await expect(cli(['router', '--workers', '3,5,7', '--blocks', '1,2'])).rejects.toThrow(/--blocks has 2 values/);
      expect((errors[0] as { code?: string }).code).toBe('INVALID_ARGUMENT');
    } finally {
      out.mockRestore();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
