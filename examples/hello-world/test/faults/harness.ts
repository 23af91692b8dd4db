/**
 * Harness of the fault-injection suite: real `dynamo-ts serve` processes over a real nats-server
 * and etcd, a fixed-rate streaming load generator that checks every answer for exactness, and
 * helpers to read what nats-server's monitoring endpoint says about the prefill queue.
 *
 * Every process is spawned as the leader of its own process group (so `kill -9` takes the whole
 * group), with its stdout and stderr collected into a log file under a per-case temporary folder;
 * the folder is removed when the case passes and its log tails are printed when it fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';

/** Repository root (where `packages/sdk/dist/cli/main.js` lives). */
export const REPO_ROOT = path.resolve(__dirname, '../../../..');
/** The documented CLI entry point. */
export const CLI = path.join(REPO_ROOT, 'packages/sdk/dist/cli/main.js');
/** Targets of the hello-world graph, relative to {@link REPO_ROOT}. */
export const TARGETS = {
  frontend: 'examples/hello-world/components/graph.ts:Frontend',
  worker: 'examples/hello-world/components/worker.ts:DummyWorker',
  prefill: 'examples/hello-world/components/prefill-worker.ts:PrefillWorker',
} as const;
/** Config files of the example. */
export const CONFIGS = {
  agg: 'examples/hello-world/configs/agg.yaml',
  disagg: 'examples/hello-world/configs/disagg.yaml',
} as const;

/** One structured log line of a served process (`DYNAMO_LOG_FORMAT=json`). */
export interface LogLine {
  level: string;
  message: string;
  [field: string]: unknown;
}

/** How a spawned process ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Epoch ms. */
  at: number;
}

/** Process groups spawned and not yet exited: killed if the test process exits first (no orphans). */
const liveGroups = new Set<number>();
process.once('exit', () => {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

/** A `dynamo-ts serve` process (or any process the harness spawned). */
export class ServiceProcess {
  private readonly proc: ChildProcess;
  private readonly log: WriteStream;
  private text = '';
  private readonly lines: LogLine[] = [];
  private readonly waiters = new Set<() => void>();
  private exitStatus: ExitStatus | undefined;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;

  constructor(
    /** A short label for logs and the failure report, e.g. `worker-a`. */
    readonly label: string,
    readonly logFile: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.log = createWriteStream(logFile);
    this.log.write(`$ ${command} ${args.join(' ')}\n`);
    this.proc = spawn(command, args, {
      cwd: REPO_ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const onData = (d: Buffer): void => {
      this.log.write(d);
      this.text += d.toString();
      this.parseLines();
      this.notify();
    };
    if (this.proc.pid !== undefined) liveGroups.add(this.proc.pid);
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => {
      // 'exit' says when it died; 'close' comes once its output has been read to the end.
      let died: ExitStatus | undefined;
      this.proc.once('exit', (code, signal) => {
        died = { code, signal, at: Date.now() };
      });
      this.proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        liveGroups.delete(this.proc.pid!);
        this.exitStatus = died ?? { code, signal, at: Date.now() };
        this.log.write(`\n[harness] exited code=${this.exitStatus.code} signal=${this.exitStatus.signal}\n`);
        this.notify();
        resolve(this.exitStatus);
      });
      this.proc.once('error', (e) => {
        // Spawning failed ('close' may not follow).
        liveGroups.delete(this.proc.pid!);
        this.log.write(`\n[harness] spawn error: ${e.message}\n`);
        this.exitStatus ??= { code: null, signal: null, at: Date.now() };
        this.notify();
        resolve(this.exitStatus);
      });
    });
  }

  /** Offset in `text` up to which complete lines were parsed (a partial line waits for its newline). */
  private parsedUpTo = 0;
  private parseLines(): void {
    const end = this.text.lastIndexOf('\n');
    if (end < this.parsedUpTo) return;
    for (const raw of this.text.slice(this.parsedUpTo, end).split('\n')) {
      const s = raw.trim();
      if (!s.startsWith('{')) continue;
      try {
        const v = JSON.parse(s) as LogLine;
        if (typeof v.message === 'string') this.lines.push(v);
      } catch {
        /* not a log line */
      }
    }
    this.parsedUpTo = end + 1;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  get pid(): number {
    return this.proc.pid!;
  }
  get running(): boolean {
    return this.exitStatus === undefined;
  }
  get exit(): ExitStatus | undefined {
    return this.exitStatus;
  }
  /** Everything the process wrote so far. */
  output(): string {
    return this.text;
  }
  /** Its structured log lines so far, optionally only those with `message`. */
  logs(message?: string): LogLine[] {
    return message === undefined ? [...this.lines] : this.lines.filter((l) => l.message === message);
  }

  /**
   * Waits until the process has written no new line for `quietMs` (at most `timeoutMs`): its
   * logger writes the lines of an event-loop turn at the end of the turn, so lines about work
   * that just finished may still be on their way.
   */
  async settled(quietMs = 100, timeoutMs = 3000): Promise<void> {
    const until = Date.now() + timeoutMs;
    let n = this.lines.length;
    let since = Date.now();
    while (Date.now() < until) {
      await sleep(20);
      if (this.lines.length !== n) {
        n = this.lines.length;
        since = Date.now();
      } else if (Date.now() - since >= quietMs) return;
    }
  }

  /**
   * Waits for a log line matching `pred` (a message, or a predicate over the parsed line).
   * Rejects naming the process when it exits first or nothing matches within `timeoutMs`.
   */
  async waitForLog(pred: string | ((l: LogLine) => boolean), timeoutMs = 30_000): Promise<LogLine> {
    const match = typeof pred === 'string' ? (l: LogLine) => l.message === pred : pred;
    const what = typeof pred === 'string' ? `log line "${pred}"` : 'matching log line';
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(match);
      if (hit) return hit;
      if (!this.running) {
        throw new Error(`${this.label} exited (${JSON.stringify(this.exitStatus)}) before writing the ${what}`);
      }
      const left = until - Date.now();
      if (left <= 0) throw new Error(`${this.label} wrote no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(left, 1000));
        function done(): void {
          clearTimeout(t);
          waiters.delete(done);
          resolve();
        }
        const waiters = this.waiters;
        waiters.add(done);
      });
    }
  }

  /** Sends `signal` to the whole process group (no-op once exited). */
  kill(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  async stop(graceMs = 5000): Promise<ExitStatus> {
    if (!this.running) return this.exitStatus!;
    this.kill('SIGTERM');
    const t = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const s = await this.exited;
    clearTimeout(t);
    return s;
  }

  /** Closes the log file. */
  async closeLog(): Promise<void> {
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}

/** Options of {@link FaultCluster.serve}. */
export interface ServeOptions {
  /** `<module>:<Service>` relative to the repository root. */
  target: string;
  /** `DYNAMO_WORKER_NAME` (also the label in logs). */
  workerName: string;
  /** Extra CLI arguments (`-f FILE`, `--Service.key=value`, `--drain-timeout=N`). */
  args?: string[];
  /** `DYNAMO_PORT`; a free port when omitted. */
  port?: number;
  /** Extra environment. */
  env?: NodeJS.ProcessEnv;
}

/** The frontend process and its base URL. */
export interface FrontendProcess {
  proc: ServiceProcess;
  url: string;
}

/**
 * One test case's world: a nats-server (JetStream on) and an etcd on free loopback ports, a
 * unique namespace, and the processes served into it. `dispose()` kills whatever is left and
 * stops the servers; it keeps the logs when the case failed.
 */
export class FaultCluster {
  readonly processes: ServiceProcess[] = [];
  private disposed = false;

  private constructor(
    readonly name: string,
    readonly nats: NatsServer,
    readonly etcd: EtcdServer,
    readonly namespace: string,
    readonly logDir: string,
    /** `DYNAMO_LEASE_TTL` of every process, seconds. */
    readonly leaseTtlS: number,
  ) {}

  static async start(name: string, options: { leaseTtlS?: number } = {}): Promise<FaultCluster> {
    if (!existsSync(CLI)) throw new Error(`${CLI} not found: build first (npx tsc -b from the repository root)`);
    const [nats, etcd] = await Promise.all([startNatsServer({ jetstream: true }), startEtcd()]);
    const slug = name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
    const namespace = `faults-${slug}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
    const logDir = mkdtempSync(path.join(os.tmpdir(), `dynamo-faults-${slug}-`));
    return new FaultCluster(name, nats, etcd, namespace, logDir, options.leaseTtlS ?? 3);
  }

  /** The environment of a served process. */
  env(o: { workerName: string; port: number; extra?: NodeJS.ProcessEnv }): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_OPTIONS: '',
      NATS_SERVER: this.nats.url,
      ETCD_ENDPOINTS: this.etcd.url,
      DYNAMO_NAMESPACE: this.namespace,
      DYNAMO_PORT: String(o.port),
      DYNAMO_WORKER_NAME: o.workerName,
      DYNAMO_LEASE_TTL: String(this.leaseTtlS),
      DYNAMO_LOG_FORMAT: 'json',
      DYNAMO_LOG_LEVEL: 'info',
      ...o.extra,
    };
  }

  /** Spawns `node packages/sdk/dist/cli/main.js serve <target> ...` and waits for its services to be ready. */
  async serve(o: ServeOptions, services: string[], timeoutMs = 60_000): Promise<ServiceProcess> {
    const port = o.port ?? (await freePort());
    const label = o.workerName;
    const proc = new ServiceProcess(
      label,
      path.join(this.logDir, `${label}.log`),
      process.execPath,
      [CLI, 'serve', o.target, ...(o.args ?? [])],
      this.env({ workerName: o.workerName, port, extra: o.env }),
    );
    this.processes.push(proc);
    for (const s of services) {
      await proc.waitForLog((l) => l.message === 'service ready' && l.service === s, timeoutMs);
    }
    return proc;
  }

  /** Serves the graph (Frontend, Processor, Router) on 127.0.0.1 and returns its URL. */
  async serveFrontend(args: string[] = [], workerName = 'graph'): Promise<FrontendProcess> {
    const port = await freePort();
    const proc = await this.serve(
      { target: TARGETS.frontend, workerName, port, args: ['--Frontend.host=127.0.0.1', ...args] },
      ['Router', 'Processor', 'Frontend'],
    );
    return { proc, url: `http://127.0.0.1:${port}` };
  }

  /** Serves one DummyWorker named `workerName`. */
  serveWorker(workerName: string, args: string[] = []): Promise<ServiceProcess> {
    return this.serve({ target: TARGETS.worker, workerName, args }, ['DummyWorker']);
  }

  /** Serves one PrefillWorker named `workerName` with configs/disagg.yaml. */
  servePrefillWorker(workerName: string, args: string[] = []): Promise<ServiceProcess> {
    return this.serve({ target: TARGETS.prefill, workerName, args: ['-f', CONFIGS.disagg, ...args] }, [
      'PrefillWorker',
    ]);
  }

  /** Kills every process still running and stops the servers. Keeps the logs when `failed`. */
  async dispose(failed: boolean): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.processes) p.kill('SIGKILL');
    await Promise.all(this.processes.map((p) => p.exited));
    await Promise.all(this.processes.map((p) => p.closeLog()));
    await Promise.all([this.nats.dispose(), this.etcd.dispose()]);
    if (!failed) rmSync(this.logDir, { recursive: true, force: true });
  }

  /** The tail of every process's log (access-log lines left out), for a failure report. */
  failureReport(tailChars = 4000): string {
    const parts = [`fault case "${this.name}" failed; full logs kept in ${this.logDir}`];
    for (const p of this.processes) {
      const out = p
        .output()
        .split('\n')
        .filter((l) => !l.includes('"message":"http request"'))
        .join('\n');
      parts.push(
        `----- ${p.label} (pid ${p.pid}, ${p.running ? 'running' : `exited ${JSON.stringify(p.exit)}`}) -----`,
        out.length > tailChars ? `...${out.slice(-tailChars)}` : out,
      );
    }
    return parts.join('\n');
  }
}

/**
 * Runs `fn` with a fresh {@link FaultCluster}: prints the processes' log tails to stderr when
 * it throws, and always cleans up.
 */
export async function withCluster<T>(
  name: string,
  fn: (c: FaultCluster) => Promise<T>,
  options: { leaseTtlS?: number } = {},
): Promise<T> {
  const c = await FaultCluster.start(name, options);
  let failed = true;
  try {
    const r = await fn(c);
    failed = false;
    return r;
  } catch (e) {
    process.stderr.write(`${c.failureReport()}\n`);
    throw e;
  } finally {
    await c.dispose(failed);
  }
}

/** Polls the frontend's `/health` until it reports `workers` DummyWorkers and ready. */
export async function waitForWorkers(url: string, workers: number, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    try {
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      last = await r.text();
      const h = JSON.parse(last) as { workers?: number };
      if (r.status === 200 && h.workers === workers) return;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`frontend ${url} did not report ${workers} workers within ${timeoutMs} ms (last: ${last})`);
}

// ---------------------------------------------------------------------------------------------
// Answers

/** What one streamed `/generate` answer amounts to. */
export type OutcomeKind =
  /** The exact expected text. */
  | 'ok'
  /** 503 before the stream started: the service said clearly it could not take the request. */
  | 'unavailable'
  /** Any other error status, an error event mid-stream, a broken connection or no answer in time. */
  | 'lost'
  /** A complete answer with the wrong text (pieces missing, duplicated or foreign). */
  | 'corrupted';

/** How one answer compares with `<prompt>_GeneratedBy_<worker>`. */
export interface AnswerCheck {
  ok: boolean;
  /** The worker named by the suffix, when the answer is exact. */
  worker?: string;
  /** Some piece appears more than once (an extra suffix, or text beyond the prompt before it). */
  duplicated: boolean;
  /** Shorter than any exact answer (pieces missing). */
  missing: boolean;
}

/** The marker between the echoed prompt and the worker's name. */
export const MARKER = '_GeneratedBy_';

/**
 * Checks `text` is exactly `prompt + "_GeneratedBy_" + w` for one of `workers` (with migration
 * the suffix names the worker that finished), and says how it differs when it is not.
 */
export function checkAnswer(prompt: string, text: string, workers: readonly string[]): AnswerCheck {
  for (const w of workers) {
    if (text === `${prompt}${MARKER}${w}`) return { ok: true, worker: w, duplicated: false, missing: false };
  }
  const markers = text.split(MARKER).length - 1;
  const head = markers > 0 ? text.slice(0, text.indexOf(MARKER)) : text;
  const tail = markers > 0 ? text.slice(text.lastIndexOf(MARKER) + MARKER.length) : '';
  const duplicated =
    markers > 1 ||
    head.length > prompt.length ||
    (markers === 1 && workers.every((w) => tail.length > w.length && tail.startsWith(w)));
  const shortest = prompt.length + MARKER.length + Math.min(...workers.map((w) => w.length));
  return { ok: false, duplicated, missing: !duplicated && text.length < shortest };
}

/** One request of a load run. */
export interface RequestOutcome {
  index: number;
  requestId: string;
  prompt: string;
  /** Epoch ms it was sent, and when its answer was complete (or failed). */
  sentAt: number;
  doneAt: number;
  /** When its first SSE event arrived (undefined if none). */
  firstEventAt?: number;
  /** HTTP status (0: no response). */
  status: number;
  kind: OutcomeKind;
  /** The concatenated output. */
  text: string;
  worker?: string;
  duplicated: boolean;
  /** Error message (HTTP error body, SSE error event, network error). */
  error?: string;
  /** SSE events carrying another request's id. */
  foreignEvents: number;
}

/** Parses an SSE body into its `data:` events, split by event name. */
export function parseSse(body: string): Array<{ event: string; data: string }> {
  const out: Array<{ event: string; data: string }> = [];
  for (const block of body.split('\n\n')) {
    if (!block.trim()) continue;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    out.push({ event, data: data.join('\n') });
  }
  return out;
}

/** Sends one streaming `/generate` request and classifies its answer. */
export async function streamOne(
  url: string,
  o: {
    index: number;
    prompt: string;
    requestId: string;
    workers: readonly string[];
    timeoutMs: number;
    /** Called when the first bytes of the answer arrive. */
    onFirstEvent?: () => void;
  },
): Promise<RequestOutcome> {
  const sentAt = Date.now();
  const base = {
    index: o.index,
    requestId: o.requestId,
    prompt: o.prompt,
    sentAt,
    duplicated: false,
    foreignEvents: 0,
  };
  let status = 0;
  let firstEventAt: number | undefined;
  let body = '';
  try {
    const res = await fetch(`${url}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ prompt: o.prompt, request_id: o.requestId }),
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    status = res.status;
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (firstEventAt === undefined) {
        firstEventAt = Date.now();
        o.onFirstEvent?.();
      }
      body += dec.decode(value, { stream: true });
    }
    body += dec.decode();
  } catch (e) {
    return {
      ...base,
      doneAt: Date.now(),
      firstEventAt,
      status,
      kind: 'lost',
      text: '',
      error: `${(e as Error).name}: ${(e as Error).message}`,
    };
  }
  const doneAt = Date.now();
  if (status !== 200) {
    return {
      ...base,
      doneAt,
      status,
      kind: status === 503 ? 'unavailable' : 'lost',
      text: '',
      error: body.slice(0, 500),
    };
  }
  let text = '';
  let foreign = 0;
  let error: string | undefined;
  for (const ev of parseSse(body)) {
    if (ev.event === 'error') {
      error = ev.data;
      continue;
    }
    try {
      const d = JSON.parse(ev.data) as { worker_output?: string; request_id?: string };
      text += d.worker_output ?? '';
      if (d.request_id !== o.requestId) foreign++;
    } catch {
      error = `unparsable event: ${ev.data.slice(0, 200)}`;
    }
  }
  if (error !== undefined) {
    return { ...base, doneAt, firstEventAt, status, kind: 'lost', text, error, foreignEvents: foreign };
  }
  const check = checkAnswer(o.prompt, text, o.workers);
  return {
    ...base,
    doneAt,
    firstEventAt,
    status,
    kind: check.ok && foreign === 0 ? 'ok' : 'corrupted',
    text,
    worker: check.worker,
    duplicated: check.duplicated,
    foreignEvents: foreign,
  };
}

/** Options of {@link startLoad}. */
export interface LoadOptions {
  url: string;
  /** Requests per second (fixed rate, open loop: a slow answer does not delay the next request). */
  ratePerSec: number;
  /** Stop after this many requests (else run until `stop()`). */
  count?: number;
  /** The prompt of request `i` (make it unique so answers cannot be confused). */
  prompt: (i: number) => string;
  /** Request id prefix. */
  idPrefix: string;
  /** Names a correct answer may end with. */
  workers: readonly string[];
  /** Per-request timeout, ms (no answer by then: lost). Default 30 s. */
  timeoutMs?: number;
}

/** A running load generator. */
export interface LoadRun {
  /** Outcomes so far (complete ones). */
  readonly outcomes: readonly RequestOutcome[];
  /** Requests sent so far. */
  readonly sent: number;
  /** Requests whose answer has started arriving. */
  readonly started: number;
  /** Resolves when `count` requests were sent (immediately when no count). */
  readonly allSent: Promise<void>;
  /** Stops sending and waits for every answer. */
  stop(): Promise<RequestOutcome[]>;
  /** Waits for `count` requests to be sent and answered. */
  finished(): Promise<RequestOutcome[]>;
}

/** Starts sending streaming `/generate` requests at a fixed rate. */
export function startLoad(o: LoadOptions): LoadRun {
  const outcomes: RequestOutcome[] = [];
  const pending: Array<Promise<void>> = [];
  let stopped = false;
  let sent = 0;
  let started = 0;
  const interval = 1000 / o.ratePerSec;
  const t0 = Date.now();
  const allSent = (async () => {
    for (let i = 0; !stopped && (o.count === undefined || i < o.count); i++) {
      const due = t0 + i * interval;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      if (stopped) break;
      sent++;
      pending.push(
        streamOne(o.url, {
          index: i,
          prompt: o.prompt(i),
          requestId: `${o.idPrefix}-${i}`,
          workers: o.workers,
          timeoutMs: o.timeoutMs ?? 30_000,
          onFirstEvent: () => void started++,
        }).then((r) => void outcomes.push(r)),
      );
    }
  })();
  const settle = async (): Promise<RequestOutcome[]> => {
    await allSent;
    await Promise.all(pending);
    return [...outcomes].sort((a, b) => a.index - b.index);
  };
  return {
    outcomes,
    get sent() {
      return sent;
    },
    get started() {
      return started;
    },
    allSent,
    stop: () => {
      stopped = true;
      return settle();
    },
    finished: settle,
  };
}

/** Counts of a set of outcomes. */
export interface LoadTally {
  sent: number;
  ok: number;
  lost: number;
  unavailable: number;
  corrupted: number;
  duplicated: number;
}

/** Tallies outcomes by kind. */
export function tally(outcomes: readonly RequestOutcome[]): LoadTally {
  return {
    sent: outcomes.length,
    ok: outcomes.filter((r) => r.kind === 'ok').length,
    lost: outcomes.filter((r) => r.kind === 'lost').length,
    unavailable: outcomes.filter((r) => r.kind === 'unavailable').length,
    corrupted: outcomes.filter((r) => r.kind === 'corrupted').length,
    duplicated: outcomes.filter((r) => r.duplicated).length,
  };
}

/**
 * Time from `faultAt` (epoch ms: the kill, or the server coming back) until serving was whole
 * again: the send time of the first request of the final unbroken run of successes, minus
 * `faultAt`; 0 when no request sent after `faultAt` failed; undefined when the run never recovered.
 */
export function recoveryMs(outcomes: readonly RequestOutcome[], faultAt: number): number | undefined {
  const sorted = [...outcomes].sort((a, b) => a.sentAt - b.sentAt);
  let lastBad = -1;
  sorted.forEach((r, i) => {
    if (r.kind !== 'ok') lastBad = i;
  });
  if (lastBad === sorted.length - 1) return undefined;
  if (lastBad < 0 || sorted[lastBad]!.sentAt < faultAt) {
    // Failures (if any) were all sent before the fault point: nothing to recover from after it.
    return 0;
  }
  return Math.max(0, sorted[lastBad + 1]!.sentAt - faultAt);
}

/** A short description of what went wrong, for assertion messages. */
export function describeFailures(outcomes: readonly RequestOutcome[], max = 10): string {
  const bad = outcomes.filter((r) => r.kind !== 'ok');
  return bad
    .slice(0, max)
    .map(
      (r) =>
        `#${r.index} ${r.requestId} ${r.kind} status=${r.status}${r.duplicated ? ' duplicated' : ''}` +
        ` text=${JSON.stringify(r.text.slice(-80))}${r.error ? ` error=${r.error.slice(0, 200)}` : ''}`,
    )
    .join('\n');
}

// ---------------------------------------------------------------------------------------------
// nats-server monitoring

/** What `jsz?consumers=true` says about one consumer (the fields the suite reads). */
export interface JszConsumer {
  name: string;
  stream_name: string;
  config?: { ack_wait?: number; durable_name?: string };
  delivered: { consumer_seq: number; stream_seq: number };
  ack_floor: { consumer_seq: number; stream_seq: number };
  num_ack_pending: number;
  num_redelivered: number;
  num_pending: number;
}

/** What `jsz?consumers=true` says about one stream. */
export interface JszStream {
  name: string;
  state: { messages: number; first_seq: number; last_seq: number; consumer_count: number };
  consumer_detail?: JszConsumer[];
}

/** Every stream (with consumers) nats-server's monitoring endpoint lists. */
export async function jszStreams(nats: NatsServer): Promise<JszStream[]> {
  const r = await fetch(`${nats.monitorUrl}/jsz?consumers=true&config=true`, { signal: AbortSignal.timeout(5000) });
  if (r.status !== 200) throw new Error(`jsz answered ${r.status}: ${await r.text()}`);
  const body = (await r.json()) as { account_details?: Array<{ stream_detail?: JszStream[] }> };
  return (body.account_details ?? []).flatMap((a) => a.stream_detail ?? []);
}

/** The stream of the namespace's prefill queue (`DYNAMO_{NS}_PREFILL`), from jsz. */
export async function prefillStream(nats: NatsServer, namespace: string): Promise<JszStream> {
  const name = `DYNAMO_${namespace.toUpperCase().replace(/-/g, '_')}_PREFILL`;
  const streams = await jszStreams(nats);
  const s = streams.find((x) => x.name === name);
  if (!s) throw new Error(`jsz lists no stream ${name} (streams: ${streams.map((x) => x.name).join(', ')})`);
  return s;
}

/** Polls `cond` every 20 ms until it holds; throws `what` after `timeoutMs`. */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Failed outcomes by status and error code, e.g. `504 TIMEOUT x20, 503 x3`. */
export function failureSummary(outcomes: readonly RequestOutcome[]): string {
  const counts = new Map<string, number>();
  for (const r of outcomes) {
    if (r.kind === 'ok') continue;
    const code = /"code":"([a-z_]+)"/.exec(r.error ?? '')?.[1];
    const key = `${r.kind === 'corrupted' ? 'corrupted' : r.status || 'no response'}${code ? ` ${code}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k} x${n}`).join(', ') || 'none';
}

/** The largest figures jsz showed for the prefill queue while a {@link watchPrefillQueue} ran. */
export interface QueuePeaks {
  samples: number;
  /** Largest `num_redelivered` (redelivered jobs awaiting their ack) seen. */
  redelivered: number;
  /** Largest `num_ack_pending` (jobs delivered, not yet acked) seen. */
  ackPending: number;
  /** Largest number of messages in the stream seen. */
  messages: number;
}

/**
 * Samples jsz every `everyMs` until `stop()`: `num_redelivered` counts only redelivered jobs not
 * yet acked, so it has to be caught while the redelivery is in flight.
 */
export function watchPrefillQueue(nats: NatsServer, namespace: string, everyMs = 100): { stop(): Promise<QueuePeaks> } {
  const peaks: QueuePeaks = { samples: 0, redelivered: 0, ackPending: 0, messages: 0 };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const s = await prefillStream(nats, namespace);
        const c = s.consumer_detail?.[0];
        peaks.samples++;
        peaks.messages = Math.max(peaks.messages, s.state.messages);
        peaks.redelivered = Math.max(peaks.redelivered, c?.num_redelivered ?? 0);
        peaks.ackPending = Math.max(peaks.ackPending, c?.num_ack_pending ?? 0);
      } catch {
        /* stream not there yet, or the server is busy: next sample */
      }
      await sleep(everyMs);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return { ...peaks };
    },
  };
}

/** Waits until the prefill stream is empty and nothing awaits an ack; returns its final jsz state. */
export async function drainedPrefillStream(
  nats: NatsServer,
  namespace: string,
  timeoutMs = 20_000,
): Promise<JszStream> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await prefillStream(nats, namespace);
    const c = s.consumer_detail?.[0];
    if (s.state.messages === 0 && (c?.num_ack_pending ?? 0) === 0) return s;
    if (Date.now() > until) {
      throw new Error(
        `prefill stream not drained within ${timeoutMs} ms: ${JSON.stringify({ state: s.state, consumer: c })}`,
      );
    }
    await sleep(100);
  }
}
