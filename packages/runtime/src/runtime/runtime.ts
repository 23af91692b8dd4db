import os from 'node:os';
import type { Discovery } from '../discovery/discovery';
import type { EventPlane, EventSubscription } from '../events/event-plane';
import { MergedEventSubscription } from '../events/subscription';
import { ClosedError } from '../errors';
import { noopLogger, type Logger } from '../logger';
import { configKey, eventSubject, validateName } from '../names';
import type { CallOptions } from '../options';
import type { WorkQueue, WorkQueueOptions } from '../queue/work-queue';
import type { RequestPlane } from '../transport/request-plane';
import { parseUntrustedJson } from '../util/json';
import { RateLimiter } from '../util/rate-limit';
import { EndpointClient } from './client';
import { Endpoint, type ServedInstance } from './endpoint';

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
  private readonly configRejections = new RateLimiter();

  constructor(
    readonly runtime: DistributedRuntime,
    readonly name: string,
  ) {}

  component(name: string): Component {
    return new Component(this, validateName('component', name));
  }

  /**
   * Reads the live config value `dynamo/{ns}/config/{name}` (JSON), or undefined when it is
   * absent or not a valid value (too large, not JSON, or refused by `options.parse`; logged).
   */
  async getConfig<T = unknown>(name: string, options?: CallOptions & ConfigParseOptions<T>): Promise<T | undefined> {
    const key = configKey(this.name, validateName('config name', name));
    const v = await this.runtime.discovery.get(key, options);
    if (v === undefined) return undefined;
    const parsed = parseConfigValue(v, options?.parse);
    if (parsed.ok) return parsed.value;
    this.rejectConfig(key, parsed.error);
    return undefined;
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
   * (undefined when deleted). A value that is too large, not JSON or refused by `options.parse`
   * is logged (rate-limited) and skipped: the last good value stays. A throwing `onChange` is
   * logged and does not end the watch. Returns a function that stops watching.
   */
  watchConfig<T = unknown>(
    name: string,
    onChange: (value: T | undefined) => void,
    options: ConfigParseOptions<T> = {},
  ): () => void {
    const key = configKey(this.name, validateName('config name', name));
    const watch = this.runtime.discovery.watchPrefix(key);
    const log = this.runtime.logger;
    const deliver = (value: T | undefined): void => {
      try {
        onChange(value);
      } catch (e) {
        log.error('live config listener threw', { key, error: (e as Error).message });
      }
    };
    void (async () => {
      try {
        for await (const ev of watch) {
          if (ev.type === 'synced' || ev.key !== key) continue;
          if (ev.type === 'delete') {
            deliver(undefined);
            continue;
          }
          const parsed = parseConfigValue(ev.value, options.parse);
          if (parsed.ok) deliver(parsed.value);
          else this.rejectConfig(key, parsed.error);
        }
      } catch (e) {
        log.warn('config watch ended', { key, error: (e as Error).message });
      }
    })();
    return () => watch.close();
  }

  private rejectConfig(key: string, reason: string): void {
    const t = this.configRejections.take();
    if (t.ok) this.runtime.logger.warn('invalid live config ignored', { key, reason, suppressed: t.suppressed });
  }
}

/** The largest live config value accepted, in bytes. */
export const MAX_CONFIG_VALUE_BYTES = 1024 * 1024;

/** How a live config value is checked after parsing (see {@link Namespace.watchConfig}). */
export interface ConfigParseOptions<T> {
  /** Returns the typed value, or throws (the message is logged) when the value is not acceptable. */
  parse?: (value: unknown) => T;
}

function parseConfigValue<T>(
  text: string,
  parse: ((value: unknown) => T) | undefined,
): { ok: true; value: T } | { ok: false; error: string } {
  const parsed = parseUntrustedJson(text, MAX_CONFIG_VALUE_BYTES);
  if (!parsed.ok) return parsed;
  if (!parse) return { ok: true, value: parsed.value as T };
  try {
    return { ok: true, value: parse(parsed.value) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
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
