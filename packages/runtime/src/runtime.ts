import os from 'node:os';
import type { Discovery, KvEvent } from './discovery/discovery';
import type { EventPlane, EventSubscription } from './events/event-plane';
import { MergedEventSubscription } from './events/subscription';
import {
  CancelledError,
  ClosedError,
  isDynamoError,
  NoRespondersError,
  NotFoundError,
  TimeoutError,
  UnavailableError,
} from './errors';
import { noopLogger, type Logger } from './logger';
import {
  configKey,
  endpointSubject,
  eventSubject,
  instanceKey,
  instancesPrefix,
  parseInstanceKey,
  validateName,
} from './names';
import type { CallOptions } from './options';
import type { WorkQueue, WorkQueueOptions } from './queue/work-queue';
import type {
  RequestHandler,
  RequestOptions,
  RequestPlane,
  ResponseStream,
  ServedEndpoint,
} from './transport/request-plane';

/** What discovery holds about one served endpoint instance (the JSON value of its key). */
export interface InstanceInfo {
  namespace: string;
  component: string;
  endpoint: string;
  /** The lease id (hex) of the process serving it. */
  instanceId: string;
  /** Human name (e.g. the worker name). */
  name: string;
  hostname: string;
  pid: number;
  /** Request-plane subject to call it on. */
  subject: string;
  /** ISO time it registered. */
  startedAt: string;
  /** Free-form, e.g. `{model: 'hello-world'}`. */
  metadata: Record<string, unknown>;
}

/** The planes a runtime runs on: memory for embedded, etcd + NATS for distributed. */
export interface RuntimeBackends {
  discovery: Discovery;
  requestPlane: RequestPlane;
  eventPlane: EventPlane;
  /** Opens a work queue on the backend's queue service. */
  openQueue(options: WorkQueueOptions): Promise<WorkQueue>;
}

/** Options of {@link DistributedRuntime}. */
export interface DistributedRuntimeOptions extends RuntimeBackends {
  logger?: Logger;
  /** Reported in instance records. Default `os.hostname()`. */
  hostname?: string;
  /**
   * A token (a name) put in the subjects of the endpoints this runtime serves, before the
   * instance id: `dynamo.{ns}.{component}.{endpoint}.{scope}.{instanceId}`. Lets a NATS
   * permission allow one worker's subjects and no other's (docs/security.md). Default: none.
   */
  subjectScope?: string;
  /**
   * Called by {@link DistributedRuntime.close} after the planes it owns are closed (e.g. to close
   * a NATS connection shared by them).
   */
  onClose?: () => Promise<void>;
}

/** One served endpoint instance, registered in discovery. */
export interface ServedInstance {
  readonly info: InstanceInfo;
  readonly inflight: number;
  /** Deregisters, then drains the endpoint (in-flight streams finish, bounded by `timeoutMs`). */
  drain(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * The handle of one process (or one embedded "process") on the runtime planes: its lease,
 * what it serves, its clients. Names go namespace -> component -> endpoint -> instance.
 */
export class DistributedRuntime {
  readonly logger: Logger;
  readonly hostname: string;
  private readonly served = new Set<ServedInstance>();
  private readonly clients = new Set<EndpointClient>();
  private closed = false;

  constructor(private readonly options: DistributedRuntimeOptions) {
    this.logger = options.logger ?? noopLogger;
    this.hostname = options.hostname ?? os.hostname();
    if (options.subjectScope !== undefined) validateName('subjectScope', options.subjectScope);
  }

  /** The subject scope of the endpoints this runtime serves (see {@link DistributedRuntimeOptions.subjectScope}). */
  get subjectScope(): string | undefined {
    return this.options.subjectScope;
  }

  /** The instance id of this process: its discovery lease id. */
  get instanceId(): string {
    return this.options.discovery.leaseId;
  }
  get discovery(): Discovery {
    return this.options.discovery;
  }
  get requestPlane(): RequestPlane {
    return this.options.requestPlane;
  }
  get eventPlane(): EventPlane {
    return this.options.eventPlane;
  }

  /** A namespace handle. */
  namespace(name: string): Namespace {
    return new Namespace(this, validateName('namespace', name));
  }

  /** Opens a work queue of `namespace`. */
  async openQueue(options: WorkQueueOptions): Promise<WorkQueue> {
    this.assertOpen();
    return this.options.openQueue(options);
  }

  /** @internal */
  track<T extends ServedInstance | EndpointClient>(x: T): T {
    if (isEndpointClient(x)) this.clients.add(x);
    else this.served.add(x);
    return x;
  }
  /** @internal */
  untrack(x: ServedInstance | EndpointClient): void {
    if (isEndpointClient(x)) this.clients.delete(x);
    else this.served.delete(x);
  }

  /** Throws CLOSED once the runtime is closing. */
  assertOpen(): void {
    if (this.closed) throw new ClosedError('runtime is closed');
  }

  /**
   * Graceful stop: deregisters and drains every served endpoint (bounded by `timeoutMs`),
   * closes clients, revokes the lease and closes the planes. Idempotent.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.served].map((s) => s.drain(options)));
    for (const c of this.clients) c.close();
    await this.options.discovery.close();
    await this.options.requestPlane.drain(options);
    await this.options.eventPlane.close();
    await this.options.onClose?.();
  }
}

function isEndpointClient(x: unknown): x is EndpointClient {
  return x instanceof EndpointClient;
}

/** A namespace: components, events, live config. */
export class Namespace {
  constructor(
    readonly runtime: DistributedRuntime,
    readonly name: string,
  ) {}

  component(name: string): Component {
    return new Component(this, validateName('component', name));
  }

  /** Reads the live config value `dynamo/{ns}/config/{name}` (JSON), or undefined. */
  async getConfig<T = unknown>(name: string, options?: CallOptions): Promise<T | undefined> {
    const v = await this.runtime.discovery.get(configKey(this.name, validateName('config name', name)), options);
    return v === undefined ? undefined : (JSON.parse(v) as T);
  }

  /** Writes a live config value (not leased: it outlives this process). */
  async putConfig(name: string, value: unknown, options?: CallOptions): Promise<void> {
    await this.runtime.discovery.put(configKey(this.name, validateName('config name', name)), JSON.stringify(value), {
      ...options,
      lease: false,
    });
  }

  /**
   * Calls `onChange` with the current value of a live config key and every later change
   * (undefined when deleted or unparseable). Returns a function that stops watching.
   */
  watchConfig<T = unknown>(name: string, onChange: (value: T | undefined) => void): () => void {
    const key = configKey(this.name, validateName('config name', name));
    const watch = this.runtime.discovery.watchPrefix(key);
    const log = this.runtime.logger;
    void (async () => {
      try {
        for await (const ev of watch) {
          if (ev.type === 'synced' || ev.key !== key) continue;
          if (ev.type === 'delete') onChange(undefined);
          else {
            try {
              onChange(JSON.parse(ev.value) as T);
            } catch (e) {
              log.warn('live config is not valid JSON; ignored', { key, error: (e as Error).message });
            }
          }
        }
      } catch (e) {
        log.warn('config watch ended', { key, error: (e as Error).message });
      }
    })();
    return () => watch.close();
  }
}

/** A component: endpoints and its event topics. */
export class Component {
  constructor(
    readonly namespace: Namespace,
    readonly name: string,
  ) {}

  get runtime(): DistributedRuntime {
    return this.namespace.runtime;
  }

  endpoint(name: string): Endpoint {
    return new Endpoint(this, validateName('endpoint', name));
  }

  /** Subject of one of this component's event topics. */
  eventSubject(topic: string): string {
    return eventSubject(this.namespace.name, this.name, validateName('topic', topic));
  }

  /**
   * Publishes on `dynamo.{ns}.events.{component}.{topic}`, or on `...{topic}.{scope}` from a
   * runtime with a subject scope (so a NATS permission can let a worker publish its own events only).
   */
  async publish(topic: string, data: unknown): Promise<void> {
    const scope = this.runtime.subjectScope;
    const subject = this.eventSubject(topic);
    await this.runtime.eventPlane.publish(scope === undefined ? subject : `${subject}.${scope}`, data);
  }

  /** Subscribes to one of this component's topics, from publishers with and without a subject scope. */
  subscribe<T = unknown>(topic: string, options?: { signal?: AbortSignal }): EventSubscription<T> {
    const subject = this.eventSubject(topic);
    const plane = this.runtime.eventPlane;
    return new MergedEventSubscription<T>(subject, [
      plane.subscribe<T>(subject, options),
      plane.subscribe<T>(`${subject}.*`, options),
    ]);
  }
}

/** Options of {@link Endpoint.serve}. */
export interface EndpointServeOptions {
  /** Human name in discovery (e.g. the worker name). Default the host name. */
  name?: string;
  metadata?: Record<string, unknown>;
}

/** How an {@link EndpointClient} picks an instance. */
export type RouterMode = 'random' | 'round-robin';

/** An endpoint: serve it, or call it through a client. */
export class Endpoint {
  constructor(
    readonly component: Component,
    readonly name: string,
  ) {}

  get runtime(): DistributedRuntime {
    return this.component.runtime;
  }
  get namespaceName(): string {
    return this.component.namespace.name;
  }

  /** The subject this process serves the endpoint on. */
  get subject(): string {
    const rt = this.runtime;
    return endpointSubject(this.namespaceName, this.component.name, this.name, rt.instanceId, rt.subjectScope);
  }

  /**
   * Serves the endpoint with `handler` on this process's subject, then registers the instance
   * in discovery under the process lease. Drain deregisters first, then finishes in-flight work.
   */
  async serve(handler: RequestHandler, options: EndpointServeOptions = {}): Promise<ServedInstance> {
    const rt = this.runtime;
    rt.assertOpen();
    const ns = this.namespaceName;
    const info: InstanceInfo = {
      namespace: ns,
      component: this.component.name,
      endpoint: this.name,
      instanceId: rt.instanceId,
      name: options.name ?? rt.hostname,
      hostname: rt.hostname,
      pid: process.pid,
      subject: this.subject,
      startedAt: new Date().toISOString(),
      metadata: options.metadata ?? {},
    };
    const key = instanceKey(ns, this.component.name, this.name, rt.instanceId);
    const logger = rt.logger.child({ component: this.component.name, endpoint: this.name });
    const served: ServedEndpoint = await rt.requestPlane.serve(info.subject, handler, { logger });
    try {
      await rt.discovery.put(key, JSON.stringify(info), { lease: true });
    } catch (e) {
      await served.close();
      throw e;
    }
    let draining: Promise<void> | undefined;
    const instance: ServedInstance = {
      info,
      get inflight() {
        return served.inflight;
      },
      drain: (opts = {}) => {
        draining ??= (async () => {
          try {
            await rt.discovery.delete(key);
          } catch (e) {
            logger.warn('could not deregister; the lease will expire it', { key, error: (e as Error).message });
          }
          await served.drain(opts);
          rt.untrack(instance);
        })();
        return draining;
      },
    };
    return rt.track(instance);
  }

  /** A client of this endpoint that follows its live instances. */
  async client(): Promise<EndpointClient> {
    this.runtime.assertOpen();
    const c = new EndpointClient(this);
    await c.start();
    return this.runtime.track(c);
  }
}

/** An instance joining or leaving an endpoint. */
export interface InstanceChange {
  type: 'added' | 'removed';
  instance: InstanceInfo;
}

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
        for await (const ev of watch) this.apply(ev, synced);
      } catch (e) {
        if (!this.closed) log.warn('instance watch ended', { prefix, error: (e as Error).message });
      } finally {
        synced();
      }
    })();
    await ready;
  }

  private apply(ev: KvEvent, synced: () => void): void {
    if (ev.type === 'synced') {
      synced();
      return;
    }
    const parsed = parseInstanceKey(ev.key);
    if (!parsed) return;
    if (ev.type === 'put') {
      let info: InstanceInfo;
      try {
        info = JSON.parse(ev.value) as InstanceInfo;
      } catch {
        return;
      }
      const known = this.live.has(parsed.instanceId) && !this.down.has(parsed.instanceId);
      this.live.set(parsed.instanceId, info);
      this.usable = undefined;
      this.clearDown(parsed.instanceId);
      if (!known) this.emit({ type: 'added', instance: info });
      for (const w of [...this.waiters]) w();
    } else {
      const info = this.live.get(parsed.instanceId);
      if (!info) return;
      const wasDown = this.clearDown(parsed.instanceId);
      this.live.delete(parsed.instanceId);
      this.usable = undefined;
      if (!wasDown) this.emit({ type: 'removed', instance: info });
    }
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
    if (!target && tried.size > 0 && attempt <= (options.maxAttempts ?? 3) && this.usableInstances().length > 0) {
      await new Promise((r) => setTimeout(r, (options.retryBackoffMs ?? 50) * (attempt - 1)));
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

const DONE: IteratorResult<never> = { value: undefined, done: true };
/** What a {@link FailoverStream} passes as "tried" before any attempt failed (never written). */
const NONE_TRIED: ReadonlySet<string> = new Set<string>();

/**
 * The response of a call through {@link EndpointClient.generate} without `instanceId`: until its
 * first item it picks an instance and moves to another on UNAVAILABLE (failover); from then on
 * each read is the transport stream's own `next()`, with no extra hop per item. A class, not a
 * generator or closures: one object per call.
 */
class FailoverStream<T> implements ResponseStream<T>, AsyncIterator<T> {
  readonly requestId: string;
  private current: ResponseStream<T> | undefined = undefined;
  private it: AsyncIterator<T> | undefined = undefined;
  private cancelled: unknown = undefined;
  /** The first item has arrived: from then on items (and errors) come straight from `it`. */
  private sent = false;
  private finished = false;
  private tried: Set<string> | undefined = undefined;
  private attempt = 0;

  constructor(
    private readonly client: EndpointClient,
    private readonly plane: RequestPlane,
    private readonly payload: unknown,
    private readonly options: ClientRequestOptions,
  ) {
    this.requestId = options.requestId!;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.finished) return Promise.resolve(DONE as IteratorResult<T>);
    if (this.sent) return this.it!.next();
    return this.first();
  }

  return(): Promise<IteratorResult<T>> {
    this.finished = true;
    void this.it?.return?.()?.catch(() => undefined);
    return Promise.resolve(DONE as IteratorResult<T>);
  }

  cancel(reason?: unknown): void {
    this.cancelled = reason ?? new CancelledError();
    this.current?.cancel(reason);
    this.finished = true;
  }

  /**
   * Until the first item: sends the request, failing over as {@link FailoverStream} says; a
   * failure ends the stream.
   */
  private async first(): Promise<IteratorResult<T>> {
    const options = this.options;
    try {
      for (;;) {
        this.attempt++;
        // The instances tried: a set only once an attempt failed (most requests never fail over).
        const tried = this.tried ?? NONE_TRIED;
        const target =
          this.client.targetNow(options, tried) ?? (await this.client.waitForTarget(options, tried, this.attempt));
        if (this.cancelled !== undefined || options.parent?.cancelled) throw new CancelledError();
        // Abandoned (return()) while waiting for an instance: send nothing.
        if (this.finished) return DONE as IteratorResult<T>;
        this.current = this.plane.request<T>(target.subject, this.payload, options);
        const it = this.current[Symbol.asyncIterator]();
        this.it = it;
        try {
          const r = await it.next();
          if (this.finished && !r.done) {
            // Abandoned while the first item was on its way: stop the handler.
            void it.return?.()?.catch(() => undefined);
            return DONE as IteratorResult<T>;
          }
          if (r.done) this.finished = true;
          else this.sent = true;
          return r;
        } catch (e) {
          // Only the transport's "nobody listens" says the instance is gone; an UNAVAILABLE its
          // handler returned (e.g. it has no worker of its own right now) is worth a retry elsewhere
          // but says nothing against the instance itself.
          if (e instanceof NoRespondersError) this.client.markDown(target.instanceId);
          if (!isDynamoError(e) || e.code !== 'UNAVAILABLE' || this.attempt >= (options.maxAttempts ?? 3)) throw e;
          (this.tried ??= new Set()).add(target.instanceId);
          this.client.endpoint.runtime.logger.warn('instance unavailable; retrying on another', {
            request_id: this.requestId,
            instance_id: target.instanceId,
            attempt: this.attempt,
            error: e.message,
          });
        }
      }
    } catch (e) {
      this.finished = true;
      throw e;
    }
  }
}

function failedStream<T>(requestId: string, error: Error): ResponseStream<T> {
  return {
    requestId,
    cancel() {},
    [Symbol.asyncIterator]() {
      return {
        next: () => Promise.reject(error),
        return: () => Promise.resolve({ done: true, value: undefined }),
      } as AsyncIterator<T>;
    },
  };
}
