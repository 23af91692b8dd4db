import {
  ClientClosedError,
  EtcdLeaseInvalidError,
  type Etcd3,
  GRPCDeadlineExceededError,
  isRecoverableError,
} from 'etcd3';
import {
  ClosedError,
  type DynamoError,
  InternalError,
  InvalidArgumentError,
  TimeoutError,
  UnavailableError,
  abortReason,
  isDynamoError,
  throwIfAborted,
  toDynamoError,
} from '../errors';
import type { Logger } from '../logger';
import { noopLogger } from '../logger';
import type { CallOptions } from '../options';
import { redactSecrets } from '../security/redact';
import { noop, onAbort, unrefTimeout } from '../util/abort';
import type { Discovery, DiscoveryStatus, KvEntry, KvWatch, PutOptions } from './discovery';
import {
  RETRY_MAX_MS,
  RETRY_MIN_MS,
  REVOKE_TIMEOUT_MS,
  buildEtcdClient,
  closeStream,
  describeEndpoints,
  errorMessage,
  isEtcdAuthError,
  isEtcdTlsError,
  jitter,
  prefixRange,
  type EtcdSecurityOptions,
} from './etcd-client';
import { EtcdKvWatch } from './etcd-watch';

export type { EtcdSecurityOptions } from './etcd-client';

/** Options of {@link EtcdDiscovery.connect}. */
export interface EtcdDiscoveryOptions extends EtcdSecurityOptions {
  /**
   * etcd client URLs (`http://127.0.0.1:2379`, `https://host:2379` or `127.0.0.1:2379`; credentials
   * in a URL, `http://user:pw@host`, are taken out of it and of every message). With several (the members of
   * one cluster), each call goes to one of them and moves to the next when its member is down.
   */
  endpoints: string[];
  /**
   * TTL of the client's lease. etcd counts whole seconds: rounded up, at least 1 s (and etcd may
   * raise it to its own minimum). Keep-alives go every third of it. Default 10000.
   */
  leaseTtlMs?: number;
  logger?: Logger;
  /** How long {@link EtcdDiscovery.connect} keeps trying to reach etcd and grant the lease. Default 5000 ms. */
  dialTimeoutMs?: number;
  /** Deadline of each etcd call (get, put, keep-alive, ...) when the caller gives no `timeoutMs`. Default 5000 ms. */
  callTimeoutMs?: number;
}

/**
 * The {@link Discovery} on etcd v3 (etcd3 client): one lease per client, kept alive every third
 * of its TTL; leased keys bound to it; prefix watches that never miss an event.
 *
 * Outages: background work never throws and never exits the process. While etcd is unreachable,
 * {@link EtcdDiscovery.status} is `disconnected`, calls fail with UNAVAILABLE, and watches stay
 * open. When etcd returns, the keep-alive finds out whether the lease survived; if it expired, the
 * lease is granted again WITH THE SAME ID and every leased key is put again with its value, so
 * {@link EtcdDiscovery.leaseId} (the instance id) never changes. Watches re-read their prefix and
 * report the difference with what they reported before, then watch again.
 */
// Also a WatchHost, structurally (the members it needs are internal: not in the published types).
export class EtcdDiscovery implements Discovery {
  readonly leaseId: string;
  /** @internal */ readonly client: Etcd3;
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly callTimeoutMs: number;
  /** The lease id as etcd's decimal int64 string. */
  private readonly leaseIdDec: string;
  private readonly ttlSec: number;
  private readonly keepAliveMs: number;
  private currentStatus: DiscoveryStatus = 'connected';
  /** Leased keys this client put, put again when the lease had to be re-granted. */
  private readonly leased = new Map<string, string>();
  private readonly watches = new Set<EtcdKvWatch>();
  private readonly connectedWaiters = new Set<() => void>();
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private ticking = false;
  private needsReput = false;
  private recovering: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    client: Etcd3,
    leaseIdDec: string,
    ttlSec: number,
    logger: Logger,
    callTimeoutMs: number,
    private readonly endpointCount: number,
  ) {
    this.client = client;
    this.leaseIdDec = leaseIdDec;
    this.leaseId = BigInt(leaseIdDec).toString(16);
    this.ttlSec = ttlSec;
    this.keepAliveMs = (ttlSec * 1000) / 3;
    this.logger = logger.child({ lease_id: this.leaseId });
    this.callTimeoutMs = callTimeoutMs;
    this.schedule(this.keepAliveMs);
  }

  /**
   * Connects to etcd and grants the client's lease. Fails with UNAVAILABLE when etcd cannot be
   * reached within `dialTimeoutMs`.
   */
  static async connect(options: EtcdDiscoveryOptions): Promise<EtcdDiscovery> {
    const endpoints = options.endpoints?.map((e) => e.trim()).filter((e) => e.length > 0) ?? [];
    if (endpoints.length === 0) throw new InvalidArgumentError('EtcdDiscovery: at least one endpoint is required');
    const ttlMs = options.leaseTtlMs ?? 10_000;
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) {
      throw new InvalidArgumentError(`leaseTtlMs must be a positive number, got ${ttlMs}`);
    }
    const dialTimeoutMs = options.dialTimeoutMs ?? 5000;
    const callTimeoutMs = options.callTimeoutMs ?? 5000;
    const ttlSec = Math.max(1, Math.ceil(ttlMs / 1000));
    const logger = (options.logger ?? noopLogger).child({ component: 'etcd-discovery' });
    const { client, endpoints: clean, secrets, authenticates } = buildEtcdClient(endpoints, options);
    const until = Date.now() + dialTimeoutMs;
    for (;;) {
      try {
        const deadline = (): number => Math.min(until, Date.now() + callTimeoutMs);
        const res = await client.leaseClient.leaseGrant({ TTL: ttlSec, ID: 0 }, { deadline: deadline() });
        if (!authenticates) {
          // etcd grants leases to anyone; a read tells whether it requires credentials.
          try {
            await client.kv.range({ key: Buffer.from('dynamo/'), count_only: true }, { deadline: deadline() });
          } catch (probe) {
            if (!isEtcdAuthError(probe)) throw probe;
            await client.leaseClient.leaseRevoke({ ID: res.ID }, { deadline: deadline() }).catch(noop);
            throw probe;
          }
        }
        logger.info('lease granted', { lease_id: BigInt(res.ID).toString(16), ttl_s: Number(res.TTL) });
        return new EtcdDiscovery(client, res.ID, ttlSec, logger, callTimeoutMs, endpoints.length);
      } catch (e) {
        const where = describeEndpoints(clean);
        const why = redactSecrets(errorMessage(e), secrets);
        // Wrong credentials or certificates will be refused again: fail now, not after the dial timeout.
        if (isEtcdAuthError(e)) {
          client.close();
          throw new UnavailableError(`etcd at ${where} refused the credentials: ${why}`, { retryable: false });
        }
        if (Date.now() + RETRY_MIN_MS >= until) {
          client.close();
          if (isEtcdTlsError(e)) throw new UnavailableError(`TLS with etcd failed at ${where}: ${why}`);
          // etcd with --client-cert-auth drops a client without an acceptable certificate; gRPC
          // then only reports the deadline.
          const hint =
            options.tls !== undefined || clean.some((u) => u.startsWith('https:'))
              ? ' (with TLS: check the CA and, for --client-cert-auth, the client certificate and key)'
              : '';
          throw new UnavailableError(`cannot reach etcd at ${where}: ${why}${hint}`);
        }
        await new Promise((r) => unrefTimeout(() => r(undefined), 200));
      }
    }
  }

  /** Current link health: `disconnected` while etcd cannot be reached. */
  get status(): DiscoveryStatus {
    return this.currentStatus;
  }

  async put(key: string, value: string, options: PutOptions = {}): Promise<void> {
    this.check(options);
    checkKey(key);
    if (typeof value !== 'string') throw new InvalidArgumentError(`value of ${key} must be a string`);
    const leased = options.lease ?? true;
    const put = (): Promise<unknown> =>
      this.call('put', options, (deadline) =>
        this.client.kv.put(
          { key: Buffer.from(key), value: Buffer.from(value), lease: leased ? this.leaseIdDec : 0 },
          { deadline },
        ),
      );
    try {
      await put();
    } catch (e) {
      if (!(leased && e instanceof LeaseLost)) throw e;
      // The lease expired (an outage longer than the TTL): grant it again, then retry once.
      try {
        await this.recoverLease();
      } catch (r) {
        throw this.mapError(r, 'put', options.timeoutMs);
      }
      await put();
    }
    if (leased) this.leased.set(key, value);
    else this.leased.delete(key);
  }

  async get(key: string, options: CallOptions = {}): Promise<string | undefined> {
    this.check(options);
    checkKey(key);
    const res = await this.call('get', options, (deadline) =>
      this.client.kv.range({ key: Buffer.from(key) }, { deadline }),
    );
    const kv = res.kvs[0];
    return kv ? kv.value.toString('utf8') : undefined;
  }

  async getPrefix(prefix: string, options: CallOptions = {}): Promise<KvEntry[]> {
    this.check(options);
    return (await this.range(prefix, options)).entries;
  }

  async delete(key: string, options: CallOptions = {}): Promise<void> {
    this.check(options);
    checkKey(key);
    await this.call('delete', options, (deadline) =>
      this.client.kv.deleteRange({ key: Buffer.from(key) }, { deadline }),
    );
    this.leased.delete(key);
  }

  watchPrefix(prefix: string, options: { signal?: AbortSignal } = {}): KvWatch {
    const watch = new EtcdKvWatch(this, prefix);
    if (this.closing) {
      watch.fail(new ClosedError('discovery client closed'));
      return watch;
    }
    if (options.signal?.aborted) {
      watch.close();
      return watch;
    }
    this.watches.add(watch);
    watch.start(options.signal);
    return watch;
  }

  /** Revokes the lease (leased keys vanish at once), ends the watches and closes the etcd client. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown(true);
    return this.closing;
  }

  /**
   * Testing: simulates the process being killed. Stops keep-alives, ends the watches and closes
   * the etcd client WITHOUT revoking the lease, which then expires after its TTL.
   */
  crash(): Promise<void> {
    this.closing ??= this.shutdown(false);
    return this.closing;
  }

  /** @internal Every key under `prefix` (sorted by key) and the store revision they were read at. */
  async range(prefix: string, options: CallOptions): Promise<{ revision: string; entries: KvEntry[] }> {
    const res = await this.call('get prefix', options, (deadline) =>
      this.client.kv.range({ ...prefixRange(prefix), sort_order: 'Ascend', sort_target: 'Key' }, { deadline }),
    );
    return {
      revision: res.header.revision,
      entries: res.kvs.map((kv) => ({ key: kv.key.toString('utf8'), value: kv.value.toString('utf8') })),
    };
  }

  /** @internal */
  whenConnected(maxMs: number): Promise<void> {
    if (this.currentStatus !== 'disconnected') return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.connectedWaiters.delete(wake);
        resolve();
      };
      const timer = unrefTimeout(wake, maxMs);
      this.connectedWaiters.add(wake);
    });
  }

  /** @internal */
  forget(w: EtcdKvWatch): void {
    this.watches.delete(w);
  }

  private async shutdown(revoke: boolean): Promise<void> {
    this.currentStatus = 'closed';
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    for (const w of [...this.watches]) w.close();
    for (const wake of [...this.connectedWaiters]) wake();
    if (revoke) {
      try {
        await this.client.leaseClient.leaseRevoke(
          { ID: this.leaseIdDec },
          { deadline: Date.now() + REVOKE_TIMEOUT_MS },
        );
        this.logger.info('lease revoked');
      } catch (e) {
        if (!(e instanceof EtcdLeaseInvalidError)) {
          this.logger.warn('could not revoke the lease; it will expire after its TTL', { error: errorMessage(e) });
        }
      }
    }
    this.leased.clear();
    this.client.close();
  }

  /** Runs one etcd call with a deadline and the caller's signal, mapping its errors. */
  private async call<T>(what: string, options: CallOptions, fn: (deadline: number) => Promise<T>): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.callTimeoutMs;
    let p = fn(Date.now() + timeoutMs);
    const { signal } = options;
    if (signal) {
      let off = noop;
      p = Promise.race([
        p,
        new Promise<never>((_, reject) => {
          off = onAbort(signal, () => reject(abortReason(signal)));
        }),
      ]).finally(() => off());
    }
    try {
      const result = await p;
      if (this.currentStatus === 'disconnected') this.kick();
      return result;
    } catch (e) {
      throw this.mapError(e, what, options.timeoutMs);
    }
  }

  private mapError(e: unknown, what: string, userTimeoutMs: number | undefined): DynamoError {
    if (isDynamoError(e)) return toDynamoError(e);
    if (this.closing || e instanceof ClientClosedError) return new ClosedError('discovery client closed', { cause: e });
    if (e instanceof EtcdLeaseInvalidError) return new LeaseLost(e);
    if (e instanceof GRPCDeadlineExceededError && userTimeoutMs !== undefined) {
      return new TimeoutError(`etcd ${what} timed out after ${userTimeoutMs} ms`, { cause: e });
    }
    if (e instanceof Error && isRecoverableError(e)) {
      this.setStatus('disconnected', e);
      this.kick();
      return new UnavailableError(`etcd unavailable (${what}): ${errorMessage(e)}`, { cause: e });
    }
    return new InternalError(`etcd ${what} failed: ${errorMessage(e)}`, { cause: e });
  }

  private check(options: CallOptions): void {
    if (this.closing) throw new ClosedError('discovery client closed');
    throwIfAborted(options.signal);
  }

  private schedule(ms: number): void {
    if (this.closing) return;
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = unrefTimeout(() => void this.tick(), ms);
  }

  /** Runs a keep-alive soon (etcd looks reachable again, or a call just failed). */
  private kick(): void {
    if (!this.ticking) this.schedule(0);
  }

  /** One keep-alive round: renew the lease, recover it when it was lost. Never throws. */
  private async tick(): Promise<void> {
    if (this.closing || this.ticking) return;
    this.ticking = true;
    try {
      const alive = await this.keepAlive();
      if (this.closing) return;
      if (!alive || this.needsReput) await this.recoverLease(!alive);
      if (this.closing) return;
      this.setStatus('connected');
    } catch (e) {
      if (!this.closing) this.setStatus('disconnected', e);
    } finally {
      this.ticking = false;
      this.schedule(
        this.currentStatus === 'connected' ? this.keepAliveMs : Math.min(this.keepAliveMs, jitter(RETRY_MAX_MS)),
      );
    }
  }

  /**
   * Renews the lease: one keep-alive, and with several endpoints up to one per endpoint (each
   * attempt goes to a member picked anew), so a dead member does not cost the lease its renewal.
   */
  private async keepAlive(): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.keepAliveOnce();
      } catch (e) {
        if (this.closing || attempt >= this.endpointCount) throw e;
        this.logger.debug('keep-alive failed; trying another member', { attempt, error: errorMessage(e) });
      }
    }
  }

  /** Sends one keep-alive; resolves false when etcd says the lease no longer exists. */
  private async keepAliveOnce(): Promise<boolean> {
    const stream = await this.client.leaseClient.leaseKeepAlive();
    return await new Promise<boolean>((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        closeStream(stream);
        f();
      };
      const timer = unrefTimeout(
        () => settle(() => reject(new UnavailableError('etcd did not answer the lease keep-alive'))),
        this.callTimeoutMs,
      );
      stream.on('data', (res) => settle(() => resolve(Number(res.TTL) > 0)));
      stream.on('error', (err) => settle(() => reject(err)));
      stream.on('end', () => settle(() => reject(new UnavailableError('lease keep-alive stream ended'))));
      if (this.closing) {
        settle(() => reject(new ClosedError('discovery client closed')));
        return;
      }
      stream.write({ ID: this.leaseIdDec });
    });
  }

  /** Grants the lease again with the same id (when `lost`) and re-puts every leased key. Shared by concurrent callers. */
  private recoverLease(lost = true): Promise<void> {
    this.recovering ??= (async () => {
      if (lost) {
        this.needsReput = true;
        try {
          await this.client.leaseClient.leaseGrant(
            { TTL: this.ttlSec, ID: this.leaseIdDec },
            { deadline: Date.now() + this.callTimeoutMs },
          );
          this.logger.warn('lease was lost; granted it again with the same id', { keys: this.leased.size });
        } catch (e) {
          // Someone (another put) re-granted it first: fine.
          if (!/lease already exists/.test(errorMessage(e))) throw e;
        }
      }
      for (const [key, value] of [...this.leased]) {
        if (this.closing) return;
        if (this.leased.get(key) !== value) continue;
        await this.client.kv.put(
          { key: Buffer.from(key), value: Buffer.from(value), lease: this.leaseIdDec },
          { deadline: Date.now() + this.callTimeoutMs },
        );
      }
      if (this.needsReput && this.leased.size > 0)
        this.logger.info('leased keys registered again', { keys: this.leased.size });
      this.needsReput = false;
    })().finally(() => {
      this.recovering = undefined;
    });
    return this.recovering;
  }

  private setStatus(status: 'connected' | 'disconnected', cause?: unknown): void {
    if (this.closing || status === this.currentStatus) return;
    this.currentStatus = status;
    if (status === 'connected') for (const wake of [...this.connectedWaiters]) wake();
    if (status === 'disconnected')
      this.logger.warn('lost etcd', { error: cause === undefined ? undefined : errorMessage(cause) });
    else this.logger.info('etcd reachable again');
  }
}

/** Internal: a leased put found the lease gone (it is re-granted and the put retried). */
class LeaseLost extends UnavailableError {
  constructor(cause: unknown) {
    super('the discovery lease was lost', { cause });
    this.name = 'LeaseLost';
  }
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidArgumentError('key must be a non-empty string');
}
