import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { etcdArgs, findBinary, freePort, type ServerHandle } from './servers';

/**
 * Clustered nats-server and etcd on free loopback ports, for tests of what the deployment does
 * when one member of a cluster dies: a 3-node NATS cluster (routes, optionally JetStream with a
 * store per node) and a 3-member etcd cluster with fast elections. Every member binds 127.0.0.1
 * only, keeps its data in a temporary folder, and can be stopped (or killed) and started again on
 * the same ports and data.
 */

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function portOpen(port: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function getJson(url: string, init?: RequestInit): Promise<unknown> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(1000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return await res.json();
}

/** Ports handed out by this module and not released, so concurrent cluster starts never share one. */
const reserved = new Set<number>();

/** A free loopback port not handed out to another member of a cluster started by this process. */
async function uniquePort(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (!reserved.has(p)) {
      reserved.add(p);
      return p;
    }
  }
}

/**
 * Runs `start` (which picks its ports anew) again, up to 3 times, when a member could not bind
 * a port: another process may take a free port between `freePort()` and the member's bind.
 */
async function withPortRetries<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (e) {
      if (attempt >= 3 || !/address already in use/i.test((e as Error).message)) throw e;
    }
  }
}

/** One member process: started, stopped (SIGTERM) or killed (SIGKILL), started again with the same arguments. */
class Member implements ServerHandle {
  private proc: ChildProcess | undefined;
  private disposed = false;
  /** The last 64 KiB of the member's stderr (for error messages). */
  stderr = '';

  constructor(
    private readonly what: string,
    private readonly bin: string,
    private readonly args: string[],
    private readonly port: number,
    private readonly dataDir: string,
    /** Every port of the member, released on dispose. */
    private readonly ports: number[],
  ) {}

  get pid(): number | undefined {
    return this.running ? this.proc?.pid : undefined;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts the process and waits until its client port accepts connections. */
  async start(): Promise<void> {
    if (this.disposed) throw new Error(`${this.what} was disposed`);
    if (this.running) return;
    const proc = spawn(this.bin, this.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-64 * 1024);
    });
    const until = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(
          `${this.what} exited before listening (code ${proc.exitCode}, signal ${proc.signalCode})\n${this.stderr.slice(-2000)}`,
        );
      }
      if (await portOpen(this.port)) return;
      if (Date.now() > until) {
        await this.stop({ kill: true });
        throw new Error(
          `${this.what} did not listen on 127.0.0.1:${this.port} within 15 s\n${this.stderr.slice(-2000)}`,
        );
      }
      await sleep(20);
    }
  }

  async stop(options: { kill?: boolean } = {}): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.kill(options.kill ? 'SIGKILL' : 'SIGTERM');
    });
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.stop({ kill: true });
    rmSync(this.dataDir, { recursive: true, force: true });
    for (const p of this.ports) reserved.delete(p);
  }
}

/** A member of a {@link NatsCluster}. */
export interface NatsClusterMember extends ServerHandle {
  /** `server_name` of the member (`n1`, `n2`, ...). */
  readonly name: string;
  /** `nats://127.0.0.1:PORT` (clients). */
  readonly url: string;
  readonly port: number;
  /** Route port (other members connect here). */
  readonly clusterPort: number;
  /** HTTP monitoring port (`/varz`, `/routez`, `/jsz`). */
  readonly monitorPort: number;
  readonly monitorUrl: string;
}

/** A running NATS cluster. */
export interface NatsCluster {
  readonly members: readonly NatsClusterMember[];
  /** Client URLs of every member. */
  readonly urls: string[];
  /** The member whose client port is `port` (e.g. from `nc.getServer()`, `127.0.0.1:PORT`). */
  memberByAddress(address: string): NatsClusterMember | undefined;
  /**
   * Resolves when every running member has routes to every other running member and, with
   * JetStream, sees the same meta leader.
   */
  waitForHealthy(options?: { timeoutMs?: number }): Promise<void>;
  /** Kills every member and removes the data. Idempotent. */
  dispose(): Promise<void>;
}

/** Options of {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /** Enable clustered JetStream, each member with its own store (default true). */
  jetstream?: boolean;
}

/**
 * Starts an `n`-node NATS cluster (n >= 1; 3 for JetStream replicas 3) on free loopback ports:
 * each node lists every other node's route, and with JetStream each has its own store directory.
 * Resolves once the routes are up and (with JetStream) a meta leader is elected.
 */
export async function startNatsCluster(n: number, options: NatsClusterOptions = {}): Promise<NatsCluster> {
  if (!Number.isInteger(n) || n < 1) throw new Error(`startNatsCluster: n must be an integer >= 1, got ${n}`);
  return await withPortRetries(() => tryStartNatsCluster(n, options));
}

async function tryStartNatsCluster(n: number, options: NatsClusterOptions): Promise<NatsCluster> {
  const bin = findBinary('nats-server');
  if (!bin) throw new Error('nats-server not found on PATH (Debian: apt-get install -y nats-server)');
  const jetstream = options.jetstream ?? true;
  const clusterName = `dyn-${randomBytes(4).toString('hex')}`;
  const ports: Array<{ client: number; cluster: number; monitor: number }> = [];
  for (let i = 0; i < n; i++)
    ports.push({ client: await uniquePort(), cluster: await uniquePort(), monitor: await uniquePort() });
  const members: NatsClusterMember[] = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), `dynamo-nats-${name}-`));
    const routes = ports
      .filter((_, j) => j !== i)
      .map((q) => `nats://127.0.0.1:${q.cluster}`)
      .join(', ');
    const conf = [
      `server_name: ${name}`,
      `listen: "127.0.0.1:${p.client}"`,
      `http: "127.0.0.1:${p.monitor}"`,
      ...(jetstream ? [`jetstream { store_dir: ${JSON.stringify(path.join(dataDir, 'js'))} }`] : []),
      `cluster {`,
      `  name: ${clusterName}`,
      `  listen: "127.0.0.1:${p.cluster}"`,
      `  routes: [${routes}]`,
      `}`,
      '',
    ].join('\n');
    const confFile = path.join(dataDir, 'server.conf');
    writeFileSync(confFile, conf);
    const m = new Member(`nats-server ${name}`, bin, ['-c', confFile], p.client, dataDir, [
      p.client,
      p.cluster,
      p.monitor,
    ]);
    return Object.assign(m, {
      name,
      url: `nats://127.0.0.1:${p.client}`,
      port: p.client,
      clusterPort: p.cluster,
      monitorPort: p.monitor,
      monitorUrl: `http://127.0.0.1:${p.monitor}`,
    });
  });

  const cluster: NatsCluster = {
    members,
    urls: members.map((m) => m.url),
    memberByAddress(address: string) {
      const port = Number(address.split(':').pop());
      return members.find((m) => m.port === port);
    },
    async waitForHealthy(o = {}) {
      const until = Date.now() + (o.timeoutMs ?? 30_000);
      let last = '';
      for (;;) {
        const up = members.filter((m) => m.running);
        try {
          const leaders = new Set<string>();
          let ok = true;
          for (const m of up) {
            const routez = (await getJson(`${m.monitorUrl}/routez`)) as { num_routes?: number };
            if ((routez.num_routes ?? 0) < up.length - 1) {
              ok = false;
              last = `${m.name} has ${routez.num_routes} routes`;
            }
            if (jetstream) {
              const jsz = (await getJson(`${m.monitorUrl}/jsz`)) as { meta_cluster?: { leader?: string } };
              const leader = jsz.meta_cluster?.leader;
              if (!leader) {
                ok = false;
                last = `${m.name} sees no JetStream meta leader`;
              } else leaders.add(leader);
            }
          }
          if (ok && leaders.size <= 1) return;
          if (leaders.size > 1) last = `members disagree on the meta leader: ${[...leaders].join(', ')}`;
        } catch (e) {
          last = (e as Error).message;
        }
        if (Date.now() > until) throw new Error(`NATS cluster not healthy in time: ${last}`);
        await sleep(100);
      }
    },
    async dispose() {
      await Promise.all(members.map((m) => m.dispose()));
    },
  };
  try {
    await Promise.all(members.map((m) => m.start()));
    await cluster.waitForHealthy();
  } catch (e) {
    await cluster.dispose();
    throw e;
  }
  return cluster;
}

/** A member of an {@link EtcdCluster}. */
export interface EtcdClusterMember extends ServerHandle {
  /** Member name (`e1`, `e2`, ...). */
  readonly name: string;
  /** `http://127.0.0.1:PORT` (clients). */
  readonly url: string;
  readonly port: number;
  readonly peerPort: number;
}

/** A running etcd cluster. */
export interface EtcdCluster {
  readonly members: readonly EtcdClusterMember[];
  /** Client URLs of every member. */
  readonly urls: string[];
  /** The current leader, asked of the running members (undefined while there is none). */
  leader(): Promise<EtcdClusterMember | undefined>;
  /** Resolves when every running member answers `/health` with `true` (a leader exists, a quorum is up). */
  waitForHealthy(options?: { timeoutMs?: number }): Promise<void>;
  /** Kills every member and removes the data. Idempotent. */
  dispose(): Promise<void>;
}

/** Options of {@link startEtcdCluster}. */
export interface EtcdClusterOptions {
  /** Raft heartbeat interval (default 10 ms). */
  heartbeatMs?: number;
  /** Raft election timeout (default 100 ms): a killed leader is replaced about this fast. */
  electionMs?: number;
}

/**
 * Starts an `n`-member etcd cluster (`--initial-cluster` of all members, fast elections) on free
 * loopback ports; resolves once every member is healthy. A member started again after a stop
 * rejoins from its data directory.
 */
export async function startEtcdCluster(n: number, options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  if (!Number.isInteger(n) || n < 1) throw new Error(`startEtcdCluster: n must be an integer >= 1, got ${n}`);
  return await withPortRetries(() => tryStartEtcdCluster(n, options));
}

async function tryStartEtcdCluster(n: number, options: EtcdClusterOptions): Promise<EtcdCluster> {
  const bin = findBinary('etcd');
  if (!bin) throw new Error('etcd not found on PATH (Debian: apt-get install -y etcd-server)');
  const token = `dyn-${randomBytes(4).toString('hex')}`;
  const ports: Array<{ client: number; peer: number }> = [];
  for (let i = 0; i < n; i++) ports.push({ client: await uniquePort(), peer: await uniquePort() });
  const initialCluster = ports.map((p, i) => `e${i + 1}=http://127.0.0.1:${p.peer}`).join(',');
  const members: EtcdClusterMember[] = ports.map((p, i) => {
    const name = `e${i + 1}`;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), `dynamo-etcd-${name}-`));
    mkdirSync(path.join(dataDir, 'data'), { mode: 0o700 });
    const url = `http://127.0.0.1:${p.client}`;
    const peer = `http://127.0.0.1:${p.peer}`;
    const args = etcdArgs({
      name,
      dataDir: path.join(dataDir, 'data'),
      url,
      peer,
      initialCluster,
      token,
      heartbeatMs: options.heartbeatMs,
      electionMs: options.electionMs,
    });
    const m = new Member(`etcd ${name}`, bin, args, p.client, dataDir, [p.client, p.peer]);
    return Object.assign(m, { name, url, port: p.client, peerPort: p.peer });
  });

  const cluster: EtcdCluster = {
    members,
    urls: members.map((m) => m.url),
    async leader() {
      for (const m of members.filter((x) => x.running)) {
        try {
          const s = (await getJson(`${m.url}/v3/maintenance/status`, { method: 'POST', body: '{}' })) as {
            header?: { member_id?: string };
            leader?: string;
          };
          if (!s.leader || s.leader === '0') continue;
          if (s.header?.member_id === s.leader) return m;
          // Ask the member that is the leader to confirm who it is.
          for (const other of members.filter((x) => x.running && x !== m)) {
            const o = (await getJson(`${other.url}/v3/maintenance/status`, { method: 'POST', body: '{}' }).catch(
              () => undefined,
            )) as { header?: { member_id?: string } } | undefined;
            if (o?.header?.member_id === s.leader) return other;
          }
        } catch {
          // try the next member
        }
      }
      return undefined;
    },
    async waitForHealthy(o = {}) {
      const until = Date.now() + (o.timeoutMs ?? 30_000);
      let last = '';
      for (;;) {
        const up = members.filter((m) => m.running);
        const health = await Promise.all(
          up.map((m) =>
            getJson(`${m.url}/health`).then(
              (h) => (h as { health?: string }).health === 'true',
              (e: Error) => {
                last = `${m.name}: ${e.message}`;
                return false;
              },
            ),
          ),
        );
        if (health.every(Boolean)) return;
        if (Date.now() > until) throw new Error(`etcd cluster not healthy in time: ${last || 'no leader'}`);
        await sleep(50);
      }
    },
    async dispose() {
      await Promise.all(members.map((m) => m.dispose()));
    },
  };
  try {
    await Promise.all(members.map((m) => m.start()));
    await cluster.waitForHealthy();
  } catch (e) {
    await cluster.dispose();
    throw e;
  }
  return cluster;
}
