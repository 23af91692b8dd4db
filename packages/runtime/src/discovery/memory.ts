import {
  ClosedError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  isDynamoError,
  throwIfAborted,
} from '../errors';
import type { Logger } from '../logger';
import { noopLogger } from '../logger';
import { randomId64 } from '../names';
import type { CallOptions } from '../options';
import { Channel } from '../util/channel';
import { noop, onAbort, unrefInterval, unrefTimeout } from '../util/abort';
import { checkTimerMs, MAX_TIMER_MS } from '../util/timers';
import type { Discovery, DiscoveryStatus, KvEntry, DiscoveryEvent, KvWatch, PutOptions } from './discovery';

/** Options of {@link MemoryKvStore}. */
export interface MemoryKvStoreOptions {
  logger?: Logger;
}

/** What a {@link MemoryKvStore} tells the clients attached to it (see {@link MemoryKvStore.attach}). */
export interface MemoryKvStoreClient {
  /** The store became reachable (true) or unreachable (false). */
  onAvailabilityChange(available: boolean): void;
  /** The store was closed: the client must stop. */
  onStoreClosed(): void;
}

interface StoredValue {
  value: string;
  lease: string | undefined;
  modRevision: number;
}

interface Lease {
  readonly id: string;
  readonly ttlMs: number;
  readonly timer: NodeJS.Timeout;
  readonly keys: Set<string>;
}

interface StoreWatcher {
  readonly prefix: string;
  readonly listener: (event: DiscoveryEvent) => void;
  /** Events held back while the store is unavailable (delivered in order when it returns). */
  pending: DiscoveryEvent[];
}

/**
 * The embedded "etcd server": keys with revisions, leases that expire after their TTL unless
 * kept alive, and prefix watchers. Shared by every {@link MemoryDiscovery} of a process.
 *
 * The data methods are the store's server API: {@link MemoryDiscovery} calls them, and tests may
 * use them to inspect the store. While the store is unavailable ({@link MemoryKvStore.setAvailable})
 * they fail with UNAVAILABLE, leases are not kept alive (so they expire), and watch events are
 * held back and delivered when it returns, as a watch resumed from its last revision would.
 */
export class MemoryKvStore {
  private readonly data = new Map<string, StoredValue>();
  private readonly leases = new Map<string, Lease>();
  private readonly watchers = new Set<StoreWatcher>();
  private readonly clients = new Set<MemoryKvStoreClient>();
  private rev = 0;
  private isAvailable = true;
  private isClosed = false;
  private readonly logger: Logger;

  constructor(options: MemoryKvStoreOptions = {}) {
    this.logger = (options.logger ?? noopLogger).child({ component: 'memory-kv-store' });
  }

  /** Revision of the last change (0 for an empty, unchanged store). */
  get revision(): number {
    return this.rev;
  }

  /** False while an outage is simulated. */
  get available(): boolean {
    return this.isAvailable;
  }

  /** True once {@link MemoryKvStore.close} was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Number of live leases (tests). */
  get leaseCount(): number {
    return this.leases.size;
  }

  /**
   * Simulates an outage (false) or its end (true). While unavailable, clients' calls fail with
   * UNAVAILABLE and their leases are not kept alive; watchers get the held-back changes on return.
   */
  setAvailable(available: boolean): void {
    if (this.isClosed || available === this.isAvailable) return;
    this.isAvailable = available;
    this.logger.info(available ? 'store available again' : 'store unavailable');
    if (available) {
      for (const w of [...this.watchers]) {
        const pending = w.pending;
        w.pending = [];
        for (const ev of pending) {
          if (!this.watchers.has(w)) break;
          w.listener(ev);
        }
      }
    }
    for (const c of [...this.clients]) c.onAvailabilityChange(available);
  }

  /** Registers a client to be told of outages and of the store closing. */
  attach(client: MemoryKvStoreClient): void {
    this.clients.add(client);
  }

  /** Unregisters a client. */
  detach(client: MemoryKvStoreClient): void {
    this.clients.delete(client);
  }

  /** Grants lease `id` (lowercase hex) with a TTL; it expires unless {@link MemoryKvStore.keepAliveLease} is called within the TTL. */
  grantLease(id: string, ttlMs: number): void {
    this.check();
    if (!(ttlMs > 0) || ttlMs > MAX_TIMER_MS) {
      throw new InvalidArgumentError(`lease TTL must be in (0, ${MAX_TIMER_MS}] ms, got ${ttlMs}`);
    }
    if (this.leases.has(id)) throw new InvalidArgumentError(`lease ${id} already exists`);
    const timer = unrefTimeout(() => this.expireLease(id), ttlMs);
    this.leases.set(id, { id, ttlMs, timer, keys: new Set() });
  }

  /** Restarts the TTL of lease `id`. Returns false when the lease does not exist (expired or revoked). */
  keepAliveLease(id: string): boolean {
    this.check();
    const lease = this.leases.get(id);
    if (!lease) return false;
    lease.timer.refresh();
    return true;
  }

  /** True when lease `id` is live. */
  hasLease(id: string): boolean {
    this.check();
    return this.leases.has(id);
  }

  /** Revokes lease `id`: its keys are deleted at once. Unknown leases are ignored. */
  revokeLease(id: string): void {
    this.check();
    this.dropLease(id);
  }

  /** Sets `key`; with `leaseId`, binds it to that lease (NOT_FOUND when the lease does not exist). */
  put(key: string, value: string, leaseId?: string): void {
    this.check();
    let lease: Lease | undefined;
    if (leaseId !== undefined) {
      lease = this.leases.get(leaseId);
      if (!lease) throw new NotFoundError(`lease ${leaseId} not found`);
    }
    const prev = this.data.get(key);
    if (prev?.lease !== undefined && prev.lease !== leaseId) this.leases.get(prev.lease)?.keys.delete(key);
    this.rev += 1;
    this.data.set(key, { value, lease: leaseId, modRevision: this.rev });
    lease?.keys.add(key);
    this.emit({ type: 'put', key, value });
  }

  /** The value of `key`, or undefined. */
  get(key: string): string | undefined {
    this.check();
    return this.data.get(key)?.value;
  }

  /** Every key under `prefix`, sorted by key. */
  getPrefix(prefix: string): KvEntry[] {
    this.check();
    return this.snapshot(prefix);
  }

  /** Deletes `key`; returns false when it did not exist. */
  delete(key: string): boolean {
    this.check();
    return this.remove(key);
  }

  /**
   * Watches `prefix`: `listener` gets the snapshot (puts sorted by key), `synced`, then every
   * change, synchronously and in order. Returns the function that stops the watch.
   * Works while the store is unavailable (events are held back until it returns).
   */
  watch(prefix: string, listener: (event: DiscoveryEvent) => void): () => void {
    if (this.isClosed) throw new ClosedError('discovery store closed');
    const watcher: StoreWatcher = { prefix, listener, pending: [] };
    const initial: DiscoveryEvent[] = this.snapshot(prefix).map((e) => ({ type: 'put', key: e.key, value: e.value }));
    initial.push({ type: 'synced' });
    this.watchers.add(watcher);
    if (this.isAvailable) for (const ev of initial) listener(ev);
    else watcher.pending.push(...initial);
    return () => {
      this.watchers.delete(watcher);
    };
  }

  /** Stops every lease timer, tells every client to stop, and drops the data. Idempotent. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const lease of this.leases.values()) clearTimeout(lease.timer);
    this.leases.clear();
    this.watchers.clear();
    for (const c of [...this.clients]) c.onStoreClosed();
    this.clients.clear();
    this.data.clear();
  }

  private check(): void {
    if (this.isClosed) throw new ClosedError('discovery store closed');
    if (!this.isAvailable) throw new UnavailableError('discovery store unavailable');
  }

  private snapshot(prefix: string): KvEntry[] {
    const out: KvEntry[] = [];
    for (const [key, v] of this.data) if (key.startsWith(prefix)) out.push({ key, value: v.value });
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  private remove(key: string): boolean {
    const prev = this.data.get(key);
    if (!prev) return false;
    if (prev.lease !== undefined) this.leases.get(prev.lease)?.keys.delete(key);
    this.rev += 1;
    this.data.delete(key);
    this.emit({ type: 'delete', key });
    return true;
  }

  private expireLease(id: string): void {
    if (!this.leases.has(id)) return;
    this.logger.debug('lease expired', { lease_id: id });
    this.dropLease(id);
  }

  private dropLease(id: string): void {
    const lease = this.leases.get(id);
    if (!lease) return;
    clearTimeout(lease.timer);
    this.leases.delete(id);
    for (const key of [...lease.keys].sort()) this.remove(key);
  }

  private emit(event: DiscoveryEvent): void {
    if (event.type === 'synced') return;
    for (const w of this.watchers) {
      if (!event.key.startsWith(w.prefix)) continue;
      if (this.isAvailable) w.listener(event);
      else w.pending.push(event);
    }
  }
}

/** Options of {@link MemoryDiscovery.connect}. */
export interface MemoryDiscoveryOptions {
  /** TTL of the client's lease; keep-alives are sent every third of it. Default 10000. */
  leaseTtlMs?: number;
  logger?: Logger;
}

class MemoryKvWatch implements KvWatch {
  readonly channel = new Channel<DiscoveryEvent>({ onReturn: () => this.close() });
  private stop: () => void = noop;
  private offSignal: () => void = noop;
  private closed = false;

  constructor(private readonly onClosed: (w: MemoryKvWatch) => void) {}

  start(stop: () => void, signal: AbortSignal | undefined): void {
    this.stop = stop;
    if (!this.closed) this.offSignal = onAbort(signal, () => this.close());
  }

  push(event: DiscoveryEvent): void {
    this.channel.push(event);
  }

  fail(error: unknown): void {
    this.closed = true;
    this.channel.end(error);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stop();
    this.offSignal();
    this.channel.abort();
    this.onClosed(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<DiscoveryEvent> {
    return this.channel;
  }
}

/**
 * The embedded {@link Discovery}: one client of a {@link MemoryKvStore}, standing for one process
 * with one lease. The lease is kept alive every third of its TTL while the client is open, revoked
 * by {@link MemoryDiscovery.close}, and left to expire by {@link MemoryDiscovery.crash}.
 *
 * During a store outage the client reports `disconnected`, its calls fail with UNAVAILABLE and its
 * watches stay open; when the store returns it re-grants its lease with the same id (if it expired)
 * and re-puts its leased keys.
 */
export class MemoryDiscovery implements Discovery, MemoryKvStoreClient {
  readonly leaseId: string;
  private currentStatus: DiscoveryStatus = 'connected';
  /** Leased keys this client put, re-put when its lease had to be re-granted. */
  private readonly leased = new Map<string, string>();
  private readonly watches = new Set<MemoryKvWatch>();
  private readonly keepAliveTimer: NodeJS.Timeout;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly store: MemoryKvStore,
    leaseId: string,
    private readonly ttlMs: number,
    private readonly logger: Logger,
  ) {
    this.leaseId = leaseId;
    this.keepAliveTimer = unrefInterval(() => this.keepAlive(), ttlMs / 3);
  }

  /** Connects a new client (a new "process") to `store` and grants its lease. */
  static async connect(store: MemoryKvStore, options: MemoryDiscoveryOptions = {}): Promise<MemoryDiscovery> {
    const ttlMs = options.leaseTtlMs ?? 10_000;
    // Keep-alives go every third of the TTL: below 3 ms, or past Node's timer range, they would spin.
    checkTimerMs('leaseTtlMs', ttlMs, 3);
    const leaseId = randomId64();
    store.grantLease(leaseId, ttlMs);
    const logger = (options.logger ?? noopLogger).child({ component: 'memory-discovery', lease_id: leaseId });
    const client = new MemoryDiscovery(store, leaseId, ttlMs, logger);
    store.attach(client);
    return client;
  }

  /** Current link health. */
  get status(): DiscoveryStatus {
    return this.currentStatus;
  }

  async put(key: string, value: string, options: PutOptions = {}): Promise<void> {
    this.check(options);
    checkKey(key);
    if (typeof value !== 'string') throw new InvalidArgumentError(`value of ${key} must be a string`);
    const leased = options.lease ?? true;
    this.call(() => {
      if (leased && !this.store.hasLease(this.leaseId)) this.regrant();
      this.store.put(key, value, leased ? this.leaseId : undefined);
    });
    if (leased) this.leased.set(key, value);
    else this.leased.delete(key);
  }

  async get(key: string, options: CallOptions = {}): Promise<string | undefined> {
    this.check(options);
    checkKey(key);
    return this.call(() => this.store.get(key));
  }

  async getPrefix(prefix: string, options: CallOptions = {}): Promise<KvEntry[]> {
    this.check(options);
    return this.call(() => this.store.getPrefix(prefix));
  }

  async delete(key: string, options: CallOptions = {}): Promise<void> {
    this.check(options);
    checkKey(key);
    this.call(() => this.store.delete(key));
    this.leased.delete(key);
  }

  watchPrefix(prefix: string, options: { signal?: AbortSignal } = {}): KvWatch {
    const watch = new MemoryKvWatch((w) => this.watches.delete(w));
    if (this.closing) {
      watch.fail(new ClosedError('discovery client closed'));
      return watch;
    }
    if (options.signal?.aborted) {
      watch.close();
      return watch;
    }
    this.watches.add(watch);
    const stop = this.store.watch(prefix, (ev) => watch.push(ev));
    watch.start(stop, options.signal);
    return watch;
  }

  /** Revokes the lease (leased keys vanish at once), ends the watches and stops keep-alives. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown(true);
    return this.closing;
  }

  /**
   * Testing: simulates the process being killed. Stops keep-alives and watches without revoking
   * the lease, which then expires after its TTL. The client is closed afterwards.
   */
  crash(): Promise<void> {
    this.closing ??= this.shutdown(false);
    return this.closing;
  }

  /** @see MemoryKvStoreClient.onAvailabilityChange */
  onAvailabilityChange(available: boolean): void {
    if (this.closing) return;
    if (available) this.keepAlive();
    else this.setStatus('disconnected');
  }

  /** @see MemoryKvStoreClient.onStoreClosed */
  onStoreClosed(): void {
    this.closing ??= this.shutdown(false);
  }

  private async shutdown(revoke: boolean): Promise<void> {
    clearInterval(this.keepAliveTimer);
    this.currentStatus = 'closed';
    for (const w of [...this.watches]) w.close();
    this.store.detach(this);
    if (revoke && !this.store.closed) {
      try {
        this.store.revokeLease(this.leaseId);
      } catch (e) {
        this.logger.warn('could not revoke the lease; it will expire after its TTL', {
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
    this.leased.clear();
  }

  private keepAlive(): void {
    if (this.closing) return;
    try {
      if (!this.store.keepAliveLease(this.leaseId)) this.regrant();
      this.setStatus('connected');
    } catch (e) {
      if (isDynamoError(e) && e.code === 'UNAVAILABLE') this.setStatus('disconnected');
      else this.logger.error('lease keep-alive failed', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** The lease was lost (expired during an outage): grant it again with the same id and re-put the leased keys. */
  private regrant(): void {
    this.store.grantLease(this.leaseId, this.ttlMs);
    for (const [key, value] of this.leased) this.store.put(key, value, this.leaseId);
    this.logger.warn('lease was lost; re-granted it and re-registered the leased keys', { keys: this.leased.size });
  }

  private setStatus(status: DiscoveryStatus): void {
    if (this.closing || status === this.currentStatus) return;
    this.currentStatus = status;
    if (status === 'disconnected') this.logger.warn('lost the discovery store');
    else this.logger.info('discovery store reachable again');
  }

  private check(options: CallOptions): void {
    if (this.closing) throw new ClosedError('discovery client closed');
    throwIfAborted(options.signal);
  }

  private call<T>(fn: () => T): T {
    try {
      const result = fn();
      return result;
    } catch (e) {
      if (isDynamoError(e) && e.code === 'UNAVAILABLE') this.setStatus('disconnected');
      throw e;
    }
  }
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidArgumentError('key must be a non-empty string');
}
