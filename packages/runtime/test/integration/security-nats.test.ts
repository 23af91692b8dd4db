/**
 * connectNats against real nats-servers that require credentials or TLS: every auth method
 * (user/password, token, nkey, JWT creds in operator mode), credentials in the URL, TLS with a
 * CA and mutual TLS; wrong or missing credentials fail at once with a clear, secret-free error;
 * JetStream and the event plane run on the secured connection; no secret in any captured log.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
} from '@nats-io/jwt';
import { nkeys, type NatsConnection } from '@nats-io/transport-node';
import { NatsEventPlane } from '../../src/events/nats';
import { connectNats, type ConnectNatsOptions } from '../../src/nats-connection';
import { JetStreamWorkQueue } from '../../src/queue/jetstream';
import {
  makeTestCertificates,
  startNatsServer,
  type NatsServer,
  type NatsServerOptions,
  type TestCertificates,
  capturedLogger,
  expectNoSecret,
} from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import { rejectionOf } from './security-helpers';

const PASSWORD = 'pw-Xq7-nats-secret';
const TOKEN = 'tok-9f8e7d-nats-secret';

describeWithBinaries(['nats-server', 'openssl'], 'NATS credentials and TLS', () => {
  jest.setTimeout(30_000);
  const servers: NatsServer[] = [];
  const conns: NatsConnection[] = [];
  let certs: TestCertificates;
  const log = capturedLogger();
  const secrets: string[] = [PASSWORD, TOKEN];

  beforeAll(() => {
    certs = makeTestCertificates();
  });
  afterEach(async () => {
    for (const nc of conns.splice(0)) if (!nc.isClosed()) await nc.close();
  });
  afterAll(async () => {
    for (const s of servers) await s.dispose();
    certs?.dispose();
    // Every line logged by every connection of this file, successful or refused.
    expect(log.text()).toContain('connected');
    expectNoSecret(log.text(), secrets);
  });

  async function server(config: string, tls?: NatsServerOptions['tls'], jetstream = true): Promise<NatsServer> {
    const s = await startNatsServer({ config, jetstream, ...(tls ? { tls } : {}) });
    servers.push(s);
    return s;
  }
  async function open(o: ConnectNatsOptions): Promise<NatsConnection> {
    const nc = await connectNats({ logger: log.logger, timeoutMs: 1500, reconnectTimeWaitMs: 100, ...o });
    conns.push(nc);
    return nc;
  }
  /** A refused connection: fails fast (no retry loop), non-retryable, message free of secrets. */
  async function refused(o: ConnectNatsOptions, pattern: RegExp): Promise<void> {
    const started = Date.now();
    const e = await rejectionOf(open(o));
    expect(e.code).toBe('UNAVAILABLE');
    expect(e.message).toMatch(pattern);
    expect(e.retryable).toBe(false);
    expect(Date.now() - started).toBeLessThan(4000);
    expectNoSecret(e.message, secrets);
  }
  async function roundTrip(nc: NatsConnection): Promise<void> {
    const sub = nc.subscribe('dynamo.t.ping', { max: 1 });
    nc.publish('dynamo.t.ping', 'x');
    for await (const m of sub) expect(m.string()).toBe('x');
  }

  it('user + password: from options and from the URL; a wrong or missing password is refused', async () => {
    const s = await server(`authorization { users = [ { user: dyn, password: "${PASSWORD}" } ] }`);
    await roundTrip(await open({ servers: s.url, user: 'dyn', password: PASSWORD }));
    await roundTrip(await open({ servers: s.url.replace('nats://', `nats://dyn:${encodeURIComponent(PASSWORD)}@`) }));
    await refused({ servers: s.url, user: 'dyn', password: `${PASSWORD}-wrong` }, /refused the credentials/);
    await refused({ servers: s.url.replace('nats://', `nats://dyn:${PASSWORD}x@`) }, /refused the credentials/);
    await refused({ servers: s.url }, /refused the credentials/);
  });

  it('token: from options and as the URL user; a wrong token is refused', async () => {
    const s = await server(`authorization { token: "${TOKEN}" }`);
    await roundTrip(await open({ servers: s.url, token: TOKEN }));
    await roundTrip(await open({ servers: s.url.replace('nats://', `nats://${TOKEN}@`) }));
    await refused({ servers: s.url, token: 'nope' }, /refused the credentials/);
  });

  it('nkey seed: the server knows the public key; another seed is refused', async () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    secrets.push(seed);
    const s = await server(`authorization { users = [ { nkey: ${user.getPublicKey()} } ] }`);
    await roundTrip(await open({ servers: s.url, nkeySeed: seed }));
    const other = new TextDecoder().decode(nkeys.createUser().getSeed());
    secrets.push(other);
    await refused({ servers: s.url, nkeySeed: other }, /refused the credentials/);
    const bad = await rejectionOf(open({ servers: s.url, nkeySeed: 'SUnot-a-seed' }));
    expect(bad.code).toBe('INVALID_ARGUMENT');
    expect(bad.message).toMatch(/nkeySeed/);
  });

  it('JWT creds file: operator mode with a memory resolver; a user of another account is refused', async () => {
    const operator = createOperator();
    const account = createAccount();
    const user = createUser();
    const opJwt = await encodeOperator('OP', operator);
    const accJwt = await encodeAccount(
      'DYNAMO',
      account,
      // Unlimited (the library's defaults allow no connection at all).
      { limits: { conn: -1, subs: -1, data: -1, payload: -1, leaf: -1, imports: -1, exports: -1, wildcards: true } },
      { signer: operator },
    );
    const userJwt = await encodeUser('dyn', user, account);
    const s = await server(
      [
        `operator: ${opJwt}`,
        'resolver: MEMORY',
        'resolver_preload: {',
        `  ${account.getPublicKey()}: ${accJwt}`,
        '}',
      ].join('\n'),
      undefined,
      // JetStream in operator mode needs a system account; this test is about authentication.
      false,
    );
    const file = path.join(certs.dir, 'dyn.creds');
    writeFileSync(file, fmtCreds(userJwt, user));
    secrets.push(new TextDecoder().decode(user.getSeed()));
    await roundTrip(await open({ servers: s.url, credsFile: file }));
    // A user signed by an account the server does not know.
    const stranger = createUser();
    const strangerFile = path.join(certs.dir, 'stranger.creds');
    writeFileSync(strangerFile, fmtCreds(await encodeUser('x', stranger, createAccount()), stranger));
    await refused({ servers: s.url, credsFile: strangerFile }, /refused the credentials/);
    // A file that is not a creds file, and a missing one: named, contents never echoed.
    writeFileSync(path.join(certs.dir, 'bad.creds'), `garbage ${TOKEN}\n`);
    const bad = await rejectionOf(open({ servers: s.url, credsFile: path.join(certs.dir, 'bad.creds') }));
    expect(bad.code).toBe('INVALID_ARGUMENT');
    expect(bad.message).toMatch(/bad\.creds.*NATS USER JWT/);
    expectNoSecret(bad.message, secrets);
    const missing = await rejectionOf(open({ servers: s.url, credsFile: path.join(certs.dir, 'none.creds') }));
    expect(missing.message).toMatch(/cannot read .*none\.creds \(ENOENT\)/);
  });

  it('TLS with a CA: tls:// URL; a client that does not trust the CA is refused', async () => {
    const s = await server('', { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile });
    expect(s.url).toMatch(/^tls:\/\//);
    await roundTrip(await open({ servers: s.url, tls: { caFile: certs.caFile } }));
    await refused({ servers: s.url }, /TLS|certificate/i);
    await refused({ servers: s.url, tls: { caFile: certs.rogueCaFile } }, /TLS|certificate/i);
  });

  it('mutual TLS: the client certificate is required and must be signed by the trusted CA', async () => {
    const s = await server('', {
      certFile: certs.serverCertFile,
      keyFile: certs.serverKeyFile,
      caFile: certs.caFile,
      verify: true,
    });
    await roundTrip(
      await open({
        servers: s.url,
        tls: { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile },
      }),
    );
    const none = await rejectionOf(open({ servers: s.url, tls: { caFile: certs.caFile } }));
    expect(none.code).toBe('UNAVAILABLE');
    expect(none.message).toMatch(/client certificate/);
    const rogue = await rejectionOf(
      open({
        servers: s.url,
        tls: { caFile: certs.caFile, certFile: certs.rogueCertFile, keyFile: certs.rogueKeyFile },
      }),
    );
    expect(rogue.code).toBe('UNAVAILABLE');
    const half = await rejectionOf(
      open({ servers: s.url, tls: { caFile: certs.caFile, certFile: certs.clientCertFile } }),
    );
    expect(half.code).toBe('INVALID_ARGUMENT');
    expect(half.message).toMatch(/tls\.certFile is set but tls\.keyFile is not/);
  });

  it('JetStream and the event plane run on the secured connection', async () => {
    const s = await startNatsServer({
      config: `authorization { users = [ { user: dyn, password: "${PASSWORD}" } ] }`,
      tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile },
    });
    servers.push(s);
    const nc = await open({ servers: s.url, user: 'dyn', password: PASSWORD, tls: { caFile: certs.caFile } });
    const events = new NatsEventPlane(nc);
    const sub = events.subscribe('dynamo.sec.events.w.kv');
    const got = (async () => {
      for await (const m of sub) return m;
      return undefined;
    })();
    await new Promise((r) => setTimeout(r, 50));
    await events.publish('dynamo.sec.events.w.kv', { stored: [1] });
    expect((await got)?.data).toEqual({ stored: [1] });
    const queue = await JetStreamWorkQueue.create(nc, { namespace: 'sec', name: 'prefill' });
    await queue.push({ job: 1 });
    const ac = new AbortController();
    for await (const job of queue.consume({ signal: ac.signal })) {
      expect(job.data).toEqual({ job: 1 });
      await job.ack();
      ac.abort();
    }
    await queue.close();
    await events.close();
  });

  it('rejects conflicting or incomplete options naming them', async () => {
    const url = 'nats://127.0.0.1:1';
    const both = await rejectionOf(open({ servers: url, user: 'u', password: PASSWORD, token: TOKEN }));
    expect(both.message).toMatch(/one authentication method, not user\/password \+ token/);
    expectNoSecret(both.message, secrets);
    expect((await rejectionOf(open({ servers: url, password: PASSWORD }))).message).toMatch(
      /password is set but no user/,
    );
  });
});
