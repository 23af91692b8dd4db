import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, flushLogs, type Logger } from '../logger';
import { findBinary } from './servers';

/**
 * Test material for secured deployments: certificates made with `openssl` in a temporary folder,
 * etcd users and roles made with `etcdctl` (`auth enable`), and a logger whose lines a test can
 * search for secrets.
 */

/** A JSON logger at debug level that keeps every line it writes; `text()` returns them all. */
export function capturedLogger(): { logger: Logger; text: () => string } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return {
    logger: createLogger({ level: 'debug', format: 'json', stream }),
    text: () => {
      flushLogs();
      return out;
    },
  };
}

/** Throws (showing only the secret's first 3 characters) when any of `secrets` occurs in `text`. */
export function expectNoSecret(text: string, secrets: readonly string[]): void {
  for (const s of secrets) {
    if (s.length > 0 && text.includes(s)) {
      throw new Error(`secret ${JSON.stringify(s.slice(0, 3))}... found in: ${text.slice(0, 400)}`);
    }
  }
}

/** PEM files of a throwaway PKI: a CA, a server certificate for 127.0.0.1/localhost, client certificates. */
export interface TestCertificates {
  readonly dir: string;
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** Client certificate signed by the CA (CN `dynamo-client`). */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A second CA no server trusts, and a client certificate it signed (CN `dynamo-client`). */
  readonly rogueCaFile: string;
  readonly rogueCertFile: string;
  readonly rogueKeyFile: string;
  /** Removes the folder. Idempotent. */
  dispose(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new EC P-256 key and a certificate for `cn` signed by `ca` (or self-signed when `ca` is undefined). */
function issue(dir: string, name: string, cn: string, ca: string | undefined, ext: string): void {
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`];
  if (ca === undefined) {
    openssl(['req', '-x509', ...keyArgs, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`], dir);
    return;
  }
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(['req', ...keyArgs, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

/** Makes a CA, a server certificate (SAN 127.0.0.1, localhost) and client certificates. Needs `openssl` on PATH. */
export function makeTestCertificates(): TestCertificates {
  if (!findBinary('openssl')) throw new Error('openssl not found on PATH (Debian: apt-get install -y openssl)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dynamo-certs-'));
  const serverExt = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n';
  const clientExt = 'extendedKeyUsage=clientAuth\n';
  issue(dir, 'ca', 'dynamo-test-ca', undefined, '');
  issue(dir, 'server', 'localhost', 'ca', serverExt);
  issue(dir, 'client', 'dynamo-client', 'ca', clientExt);
  issue(dir, 'rogue-ca', 'rogue-ca', undefined, '');
  issue(dir, 'rogue', 'dynamo-client', 'rogue-ca', clientExt);
  const f = (n: string): string => path.join(dir, n);
  return {
    dir,
    caFile: f('ca.crt'),
    serverCertFile: f('server.crt'),
    serverKeyFile: f('server.key'),
    clientCertFile: f('client.crt'),
    clientKeyFile: f('client.key'),
    rogueCaFile: f('rogue-ca.crt'),
    rogueCertFile: f('rogue.crt'),
    rogueKeyFile: f('rogue.key'),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** One etcd user of {@link enableEtcdAuth}: read-write on every key under `prefix`. */
export interface EtcdTestUser {
  name: string;
  password: string;
  /** Key prefix the user may read and write. Default `dynamo/`. */
  prefix?: string;
}

/**
 * Creates `root` (with `rootPassword`) and the given users (each with its own role, read-write
 * on its prefix), then turns on authentication (`etcdctl auth enable`). `tls` are the files
 * etcdctl needs to reach a TLS etcd.
 */
export function enableEtcdAuth(
  url: string,
  options: {
    rootPassword: string;
    users: EtcdTestUser[];
    tls?: { caFile: string; certFile?: string; keyFile?: string };
  },
): void {
  const bin = findBinary('etcdctl');
  if (!bin) throw new Error('etcdctl not found on PATH (Debian: apt-get install -y etcd-client)');
  const base = ['--endpoints', url];
  const tls = options.tls;
  if (tls) {
    base.push('--cacert', tls.caFile);
    if (tls.certFile && tls.keyFile) base.push('--cert', tls.certFile, '--key', tls.keyFile);
  }
  const run = (...args: string[]): void => {
    execFileSync(bin, [...base, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ETCDCTL_API: '3' },
    });
  };
  run('user', 'add', `root:${options.rootPassword}`);
  run('role', 'add', 'root');
  run('user', 'grant-role', 'root', 'root');
  for (const u of options.users) {
    const role = `role-${u.name}`;
    run('user', 'add', `${u.name}:${u.password}`);
    run('role', 'add', role);
    run('role', 'grant-permission', role, '--prefix=true', 'readwrite', u.prefix ?? 'dynamo/');
    run('user', 'grant-role', u.name, role);
  }
  run('auth', 'enable');
}
