import { readFileSync } from 'node:fs';
import {
  AuthorizationError,
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  nkeys,
  type Authenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { type DynamoError, InvalidArgumentError, UnavailableError } from './errors';
import type { Logger } from './logger';
import { noopLogger } from './logger';
import { redactSecrets, redactUrl, splitUrlCredentials } from './security/redact';
import { readTlsFiles, type TlsFiles } from './security/tls';

/**
 * How a client proves who it is to nats-server: at most one method (user + password, token,
 * nkey seed or a JWT creds file). Credentials in a server URL (`nats://user:pw@host`,
 * `nats://token@host`) count as user + password or token.
 */
export interface NatsCredentials {
  /** User name; requires `password`. */
  user?: string;
  password?: string;
  /** Authorization token. */
  token?: string;
  /** User nkey seed (`SU...`); the server knows the public key. */
  nkeySeed?: string;
  /** File holding a user JWT and its nkey seed (`nsc` / `nats` CLI `.creds` format). */
  credsFile?: string;
}

/** Options of {@link connectNats}. */
export interface ConnectNatsOptions extends NatsCredentials {
  /**
   * Server URLs (`nats://127.0.0.1:4222`, `tls://host:4222`), or one URL / a comma-separated
   * list. Credentials in a URL are taken out of it (and out of every log line).
   */
  servers: string | string[];
  /**
   * TLS: the CA the server certificate must chain to and, for mutual TLS, the client certificate
   * and key. Setting it (or a `tls://` URL) requires TLS.
   */
  tls?: TlsFiles;
  /**
   * Prefix of the reply inboxes this client creates (default `_INBOX`). Give each NATS user its
   * own (e.g. `_INBOX_worker1`) so its permissions can allow its own inboxes and no one else's.
   */
  inboxPrefix?: string;
  /** Client name shown by the server's monitoring (`/connz`). */
  name?: string;
  /** Logs connection events (disconnect, reconnect, errors) with `component: "nats"`. Default: none. */
  logger?: Logger;
  /** Base wait between reconnect attempts. Default 1000 ms. */
  reconnectTimeWaitMs?: number;
  /** Random extra wait, up to this, added to each reconnect wait (spreads a herd). Default 500 ms. */
  reconnectJitterMs?: number;
  /** Give up the first connection after this long. Default 5000 ms. */
  timeoutMs?: number;
  /**
   * Keep trying the first connection forever instead of failing when no server answers
   * (the returned promise resolves once one does). Default false: fail fast at startup.
   */
  waitOnFirstConnect?: boolean;
  /** Client pings every this many ms to detect a dead server. Default 30000 ms. */
  pingIntervalMs?: number;
  /** Unanswered pings before the connection counts as stale and is re-established. Default 2. */
  maxPingOut?: number;
}

/** The nats.js options of {@link ConnectNatsOptions}, and the secrets to scrub from messages. */
export interface CompiledNatsOptions {
  /** Servers without credentials. */
  servers: string[];
  connection: ConnectionOptions;
  /** Secret values (passwords, tokens, seeds) that must never appear in a message. */
  secrets: string[];
}

const CREDS_JWT = /-{3,}BEGIN NATS USER JWT-{3,}\s*\n\s*([A-Za-z0-9_=.-]+)\s*\n/;
const CREDS_SEED = /-{3,}BEGIN USER NKEY SEED-{3,}\s*\n\s*(SU[A-Z2-7]+)\s*\n/;

/**
 * Reads and checks a JWT creds file: a `NATS USER JWT` block and a `USER NKEY SEED` block.
 * Fails with INVALID_ARGUMENT naming the file (never its contents).
 */
export function readCredsFile(file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(
      `nats credsFile: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const jwt = CREDS_JWT.exec(text);
  const seed = CREDS_SEED.exec(text);
  if (!jwt || jwt[1]!.split('.').length !== 3) {
    throw new InvalidArgumentError(`nats credsFile ${file}: no "BEGIN NATS USER JWT" block with a JWT`);
  }
  if (!seed) throw new InvalidArgumentError(`nats credsFile ${file}: no "BEGIN USER NKEY SEED" block with a user seed`);
  try {
    nkeys.fromSeed(new TextEncoder().encode(seed[1]!));
  } catch {
    throw new InvalidArgumentError(`nats credsFile ${file}: the user seed is not a valid nkey seed`);
  }
  return new TextEncoder().encode(text);
}

/**
 * Turns {@link ConnectNatsOptions} into nats.js options: takes credentials out of the URLs,
 * checks that at most one auth method is given and each is complete, reads the TLS and creds
 * files. Fails with INVALID_ARGUMENT naming the option; messages never hold a secret.
 */
export function compileNatsOptions(options: ConnectNatsOptions): CompiledNatsOptions {
  const raw = (Array.isArray(options.servers) ? options.servers : options.servers.split(','))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (raw.length === 0) throw new InvalidArgumentError('connectNats: at least one server URL is required');
  const creds: NatsCredentials = {
    user: options.user,
    password: options.password,
    token: options.token,
    nkeySeed: options.nkeySeed,
    credsFile: options.credsFile,
  };
  const servers: string[] = [];
  for (const s of raw) {
    const split = splitUrlCredentials(s);
    servers.push(split.url);
    if (split.user === undefined && split.password === undefined) continue;
    // nats://user:pw@host is user + password; nats://token@host is a token.
    if (split.password !== undefined) {
      creds.user ??= split.user;
      creds.password ??= split.password;
    } else creds.token ??= split.user;
  }
  const methods = [
    creds.user !== undefined || creds.password !== undefined ? 'user/password' : undefined,
    creds.token !== undefined ? 'token' : undefined,
    creds.nkeySeed !== undefined ? 'nkeySeed' : undefined,
    creds.credsFile !== undefined ? 'credsFile' : undefined,
  ].filter((m): m is string => m !== undefined);
  if (methods.length > 1) {
    throw new InvalidArgumentError(`nats: give one authentication method, not ${methods.join(' + ')}`);
  }
  if (creds.password !== undefined && creds.user === undefined) {
    throw new InvalidArgumentError('nats: a password is set but no user');
  }
  if (creds.user !== undefined && creds.password === undefined) {
    throw new InvalidArgumentError(`nats: user is set but no password`);
  }
  const connection: ConnectionOptions = { servers };
  if (creds.user !== undefined) {
    connection.user = creds.user;
    connection.pass = creds.password;
  }
  if (creds.token !== undefined) connection.token = creds.token;
  let authenticator: Authenticator | undefined;
  if (creds.nkeySeed !== undefined) {
    const seed = new TextEncoder().encode(creds.nkeySeed.trim());
    try {
      nkeys.fromSeed(seed);
    } catch {
      throw new InvalidArgumentError('nats nkeySeed: not a valid nkey seed (expected SU...)');
    }
    authenticator = nkeyAuthenticator(seed);
  }
  if (creds.credsFile !== undefined) authenticator = credsAuthenticator(readCredsFile(creds.credsFile));
  if (authenticator) connection.authenticator = authenticator;
  if (options.tls !== undefined) {
    const m = readTlsFiles('nats', options.tls);
    connection.tls = {
      ...(m.ca ? { ca: m.ca.toString('utf8') } : {}),
      ...(m.cert ? { cert: m.cert.toString('utf8') } : {}),
      ...(m.key ? { key: m.key.toString('utf8') } : {}),
    };
  }
  // A tls:// URL requires TLS even without files (the system CAs verify the server).
  if (connection.tls === undefined && servers.some((s) => /^tls:\/\//i.test(s))) connection.tls = {};
  if (options.inboxPrefix !== undefined) {
    if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(options.inboxPrefix)) {
      throw new InvalidArgumentError(`nats inboxPrefix ${JSON.stringify(options.inboxPrefix)} is not a subject prefix`);
    }
    connection.inboxPrefix = options.inboxPrefix;
  }
  const secrets = [creds.password, creds.token, creds.nkeySeed].filter((s): s is string => s !== undefined);
  return { servers, connection, secrets };
}

/** Why the server refused the connection, as an error that tells the operator what to fix. */
function connectError(e: unknown, servers: string[], secrets: string[], tls: boolean): DynamoError {
  const msg = redactSecrets(e instanceof Error ? e.message : String(e), secrets);
  const where = servers.map(redactUrl).join(',');
  if (e instanceof AuthorizationError || /authorization|authentication/i.test(msg)) {
    // Not retryable: the same credentials will be refused again.
    return new UnavailableError(`NATS at ${where} refused the credentials: ${msg}`, { retryable: false });
  }
  if (/certificate|self.signed|tls|ssl|handshake|EPROTO/i.test(msg)) {
    return new UnavailableError(`TLS with NATS at ${where} failed: ${msg}`, { retryable: false });
  }
  // A server that requires client certificates (`verify: true`) drops a client without an
  // acceptable one after the handshake, which nats.js reports as a timeout.
  const hint =
    tls && /timeout/i.test(msg) ? ' (with TLS: does the server require a client certificate signed by its CA?)' : '';
  return new UnavailableError(`cannot connect to NATS at ${where}: ${msg}${hint}`);
}

/**
 * Connects to NATS with the settings every dynamo-ts process wants: reconnect forever (with
 * a jittered wait, re-establishing the subscriptions), and every connection event logged
 * as one structured line. Close the connection with `nc.drain()` or `nc.close()` after the
 * planes built on it are closed.
 *
 * Fails with UNAVAILABLE when no server answers the first connection (unless `waitOnFirstConnect`),
 * and with a non-retryable UNAVAILABLE when the server refuses the credentials or the TLS
 * handshake. Neither messages nor log lines hold a password, token, seed or URL credential.
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const compiled = compileNatsOptions(options);
  const logger = (options.logger ?? noopLogger).child({ component: 'nats' });
  let nc: NatsConnection;
  try {
    nc = await connect({
      ...compiled.connection,
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 1000,
      reconnectJitter: options.reconnectJitterMs ?? 500,
      timeout: options.timeoutMs ?? 5000,
      waitOnFirstConnect: options.waitOnFirstConnect ?? false,
      pingInterval: options.pingIntervalMs ?? 30_000,
      maxPingOut: options.maxPingOut ?? 2,
    });
  } catch (e) {
    throw connectError(e, compiled.servers, compiled.secrets, compiled.connection.tls !== undefined);
  }
  logger.info('connected', { server: redactUrl(nc.getServer()), max_payload: nc.info?.max_payload });
  void logStatus(nc, logger, compiled.secrets);
  return nc;
}

/** Logs the connection's status events until it closes. Never throws. */
async function logStatus(nc: NatsConnection, logger: Logger, secrets: string[]): Promise<void> {
  const clean = (s: string): string => redactSecrets(s, secrets);
  try {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          logger.warn('disconnected from NATS', { server: clean(s.server) });
          break;
        case 'reconnecting':
          logger.debug('reconnecting to NATS');
          break;
        case 'reconnect':
          logger.info('reconnected to NATS', { server: clean(s.server) });
          break;
        case 'error':
          logger.error('NATS connection error', { error: clean(s.error.message) });
          break;
        case 'ldm':
          logger.warn('NATS server entering lame duck mode', { server: clean(s.server) });
          break;
        case 'staleConnection':
          logger.warn('NATS connection stale; reconnecting');
          break;
        case 'slowConsumer':
          logger.warn('slow NATS consumer', { subject: s.sub.getSubject(), pending: s.pending });
          break;
        case 'close':
          logger.info('NATS connection closed');
          break;
        default:
          break;
      }
    }
  } catch (e) {
    logger.debug('NATS status stream ended', { error: clean(e instanceof Error ? e.message : String(e)) });
  }
}
