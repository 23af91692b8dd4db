/**
 * deploy/secure: prepare.sh makes certificates, passwords, a nats.conf that nats-server accepts
 * (with the least-privilege permissions), and env files the CLI's settings accept; start.sh +
 * stop.sh run the secured NATS and etcd from local binaries; docker-compose.secure.yml (no
 * docker engine here) is checked as YAML: every file it mounts or names exists after prepare.sh.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { EtcdDiscovery } from '@dynamo-ts/runtime/etcd';
import { connectNats } from '@dynamo-ts/runtime/nats';
import { findBinary, freePort } from '@dynamo-ts/runtime/testing';
import { settingsFromEnv } from '@dynamo-ts/sdk';
import { describeWithBinaries } from '../../../../test/support/integration';

const root = path.resolve(__dirname, '../../../..');
const secure = path.join(root, 'deploy/secure');

function envFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

describeWithBinaries(['nats-server', 'etcd', 'etcdctl', 'openssl'], 'deploy/secure scripts', () => {
  jest.setTimeout(60_000);
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'dynamo-secure-'));
    const natsPort = await freePort();
    const etcdPort = await freePort();
    env = {
      ...process.env,
      DYNAMO_SECURE_DIR: dir,
      NATS_PORT: String(natsPort),
      NATS_MONITOR_PORT: String(await freePort()),
      ETCD_PORT: String(etcdPort),
      DYNAMO_NAMESPACE: 'secure-demo',
    };
  });
  afterAll(() => {
    execFileSync('bash', [path.join(secure, 'stop.sh')], { env: { ...env, DYNAMO_SECURE_CLEAN: '1' } });
    expect(existsSync(dir)).toBe(false);
  });

  it('prepare.sh: nats-server accepts the config; every env file passes the CLI settings', () => {
    execFileSync('bash', [path.join(secure, 'prepare.sh')], { env, stdio: 'pipe' });
    const conf = readFileSync(path.join(dir, 'nats.conf'), 'utf8');
    expect(conf).toContain('verify: true');
    expect(conf).toContain('"dynamo.secure-demo.DummyWorker.*.node1.*"');
    execFileSync(findBinary('nats-server')!, ['-c', path.join(dir, 'nats.conf'), '-t'], { stdio: 'pipe' });
    for (const name of ['frontend', 'node1', 'node2', 'prefill1']) {
      const s = settingsFromEnv(envFile(path.join(dir, 'env', `${name}.env`)));
      expect(s.mode).toBe('distributed');
      expect(s.nats.user).toBe(name);
      expect(s.nats.tls?.certFile).toBeDefined();
      expect(s.etcd.username).toBe('dynamo');
    }
    // Secrets are readable by their owner only.
    expect(execFileSync('stat', ['-c', '%a', dir]).toString().trim()).toBe('700');
  });

  it('docker-compose.secure.yml parses and mounts only files prepare.sh made', () => {
    const text = readFileSync(path.join(root, 'deploy/docker-compose.secure.yml'), 'utf8').replace(
      /\$\{DYNAMO_SECURE_DIR:-[^}]+\}/g,
      dir,
    );
    const compose = parse(text) as { services: Record<string, { command?: string[]; image: string }> };
    expect(Object.keys(compose.services).sort()).toEqual(['etcd', 'etcd-auth', 'nats']);
    const named = [...text.matchAll(new RegExp(`${dir}/[A-Za-z0-9_./-]+`, 'g'))].map((m) => m[0]);
    expect(named.length).toBeGreaterThan(3);
    for (const f of named) expect(existsSync(f)).toBe(true);
  });

  it('start.sh runs a secured NATS and etcd that accept the env files', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile('bash', [path.join(secure, 'start.sh')], { env, timeout: 30_000 }, (e, so, se) =>
        e ? reject(new Error(`${e.message}\n${se}`)) : resolve(so),
      ),
    );
    expect(out).toContain('secured NATS on tls://127.0.0.1');
    const s = settingsFromEnv(envFile(path.join(dir, 'env', 'node1.env')));
    const nc = await connectNats({ servers: s.natsServers, ...s.nats });
    await nc.close();
    const d = await EtcdDiscovery.connect({ endpoints: s.etcdEndpoints, ...s.etcd, dialTimeoutMs: 5000 });
    await d.put(`dynamo/secure-demo/instances/x/y/${d.leaseId}`, '{}');
    await d.close();
    // Without the client certificate etcd refuses (mutual TLS), and so does NATS.
    const { tls: _tls, ...noTls } = s.nats;
    await expect(
      connectNats({ servers: s.natsServers, ...noTls, tls: { caFile: s.nats.tls!.caFile }, timeoutMs: 1500 }),
    ).rejects.toThrow();
  });
});
