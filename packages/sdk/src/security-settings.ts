import { accessSync, constants, readFileSync } from 'node:fs';
import { InvalidArgumentError, NAME_PATTERN, type TlsFiles } from '@dynamo-ts/runtime';
import type { EtcdSecurityOptions } from '@dynamo-ts/runtime/etcd';
import type { NatsCredentials } from '@dynamo-ts/runtime/nats';

/**
 * The security half of the environment: NATS and etcd credentials and TLS files (Dynamo's
 * variable names), the frontend's API keys and bind host. Every check names the variable.
 */

/** How this process authenticates to NATS (from `NATS_AUTH_*`, `NATS_TLS_*`). */
export interface NatsClientSettings extends NatsCredentials {
  tls?: TlsFiles;
  /** `DYNAMO_NATS_INBOX_PREFIX`: prefix of this process's reply inboxes (default `_INBOX`). */
  inboxPrefix?: string;
}

/** The security settings of a process. */
export interface SecuritySettings {
  nats: NatsClientSettings;
  etcd: EtcdSecurityOptions;
  /**
   * API keys a frontend accepts (`DYNAMO_API_KEYS` comma-separated, `DYNAMO_API_KEY_FILE` one
   * a line, and the older single `DYNAMO_API_KEY`). Empty: no key required.
   */
  apiKeys: string[];
  /** `DYNAMO_METRICS_REQUIRE_KEY=1`: a frontend's `/metrics` needs an API key too. Default false. */
  metricsRequireKey: boolean;
  /** `DYNAMO_HOST`: address a frontend listens on. Default `0.0.0.0` (all interfaces, as the seed's frontend). */
  host: string;
  /**
   * `DYNAMO_SUBJECT_SCOPE`: a token added to this process's endpoint subjects, so a NATS
   * permission can allow its own subjects and no other worker's. Default: none.
   */
  subjectScope?: string;
}

/** The environment variables read here (strings, all optional). */
export const SECURITY_ENV = {
  NATS_AUTH_USERNAME: { type: 'string', minLength: 1 },
  NATS_AUTH_PASSWORD: { type: 'string', minLength: 1 },
  NATS_AUTH_TOKEN: { type: 'string', minLength: 1 },
  NATS_AUTH_NKEY: { type: 'string', pattern: '^\\s*SU[A-Z2-7]{50,}\\s*$' },
  NATS_AUTH_CREDENTIALS_FILE: { type: 'string', minLength: 1 },
  NATS_TLS_CA_CERT_PATH: { type: 'string', minLength: 1 },
  NATS_TLS_CLIENT_CERT_PATH: { type: 'string', minLength: 1 },
  NATS_TLS_CLIENT_KEY_PATH: { type: 'string', minLength: 1 },
  DYNAMO_NATS_INBOX_PREFIX: { type: 'string', pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$' },
  ETCD_AUTH_USERNAME: { type: 'string', minLength: 1 },
  ETCD_AUTH_PASSWORD: { type: 'string', minLength: 1 },
  ETCD_AUTH_CA: { type: 'string', minLength: 1 },
  ETCD_AUTH_CLIENT_CERT: { type: 'string', minLength: 1 },
  ETCD_AUTH_CLIENT_KEY: { type: 'string', minLength: 1 },
  DYNAMO_API_KEY: { type: 'string', minLength: 1 },
  DYNAMO_API_KEYS: { type: 'string', minLength: 1 },
  DYNAMO_API_KEY_FILE: { type: 'string', minLength: 1 },
  DYNAMO_METRICS_REQUIRE_KEY: { enum: ['0', '1'] },
  DYNAMO_HOST: { type: 'string', minLength: 1 },
  DYNAMO_SUBJECT_SCOPE: { type: 'string', pattern: NAME_PATTERN.source },
} as const;

/** Variables whose values are secrets: a message about them names the variable, never the value. */
export const SECRET_ENV: ReadonlySet<string> = new Set([
  'NATS_AUTH_PASSWORD',
  'NATS_AUTH_TOKEN',
  'NATS_AUTH_NKEY',
  'ETCD_AUTH_PASSWORD',
  'DYNAMO_API_KEY',
  'DYNAMO_API_KEYS',
]);

type Env = Partial<Record<keyof typeof SECURITY_ENV, string>>;

function readable(name: string, file: string): string {
  try {
    accessSync(file, constants.R_OK);
  } catch (e) {
    throw new InvalidArgumentError(`${name}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return file;
}

/** `a` and `b` go together: one without the other is an error naming both. */
function pair(env: Env, a: keyof Env, b: keyof Env, what: string): void {
  if ((env[a] === undefined) !== (env[b] === undefined)) {
    const [set, unset] = env[a] !== undefined ? [a, b] : [b, a];
    throw new InvalidArgumentError(`${set} is set but ${unset} is not: ${what} needs both`);
  }
}

function tlsFiles(env: Env, ca: keyof Env, cert: keyof Env, key: keyof Env): TlsFiles | undefined {
  pair(env, cert, key, 'mutual TLS');
  const tls: TlsFiles = {};
  if (env[ca] !== undefined) tls.caFile = readable(ca, env[ca]);
  if (env[cert] !== undefined) tls.certFile = readable(cert, env[cert]);
  if (env[key] !== undefined) tls.keyFile = readable(key, env[key]);
  return Object.keys(tls).length > 0 ? tls : undefined;
}

function natsFromEnv(env: Env): NatsClientSettings {
  pair(env, 'NATS_AUTH_USERNAME', 'NATS_AUTH_PASSWORD', 'NATS user/password authentication');
  const methods = (
    [
      ['NATS_AUTH_USERNAME', env.NATS_AUTH_USERNAME],
      ['NATS_AUTH_TOKEN', env.NATS_AUTH_TOKEN],
      ['NATS_AUTH_NKEY', env.NATS_AUTH_NKEY],
      ['NATS_AUTH_CREDENTIALS_FILE', env.NATS_AUTH_CREDENTIALS_FILE],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (methods.length > 1) {
    throw new InvalidArgumentError(
      `${methods.map(([k]) => k).join(' and ')} are both set: give one NATS authentication method`,
    );
  }
  const nats: NatsClientSettings = {};
  if (env.NATS_AUTH_USERNAME !== undefined) {
    nats.user = env.NATS_AUTH_USERNAME;
    nats.password = env.NATS_AUTH_PASSWORD;
  }
  if (env.NATS_AUTH_TOKEN !== undefined) nats.token = env.NATS_AUTH_TOKEN;
  if (env.NATS_AUTH_NKEY !== undefined) nats.nkeySeed = env.NATS_AUTH_NKEY.trim();
  if (env.NATS_AUTH_CREDENTIALS_FILE !== undefined) {
    nats.credsFile = readable('NATS_AUTH_CREDENTIALS_FILE', env.NATS_AUTH_CREDENTIALS_FILE);
  }
  const tls = tlsFiles(env, 'NATS_TLS_CA_CERT_PATH', 'NATS_TLS_CLIENT_CERT_PATH', 'NATS_TLS_CLIENT_KEY_PATH');
  if (tls) nats.tls = tls;
  if (env.DYNAMO_NATS_INBOX_PREFIX !== undefined) nats.inboxPrefix = env.DYNAMO_NATS_INBOX_PREFIX;
  return nats;
}

function etcdFromEnv(env: Env): EtcdSecurityOptions {
  pair(env, 'ETCD_AUTH_USERNAME', 'ETCD_AUTH_PASSWORD', 'etcd user/password authentication');
  const etcd: EtcdSecurityOptions = {};
  if (env.ETCD_AUTH_USERNAME !== undefined) {
    etcd.username = env.ETCD_AUTH_USERNAME;
    etcd.password = env.ETCD_AUTH_PASSWORD;
  }
  const tls = tlsFiles(env, 'ETCD_AUTH_CA', 'ETCD_AUTH_CLIENT_CERT', 'ETCD_AUTH_CLIENT_KEY');
  if (tls) etcd.tls = tls;
  return etcd;
}

function apiKeysFromEnv(env: Env): string[] {
  const keys: string[] = [];
  if (env.DYNAMO_API_KEY !== undefined) keys.push(env.DYNAMO_API_KEY.trim());
  if (env.DYNAMO_API_KEYS !== undefined) keys.push(...env.DYNAMO_API_KEYS.split(',').map((k) => k.trim()));
  if (env.DYNAMO_API_KEY_FILE !== undefined) {
    const file = readable('DYNAMO_API_KEY_FILE', env.DYNAMO_API_KEY_FILE);
    const lines = readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l.length > 0 && !l.startsWith('#'));
    if (lines.length === 0) throw new InvalidArgumentError(`DYNAMO_API_KEY_FILE: ${file} holds no key`);
    keys.push(...lines);
  }
  if (keys.some((k) => k.length === 0)) throw new InvalidArgumentError('DYNAMO_API_KEYS: empty key in the list');
  const short = keys.findIndex((k) => k.length < 8);
  if (short >= 0) throw new InvalidArgumentError(`API key #${short + 1} is shorter than 8 characters`);
  return [...new Set(keys)];
}

/** Reads the security settings from the (already schema-checked) environment. */
export function securityFromEnv(env: Env): SecuritySettings {
  const apiKeys = apiKeysFromEnv(env);
  const metricsRequireKey = env.DYNAMO_METRICS_REQUIRE_KEY === '1';
  if (metricsRequireKey && apiKeys.length === 0) {
    throw new InvalidArgumentError(
      'DYNAMO_METRICS_REQUIRE_KEY=1 needs an API key (DYNAMO_API_KEYS or DYNAMO_API_KEY_FILE)',
    );
  }
  return {
    nats: natsFromEnv(env),
    etcd: etcdFromEnv(env),
    apiKeys,
    metricsRequireKey,
    host: env.DYNAMO_HOST ?? '0.0.0.0',
    ...(env.DYNAMO_SUBJECT_SCOPE !== undefined ? { subjectScope: env.DYNAMO_SUBJECT_SCOPE } : {}),
  };
}
