import {
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
  isRecoverableError,
  type IDuplexStream,
  type IOptions,
  type IWatchRequest,
  type IWatchResponse,
} from 'etcd3';
import { InvalidArgumentError } from '../errors';
import { redactUrl, splitUrlCredentials } from '../security/redact';
import { readTlsFiles, type TlsFiles } from '../security/tls';

/**
 * The etcd3 client of {@link EtcdDiscovery} and the helpers its lease and watch code share:
 * fault policies, key ranges, stream teardown, retry delays.
 */

/** Retry delays while etcd is unreachable (keep-alives, watches). */
export const RETRY_MIN_MS = 100;
export const RETRY_MAX_MS = 1000;
/** How long close() waits for the lease revocation. */
export const REVOKE_TIMEOUT_MS = 2000;

export type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;

/**
 * A fault policy (cockatiel's `IPolicy` shape) that runs the call once: etcd3's default retries
 * and circuit breaker would hide outages and delay recovery by seconds; this class retries itself.
 */
export const passthroughPolicy = {
  execute<T>(fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T): Promise<T> {
    return Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 }));
  },
};
type FaultHandling = NonNullable<IOptions['faultHandling']>;

/**
 * The policy of a client with several endpoints (an etcd cluster): a call that fails because its
 * member is unreachable (a recoverable gRPC error other than the deadline) is tried on the next
 * member, up to once per endpoint, within the same deadline. etcd3 walks its hosts in a shuffled
 * order across these attempts, so one dead member costs a failed connection, not a failed call.
 */
export function failoverPolicy(attempts: number): typeof passthroughPolicy {
  return {
    async execute<T>(fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T): Promise<T> {
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn({ signal: new AbortController().signal, attempt });
        } catch (e) {
          const retry =
            attempt + 1 < attempts &&
            e instanceof Error &&
            isRecoverableError(e) &&
            !(e instanceof GRPCDeadlineExceededError);
          if (!retry) throw e;
        }
      }
    },
  };
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The exclusive end of the key range holding every key that starts with `prefix`. */
export function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  if (prefix.length === 0) return { key: Buffer.from([0]), range_end: Buffer.from([0]) };
  const key = Buffer.from(prefix, 'utf8');
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return { key, range_end: end.subarray(0, i + 1) };
    }
  }
  return { key, range_end: Buffer.from([0]) };
}

/** Half-closes a gRPC stream, then cancels it (etcd keeps watch streams open after a half-close). */
export function closeStream(stream: { end(): void; cancel(): void }): void {
  try {
    // After end() the stream is no longer writable, so etcd3 does not mistake the cancellation
    // below for a failed host (which would reset every channel).
    stream.end();
  } catch {
    // already ended
  }
  try {
    stream.cancel();
  } catch {
    // already cancelled
  }
}

export function jitter(ms: number): number {
  return ms / 2 + Math.random() * (ms / 2);
}

/** How an etcd client authenticates and encrypts (see {@link EtcdDiscoveryOptions}). */
export interface EtcdSecurityOptions {
  /** etcd user (`etcdctl user add`); requires `password`. Also taken from `http://user:pw@host` endpoints. */
  username?: string;
  password?: string;
  /**
   * TLS: the CA etcd's certificate must chain to and, for `--client-cert-auth`, the client
   * certificate and key. Setting it (or an `https://` endpoint) requires TLS.
   */
  tls?: TlsFiles;
}

/** The etcd3 client built from endpoints and security options, and what may be logged about it. */
export interface BuiltEtcdClient {
  client: Etcd3;
  /** Endpoints without credentials. */
  endpoints: string[];
  /** Secret values that must never appear in a message. */
  secrets: string[];
  /** Whether the client logs in (a user from the options or an endpoint URL). */
  authenticates: boolean;
}

/**
 * Builds the etcd3 client: takes credentials out of the endpoint URLs, reads the TLS files, and
 * installs the fault policies (each call runs once; with several endpoints a call moves to the
 * next member). Fails with INVALID_ARGUMENT naming the option, never holding a secret.
 */
export function buildEtcdClient(rawEndpoints: readonly string[], security: EtcdSecurityOptions): BuiltEtcdClient {
  let { username, password } = security;
  const endpoints: string[] = [];
  for (const e of rawEndpoints) {
    const split = splitUrlCredentials(e);
    endpoints.push(split.url);
    if (split.user !== undefined) username ??= split.user;
    if (split.password !== undefined) password ??= split.password;
  }
  if ((username === undefined) !== (password === undefined)) {
    throw new InvalidArgumentError(
      username === undefined ? 'etcd: a password is set but no username' : 'etcd: username is set but no password',
    );
  }
  const options: IOptions = {
    hosts: endpoints,
    faultHandling: {
      host: () => passthroughPolicy as unknown as ReturnType<NonNullable<FaultHandling['host']>>,
      global: (endpoints.length > 1
        ? failoverPolicy(endpoints.length)
        : passthroughPolicy) as unknown as FaultHandling['global'],
    },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5000,
    },
  };
  if (username !== undefined && password !== undefined) options.auth = { username, password };
  if (security.tls !== undefined) {
    const m = readTlsFiles('etcd', security.tls);
    // gRPC takes a missing CA as "the system's CAs".
    options.credentials = {
      rootCertificate: m.ca as Buffer,
      ...(m.key ? { privateKey: m.key } : {}),
      ...(m.cert ? { certChain: m.cert } : {}),
    };
  }
  return {
    client: new Etcd3(options),
    endpoints,
    secrets: password !== undefined ? [password] : [],
    authenticates: username !== undefined,
  };
}

/** True when etcd refused who the client is (wrong user or password, no permission): retrying will not help. */
export function isEtcdAuthError(e: unknown): boolean {
  return (
    e instanceof EtcdAuthenticationFailedError ||
    e instanceof EtcdPermissionDeniedError ||
    e instanceof EtcdUserNotFoundError ||
    e instanceof EtcdInvalidAuthTokenError ||
    e instanceof GRPCUnauthenticatedError ||
    (e instanceof Error &&
      /user name is empty|authentication failed|permission denied|invalid auth token/i.test(e.message))
  );
}

/** True when the TLS handshake with etcd failed (wrong CA, no or refused client certificate). */
export function isEtcdTlsError(e: unknown): boolean {
  return e instanceof Error && /ssl|tls|certificate|handshake|WRONG_VERSION_NUMBER/i.test(e.message);
}

/** Endpoints as they may appear in a log line or message. */
export function describeEndpoints(endpoints: readonly string[]): string {
  return endpoints.map(redactUrl).join(',');
}
