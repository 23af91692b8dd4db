/**
 * Bytes allocated per HTTP request, by function, in the request-path benchmark's servers: (a)
 * bare express, (f) the frontend with a stub backend, (b) the embedded graph. Each server runs
 * as a child process with V8's sampling heap profiler (collected objects included,
 * `heap-sampler.ts`), loaded by 32 closed-loop clients: N requests of warm-up, then N measured.
 * Allocation is steadier than CPU time on a shared VM, and under load every byte allocated
 * costs time in every function that runs after it (cache misses, scavenges).
 *
 *   npm run build && N=20000 TOP=25 npx tsx packages/bench/scripts/http/alloc-http.ts [a] [f] [b]
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { runHttpBench } from '../../src/http-bench';
import { printBytesPerRequest } from './heap-sampling';

const SERVERS: Record<string, string> = { a: 'bare-express.ts', f: 'frontend-stub.ts', b: 'graph-server.ts' };

function reply<M>(proc: ChildProcess, accept: (m: unknown) => M | undefined): Promise<M> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      const v = accept(m);
      if (v === undefined) return;
      proc.off('message', onMessage);
      resolve(v);
    };
    proc.on('message', onMessage);
    proc.once('exit', (code) => reject(new Error(`server exited (${code})`)));
  });
}

async function measure(name: string, n: number, top: number): Promise<void> {
  const proc = fork(path.join(__dirname, SERVERS[name]!), [], {
    execArgv: ['--import', 'tsx', '--import', path.join(__dirname, 'heap-sampler.ts')],
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  });
  try {
    const { url } = await reply(proc, (m) => ((m as { url?: string }).url ? (m as { url: string }) : undefined));
    const load = () =>
      runHttpBench({
        url,
        concurrency: 32,
        durationS: 3600,
        requests: n,
        route: 'generate',
        stream: false,
        record: false,
      });
    await load();
    proc.send({ type: 'heap-sampling-start' });
    await reply(proc, (m) => ((m as { type?: string }).type === 'heap-sampling-started' ? true : undefined));
    const r = await load();
    proc.send({ type: 'heap-sampling-stop' });
    const { bytes } = await reply(proc, (m) =>
      (m as { type?: string }).type === 'heap-sampling' ? (m as { bytes: Array<[string, number]> }) : undefined,
    );
    printBytesPerRequest(`(${name}) ${SERVERS[name]}, ${r.errors} errors`, bytes, r.requests + r.errors, top);
  } finally {
    proc.send({ type: 'stop' });
    await new Promise((r) => (proc.exitCode === null ? proc.once('exit', r) : r(null)));
  }
}

async function main(): Promise<void> {
  const which = process.argv.slice(2);
  const n = Number(process.env.N ?? 20000);
  const top = Number(process.env.TOP ?? 25);
  for (const name of which.length ? which : ['a', 'f', 'b']) {
    if (!SERVERS[name]) throw new Error(`unknown server ${name}: a, f or b`);
    await measure(name, n, top);
  }
}

main().catch((e: Error) => {
  process.stderr.write(`alloc-http: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
