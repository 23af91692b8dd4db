import { compileNatsOptions } from '../src/nats-connection';
import { natsAuthorizationConfig, natsPermissions } from '../src/security/nats-authorization';
import { redactSecrets, redactUrl, splitUrlCredentials } from '../src/security/redact';
import { readTlsFiles } from '../src/security/tls';

describe('URL credentials and redaction', () => {
  it('splits user:password@ out of URLs, decoding them', () => {
    expect(splitUrlCredentials('nats://u%40x:p%3Aw%2F@host:4222')).toEqual({
      url: 'nats://host:4222',
      user: 'u@x',
      password: 'p:w/',
    });
    expect(splitUrlCredentials('nats://tok3n@host')).toEqual({ url: 'nats://host', user: 'tok3n' });
    expect(splitUrlCredentials('http://127.0.0.1:2379')).toEqual({ url: 'http://127.0.0.1:2379' });
    expect(splitUrlCredentials('127.0.0.1:2379')).toEqual({ url: '127.0.0.1:2379' });
  });

  it('redacts URLs and secret values', () => {
    expect(redactUrl('tls://u:pw@h:1')).toBe('tls://***@h:1');
    expect(redactUrl('nats://h:1')).toBe('nats://h:1');
    expect(redactSecrets('dial nats://a:b@h failed; token abcd-efgh rejected', ['abcd-efgh', undefined, ''])).toBe(
      'dial nats://***@h failed; token *** rejected',
    );
    // The longer of two overlapping secrets goes whole.
    expect(redactSecrets('pw=secret123', ['secret', 'secret123'])).toBe('pw=***');
  });
});

describe('compileNatsOptions', () => {
  it('takes credentials out of the server URLs', () => {
    const c = compileNatsOptions({ servers: 'nats://u:p@h1:4222, nats://u:p@h2:4222' });
    expect(c.servers).toEqual(['nats://h1:4222', 'nats://h2:4222']);
    expect(c.connection).toMatchObject({ user: 'u', pass: 'p' });
    expect(c.secrets).toEqual(['p']);
    expect(compileNatsOptions({ servers: 'nats://t0k@h' }).connection.token).toBe('t0k');
    expect(compileNatsOptions({ servers: 'tls://h:4222' }).connection.tls).toEqual({});
  });

  it.each([
    [{ servers: '' }, /at least one server/],
    [{ servers: 'nats://h', user: 'u' }, /user is set but no password/],
    [{ servers: 'nats://h', token: 't', nkeySeed: 'SU' }, /one authentication method, not token \+ nkeySeed/],
    [{ servers: 'nats://h', nkeySeed: 'SUAAAA' }, /not a valid nkey seed/],
    [{ servers: 'nats://h', credsFile: '/nonexistent.creds' }, /cannot read \/nonexistent\.creds \(ENOENT\)/],
    [{ servers: 'nats://h', inboxPrefix: 'a..b' }, /inboxPrefix "a\.\.b" is not a subject prefix/],
    [{ servers: 'nats://h', tls: { keyFile: '/k' } }, /tls\.keyFile is set but tls\.certFile is not/],
  ])('%j is refused naming the option', (o, message) => {
    expect(() => compileNatsOptions(o)).toThrow(message);
  });

  it('names an unreadable TLS file', () => {
    expect(() => readTlsFiles('etcd', { caFile: '/nonexistent/ca.pem' })).toThrow(
      'etcd tls.caFile: cannot read /nonexistent/ca.pem (ENOENT)',
    );
  });
});

describe('natsPermissions', () => {
  const o = { namespace: 'ns' };
  it('confines a worker to its own subjects and inbox', () => {
    const p = natsPermissions({ user: 'w1', password: 'x', role: 'worker', scope: 's1' }, o);
    expect(p.subscribe.allow).toEqual([
      'dynamo.ns.DummyWorker.*.s1.*',
      'dynamo.ns.events.DummyWorker.*',
      '_INBOX_w1.>',
    ]);
    expect(p.publish.allow).toContain('dynamo.ns.events.DummyWorker.*.s1');
    expect(p.publish.allow).not.toContain('dynamo.ns.events.DummyWorker.>');
    expect(p.publish.allow.some((s) => s.includes('MSG.NEXT'))).toBe(false);
    expect(p.publish.allow.some((s) => s.startsWith('_INBOX'))).toBe(false);
  });

  it('refuses a worker without scope, a user without password or nkey, bad names', () => {
    expect(() => natsPermissions({ user: 'w', role: 'worker' }, o)).toThrow(/needs a scope/);
    expect(() => natsAuthorizationConfig([{ user: 'f', role: 'frontend' }], o)).toThrow(/password or an nkey/);
    expect(() => natsPermissions({ user: 'a.b', role: 'frontend' }, o)).toThrow(/NATS user "a\.b"/);
    expect(() => natsPermissions({ user: 'w', role: 'prefill', scope: 'x>' }, o)).toThrow(/scope/);
  });
});
