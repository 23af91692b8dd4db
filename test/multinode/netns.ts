import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { findBinary } from '@dynamo-ts/runtime/testing';

/**
 * Drives deploy/netns from tests: creates the three nodes, runs commands and long-lived
 * processes inside them (stdout and stderr to one log file each), cuts and restores links, and
 * removes everything again.
 */

/** The repository root. */
export const ROOT = path.resolve(__dirname, '../..');
const NETNS = path.join(ROOT, 'deploy/netns');

/** Why the multi-node test cannot run on this machine, or undefined when it can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'network namespaces need root';
  if (!findBinary('ip')) return 'iproute2 (`ip`) is not installed';
  return undefined;
}

/** Output of a finished command. */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A long-lived process inside a node, logging to `logFile`. */
export class NodeProcess {
  private readonly exited: Promise<number | null>;
  private out = '';
  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    readonly logFile: string,
    log: WriteStream,
  ) {
    const onData = (d: Buffer): void => {
      const s = d.toString();
      log.write(s);
      if (this.out.length < 16 * 1024 * 1024) this.out += s;
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      proc.once('close', (code, signal) => {
        log.end(`\n[exited: code ${code}, signal ${signal}]\n`);
        resolve(code);
      }),
    );
  }
  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
  /** Everything it printed so far. */
  output(): string {
    return this.out;
  }
  /** The JSON log lines it printed so far (other lines skipped). */
  jsonLines(): Array<Record<string, unknown>> {
    const lines: Array<Record<string, unknown>> = [];
    for (const l of this.out.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // a partial line
      }
    }
    return lines;
  }
  /** Resolves once a JSON log line matches, failing after `timeoutMs` or when the process exits. */
  async waitForLog(
    match: (l: Record<string, unknown>) => boolean,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.jsonLines().find(match);
      if (hit) return hit;
      if (!this.running) throw new Error(`${this.name} exited (see ${this.logFile})`);
      if (Date.now() > until)
        throw new Error(`${this.name}: expected log line not seen in ${timeoutMs} ms (see ${this.logFile})`);
      await sleep(100);
    }
  }
  /** Sends SIGTERM (graceful drain) and waits for the exit code. */
  async stop(): Promise<number | null> {
    if (this.running) this.proc.kill('SIGTERM');
    return await this.exited;
  }
}

/** One deployment of deploy/netns (namespaces `<prefix>-br`, `<prefix>-node1..3`). */
export class NetnsDeployment {
  readonly processes: NodeProcess[] = [];
  constructor(
    readonly prefix: string,
    readonly subnet: string,
    readonly logDir: string,
  ) {
    mkdirSync(logDir, { recursive: true });
  }

  /** Address of node `n` (1-based). */
  address(n: number): string {
    return `${this.subnet}.${n}`;
  }

  private env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return { ...process.env, DYNAMO_NETNS: this.prefix, DYNAMO_NETNS_SUBNET: this.subnet, ...extra };
  }

  /** Runs a deploy/netns script to completion. */
  script(name: 'up.sh' | 'down.sh' | 'link.sh', args: string[] = []): Finished {
    const r = spawnSync(path.join(NETNS, name), args, { env: this.env(), encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Runs a command in node `n` and collects its output. */
  async exec(
    n: number,
    cmd: string[],
    options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
  ): Promise<Finished> {
    return await new Promise((resolve, reject) => {
      const p = spawn(path.join(NETNS, 'run.sh'), [`node${n}`, ...cmd], {
        env: this.env(options.env),
        cwd: options.cwd ?? ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => p.kill('SIGKILL'), options.timeoutMs ?? 30_000);
      p.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      p.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Starts a long-lived process in node `n`. */
  start(n: number, name: string, cmd: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): NodeProcess {
    const logFile = path.join(this.logDir, `${name}.log`);
    const log = createWriteStream(logFile);
    log.write(`# node${n} (${this.address(n)}): ${cmd.join(' ')}\n`);
    const p = spawn(path.join(NETNS, 'run.sh'), [`node${n}`, ...cmd], {
      env: this.env(options.env),
      cwd: options.cwd ?? ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const np = new NodeProcess(name, p, logFile, log);
    this.processes.push(np);
    return np;
  }

  /** Cuts (`down`) or restores (`up`) node `n`'s link to the bridge. */
  link(n: number, state: 'up' | 'down'): void {
    const r = this.script('link.sh', [`node${n}`, state]);
    if (r.code !== 0) throw new Error(`link.sh node${n} ${state} failed: ${r.stderr}`);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One `/generate` answer as the seed's curl shows it. */
export interface CurlAnswer {
  status: number;
  output: string;
  worker: string;
  body: string;
  error?: string;
}

/** Parses the output of `curl -sS -N -w '\n%{http_code}'` on /generate with `accept: text/event-stream`. */
export function parseCurl(r: Finished): CurlAnswer {
  const text = r.stdout;
  const cut = text.lastIndexOf('\n');
  const status = Number(text.slice(cut + 1).trim()) || 0;
  const body = text.slice(0, Math.max(0, cut));
  if (r.code !== 0 || status !== 200) {
    return { status, output: '', worker: '', body, error: `curl exit ${r.code}: ${r.stderr.trim()}` };
  }
  const output = body
    .split('\n\n')
    .map((e) => e.trim())
    .filter((e) => e.startsWith('data: '))
    .map((e) => (JSON.parse(e.slice('data: '.length)) as { worker_output: string }).worker_output)
    .join('');
  return { status, output, worker: output.split('_GeneratedBy_')[1] ?? '', body };
}
