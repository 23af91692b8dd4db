import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { settingsFromEnv } from '@dynamo-ts/sdk';

const SEED = `SU${'A'.repeat(56)}`;

describe('security settings from the environment', () => {
  let dir: string;
  let file: (name: string, text?: string) => string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'dynamo-settings-'));
    file = (name, text = 'x') => {
      const p = path.join(dir, name);
      writeFileSync(p, text);
      return p;
    };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults: no credentials, no keys, frontend on 0.0.0.0', () => {
    const s = settingsFromEnv({});
    expect(s.nats).toEqual({});
    expect(s.etcd).toEqual({});
    expect(s.apiKeys).toEqual([]);
    expect(s.metricsRequireKey).toBe(false);
    expect(s.host).toBe('0.0.0.0');
    expect(s.subjectScope).toBeUndefined();
  });

  it('reads every NATS method, TLS files and the inbox prefix', () => {
    const ca = file('ca.pem');
    const cert = file('c.pem');
    const key = file('k.pem');
    const creds = file('u.creds');
    expect(
      settingsFromEnv({
        NATS_AUTH_USERNAME: 'u',
        NATS_AUTH_PASSWORD: 'p',
        NATS_TLS_CA_CERT_PATH: ca,
        NATS_TLS_CLIENT_CERT_PATH: cert,
        NATS_TLS_CLIENT_KEY_PATH: key,
        DYNAMO_NATS_INBOX_PREFIX: '_INBOX_u',
        DYNAMO_SUBJECT_SCOPE: 'w1',
      }),
    ).toMatchObject({
      nats: { user: 'u', password: 'p', tls: { caFile: ca, certFile: cert, keyFile: key }, inboxPrefix: '_INBOX_u' },
      subjectScope: 'w1',
    });
    expect(settingsFromEnv({ NATS_AUTH_TOKEN: 't0k' }).nats).toEqual({ token: 't0k' });
    expect(settingsFromEnv({ NATS_AUTH_NKEY: ` ${SEED}\n` }).nats).toEqual({ nkeySeed: SEED });
    expect(settingsFromEnv({ NATS_AUTH_CREDENTIALS_FILE: creds }).nats).toEqual({ credsFile: creds });
  });

  it('reads etcd user/password and TLS files', () => {
    const ca = file('eca.pem');
    const cert = file('ec.pem');
    const key = file('ek.pem');
    expect(
      settingsFromEnv({
        ETCD_AUTH_USERNAME: 'dyn',
        ETCD_AUTH_PASSWORD: 'pw',
        ETCD_AUTH_CA: ca,
        ETCD_AUTH_CLIENT_CERT: cert,
        ETCD_AUTH_CLIENT_KEY: key,
      }).etcd,
    ).toEqual({ username: 'dyn', password: 'pw', tls: { caFile: ca, certFile: cert, keyFile: key } });
  });

  it.each([
    [{ NATS_AUTH_PASSWORD: 'secret-pw' }, /NATS_AUTH_PASSWORD is set but NATS_AUTH_USERNAME is not/],
    [{ NATS_AUTH_USERNAME: 'u' }, /NATS_AUTH_USERNAME is set but NATS_AUTH_PASSWORD is not/],
    [{ NATS_AUTH_TOKEN: 'secret-pw', NATS_AUTH_NKEY: SEED }, /NATS_AUTH_TOKEN and NATS_AUTH_NKEY are both set/],
    [{ NATS_AUTH_NKEY: 'secret-pw' }, /NATS_AUTH_NKEY must match pattern/],
    [
      { NATS_AUTH_CREDENTIALS_FILE: '/nonexistent/u.creds' },
      /NATS_AUTH_CREDENTIALS_FILE: cannot read \/nonexistent\/u\.creds \(ENOENT\)/,
    ],
    [{ NATS_TLS_CA_CERT_PATH: '/nonexistent/ca.pem' }, /NATS_TLS_CA_CERT_PATH: cannot read/],
    [{ NATS_TLS_CLIENT_CERT_PATH: '/tmp' }, /NATS_TLS_CLIENT_CERT_PATH is set but NATS_TLS_CLIENT_KEY_PATH is not/],
    [{ ETCD_AUTH_PASSWORD: 'secret-pw' }, /ETCD_AUTH_PASSWORD is set but ETCD_AUTH_USERNAME is not/],
    [{ ETCD_AUTH_CLIENT_KEY: '/tmp' }, /ETCD_AUTH_CLIENT_KEY is set but ETCD_AUTH_CLIENT_CERT is not/],
    [{ ETCD_AUTH_CA: '/nonexistent/ca.pem' }, /ETCD_AUTH_CA: cannot read/],
    [{ DYNAMO_API_KEYS: 'sk-1234567,,sk-abcdefgh' }, /DYNAMO_API_KEYS: empty key/],
    [{ DYNAMO_API_KEYS: 'short' }, /shorter than 8 characters/],
    [{ DYNAMO_METRICS_REQUIRE_KEY: '1' }, /DYNAMO_METRICS_REQUIRE_KEY=1 needs an API key/],
    [{ DYNAMO_SUBJECT_SCOPE: 'a.b' }, /DYNAMO_SUBJECT_SCOPE must match pattern/],
    [{ DYNAMO_NATS_INBOX_PREFIX: 'a..b' }, /DYNAMO_NATS_INBOX_PREFIX must match pattern/],
  ])('%j is an error naming the variable (never the secret)', (env, message) => {
    let msg = '';
    try {
      settingsFromEnv(env as NodeJS.ProcessEnv);
    } catch (e) {
      msg = (e as Error).message;
      expect((e as { code?: string }).code).toBe('INVALID_ARGUMENT');
    }
    expect(msg).toMatch(message);
    expect(msg).not.toContain('secret-pw');
  });

  it('merges DYNAMO_API_KEY, DYNAMO_API_KEYS and DYNAMO_API_KEY_FILE (comments and blank lines skipped)', () => {
    const keys = file('keys', '# clients\nsk-file-0001\n\n  sk-file-0002  \n');
    const s = settingsFromEnv({
      DYNAMO_API_KEY: 'sk-single-01',
      DYNAMO_API_KEYS: 'sk-list-0001, sk-list-0002',
      DYNAMO_API_KEY_FILE: keys,
      DYNAMO_METRICS_REQUIRE_KEY: '1',
      DYNAMO_HOST: '127.0.0.1',
    });
    expect(s.apiKeys).toEqual(['sk-single-01', 'sk-list-0001', 'sk-list-0002', 'sk-file-0001', 'sk-file-0002']);
    expect(s.metricsRequireKey).toBe(true);
    expect(s.host).toBe('127.0.0.1');
    expect(() => settingsFromEnv({ DYNAMO_API_KEY_FILE: file('empty', '# none\n') })).toThrow(/holds no key/);
  });

  it('the built CLI exits 2 naming the variable', async () => {
    const main = path.resolve(__dirname, '../dist/cli/main.js');
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [main, 'serve', 'examples/hello-world/components/graph.ts:Frontend'],
        {
          timeout: 20_000,
          cwd: path.resolve(__dirname, '../../..'),
          env: {
            ...process.env,
            NATS_SERVER: 'nats://127.0.0.1:1',
            ETCD_ENDPOINTS: 'http://127.0.0.1:1',
            NATS_AUTH_PASSWORD: 'secret-pw',
          },
        },
        (err, _o, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
    expect(r.stderr).toMatch(/NATS_AUTH_PASSWORD is set but NATS_AUTH_USERNAME is not/);
    expect(r.stderr).not.toContain('secret-pw');
    expect(r.code).toBe(2);
  });
});
