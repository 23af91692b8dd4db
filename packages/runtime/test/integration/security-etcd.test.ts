/**
 * EtcdDiscovery against real etcd servers that require credentials (`auth enable`) or TLS
 * (`--client-cert-auth`): user/password from options and from the endpoint URL, https with a
 * CA, mutual TLS; wrong or missing credentials fail at once with a clear, secret-free error;
 * no secret in any captured log.
 */
import { EtcdDiscovery, type EtcdDiscoveryOptions } from '../../src/discovery/etcd';
import {
  enableEtcdAuth,
  makeTestCertificates,
  startEtcd,
  type EtcdServer,
  type TestCertificates,
  capturedLogger,
  expectNoSecret,
} from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import { rejectionOf } from './security-helpers';

const ROOT_PASSWORD = 'root-pw-7c1e-secret';
const PASSWORD = 'dyn-pw-41af-secret';
const secrets = [ROOT_PASSWORD, PASSWORD];

describeWithBinaries(['etcd', 'etcdctl', 'openssl'], 'etcd credentials and TLS', () => {
  jest.setTimeout(30_000);
  let certs: TestCertificates;
  let plain: EtcdServer;
  let secured: EtcdServer;
  const clients: EtcdDiscovery[] = [];
  const log = capturedLogger();

  beforeAll(async () => {
    certs = makeTestCertificates();
    plain = await startEtcd();
    enableEtcdAuth(plain.url, { rootPassword: ROOT_PASSWORD, users: [{ name: 'dyn', password: PASSWORD }] });
    secured = await startEtcd({
      tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile, clientCertAuth: true },
    });
    const clientTls = { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile };
    enableEtcdAuth(secured.url, {
      rootPassword: ROOT_PASSWORD,
      users: [{ name: 'dyn', password: PASSWORD }],
      tls: clientTls,
    });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
  });
  afterAll(async () => {
    await plain?.dispose();
    await secured?.dispose();
    certs?.dispose();
    expect(log.text()).toContain('lease granted');
    expectNoSecret(log.text(), secrets);
  });

  async function open(o: Partial<EtcdDiscoveryOptions> & { endpoints: string[] }): Promise<EtcdDiscovery> {
    const d = await EtcdDiscovery.connect({ logger: log.logger, dialTimeoutMs: 1500, leaseTtlMs: 5000, ...o });
    clients.push(d);
    return d;
  }
  async function works(d: EtcdDiscovery): Promise<void> {
    // A prefix of this client's own: another client's key (still leased) is not in its snapshot.
    const prefix = `dynamo/sec-${d.leaseId}/instances/`;
    const key = `${prefix}w/generate/${d.leaseId}`;
    const watch = d.watchPrefix(prefix);
    const it = watch[Symbol.asyncIterator]();
    await d.put(key, 'v1');
    const seen: unknown[] = [];
    while (seen.length < 2) seen.push((await it.next()).value);
    expect(seen).toContainEqual({ type: 'synced' });
    expect(await d.get(key)).toBe('v1');
    watch.close();
  }
  async function refusedFast(
    o: Partial<EtcdDiscoveryOptions> & { endpoints: string[] },
    pattern: RegExp,
  ): Promise<void> {
    const started = Date.now();
    const e = await rejectionOf(open(o));
    expect(e.code).toBe('UNAVAILABLE');
    expect(e.message).toMatch(pattern);
    expect(Date.now() - started).toBeLessThan(3000);
    expectNoSecret(e.message, secrets);
  }

  it('user + password from options and from the endpoint URL', async () => {
    await works(await open({ endpoints: [plain.url], username: 'dyn', password: PASSWORD }));
    await works(await open({ endpoints: [plain.url.replace('http://', `http://dyn:${PASSWORD}@`)] }));
  });

  it('a wrong password or no credentials fail at once, not after retries, and say why', async () => {
    await refusedFast({ endpoints: [plain.url], username: 'dyn', password: 'wrong' }, /refused the credentials/);
    await refusedFast({ endpoints: [plain.url] }, /refused the credentials/);
    const e = await rejectionOf(open({ endpoints: [plain.url.replace('http://', `http://dyn:${PASSWORD}x@`)] }));
    expect(e.message).toMatch(/refused the credentials/);
    expect(e.message).not.toContain('dyn:');
    expectNoSecret(e.message, secrets);
  });

  it('keeps working after its auth token expired (lease keep-alives, watches, puts)', async () => {
    const short = await startEtcd({ args: ['--auth-token-ttl', '1'] });
    try {
      enableEtcdAuth(short.url, { rootPassword: ROOT_PASSWORD, users: [{ name: 'dyn', password: PASSWORD }] });
      // Keep-alives every 1.7 s: longer than the token's 1 s life, so each finds it expired.
      const d = await open({ endpoints: [short.url], username: 'dyn', password: PASSWORD, leaseTtlMs: 5000 });
      const watch = d.watchPrefix('dynamo/ttl/');
      const it = watch[Symbol.asyncIterator]();
      expect((await it.next()).value).toEqual({ type: 'synced' });
      // Several token lifetimes and lease TTLs: the lease must have been renewed all along.
      await new Promise((r) => setTimeout(r, 6000));
      expect(d.status).toBe('connected');
      await d.put(`dynamo/ttl/${d.leaseId}`, 'still here');
      expect((await it.next()).value).toEqual({ type: 'put', key: `dynamo/ttl/${d.leaseId}`, value: 'still here' });
      watch.close();
    } finally {
      await short.dispose();
    }
  });

  it('a user is confined to its key prefix', async () => {
    const d = await open({ endpoints: [plain.url], username: 'dyn', password: PASSWORD });
    const e = await rejectionOf(d.put('other/key', 'x', { lease: false }));
    expect(e.message).toMatch(/permission denied/);
  });

  it('https with mutual TLS and a password (the hardened deployment)', async () => {
    const tls = { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile };
    await works(await open({ endpoints: [secured.url], username: 'dyn', password: PASSWORD, tls }));
  });

  it('TLS failures: no client certificate, a certificate of another CA, an untrusted server', async () => {
    const base = { endpoints: [secured.url], username: 'dyn', password: PASSWORD };
    for (const tls of [
      { caFile: certs.caFile },
      { caFile: certs.caFile, certFile: certs.rogueCertFile, keyFile: certs.rogueKeyFile },
      { caFile: certs.rogueCaFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile },
    ]) {
      const e = await rejectionOf(open({ ...base, tls }));
      expect(e.code).toBe('UNAVAILABLE');
      expect(e.message).toMatch(/etcd at https:\/\/127\.0\.0\.1/);
      expect(e.message).toMatch(/TLS/);
      expectNoSecret(e.message, secrets);
    }
    const half = await rejectionOf(open({ ...base, tls: { caFile: certs.caFile, keyFile: certs.clientKeyFile } }));
    expect(half.code).toBe('INVALID_ARGUMENT');
    expect(half.message).toMatch(/tls\.keyFile is set but tls\.certFile is not/);
    const noUser = await rejectionOf(open({ endpoints: [plain.url], password: PASSWORD }));
    expect(noUser.message).toMatch(/password is set but no username/);
  });
});
