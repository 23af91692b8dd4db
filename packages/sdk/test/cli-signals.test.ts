/**
 * The built CLI (`npx tsc -b` first) under signals: an embedded graph with no HTTP server keeps
 * serving until asked; SIGTERM and SIGINT drain and exit 0, also when the reader of its output
 * went away (`| tee` killed by the same Ctrl-C); under `npx` a SIGTERM to npm does not leave the
 * server orphaned; `serve` loads no bench module; an unreachable etcd is named by its variable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort, startEtcd, startNatsServer, type EtcdServer, type NatsServer } from '@dynamo-ts/runtime/testing';
import { describeWithBinaries } from '../../../test/support/integration';

const ROOT = path.resolve(__dirname, '../../..');
const MAIN = path.resolve(__dirname, '../dist/cli/main.js');
const FIXTURE = path.resolve(__dirname, 'fixtures/signals.ts');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'dynamo-ts-signals-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Served {
  child: ChildProcess;
  out: () => string;
  exit: Promise<number | null>;
  pidFile: string;
}

/** Starts `cmd args... serve fixture:Quiet` and waits until the service is ready. */
async function serve(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const pidFile = path.join(dir, `pid-${Math.random().toString(36).slice(2)}.json`);
  const child = spawn(cmd, [...args, 'serve', `${FIXTURE}:Quiet`, `--Quiet.pid_file=${pidFile}`], {
    cwd: ROOT,
    env: {
      ...process.env,
      DYNAMO_LOG_FORMAT: 'json',
      DYNAMO_NAMESPACE: `sig${process.pid}x${Date.now() % 1e6}`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const until = Date.now() + 30_000;
  while (!/"service ready"/.test(out)) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`not ready:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, out: () => out, exit, pidFile };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('dynamo-ts serve under signals (built CLI)', () => {
  it('keeps an embedded graph with no HTTP server serving, loads no bench module, and drains on SIGTERM with exit 0', async () => {
    const s = await serve(process.execPath, [MAIN]);
    await new Promise((r) => setTimeout(r, 1000));
    expect(s.child.exitCode).toBeNull();
    s.child.kill('SIGTERM');
    expect(await s.exit).toBe(0);
    expect(s.out()).toMatch(/"stopped"/);
    const report = JSON.parse(readFileSync(s.pidFile, 'utf8')) as { modules: number; bench: number };
    expect(report.modules).toBeGreaterThan(50); // the report ran, after the serve path loaded
    expect(report.bench).toBe(0);
  }, 60_000);

  it('exits 0 after a clean drain on SIGINT when the reader of its output is gone (| tee and Ctrl-C)', async () => {
    const s = await serve(process.execPath, [MAIN]);
    s.child.stdout!.destroy();
    s.child.stderr!.destroy();
    s.child.kill('SIGINT');
    expect(await s.exit).toBe(0);
  }, 60_000);

  it('under `npx --no-install`, a SIGTERM to npm does not leave the server orphaned', async () => {
    const npx = await serve('npx', ['--no-install', 'dynamo-ts']);
    const { pid } = JSON.parse(readFileSync(npx.pidFile, 'utf8')) as { pid: number };
    expect(pid).not.toBe(npx.child.pid); // npm and a shell sit between
    npx.child.kill('SIGTERM');
    await npx.exit;
    try {
      await until('the server to exit', () => !alive(pid));
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL'); // an orphan must not outlive a failed test
    }
    const report = JSON.parse(readFileSync(npx.pidFile, 'utf8')) as { bench?: number };
    expect(report.bench).toBe(0); // it drained and ran its exit handler, not killed
  }, 60_000);
});

describeWithBinaries(['nats-server', 'etcd'], 'dynamo-ts serve, distributed (built CLI)', () => {
  let nats: NatsServer;
  let etcd: EtcdServer;
  beforeAll(async () => {
    [nats, etcd] = await Promise.all([startNatsServer(), startEtcd()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([nats?.dispose(), etcd?.dispose()]);
  });

  it('on Ctrl-C with its output reader gone, exits 0 and its registration leaves etcd at once', async () => {
    const namespace = `sigd${process.pid}`;
    const s = await serve(process.execPath, [MAIN], {
      NATS_SERVER: nats.url,
      ETCD_ENDPOINTS: etcd.url,
      DYNAMO_NAMESPACE: namespace,
      DYNAMO_LEASE_TTL: '60',
    });
    const client = new Etcd3({ hosts: etcd.url });
    try {
      const keys = () => client.getAll().prefix(`dynamo/${namespace}/instances/`).keys();
      expect(await keys()).toHaveLength(1);
      s.child.stdout!.destroy();
      s.child.stderr!.destroy();
      s.child.kill('SIGINT');
      expect(await s.exit).toBe(0);
      expect(await keys()).toEqual([]); // revoked, not left to a 60 s lease
    } finally {
      client.close();
    }
  }, 60_000);

  it('an unreachable etcd exits 1 with a last line naming ETCD_ENDPOINTS', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN, 'serve', `${FIXTURE}:Quiet`, `--Quiet.pid_file=${dir}/x.json`], {
      cwd: ROOT,
      env: {
        ...process.env,
        NATS_SERVER: nats.url,
        ETCD_ENDPOINTS: `http://127.0.0.1:${port}`,
        DYNAMO_LOG_FORMAT: 'json',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    const last = stderr.trimEnd().split('\n').pop()!;
    expect(last).toMatch(
      new RegExp(
        `^dynamo-ts: error: cannot reach etcd at ETCD_ENDPOINTS=http://127.0.0.1:${port}: is etcd running there\\?`,
      ),
    );
    expect(existsSync(`${dir}/x.json`)).toBe(false); // nothing was served
  }, 60_000);
});
