/**
 * A/B of request-path servers by CPU time a request: each server script (one that sends `{url}`
 * on its IPC channel once listening and exits on `{type: "stop"}`, as `bare-express.ts`,
 * `frontend-stub.ts` and `graph-server.ts` do) is forked once, warmed up, then loaded in ROUNDS
 * rounds of SLICE-second slices at 32 clients, in alternating order (A B, B A, ...), by the same
 * client as `http-compare.ts`. It prints, for each server, its median CPU (user + system, from
 * /proc) a request and its requests/s, and the medians of its per-round ratios to the first
 * server: adjacent slices see the same machine, where samples taken minutes apart do not (this
 * VM's speed moves by tens of percent within seconds). Two copies of one server differ here by up
 * to +-5 %: a change smaller than that needs more rounds, or bytes allocated (`alloc-http.ts`).
 *
 * To compare two versions of the sources, build the other one in a worktree:
 *   git worktree add /tmp/old HEAD~1 && (cd /tmp/old && npm ci && npm run build)
 *   npm run build && ROUNDS=16 npx tsx packages/bench/scripts/http/ab-servers.ts \
 *     /tmp/old/packages/bench/scripts/http/graph-server.ts packages/bench/scripts/http/graph-server.ts
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { runHttpBench } from '../../src/http-bench';
import { cpuUs, median } from './process-stats';

const ROUNDS = Number(process.env.ROUNDS ?? 12);
const SLICE_S = Number(process.env.SLICE ?? 2);
const CONCURRENCY = Number(process.env.C ?? 32);

interface Server {
  name: string;
  proc: ChildProcess;
  url: string;
  cpu: number[];
  rps: number[];
}

async function start(script: string): Promise<Server> {
  // Each script runs with the tsx of its own tree (a worktree resolves its own packages).
  const proc = fork(path.resolve(script), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    proc.once('message', (m: { url?: string }) => (m.url ? resolve(m.url) : reject(new Error(`${script}: ${m}`))));
    proc.once('exit', (code) => reject(new Error(`${script} exited (${code})`)));
  });
  return { name: script, proc, url, cpu: [], rps: [] };
}

async function slice(s: Server, seconds: number): Promise<void> {
  const c0 = cpuUs(s.proc.pid!);
  const r = await runHttpBench({
    url: s.url,
    concurrency: CONCURRENCY,
    durationS: seconds,
    route: 'generate',
    stream: false,
    record: false,
  });
  const c1 = cpuUs(s.proc.pid!);
  if (r.errors > 0) throw new Error(`${s.name}: ${r.errors} errors (${JSON.stringify(r.error_kinds)})`);
  s.cpu.push((c1 - c0) / r.requests);
  s.rps.push(r.requests_per_s);
}

async function main(): Promise<void> {
  const scripts = process.argv.slice(2);
  if (scripts.length < 2) throw new Error('usage: ab-servers.ts SERVER_A SERVER_B [...]');
  const servers: Server[] = [];
  try {
    for (const s of scripts) servers.push(await start(s));
    for (const s of servers) await slice(s, 3);
    for (const s of servers) s.cpu.length = s.rps.length = 0;
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`\rround ${r + 1}/${ROUNDS}`);
      for (const s of r % 2 ? [...servers].reverse() : servers) await slice(s, SLICE_S);
    }
    process.stderr.write('\n');
    const base = servers[0]!;
    for (const s of servers) {
      const cpuRatio = median(s.cpu.map((c, i) => c / base.cpu[i]!));
      const rpsRatio = median(s.rps.map((x, i) => x / base.rps[i]!));
      process.stdout.write(
        `${s.name}\n  CPU ${median(s.cpu).toFixed(0)} us a request (x${cpuRatio.toFixed(3)} of the first, ` +
          `median of ${ROUNDS} rounds), ${median(s.rps).toFixed(0)} requests/s (x${rpsRatio.toFixed(3)})\n`,
      );
    }
  } finally {
    for (const s of servers) s.proc.send({ type: 'stop' });
    await Promise.all(
      servers.map((s) => new Promise((r) => (s.proc.exitCode === null ? s.proc.once('exit', r) : r(null)))),
    );
  }
}

main().catch((e: Error) => {
  process.stderr.write(`ab-servers: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
