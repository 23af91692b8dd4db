/**
 * The request-path benchmark (issue #9): in one process tree and one run, side by side,
 *
 *   (a)  bare express answering `/generate` with the graph's JSON shape
 *   (f)  the dynamo-ts frontend in front of a stub backend (splits (b) into HTTP layer and graph)
 *   (b)  the embedded hello-world graph (serveGraph in a child process, as `dynamo-ts serve`)
 *   (c1) one bare NATS request/reply
 *   (c3) a bare NATS request/reply chain with the hops of a distributed `/generate`
 *        (client -> processor, processor -> router, processor -> worker in another process)
 *   (d)  the distributed graph: `dynamo-ts serve graph:Frontend` and `serve graph:DummyWorker`
 *        as separate processes over nats-server and etcd (started on free loopback ports)
 *
 * each measured for throughput (closed loop, `--concurrency` clients) and for latency (one
 * client), in `--rounds` interleaved rounds (a, f, b, c1, c3, d, then d, c3, ..., a), medians
 * reported. The (b)/(a) requests/s ratio the target is about is measured on its own after the
 * rounds: `--pairs` pairs of 2-second slices of (a) and (b) at `--concurrency`, alternating
 * (a b, b a, a b, ...), so both see the same moments of a VM whose speed moves by tens of
 * percent within seconds; the ratio is (b)'s requests per second over all its slices against
 * (a)'s. Then
 * SSE token streaming (one 2,000-token completion at a time, bare SSE loop vs the graphs) and
 * the embedded graph's heap over `--heap-requests` requests.
 *
 *   npm run build && node --expose-gc --import tsx packages/bench/scripts/http-compare.ts \
 *       [--duration 5] [--rounds 5] [--pairs 12] [--concurrency 32] [--heap-requests 100000] [--sse-tokens 2000]
 *       [--only a,f,b,c1,c3,d,sse,heap] [--cpu-prof DIR] [--json FILE] [--svg FILE]
 *
 * Progress goes to standard error, the tables to standard output.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';
import { fmt, formatTable, runHttpBench, summarize, type HttpBenchResult } from '../src/http-bench';
import { barChartSvg } from './http/svg';
import { cpuUs, median } from './http/process-stats';

const ROOT = path.resolve(__dirname, '../../..');
const CLI = path.join(ROOT, 'packages/sdk/dist/cli/main.js');
const GRAPH = path.join(ROOT, 'examples/hello-world/components/graph.ts');
const AGG = path.join(ROOT, 'examples/hello-world/configs/agg.yaml');
const PROMPT = 'Tell me a joke';
/** Seconds of each slice of the alternating (a)/(b) pairs. */
const PAIR_SLICE_S = 2;

interface Args {
  duration: number;
  rounds: number;
  /** Pairs of alternating (a)/(b) slices the (b)/(a) ratio is measured with. */
  pairs: number;
  concurrency: number;
  heapRequests: number;
  sseTokens: number;
  only: Set<string>;
  cpuProf?: string;
  json?: string;
  svg?: string;
}

const ALL = ['a', 'f', 'b', 'c1', 'c3', 'd', 'sse', 'heap'];

function parseArgs(argv: string[]): Args {
  const a: Args = {
    duration: 5,
    rounds: 5,
    pairs: 12,
    concurrency: 32,
    heapRequests: 100_000,
    sseTokens: 2000,
    only: new Set(ALL),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    const positive = (): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number, got ${value}`);
      return n;
    };
    switch (flag) {
      case '--duration':
        a.duration = positive();
        break;
      case '--rounds':
        a.rounds = Math.round(positive());
        break;
      case '--pairs':
        a.pairs = Math.round(positive());
        break;
      case '--concurrency':
        a.concurrency = Math.round(positive());
        break;
      case '--heap-requests':
        a.heapRequests = Math.round(positive());
        break;
      case '--sse-tokens':
        a.sseTokens = Math.round(positive());
        break;
      case '--only':
        a.only = new Set(value.split(','));
        for (const o of a.only) if (!ALL.includes(o)) throw new Error(`--only takes ${ALL.join(',')}, got ${o}`);
        break;
      case '--cpu-prof':
        a.cpuProf = path.resolve(value);
        break;
      case '--json':
        a.json = value;
        break;
      case '--svg':
        a.svg = value;
        break;
      default:
        throw new Error(`unknown flag ${flag}`);
    }
    i++;
  }
  return a;
}

const log = (line: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

/** Child processes started by this run, stopped at the end whatever happens. */
const children: ChildProcess[] = [];
let logDir = '';

function logFile(name: string): number {
  return openSync(path.join(logDir, `${name}.log`), 'a');
}

function tailOf(name: string): string {
  try {
    return readFileSync(path.join(logDir, `${name}.log`), 'utf8').slice(-3000);
  } catch {
    return '';
  }
}

function profArgs(args: Args, name: string): string[] {
  if (!args.cpuProf) return [];
  const dir = path.join(args.cpuProf, name);
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', '--cpu-prof-dir', dir];
}

/** Forks a TypeScript child (via tsx) and waits for its first IPC message. */
async function forkChild<M>(
  name: string,
  script: string,
  argv: string[],
  execArgv: string[],
  env = {},
): Promise<{ proc: ChildProcess; first: M }> {
  const fd = logFile(name);
  const proc = fork(path.join(__dirname, 'http', script), argv, {
    execArgv: ['--import', 'tsx', ...execArgv],
    stdio: ['ignore', fd, fd, 'ipc'],
    env: { ...process.env, ...env },
  });
  children.push(proc);
  const first = await new Promise<M>((resolve, reject) => {
    proc.once('message', (m) => resolve(m as M));
    proc.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${tailOf(name)}`)));
  });
  return { proc, first };
}

async function stopChild(proc: ChildProcess, how: 'ipc' | 'signal'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    if (how === 'ipc') proc.send({ type: 'stop' });
    else proc.kill('SIGINT');
  });
}

/** Spawns `dynamo-ts serve ...` (distributed) with its output in the log folder. */
function spawnServe(name: string, args: Args, cliArgs: string[], env: Record<string, string>): ChildProcess {
  const fd = logFile(name);
  const proc = spawn(process.execPath, [...profArgs(args, name), CLI, 'serve', ...cliArgs], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, DYNAMO_LOG_FORMAT: 'json', ...env },
    cwd: ROOT,
  });
  children.push(proc);
  return proc;
}

async function waitHealthy(url: string, workers: number, proc: ChildProcess, name: string): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited (${proc.exitCode}):\n${tailOf(name)}`);
    try {
      const r = await fetch(`${url}/health`);
      const body = (await r.json()) as { workers?: number };
      if (r.status === 200 && (body.workers ?? 0) >= workers) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${name} not healthy with ${workers} workers after 60 s:\n${tailOf(name)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One measurement of one case. */
interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  /** CPU time (user + system) of the case's server processes per request, microseconds. */
  cpuUsPerRequest?: number;
}

/** Closed-loop NATS request/reply load on `subject`. */
async function natsLoad(nc: NatsConnection, subject: string, concurrency: number, durationS: number): Promise<Sample> {
  const lat: number[] = [];
  let errors = 0;
  let n = 0;
  const start = performance.now();
  const end = start + durationS * 1000;
  const client = async (): Promise<void> => {
    while (performance.now() < end) {
      const body = JSON.stringify({ prompt: PROMPT, request_id: `bench-${n++}` });
      const t0 = performance.now();
      try {
        const m = await nc.request(subject, body, { timeout: 5000 });
        if (m.data.length === 0 || m.data[2] === 0x65 /* {"error" */) errors++;
        else lat.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const s = summarize(lat);
  return {
    rps: lat.length / ((performance.now() - start) / 1000),
    p50: s.p50,
    p99: s.p99,
    errors,
    requests: lat.length,
  };
}

function fromHttp(r: HttpBenchResult): Sample {
  return { rps: r.requests_per_s, p50: r.e2e_ms.p50, p99: r.e2e_ms.p99, errors: r.errors, requests: r.requests };
}

interface CaseResult {
  name: string;
  label: string;
  throughput: Sample[];
  latency: Sample[];
}

interface Medians {
  rps: number;
  p50: number;
  p99: number;
  p50_c1: number;
  p99_c1: number;
  errors: number;
  /** Server CPU per request at full load, microseconds (all of the case's server processes). */
  cpu_us: number;
}

function medians(c: CaseResult): Medians {
  return {
    rps: median(c.throughput.map((s) => s.rps)),
    p50: median(c.throughput.map((s) => s.p50)),
    p99: median(c.throughput.map((s) => s.p99)),
    p50_c1: median(c.latency.map((s) => s.p50)),
    p99_c1: median(c.latency.map((s) => s.p99)),
    errors: [...c.throughput, ...c.latency].reduce((n, s) => n + s.errors, 0),
    cpu_us: median(c.throughput.map((s) => s.cpuUsPerRequest ?? 0)),
  };
}

/**
 * `num`'s requests/s over `den`'s in each round (the two samples of a round were taken a few
 * seconds apart, so a change of the machine's speed between rounds cancels out).
 */
function pairedRatios(den: CaseResult, num: CaseResult): number[] {
  return den.throughput.map((s, i) => num.throughput[i]!.rps / s.rps);
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function askHeap(proc: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    proc.once('message', (m: { heap_used?: number; error?: string }) =>
      m.heap_used !== undefined ? resolve(m.heap_used) : reject(new Error(m.error ?? 'no heap figure')),
    );
    proc.send({ type: 'heap' });
  });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  logDir = mkdtempSync(path.join(os.tmpdir(), 'dynamo-bench-http-'));
  const want = (c: string): boolean => args.only.has(c);
  log(`logs in ${logDir}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}`);

  let nats: NatsServer | undefined;
  let etcd: EtcdServer | undefined;
  let nc: NatsConnection | undefined;
  const cases: CaseResult[] = [];
  const urls: Record<string, string> = {};
  const result: Record<string, unknown> = {
    machine: {
      cpus: os.cpus().length,
      cpu_model: os.cpus()[0]?.model,
      memory_gib: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      platform: `${os.type()} ${os.release()}`,
    },
    options: {
      duration_s: args.duration,
      rounds: args.rounds,
      pairs: args.pairs,
      pair_slice_s: PAIR_SLICE_S,
      concurrency: args.concurrency,
    },
  };
  const runners: Array<{
    c: CaseResult;
    run: (concurrency: number, durationS?: number) => Promise<Sample>;
    pids: () => number[];
  }> = [];
  const pidsOf: Record<string, ChildProcess[]> = { a: [], f: [], b: [], c: [], d: [] };
  const http =
    (key: string) =>
    async (concurrency: number, durationS = args.duration) =>
      fromHttp(
        await runHttpBench({
          url: urls[key]!,
          concurrency,
          durationS,
          route: 'generate',
          stream: false,
          prompt: PROMPT,
        }),
      );

  try {
    // ---- start everything
    if (want('a') || want('sse')) {
      const { proc, first } = await forkChild<{ url: string }>(
        'bare-express',
        'bare-express.ts',
        [],
        profArgs(args, 'bare-express'),
      );
      pidsOf.a!.push(proc);
      urls.a = first.url;
      log(`(a) bare express on ${first.url}`);
    }
    if (want('f')) {
      const { proc, first } = await forkChild<{ url: string }>(
        'frontend-stub',
        'frontend-stub.ts',
        [],
        profArgs(args, 'frontend-stub'),
      );
      pidsOf.f!.push(proc);
      urls.f = first.url;
      log(`(f) frontend with a stub backend on ${first.url}`);
    }
    let graphProc: ChildProcess | undefined;
    if (want('b') || want('sse') || want('heap')) {
      const { proc, first } = await forkChild<{ url: string }>(
        'graph-embedded',
        'graph-server.ts',
        [],
        ['--expose-gc', ...profArgs(args, 'graph-embedded')],
      );
      graphProc = proc;
      pidsOf.b!.push(proc);
      urls.b = first.url;
      await waitHealthy(first.url, 2, proc, 'graph-embedded');
      log(`(b) embedded graph on ${first.url}`);
    }
    const prefix = `bench${process.pid}`;
    if (want('c1') || want('c3') || want('d')) {
      [nats, etcd] = await Promise.all([startNatsServer({ jetstream: false }), startEtcd()]);
      log(`nats-server ${nats.url}, etcd ${etcd.url}`);
    }
    if (want('c1') || want('c3')) {
      const front = await forkChild(
        'nats-front',
        'nats-chain.ts',
        [nats!.url, prefix, 'front'],
        profArgs(args, 'nats-front'),
      );
      const worker = await forkChild(
        'nats-worker',
        'nats-chain.ts',
        [nats!.url, prefix, 'worker'],
        profArgs(args, 'nats-worker'),
      );
      pidsOf.c!.push(front.proc, worker.proc);
      nc = await connect({ servers: nats!.url, name: 'bench-client' });
      log('(c) bare NATS responders ready');
    }
    const distributed: ChildProcess[] = [];
    if (want('d') || want('sse')) {
      if (nats && etcd) {
        const { freePort } = await import('@dynamo-ts/runtime/testing');
        const port = await freePort();
        const env = { NATS_SERVER: nats.url, ETCD_ENDPOINTS: etcd.url, DYNAMO_NAMESPACE: `bench-${process.pid}` };
        distributed.push(
          spawnServe(
            'dist-graph',
            args,
            [`${GRAPH}:Frontend`, '-f', AGG, `--Frontend.port=${port}`, '--Frontend.host=127.0.0.1'],
            {
              ...env,
              DYNAMO_WORKER_NAME: 'graph',
            },
          ),
        );
        distributed.push(
          spawnServe('dist-workers', args, [`${GRAPH}:DummyWorker`, '-f', AGG, '--DummyWorker.replicas=2'], {
            ...env,
            DYNAMO_WORKER_NAME: 'worker',
          }),
        );
        pidsOf.d!.push(...distributed);
        urls.d = `http://127.0.0.1:${port}`;
        await waitHealthy(urls.d, 2, distributed[0]!, 'dist-graph');
        log(`(d) distributed graph on ${urls.d} (2 workers in another process)`);
      }
    }

    const natsPid = (): number[] => (nats?.pid !== undefined ? [nats.pid] : []);
    const pids = (k: string) => (): number[] => pidsOf[k]!.map((p) => p.pid!).filter((p) => p !== undefined);
    const add = (
      name: string,
      label: string,
      run: (concurrency: number, durationS?: number) => Promise<Sample>,
      casePids: () => number[],
    ): void => {
      const c: CaseResult = { name, label, throughput: [], latency: [] };
      cases.push(c);
      runners.push({ c, run, pids: casePids });
    };
    if (want('a')) add('a', 'bare express', http('a'), pids('a'));
    if (want('f')) add('f', 'frontend, stub backend', http('f'), pids('f'));
    if (want('b')) add('b', 'embedded graph', http('b'), pids('b'));
    if (want('c1'))
      add(
        'c1',
        'bare NATS, 1 hop',
        (k, d = args.duration) => natsLoad(nc!, `${prefix}.echo`, k, d),
        () => [...pids('c')(), ...natsPid()],
      );
    if (want('c3'))
      add(
        'c3',
        'bare NATS, 3-hop chain',
        (k, d = args.duration) => natsLoad(nc!, `${prefix}.processor`, k, d),
        () => [...pids('c')(), ...natsPid()],
      );
    if (want('d')) add('d', 'distributed graph', http('d'), () => [...pids('d')(), ...natsPid()]);
    const measured = async (r: (typeof runners)[number], concurrency: number, durationS?: number): Promise<Sample> => {
      const list = r.pids();
      const before = list.reduce((t, p) => t + cpuUs(p), 0);
      const sample = await r.run(concurrency, durationS);
      const after = list.reduce((t, p) => t + cpuUs(p), 0);
      sample.cpuUsPerRequest = sample.requests > 0 ? (after - before) / sample.requests : 0;
      return sample;
    };

    // ---- warm-up, then interleaved rounds
    for (const { c, run } of runners) {
      log(`warm-up ${c.name} (${c.label})`);
      await run(args.concurrency);
    }
    // Each round measures every case's throughput, then every case's latency, so two cases'
    // samples of a round are at most a few samples apart; even rounds run the cases in reverse
    // order (a, f, b, ... then ..., b, f, a), so a drift of the machine's speed during a run
    // favours no case. Ratios are taken per round, between samples this close in time.
    for (let round = 1; round <= args.rounds; round++) {
      const order = round % 2 === 1 ? runners : [...runners].reverse();
      for (const r of order) {
        log(`round ${round}/${args.rounds}: ${r.c.name} (${r.c.label}) c=${args.concurrency}`);
        r.c.throughput[round - 1] = await measured(r, args.concurrency);
      }
      for (const r of order) {
        log(`round ${round}/${args.rounds}: ${r.c.name} (${r.c.label}) c=1`);
        r.c.latency[round - 1] = await measured(r, 1);
      }
    }

    // ---- (b)/(a) from alternating short slices
    const slices: Array<{ a: Sample; b: Sample }> = [];
    const runnerOf = (name: string) => runners.find((r) => r.c.name === name);
    const ra = runnerOf('a');
    const rb = runnerOf('b');
    if (ra && rb) {
      const slice = async (r: typeof ra, i: number): Promise<Sample> => {
        log(`pair ${i + 1}/${args.pairs}: ${r.c.name} (${r.c.label}) c=${args.concurrency}, ${PAIR_SLICE_S} s`);
        return measured(r, args.concurrency, PAIR_SLICE_S);
      };
      for (let i = 0; i < args.pairs; i++) {
        if (i % 2 === 0) {
          const a = await slice(ra, i);
          slices.push({ a, b: await slice(rb, i) });
        } else {
          const b = await slice(rb, i);
          slices.push({ a: await slice(ra, i), b });
        }
      }
    }

    const m = new Map(cases.map((c) => [c.name, medians(c)]));
    const byName = new Map(cases.map((c) => [c.name, c]));
    if (cases.length) {
      const rows = cases.map((c) => {
        const x = m.get(c.name)!;
        return [
          `(${c.name}) ${c.label}`,
          fmt(x.rps),
          `${fmt(x.p50)} / ${fmt(x.p99)}`,
          `${fmt(x.p50_c1)} / ${fmt(x.p99_c1)}`,
          fmt(x.cpu_us),
          String(x.errors),
        ];
      });
      process.stdout.write(
        `\nRequest path, medians of ${args.rounds} interleaved rounds of ${args.duration} s\n` +
          formatTable(
            [
              'case',
              `req/s c=${args.concurrency}`,
              `p50 / p99 ms c=${args.concurrency}`,
              'p50 / p99 ms c=1',
              'server CPU us/req',
              'errors',
            ],
            rows,
          ) +
          '\n',
      );
    }
    result.cases = cases.map((c) => ({ ...c, median: m.get(c.name) }));
    if (slices.length) result.pairs = slices;
    const ratios: Record<string, unknown> = {};
    const a = m.get('a');
    const b = m.get('b');
    const c1 = m.get('c1');
    const c3 = m.get('c3');
    const d = m.get('d');
    if (a && b) {
      const perRound = pairedRatios(byName.get('a')!, byName.get('b')!);
      const perPair = slices.map((x) => x.b.rps / x.a.rps);
      const rate = (xs: Sample[]): number =>
        xs.reduce((n, x) => n + x.requests, 0) / xs.reduce((t, x) => t + x.requests / x.rps, 0);
      const cpu = (xs: Sample[]): number =>
        xs.reduce((t, x) => t + (x.cpuUsPerRequest ?? 0) * x.requests, 0) / xs.reduce((n, x) => n + x.requests, 0);
      const sliced = rate(slices.map((x) => x.b)) / rate(slices.map((x) => x.a));
      const slicedCpu = cpu(slices.map((x) => x.a)) / cpu(slices.map((x) => x.b));
      const sorted = [...perPair].sort((x, y) => x - y);
      const quartile = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      ratios.embedded_vs_express_rps = sliced;
      ratios.embedded_vs_express_cpu = slicedCpu;
      ratios.embedded_vs_express_rps_pairs = perPair;
      ratios.embedded_vs_express_rps_rounds = perRound;
      ratios.embedded_vs_express_rps_of_medians = b.rps / a.rps;
      process.stdout.write(
        `\n(b)/(a) requests/s: ${sliced.toFixed(2)}x (target >= 0.5x) over ${slices.length} pairs of alternating ` +
          `${PAIR_SLICE_S}-s slices (pairs' ratios ${quartile(0).toFixed(2)}..${quartile(1 - 1e-9).toFixed(2)}, ` +
          `middle half ${quartile(0.25).toFixed(2)}..${quartile(0.75).toFixed(2)}); by server CPU per request ${slicedCpu.toFixed(2)}x.\n` +
          `  In the rounds above: the medians' ratio ${(b.rps / a.rps).toFixed(2)}x, the rounds' ratios ` +
          `${perRound.map((x) => x.toFixed(2)).join(', ')}; by CPU ${(a.cpu_us / b.cpu_us).toFixed(2)}x\n`,
      );
    }
    if (a && c1 && d) {
      const budget = a.p50_c1 + 3 * c1.p50_c1 + 1;
      ratios.distributed_p50_ms = d.p50_c1;
      ratios.distributed_budget_ms = budget;
      process.stdout.write(
        `(d) p50 ${fmt(d.p50_c1)} ms vs (a) p50 + 3 x (c1) p50 + 1 ms = ${fmt(a.p50_c1)} + 3 x ${fmt(c1.p50_c1)} + 1 = ${fmt(budget)} ms (c=1): ${d.p50_c1 <= budget ? 'met' : 'missed'}` +
          (c3 ? `; the 3-hop bare chain itself: ${fmt(c3.p50_c1)} ms` : '') +
          '\n',
      );
      ratios.distributed_vs_express_rps = d.rps / a.rps;
    }
    result.ratios = ratios;

    // ---- SSE token streaming: one long completion at a time
    if (want('sse')) {
      const prompt = 'hello' + ' hello'.repeat(args.sseTokens - 4);
      const targets: Array<[string, string]> = [['bare SSE loop', urls.a!]];
      if (urls.b) targets.push(['embedded graph', urls.b]);
      if (urls.d) targets.push(['distributed graph', urls.d]);
      const sse: Record<string, HttpBenchResult[]> = {};
      for (const [name] of targets) sse[name] = [];
      for (let round = 0; round <= args.rounds; round++) {
        for (const [name, url] of targets) {
          log(`SSE ${round === 0 ? 'warm-up' : `round ${round}/${args.rounds}`}: ${name}`);
          const r = await runHttpBench({
            url,
            concurrency: 1,
            durationS: args.duration,
            route: 'generate',
            stream: true,
            prompt,
          });
          if (round > 0) sse[name]!.push(r);
        }
      }
      const rows: string[][] = [];
      const sseOut: Record<string, unknown> = {};
      for (const [name, runs] of Object.entries(sse)) {
        const eps = median(runs.map((r) => r.events_per_s));
        const perReq = median(runs.map((r) => r.events / Math.max(1, r.requests)));
        sseOut[name] = {
          events_per_s: eps,
          events_per_request: perReq,
          ttft_p50_ms: median(runs.map((r) => r.ttft_ms.p50)),
          runs,
        };
        rows.push([
          name,
          fmt(perReq),
          fmt(eps),
          fmt(median(runs.map((r) => r.ttft_ms.p50))),
          fmt(median(runs.map((r) => r.e2e_ms.p50))),
          String(runs.reduce((n, r) => n + r.errors, 0)),
        ]);
      }
      const bare = (sseOut['bare SSE loop'] as { events_per_s: number }).events_per_s;
      process.stdout.write(
        `\nSSE streaming, one ${args.sseTokens}-token completion at a time (medians of ${args.rounds})\n` +
          formatTable(['server', 'events/request', 'events (tokens)/s', 'TTFT p50 ms', 'e2e p50 ms', 'errors'], rows) +
          '\n',
      );
      for (const [name, v] of Object.entries(sseOut)) {
        if (name === 'bare SSE loop') continue;
        const ratio = (v as { events_per_s: number }).events_per_s / bare;
        (v as Record<string, unknown>).vs_bare = ratio;
        process.stdout.write(`${name} / bare SSE loop: ${ratio.toFixed(2)}x (target >= 0.5x)\n`);
      }
      result.sse = sseOut;
    }

    // ---- heap over many requests against the embedded graph
    if (want('heap') && graphProc) {
      const checkpoints = 5;
      const per = Math.ceil(args.heapRequests / (checkpoints - 1));
      log('heap: warm-up 5000 requests');
      await runHttpBench({
        url: urls.b!,
        concurrency: 16,
        durationS: 3600,
        requests: 5000,
        route: 'generate',
        stream: false,
        prompt: PROMPT,
        record: false,
      });
      const xs: number[] = [0];
      const ys: number[] = [await askHeap(graphProc)];
      let done = 0;
      let errors = 0;
      for (let k = 1; k < checkpoints; k++) {
        log(`heap: requests ${done}..${done + per} of ${per * (checkpoints - 1)}`);
        const r = await runHttpBench({
          url: urls.b!,
          concurrency: 16,
          durationS: 3600,
          requests: per,
          route: 'generate',
          stream: false,
          prompt: PROMPT,
          record: false,
        });
        done += r.requests + r.errors;
        errors += r.errors;
        xs.push(done);
        ys.push(await askHeap(graphProc));
      }
      const perRequest = slope(xs, ys);
      const heap = { requests: xs, heap_used_bytes: ys, bytes_per_request: perRequest, errors };
      result.heap = heap;
      process.stdout.write(
        `\nHeap of the embedded graph (heapUsed after forced GC)\n` +
          formatTable(
            ['requests', 'heapUsed MiB'],
            xs.map((x, i) => [x.toLocaleString('en-US'), (ys[i]! / 2 ** 20).toFixed(2)]),
          ) +
          `\ngrowth: ${perRequest.toFixed(2)} bytes/request (least squares over the checkpoints); ${errors} errors\n`,
      );
    }

    if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2) + '\n');
    if (args.svg && a) {
      const color: Record<string, string> = {
        a: '#7f8c8d',
        f: '#aab7b8',
        b: '#2e86c1',
        c1: '#95a5a6',
        c3: '#95a5a6',
        d: '#1abc9c',
      };
      const httpCases = cases.filter((c) => c.name !== 'c1' && c.name !== 'c3');
      const panels = [
        {
          title: `requests/s, ${args.concurrency} clients`,
          unit: 'requests/s',
          bars: httpCases.map((c) => ({ label: c.label, value: m.get(c.name)!.rps, color: color[c.name] })),
          reference: { value: a.rps / 2, label: '0.5x express' },
        },
        {
          title: 'p50 latency, 1 client',
          unit: 'ms',
          bars: cases.map((c) => ({ label: c.label, value: m.get(c.name)!.p50_c1, color: color[c.name] })),
          ...(ratios.distributed_budget_ms !== undefined
            ? { reference: { value: ratios.distributed_budget_ms as number, label: 'distributed budget' } }
            : {}),
        },
      ];
      const sse = result.sse as Record<string, { events_per_s: number }> | undefined;
      if (sse) {
        panels.push({
          title: `SSE tokens/s, ${args.sseTokens}-token completion`,
          unit: 'tokens/s',
          bars: Object.entries(sse).map(([label, v]) => ({ label, value: v.events_per_s, color: '#8e44ad' })),
          reference: { value: sse['bare SSE loop']!.events_per_s / 2, label: '0.5x bare' },
        });
      }
      writeFileSync(
        args.svg,
        barChartSvg(
          panels,
          `dynamo-ts request path; medians of ${args.rounds} interleaved rounds; ${os.cpus().length} CPUs, node ${process.version}`,
        ),
      );
    }
    for (const p of distributed) await stopChild(p, 'signal');
    if (graphProc) await stopChild(graphProc, 'ipc');
  } finally {
    if (nc) await nc.close();
    await Promise.all(children.map((p) => stopChild(p, p.connected ? 'ipc' : 'signal')));
    await Promise.all([nats?.dispose(), etcd?.dispose()]);
    if (!args.cpuProf) rmSync(logDir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`http-compare: ${e.stack ?? e.message}\n`);
  for (const p of children) if (p.exitCode === null) p.kill('SIGKILL');
  process.exit(1);
});
