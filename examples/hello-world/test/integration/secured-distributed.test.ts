/**
 * The seed's distributed demo (Frontend + Processor + Router, two DummyWorkers) over a hardened
 * control plane: nats-server with mutual TLS, passwords and the least-privilege authorization
 * of docs/security.md (natsAuthorizationConfig); etcd with --client-cert-auth and auth enabled.
 * With the right credentials the demo answers as usual; a client holding one worker's
 * credentials cannot read the other worker's requests or answer users; wrong credentials stop
 * the CLI with a clear error and a non-zero exit; no secret reaches a log line.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { inboxPrefixFor, natsAuthorizationConfig, type NatsRoleUser } from '@dynamo-ts/runtime';
import { connectNats } from '@dynamo-ts/runtime/nats';
import {
  capturedLogger,
  enableEtcdAuth,
  expectNoSecret,
  makeTestCertificates,
  startEtcd,
  startNatsServer,
  type EtcdServer,
  type NatsServer,
  type TestCertificates,
} from '@dynamo-ts/runtime/testing';
import { distributedPlatform, serveGraph, type GraphHandle, type ServeSettings } from '@dynamo-ts/sdk';
import { describeWithBinaries } from '../../../../test/support/integration';
import { DummyWorker, Frontend } from '../../components/graph';
import { generateSse, uniqueNamespace } from '../helpers';

const ETCD_ROOT = 'etcd-root-pw-0a9b';
const ETCD_PASSWORD = 'etcd-dyn-pw-1c2d';
const namespace = uniqueNamespace('sec');
const users: NatsRoleUser[] = [
  { user: 'frontend', password: 'nats-frontend-pw-3e4f', role: 'frontend' },
  { user: 'node1', password: 'nats-node1-pw-5a6b', role: 'worker', scope: 'node1' },
  { user: 'node2', password: 'nats-node2-pw-7c8d', role: 'worker', scope: 'node2' },
];
const secrets = [ETCD_ROOT, ETCD_PASSWORD, ...users.map((u) => u.password!)];

describeWithBinaries(['nats-server', 'etcd', 'etcdctl', 'openssl'], 'secured distributed hello-world graph', () => {
  jest.setTimeout(60_000);
  let certs: TestCertificates;
  let nats: NatsServer;
  let etcd: EtcdServer;
  const graphs: GraphHandle[] = [];
  const log = capturedLogger();
  const logger = log.logger;
  const tls = () => ({ caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile });

  const serve = async (root: typeof Frontend | typeof DummyWorker, user: string) => {
    const u = users.find((x) => x.user === user)!;
    const settings: ServeSettings = { namespace, port: 0, workerName: user, leaseTtlMs: 2000 };
    const platform = await distributedPlatform({
      natsServers: [nats.url],
      etcdEndpoints: [etcd.url],
      leaseTtlMs: settings.leaseTtlMs,
      logger,
      nats: { user, password: u.password, tls: tls(), inboxPrefix: inboxPrefixFor(user) },
      etcd: { username: 'dyn', password: ETCD_PASSWORD, tls: tls() },
      ...(u.scope ? { subjectScope: u.scope } : {}),
    });
    const g = await serveGraph(root, {
      platform,
      settings,
      config: { Frontend: { port: 0, host: '127.0.0.1' } },
      logger,
    });
    graphs.push(g);
    return g;
  };

  beforeAll(async () => {
    certs = makeTestCertificates();
    const serverTls = { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile };
    [nats, etcd] = await Promise.all([
      startNatsServer({ config: natsAuthorizationConfig(users, { namespace }), tls: { ...serverTls, verify: true } }),
      startEtcd({ tls: { ...serverTls, clientCertAuth: true } }),
    ]);
    enableEtcdAuth(etcd.url, {
      rootPassword: ETCD_ROOT,
      users: [{ name: 'dyn', password: ETCD_PASSWORD }],
      tls: tls(),
    });
  });
  afterAll(async () => {
    for (const g of graphs.reverse()) await g.close({ timeoutMs: 2000 });
    await Promise.all([nats?.dispose(), etcd?.dispose()]);
    certs?.dispose();
    expect(log.text()).toContain('lease granted');
    expectNoSecret(log.text(), secrets);
  });

  it("serves the seed's prompts across two workers; worker credentials cannot steal or forge", async () => {
    const frontend = await serve(Frontend, 'frontend');
    await serve(DummyWorker, 'node1');
    await serve(DummyWorker, 'node2');
    const url = frontend.get('Frontend')[0]!.instance.metadata!.url as string;
    for (let i = 0; i < 200; i++) {
      const h = await fetch(`${url}/health`);
      if (((await h.json()) as { workers?: number }).workers === 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }

    // An attacker holding node1's credentials listens on node2's subjects, every subject, the
    // frontend's inbox, and tries to answer the frontend's requests.
    const attacker = await connectNats({
      servers: nats.url,
      user: 'node1',
      password: users[1]!.password,
      tls: tls(),
      inboxPrefix: inboxPrefixFor('node1'),
    });
    let stolen = 0;
    let refused = 0;
    for (const subject of [
      `dynamo.${namespace}.DummyWorker.*.node2.*`,
      '>',
      '_INBOX.>',
      `${inboxPrefixFor('frontend')}.>`,
    ]) {
      attacker.subscribe(subject, {
        callback: (err) => {
          if (err) refused++;
          else stolen++;
        },
      });
    }
    attacker.publish(`${inboxPrefixFor('frontend')}.x.1`, 'forged');

    const joke = await generateSse(url, 'Tell me a joke', 'id_number');
    expect(joke.output).toMatch(/^Tell me a joke_GeneratedBy_node[12]$/);
    await new Promise((r) => setTimeout(r, 100));
    const series = await generateSse(url, 'Which team won 2020 World Series', 'id_number');
    expect(series.worker).not.toBe(joke.worker);
    await new Promise((r) => setTimeout(r, 100));
    const fact = await generateSse(url, 'Tell me a fact', 'id_number');
    expect(fact.output).toBe(`Tell me a fact_GeneratedBy_${joke.worker}`);

    expect(stolen).toBe(0);
    expect(refused).toBe(4);
    // Nor is any credential a metric label.
    const scrape = await (await fetch(`${url}/metrics`)).text();
    expect(scrape).toContain('dynamo_frontend_');
    expectNoSecret(scrape, secrets);
    await attacker.close();
  });

  it('wrong or missing credentials: a clear error, no retry loop, nothing secret', async () => {
    const bad = await distributedPlatform({
      natsServers: [nats.url],
      etcdEndpoints: [etcd.url],
      leaseTtlMs: 2000,
      logger,
      nats: { user: 'node1', password: 'wrong-password', tls: tls() },
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(bad?.message).toMatch(/NATS at tls:\/\/127\.0\.0\.1:\d+ refused the credentials/);

    // The CLI: exit 1 within seconds (no endless retry), the reason on stderr, no secret.
    const main = path.resolve(__dirname, '../../../../packages/sdk/dist/cli/main.js');
    const run = (env: Record<string, string>) =>
      new Promise<{ code: number; stderr: string; ms: number }>((resolve) => {
        const started = Date.now();
        execFile(
          process.execPath,
          [main, 'serve', 'examples/hello-world/components/graph.ts:DummyWorker'],
          {
            timeout: 20_000,
            cwd: path.resolve(__dirname, '../../../..'),
            env: {
              ...process.env,
              NATS_SERVER: nats.url,
              ETCD_ENDPOINTS: etcd.url,
              NATS_TLS_CA_CERT_PATH: certs.caFile,
              NATS_TLS_CLIENT_CERT_PATH: certs.clientCertFile,
              NATS_TLS_CLIENT_KEY_PATH: certs.clientKeyFile,
              ETCD_AUTH_CA: certs.caFile,
              ETCD_AUTH_CLIENT_CERT: certs.clientCertFile,
              ETCD_AUTH_CLIENT_KEY: certs.clientKeyFile,
              DYNAMO_NAMESPACE: namespace,
              ...env,
            },
          },
          (err, _o, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr, ms: Date.now() - started }),
        );
      });
    const wrongNats = await run({ NATS_AUTH_USERNAME: 'node1', NATS_AUTH_PASSWORD: 'nats-wrong-pw-99' });
    expect(wrongNats.stderr).toMatch(/refused the credentials/);
    expect(wrongNats.stderr).not.toContain('nats-wrong-pw-99');
    expect(wrongNats.code).toBe(1);
    // NATS credentials in the URL this time: the `serving` line (written once NATS is up) must not show them.
    const wrongEtcd = await run({
      NATS_SERVER: nats.url.replace('tls://', `tls://node1:${users[1]!.password!}@`),
      DYNAMO_SUBJECT_SCOPE: 'node1',
      DYNAMO_NATS_INBOX_PREFIX: inboxPrefixFor('node1'),
      ETCD_AUTH_USERNAME: 'dyn',
      ETCD_AUTH_PASSWORD: 'etcd-wrong-pw-98',
    });
    expect(wrongEtcd.stderr).toMatch(/etcd at https:\/\/127\.0\.0\.1:\d+ refused the credentials/);
    expect(wrongEtcd.stderr).toMatch(/"message":"serving".*"nats":\["tls:\/\/\*\*\*@127\.0\.0\.1:\d+"\]/);
    expect(wrongEtcd.stderr).not.toContain('etcd-wrong-pw-98');
    expect(wrongEtcd.stderr).not.toContain(users[1]!.password!);
    expect(wrongEtcd.code).toBe(1);
    for (const r of [wrongNats, wrongEtcd]) expect(r.ms).toBeLessThan(15_000);
  });
});
