import { MemoryDiscovery, MemoryKvStore } from './discovery/memory';
import type { MemoryDiscoveryOptions } from './discovery/memory';
import { MemoryEventPlane } from './events/memory';
import type { MemoryEventPlaneOptions } from './events/memory';
import type { Logger } from './logger';
import { noopLogger } from './logger';
import { MemoryQueueStore, MemoryWorkQueue } from './queue/memory';
import type { MemoryWorkQueueOptions } from './queue/memory';
import { MemoryBus, MemoryRequestPlane } from './transport/memory/index';
import type { MemoryRequestPlaneOptions } from './transport/memory/index';

/** Options of {@link MemoryCluster}. */
export interface MemoryClusterOptions {
  /** Logger of the shared servers, and the default of the clients made by the cluster's factories. */
  logger?: Logger;
}

/**
 * The embedded "servers" of one process, bundled: the discovery store ("etcd"), the bus ("NATS")
 * and the queue store ("JetStream", publishing dead letters on the bus). Clients connect to them
 * like processes to real servers, through the factories below or the implementations' own.
 * {@link MemoryCluster.close} closes every client and stops every timer.
 */
export class MemoryCluster {
  readonly kv: MemoryKvStore;
  readonly bus: MemoryBus;
  readonly queues: MemoryQueueStore;
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;

  constructor(options: MemoryClusterOptions = {}) {
    this.logger = options.logger ?? noopLogger;
    this.kv = new MemoryKvStore({ logger: this.logger });
    this.bus = new MemoryBus({ logger: this.logger });
    this.queues = new MemoryQueueStore({ bus: this.bus, logger: this.logger });
  }

  /** A new discovery client (one "process", one lease). */
  connectDiscovery(options: MemoryDiscoveryOptions = {}): Promise<MemoryDiscovery> {
    return MemoryDiscovery.connect(this.kv, { logger: this.logger, ...options });
  }

  /** A new request plane on the cluster's bus. */
  requestPlane(options: MemoryRequestPlaneOptions = {}): MemoryRequestPlane {
    return new MemoryRequestPlane(this.bus, { logger: this.logger, ...options });
  }

  /** A new event plane on the cluster's bus. */
  eventPlane(options: MemoryEventPlaneOptions = {}): MemoryEventPlane {
    return new MemoryEventPlane(this.bus, { logger: this.logger, ...options });
  }

  /** A new client of a work queue of the cluster's queue store. */
  workQueue<T = unknown>(options: MemoryWorkQueueOptions): MemoryWorkQueue<T> {
    return new MemoryWorkQueue<T>(this.queues, { logger: this.logger, ...options });
  }

  /** Closes every client and server of the cluster and stops their timers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.queues.close();
      await this.bus.close();
      await this.kv.close();
    })();
    return this.closing;
  }
}
