import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * Real nats-server and etcd processes on free loopback ports, for integration tests and
 * local tooling. Every server binds 127.0.0.1 only, keeps its data in a temporary folder,
 * and can be stopped and started again on the same ports and data (to test outages).
 */

/** Asks the kernel for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** The full path of an executable found on PATH (or in /usr/sbin, where Debian puts nats-server), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Which of the named binaries are missing. */
export function missingBinaries(names: readonly string[]): string[] {
  return names.filter((n) => findBinary(n) === undefined);
}

async function waitForPort(port: number, timeoutMs: number, proc: ChildProcess, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${what} exited before listening (code ${proc.exitCode}, signal ${proc.signalCode})`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stopProcess(proc: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill(signal);
  });
}

/** A server process that can be stopped and started again on the same ports and data. */
export interface ServerHandle {
  /** Process id of the running server (undefined while stopped). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Stops the server (`SIGTERM`, or `SIGKILL` when `kill` is true) and keeps its data. */
  stop(options?: { kill?: boolean }): Promise<void>;
  /** Starts it again on the same ports and data. */
  start(): Promise<void>;
  /** Stops it and removes its data. Idempotent. */
  dispose(): Promise<void>;
}

class SpawnedServer implements ServerHandle {
  private proc: ChildProcess | undefined;
  private disposed = false;
  stderr = '';
  constructor(
    private readonly bin: string,
    private readonly args: string[],
    private readonly port: number,
    private readonly dataDir: string,
    private readonly what: string,
  ) {}
  get pid(): number | undefined {
    return this.running ? this.proc?.pid : undefined;
  }
  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }
  async start(): Promise<void> {
    if (this.running) return;
    this.stderr = '';
    const proc = spawn(this.bin, this.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr?.on('data', (d: Buffer) => {
      if (this.stderr.length < 64 * 1024) this.stderr += d.toString();
    });
    try {
      await waitForPort(this.port, 15000, proc, this.what);
    } catch (e) {
      await stopProcess(proc, 'SIGKILL');
      throw new Error(`${(e as Error).message}\n${this.stderr.slice(-2000)}`);
    }
  }
  async stop(options: { kill?: boolean } = {}): Promise<void> {
    await stopProcess(this.proc, options.kill ? 'SIGKILL' : 'SIGTERM');
  }
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.stop({ kill: true });
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A running nats-server. */
export interface NatsServer extends ServerHandle {
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  /** HTTP monitoring port (`/varz`, `/jsz`). */
  readonly monitorPort: number;
  readonly monitorUrl: string;
}

/** Command line of one etcd member on loopback (fast raft timers unless given). */
export function etcdArgs(o: {
  name: string;
  dataDir: string;
  url: string;
  peer: string;
  initialCluster: string;
  token?: string;
  heartbeatMs?: number;
  electionMs?: number;
}): string[] {
  return [
    '--name',
    o.name,
    '--data-dir',
    o.dataDir,
    '--listen-client-urls',
    o.url,
    '--advertise-client-urls',
    o.url,
    '--listen-peer-urls',
    o.peer,
    '--initial-advertise-peer-urls',
    o.peer,
    '--initial-cluster',
    o.initialCluster,
    ...(o.token ? ['--initial-cluster-state', 'new', '--initial-cluster-token', o.token] : []),
    '--heartbeat-interval',
    String(o.heartbeatMs ?? 10),
    '--election-timeout',
    String(o.electionMs ?? 100),
    '--log-level',
    'error',
  ];
}

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream (default true). */
  jetstream?: boolean;
  /** Largest message the server accepts, bytes (default: the server's 1 MiB). */
  maxPayload?: number;
  /** Extra command-line arguments. */
  args?: string[];
  /**
   * Extra nats-server configuration (its config-file syntax), e.g. an `authorization { ... }`
   * or `accounts { ... }` block. Written to a file in the server's data folder.
   */
  config?: string;
  /** TLS for clients: the server's certificate and key; with `caFile` and `verify`, mutual TLS. */
  tls?: { certFile: string; keyFile: string; caFile?: string; verify?: boolean };
}

/** The `tls { ... }` block of a nats-server config. */
function natsTlsBlock(tls: NonNullable<NatsServerOptions['tls']>): string {
  const q = JSON.stringify;
  return [
    'tls {',
    `  cert_file: ${q(tls.certFile)}`,
    `  key_file: ${q(tls.keyFile)}`,
    ...(tls.caFile ? [`  ca_file: ${q(tls.caFile)}`] : []),
    ...(tls.verify ? ['  verify: true'] : []),
    '  timeout: 2',
    '}',
  ].join('\n');
}

/** Starts nats-server (with JetStream by default) on free loopback ports. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = findBinary('nats-server');
  if (!bin) throw new Error('nats-server not found on PATH (Debian: apt-get install -y nats-server)');
  const port = await freePort();
  const monitorPort = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'dynamo-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort)];
  if (options.jetstream ?? true) args.push('-js', '-sd', dataDir);
  // nats-server 2.9 takes max_payload, TLS blocks and authorization only from a config file.
  const conf = [
    ...(options.maxPayload !== undefined ? [`max_payload: ${options.maxPayload}`] : []),
    ...(options.tls ? [natsTlsBlock(options.tls)] : []),
    ...(options.config !== undefined ? [options.config] : []),
  ];
  if (conf.length > 0) {
    const file = path.join(dataDir, 'server.conf');
    writeFileSync(file, `${conf.join('\n')}\n`);
    args.push('-c', file);
  }
  args.push(...(options.args ?? []));
  const s = new SpawnedServer(bin, args, port, dataDir, 'nats-server');
  await s.start();
  return Object.assign(s, {
    url: `${options.tls ? 'tls' : 'nats'}://127.0.0.1:${port}`,
    port,
    monitorPort,
    monitorUrl: `http://127.0.0.1:${monitorPort}`,
  });
}

/** A running single-member etcd. */
export interface EtcdServer extends ServerHandle {
  /** `http://127.0.0.1:PORT` (`https://` with TLS) */
  readonly url: string;
  readonly port: number;
}

/** Options of {@link startEtcd}. */
export interface EtcdServerOptions {
  /**
   * TLS for clients: etcd's certificate and key; with `caFile` and `clientCertAuth`
   * (`--client-cert-auth`), clients must present a certificate signed by that CA.
   */
  tls?: { certFile: string; keyFile: string; caFile?: string; clientCertAuth?: boolean };
  /** Extra command-line arguments (e.g. `--auth-token-ttl 1`). */
  args?: string[];
}

/** Starts a single-member etcd on free loopback ports (fast elections: starts in ~0.1 s). */
export async function startEtcd(options: EtcdServerOptions = {}): Promise<EtcdServer> {
  const bin = findBinary('etcd');
  if (!bin) throw new Error('etcd not found on PATH (Debian: apt-get install -y etcd-server)');
  const port = await freePort();
  const peerPort = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'dynamo-etcd-'));
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const name = `test-${port}`;
  const args = etcdArgs({ name, dataDir: path.join(dataDir, 'data'), url, peer, initialCluster: `${name}=${peer}` });
  const tls = options.tls;
  if (tls) {
    args.push('--cert-file', tls.certFile, '--key-file', tls.keyFile);
    if (tls.caFile) args.push('--trusted-ca-file', tls.caFile);
    if (tls.clientCertAuth) args.push('--client-cert-auth');
  }
  args.push(...(options.args ?? []));
  const s = new SpawnedServer(bin, args, port, dataDir, 'etcd');
  await s.start();
  return Object.assign(s, { url, port });
}
