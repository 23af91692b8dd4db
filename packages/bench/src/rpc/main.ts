/**
 * `npm run bench:rpc`: request/reply over one nats-server (started here on a free port), caller
 * and server in separate processes, for bare nats.js (the floor), dynamo-ts's NATS request plane
 * and Moleculer's NATS transporter (skipped, with the reason, when it is not installed). Each
 * round runs every scenario for every implementation, the order rotated from round to round;
 * the ratios printed are medians of per-round ratios. CPU per request (or per stream item) is
 * each process's `process.cpuUsage()` (nats-server's from /proc) over the measured window.
 *
 * Flags: --rounds N (5), --warmup-ms N (300), --ms N (1000), --only a,b (scenario names),
 * --json OUT, --runtime PATH (the dynamo-ts runtime build to bench, default @dynamo-ts/runtime),
 * --baseline-runtime PATH (also bench that build, e.g. dist/index.js of an earlier commit, as dynamo-base),
 * --cpu-prof DIR (each calling and serving process writes V8 CPU profiles to DIR/<role>-<impl>/
 * when it exits, one per thread: the largest is the process's main thread; open it in Chrome DevTools).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findBinary, startNatsServer } from '@dynamo-ts/runtime/testing';
import { loadMoleculer, type Impl } from './peers';
import { SCENARIOS, requestBytes, type ScenarioName } from './scenarios';

interface Flags {
  rounds: number;
  warmupMs: number;
  measureMs: number;
  only: ScenarioName[];
  json: string | undefined;
  runtime: string | undefined;
  baseline: string | undefined;
  cpuProf: string | undefined;
}

function fail(message: string): never {
  process.stderr.write(`bench rpc: ${message}\n`);
  process.exit(2);
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    rounds: 5,
    warmupMs: 300,
    measureMs: 1000,
    only: Object.keys(SCENARIOS) as ScenarioName[],
    json: undefined,
    runtime: undefined,
    baseline: undefined,
    cpuProf: undefined,
  };
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) fail(`${name} takes a positive integer, got ${v ?? 'nothing'}`);
    return n;
  };
  const str = (name: string, v: string | undefined): string => {
    if (!v || v.startsWith('--')) fail(`${name} takes a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    switch (a) {
      case '--rounds':
        f.rounds = int(a, v);
        i++;
        break;
      case '--warmup-ms':
        f.warmupMs = int(a, v);
        i++;
        break;
      case '--ms':
        f.measureMs = int(a, v);
        i++;
        break;
      case '--only': {
        const names = str(a, v).split(',');
        for (const n of names)
          if (!(n in SCENARIOS)) fail(`--only: unknown scenario ${n} (${Object.keys(SCENARIOS).join(', ')})`);
        f.only = names as ScenarioName[];
        i++;
        break;
      }
      case '--json':
        f.json = str(a, v);
        i++;
        break;
      case '--runtime':
        f.runtime = path.resolve(str(a, v));
        i++;
        break;
      case '--cpu-prof':
        f.cpuProf = path.resolve(str(a, v));
        i++;
        break;
      case '--baseline-runtime':
        f.baseline = path.resolve(str(a, v));
        i++;
        break;
      default:
        fail(`unknown flag ${a}`);
    }
  }
  return f;
}

/** A child process of the bench and its IPC. */
class Peer {
  private readonly proc: ChildProcess;
  private waiters: Array<(m: Record<string, unknown>) => boolean> = [];
  private cpuSeq = 0;

  constructor(role: 'server' | 'client', impl: Impl, url: string, runtime: string | undefined, cpuProf?: string) {
    // One directory per process: its threads (tsx's loader runs in one) each write a profile.
    const prof = cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(cpuProf, `${role}-${impl}`)}`] : [];
    this.proc = fork(path.join(__dirname, 'child.ts'), [role, impl, url, runtime ?? ''], {
      execArgv: ['--import', 'tsx', ...prof],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc.on('message', (m: Record<string, unknown>) => {
      if (m.ev === 'error') process.stderr.write(`bench rpc: ${role} ${impl}: ${String(m.message)}\n`);
      this.waiters = this.waiters.filter((w) => !w(m));
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** The next message with `ev` (an `error` message rejects). */
  wait(ev: string, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${ev} from the ${this.proc.pid} child`)), timeoutMs);
      this.waiters.push((m) => {
        if (m.ev !== ev && m.ev !== 'error') return false;
        clearTimeout(timer);
        if (m.ev === 'error') reject(new Error(String(m.message)));
        else resolve(m);
        return true;
      });
    });
  }

  send(m: object): void {
    this.proc.send(m);
  }

  async cpuUs(): Promise<number> {
    const id = ++this.cpuSeq;
    const reply = this.wait('cpu');
    this.send({ cmd: 'cpu', id });
    return (await reply).cpuUs as number;
  }

  async exit(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.send({ cmd: 'exit' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** CPU time of `pid` from /proc, microseconds (10 ms resolution; 0 where unavailable). */
function procCpuUs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
  } catch {
    return 0;
  }
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Cell {
  round: number;
  scenario: ScenarioName;
  impl: Impl;
  /** Requests (unary) or items (streams) per second. */
  rate: number;
  /** CPU µs per request or item: caller, server, nats-server. */
  callerUs: number;
  serverUs: number;
  natsUs: number;
}

async function measure(
  scenario: ScenarioName,
  impl: Impl,
  peers: { server: Peer; client: Peer },
  natsPid: number | undefined,
  flags: Flags,
  round: number,
): Promise<Cell> {
  const begin = peers.client.wait('begin');
  const end = peers.client.wait('end', flags.warmupMs + flags.measureMs + 120_000);
  peers.client.send({ cmd: 'run', scenario, warmupMs: flags.warmupMs, measureMs: flags.measureMs });
  await begin;
  const [s0, n0] = [await peers.server.cpuUs(), procCpuUs(natsPid)];
  const r = await end;
  const [s1, n1] = [await peers.server.cpuUs(), procCpuUs(natsPid)];
  const items = r.items as number;
  const per = (us: number): number => (items > 0 ? us / items : Number.NaN);
  return {
    round,
    scenario,
    impl,
    rate: (items * 1000) / (r.wallMs as number),
    callerUs: per(r.cpuUs as number),
    serverUs: per(s1 - s0),
    natsUs: per(n1 - n0),
  };
}

function fmt(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return '-';
  return n >= 1000 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits);
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  if (!findBinary('nats-server')) fail('nats-server is not on PATH (Debian: apt-get install -y nats-server)');
  const impls: Impl[] = ['floor', 'dynamo'];
  if (flags.baseline) impls.push('dynamo-base');
  const moleculer = loadMoleculer();
  if (typeof moleculer === 'string') process.stderr.write(`bench rpc: skipping Moleculer: ${moleculer}\n`);
  else impls.push('moleculer');
  const nats = await startNatsServer({ jetstream: false }).catch((e: unknown) => fail((e as Error).message));
  process.stderr.write(`bench rpc: nats-server at ${nats.url}; ${impls.join(', ')}; ${flags.rounds} rounds\n`);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGPIPE'] as const) {
    process.once(signal, () => void nats.dispose().finally(() => process.exit(130)));
  }
  const peers = new Map<Impl, { server: Peer; client: Peer }>();
  const cells: Cell[] = [];
  try {
    for (const impl of impls) {
      const runtime = impl === 'dynamo-base' ? flags.baseline : flags.runtime;
      const server = new Peer('server', impl, nats.url, runtime, flags.cpuProf);
      await server.wait('ready');
      const client = new Peer('client', impl, nats.url, runtime, flags.cpuProf);
      await client.wait('ready');
      peers.set(impl, { server, client });
    }
    const total = flags.rounds * flags.only.length * impls.length;
    for (let round = 0; round < flags.rounds; round++) {
      const order = impls.map((_, i) => impls[(i + round) % impls.length]!);
      for (const scenario of flags.only) {
        for (const impl of order) {
          if (impl === 'floor' && SCENARIOS[scenario].kind === 'stream') continue;
          const cell = await measure(scenario, impl, peers.get(impl)!, nats.pid, flags, round);
          cells.push(cell);
          process.stderr.write(
            `[${cells.length}/${total}] round ${round + 1} ${scenario} ${impl}: ${fmt(cell.rate)}/s, ` +
              `${fmt(cell.callerUs + cell.serverUs)} µs CPU each\n`,
          );
        }
      }
    }
  } finally {
    await Promise.all([...peers.values()].flatMap((p) => [p.client.exit(), p.server.exit()]));
    await nats.dispose();
  }
  report(cells, impls, flags);
}

function report(cells: Cell[], impls: Impl[], flags: Flags): void {
  const out: string[] = [];
  const rows: object[] = [];
  const widths = [16, 12, 11, 10, 10, 10, 11, 10, 10, 10];
  out.push(
    pad(
      [
        'scenario',
        'impl',
        'rate/s',
        'caller µs',
        'server µs',
        'nats µs',
        'app µs',
        'rate ×mol',
        'cpu ×mol',
        'rate ×flr',
      ],
      widths,
    ),
  );
  for (const scenario of flags.only) {
    const of = (impl: Impl, round: number): Cell | undefined =>
      cells.find((c) => c.impl === impl && c.round === round && c.scenario === scenario);
    const ratio = (impl: Impl, peer: Impl, f: (c: Cell) => number): number =>
      median(
        Array.from({ length: flags.rounds }, (_, r) => {
          const a = of(impl, r);
          const b = of(peer, r);
          return a && b ? f(a) / f(b) : Number.NaN;
        }).filter(Number.isFinite),
      );
    const app = (c: Cell): number => c.callerUs + c.serverUs;
    for (const impl of impls) {
      const mine = cells.filter((c) => c.impl === impl && c.scenario === scenario);
      if (mine.length === 0) continue;
      const row = {
        scenario,
        impl,
        requestBytes: requestBytes(scenario),
        rate: median(mine.map((c) => c.rate)),
        callerUs: median(mine.map((c) => c.callerUs)),
        serverUs: median(mine.map((c) => c.serverUs)),
        natsUs: median(mine.map((c) => c.natsUs)),
        appUs: median(mine.map(app)),
        rateVsMoleculer: ratio(impl, 'moleculer', (c) => c.rate),
        cpuVsMoleculer: ratio(impl, 'moleculer', app),
        rateVsFloor: ratio(impl, 'floor', (c) => c.rate),
        rateVsBase: ratio(impl, 'dynamo-base', (c) => c.rate),
        cpuVsBase: ratio(impl, 'dynamo-base', app),
      };
      rows.push(row);
      out.push(
        pad(
          [
            scenario,
            impl,
            fmt(row.rate),
            fmt(row.callerUs),
            fmt(row.serverUs),
            fmt(row.natsUs),
            fmt(row.appUs),
            fmt(row.rateVsMoleculer, 2),
            fmt(row.cpuVsMoleculer, 2),
            fmt(row.rateVsFloor, 2),
          ],
          widths,
        ),
      );
      if (impl === 'dynamo' && Number.isFinite(row.rateVsBase)) {
        out.push(
          `${''.padEnd(widths[0]!)}  vs dynamo-base: rate ${fmt(row.rateVsBase, 2)}x, CPU ${fmt(row.cpuVsBase, 2)}x`,
        );
      }
    }
  }
  out.push(
    'rate: requests/s (streams: items/s); µs: CPU per request or item; app = caller + server; ' +
      '×mol, ×flr: medians of per-round ratios against Moleculer and the bare nats.js floor',
  );
  process.stdout.write(out.join('\n') + '\n');
  if (flags.json) {
    writeFileSync(flags.json, JSON.stringify({ flags, rows, cells }, null, 2) + '\n');
    process.stderr.write(`bench rpc: wrote ${flags.json}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench rpc: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
