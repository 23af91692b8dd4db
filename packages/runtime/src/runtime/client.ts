import type { DiscoveryEvent } from '../discovery/discovery';
import { CancelledError, NotFoundError, TimeoutError, UnavailableError } from '../errors';
import { instancesPrefix, parseInstanceKey } from '../names';
import type { CallOptions } from '../options';
import type { RequestOptions, ResponseStream } from '../transport/request-plane';
import { RetryPolicy } from '../retry';
import { RateLimiter } from '../util/rate-limit';
import type { Endpoint, RouterMode } from './endpoint';
import { failedStream, FailoverStream } from './failover';
import { parseInstanceInfo, type InstanceChange, type InstanceInfo } from './instance';

/** The most instances one client follows (registrations beyond it are logged and skipped). */
export const MAX_INSTANCES = 4096;

/** Options of {@link EndpointClient.generate}. */
export interface ClientRequestOptions extends RequestOptions {
  /** Call this instance only (no failover). */
  instanceId?: string;
  /** How to pick when `instanceId` is not given. Default `round-robin`. */
  mode?: RouterMode;
  /** Attempts on other instances when one is unavailable before any data arrived. Default 3. */
  maxAttempts?: number;
  /**
   * When every instance failed this request, pause `retryBackoffMs` × attempt and try them again
   * (within `maxAttempts`): instances briefly unreachable (e.g. still resubscribing after a NATS
   * reconnect) get a moment. Default 50.
   */
  retryBackoffMs?: number;
  /**
   * The retry policy of the call (its `attempts` and pauses), in place of `maxAttempts` and
   * `retryBackoffMs`: the one object every layer that retries takes.
   */
  retry?: RetryPolicy;
  /**
   * With no instance registered at all, wait up to this long for one to (re)appear before failing
   * UNAVAILABLE: rides over an instance re-registering after a lost lease or a restart. Default 0.
   */
  waitForInstanceMs?: number;
}

/**
 * A client of one endpoint: follows its instances through a discovery watch and calls them
 * (random, round-robin or direct). A request that fails with UNAVAILABLE before any item
 * arrived is retried on another instance (not for direct calls), and the failed instance is
 * marked down until discovery says it is back.
 */
export class EndpointClient {
  private readonly live = new Map<string, InstanceInfo>();
  /** Instances marked down, with the timer that brings each back on probation. */
  private readonly down = new Map<string, NodeJS.Timeout>();
  private readonly listeners = new Set<(c: InstanceChange) => void>();
  private readonly waiters = new Set<() => void>();
  private watch: { close(): void } | undefined;
  /** Live instances not marked down, rebuilt only when membership changes (picked on every request). */
  private usable: InstanceInfo[] | undefined;
  private rr = 0;
  private closed = false;
  private readonly rejections = new RateLimiter();

  constructor(readonly endpoint: Endpoint) {}

  /** @internal Starts the watch; resolves once the current instances are known. */
  async start(): Promise<void> {
    const ep = this.endpoint;
    const prefix = instancesPrefix(ep.namespaceName, ep.component.name, ep.name);
    const watch = ep.runtime.discovery.watchPrefix(prefix);
    this.watch = watch;
    let synced!: () => void;
    const ready = new Promise<void>((r) => (synced = r));
    const log = ep.runtime.logger;
    void (async () => {
      try {
        for await (const ev of watch) {
          try {
            this.apply(ev, synced);
          } catch (e) {
            // Nothing in one event may end the watch: the next put or delete still counts.
            log.error('instance event failed', { prefix, error: (e as Error).message });
          }
        }
      } catch (e) {
        if (!this.closed) log.warn('instance watch ended', { prefix, error: (e as Error).message });
      } finally {
        synced();
      }
    })();
    await ready;
  }

  private apply(ev: DiscoveryEvent, synced: () => void): void {
    if (ev.type === 'synced') {
      synced();
      return;
    }
    const key = parseInstanceKey(ev.key);
    if (!key) return;
    if (ev.type === 'put') {
      const parsed = parseInstanceInfo(ev.key, ev.value);
      if (!parsed.ok) {
        // The key no longer holds a registration: whatever it held before is gone.
        this.reject(ev.key, parsed.error);
        this.remove(key.instanceId);
        return;
      }
      const info = parsed.info;
      if (!this.live.has(info.instanceId) && this.live.size >= MAX_INSTANCES) {
        this.reject(ev.key, `endpoint already has ${MAX_INSTANCES} instances`);
        return;
      }
      const known = this.live.has(info.instanceId) && !this.down.has(info.instanceId);
      this.live.set(info.instanceId, info);
      this.usable = undefined;
      this.clearDown(info.instanceId);
      if (!known) this.emit({ type: 'added', instance: info });
      for (const w of [...this.waiters]) w();
    } else {
      this.remove(key.instanceId);
    }
  }

  private remove(instanceId: string): void {
    const info = this.live.get(instanceId);
    if (!info) return;
    const wasDown = this.clearDown(instanceId);
    this.live.delete(instanceId);
    this.usable = undefined;
    if (!wasDown) this.emit({ type: 'removed', instance: info });
  }

  /** Logs (rate-limited) a registration that is skipped. */
  private reject(key: string, reason: string): void {
    const t = this.rejections.take();
    if (!t.ok) return;
    this.endpoint.runtime.logger.warn('invalid instance registration skipped', {
      key: key.slice(0, 256),
      reason,
      suppressed: t.suppressed,
    });
  }

  private emit(c: InstanceChange): void {
    for (const l of this.listeners) {
      try {
        l(c);
      } catch (e) {
        this.endpoint.runtime.logger.error('instance listener threw', { error: (e as Error).message });
      }
    }
  }

  /** Live instances (not marked down), in a stable order. */
  instances(): InstanceInfo[] {
    return this.usableInstances().slice();
  }

  private usableInstances(): InstanceInfo[] {
    if (this.usable === undefined) {
      const up = [...this.live.values()].filter((i) => !this.down.has(i.instanceId));
      // Marks are a preference: with every registered instance marked down (e.g. all briefly
      // unreachable across a NATS restart), trying them beats failing every request.
      this.usable = up.length > 0 ? up : [...this.live.values()];
    }
    return this.usable;
  }

  /** Ids of the live instances. */
  instanceIds(): string[] {
    return this.usableInstances().map((i) => i.instanceId);
  }

  /** Calls `listener` on each instance joining or leaving. Returns an unsubscribe function. */
  onChange(listener: (c: InstanceChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Marks an instance down at once (e.g. it stopped answering): it is left out (and reported
   * `removed` to listeners) until discovery reports it again or, if its registration stays,
   * for `forMs` (default 10 s), after which it is tried again (`added`). A dead instance's
   * lease expires meanwhile; one behind a short network cut comes back.
   */
  markDown(instanceId: string, forMs = 10_000): void {
    if (!this.live.has(instanceId) || this.down.has(instanceId)) return;
    const timer = setTimeout(() => {
      if (!this.clearDown(instanceId)) return;
      const back = this.live.get(instanceId);
      if (!back) return;
      this.endpoint.runtime.logger.info('instance back on probation', { instance_id: instanceId, name: back.name });
      this.emit({ type: 'added', instance: back });
    }, forMs);
    timer.unref();
    this.down.set(instanceId, timer);
    this.usable = undefined;
    const info = this.live.get(instanceId)!;
    this.endpoint.runtime.logger.warn('instance marked down', { instance_id: instanceId, name: info.name });
    this.emit({ type: 'removed', instance: info });
  }

  /** Whether `instanceId` is marked down. */
  isDown(instanceId: string): boolean {
    return this.down.has(instanceId);
  }

  private clearDown(instanceId: string): boolean {
    const timer = this.down.get(instanceId);
    if (timer === undefined) return false;
    clearTimeout(timer);
    this.down.delete(instanceId);
    this.usable = undefined;
    return true;
  }

  /** Resolves when at least `min` instances are live. */
  async waitForInstances(options: { min?: number } & CallOptions = {}): Promise<InstanceInfo[]> {
    const min = options.min ?? 1;
    if (this.instances().length >= min) return this.instances();
    return await new Promise<InstanceInfo[]>((resolve, reject) => {
      const cleanup = (): void => {
        this.waiters.delete(check);
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      const check = (): void => {
        if (this.instances().length >= min) {
          cleanup();
          resolve(this.instances());
        }
      };
      const onAbort = (): void => {
        cleanup();
        reject(new CancelledError('wait for instances cancelled'));
      };
      const timer =
        options.timeoutMs !== undefined
          ? setTimeout(() => {
              cleanup();
              reject(
                new TimeoutError(`fewer than ${min} instances of ${this.describe()} after ${options.timeoutMs} ms`),
              );
            }, options.timeoutMs)
          : undefined;
      this.waiters.add(check);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private describe(): string {
    const ep = this.endpoint;
    return `${ep.namespaceName}/${ep.component.name}/${ep.name}`;
  }

  private pick(mode: RouterMode, exclude: ReadonlySet<string>): InstanceInfo | undefined {
    const usable = this.usableInstances();
    const all = exclude.size === 0 ? usable : usable.filter((i) => !exclude.has(i.instanceId));
    if (all.length === 0) return undefined;
    if (mode === 'random') return all[Math.floor(Math.random() * all.length)];
    const i = all[this.rr++ % all.length];
    return i;
  }

  /**
   * Sends `payload` to an instance and returns its response stream. With `instanceId` the call
   * goes to that instance only (NOT_FOUND if it is not live); otherwise one is picked by `mode`
   * and, while no item has arrived, an UNAVAILABLE failure moves the request to another instance.
   */
  generate<T = unknown>(payload: unknown, options: ClientRequestOptions = {}): ResponseStream<T> {
    const plane = this.endpoint.runtime.requestPlane;
    const opts: ClientRequestOptions =
      options.requestId !== undefined ? options : { ...options, requestId: globalThis.crypto.randomUUID() };
    if (opts.instanceId !== undefined) {
      const info = this.live.get(opts.instanceId);
      if (!info)
        return failedStream<T>(
          opts.requestId!,
          new NotFoundError(`instance ${opts.instanceId} of ${this.describe()} is not live`),
        );
      return plane.request<T>(info.subject, payload, opts);
    }
    return new FailoverStream<T>(this, plane, payload, opts);
  }

  /**
   * @internal The instance a {@link FailoverStream} tries now, when there is one without waiting
   * (the usual case: no await, no promise); undefined when it must call
   * {@link EndpointClient.waitForTarget}.
   */
  targetNow(options: ClientRequestOptions, tried: ReadonlySet<string>): InstanceInfo | undefined {
    if (tried.size === 0 && this.live.size === 0 && options.waitForInstanceMs) return undefined;
    return this.pick(options.mode ?? 'round-robin', tried);
  }

  /**
   * @internal The instance a {@link FailoverStream} tries next (none tried in `tried`) when
   * {@link EndpointClient.targetNow} has none: after waiting for one to register or pausing
   * before a second round, as its options say; throws UNAVAILABLE when there is none.
   */
  async waitForTarget(
    options: ClientRequestOptions,
    tried: ReadonlySet<string>,
    attempt: number,
  ): Promise<InstanceInfo> {
    if (tried.size === 0 && this.live.size === 0 && options.waitForInstanceMs) {
      await this.waitForInstances({ min: 1, timeoutMs: options.waitForInstanceMs, signal: options.signal }).catch(
        () => undefined,
      );
    }
    const mode = options.mode ?? 'round-robin';
    let target = this.pick(mode, tried);
    const policy = retryPolicyOf(options);
    if (!target && tried.size > 0 && attempt <= policy.attempts && this.usableInstances().length > 0) {
      // The pause ends at once, CANCELLED, when the request is cancelled.
      await policy.pause(attempt - 1, options.parent ?? options.signal);
      // A second round: every instance may be tried again (a non-empty `tried` is the stream's own set).
      (tried as Set<string>).clear();
      target = this.pick(mode, tried);
    }
    if (!target) throw new UnavailableError(`no live instance of ${this.describe()}`);
    return target;
  }

  /** Stops following instances. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.close();
    for (const t of this.down.values()) clearTimeout(t);
    this.down.clear();
    this.usable = undefined;
    this.endpoint.runtime.untrack(this);
  }
}

/** The retry policy of a call: its own, or one made from `maxAttempts` and `retryBackoffMs` (defaults 3, 50 ms). */
export function retryPolicyOf(options: ClientRequestOptions): RetryPolicy {
  return (
    options.retry ??
    new RetryPolicy({
      attempts: options.maxAttempts ?? 3,
      backoffMs: options.retryBackoffMs ?? 50,
      maxBackoffMs: 2 ** 31 - 1,
    })
  );
}
