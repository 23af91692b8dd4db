import type { ServedEndpoint, RequestHandler } from '../transport/request-plane';
import { endpointSubject, instanceKey } from '../names';
import { EndpointClient } from './client';
import type { InstanceInfo } from './instance';
import type { Component, DistributedRuntime } from './runtime';

/** One served endpoint instance, registered in discovery. */
export interface ServedInstance {
  readonly info: InstanceInfo;
  readonly inflight: number;
  /** Deregisters, then drains the endpoint (in-flight streams finish, bounded by `timeoutMs`). */
  drain(options?: { timeoutMs?: number }): Promise<void>;
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
