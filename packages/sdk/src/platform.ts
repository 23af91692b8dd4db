import {
  DistributedRuntime,
  MemoryCluster,
  MemoryDiscovery,
  MemoryEventPlane,
  MemoryRequestPlane,
  MemoryWorkQueue,
  type Logger,
} from '@dynamo-ts/runtime';

/**
 * Where a graph runs: makes runtimes (one per process identity, i.e. one discovery lease) on
 * shared planes. Embedded: in-memory planes in this process. Distributed: etcd and NATS.
 */
export interface Platform {
  readonly mode: 'embedded' | 'distributed';
  /** A new runtime with its own lease (an embedded "process", or a replica in a real one). */
  newRuntime(logger: Logger): Promise<DistributedRuntime>;
  /** Closes what the platform shares (connections, the in-memory cluster) after every runtime closed. */
  close(): Promise<void>;
}

/** Options of {@link embeddedPlatform}. */
export interface EmbeddedPlatformOptions {
  leaseTtlMs?: number;
  /** Share an existing cluster (tests that start several graphs on one cluster). */
  cluster?: MemoryCluster;
}

/** The in-memory platform: every runtime on one {@link MemoryCluster}. */
export function embeddedPlatform(options: EmbeddedPlatformOptions = {}): Platform {
  const owned = !options.cluster;
  const cluster = options.cluster ?? new MemoryCluster();
  return {
    mode: 'embedded',
    async newRuntime(logger: Logger): Promise<DistributedRuntime> {
      const discovery = await MemoryDiscovery.connect(cluster.kv, { leaseTtlMs: options.leaseTtlMs, logger });
      return new DistributedRuntime({
        discovery,
        requestPlane: new MemoryRequestPlane(cluster.bus, { logger }),
        eventPlane: new MemoryEventPlane(cluster.bus, { logger }),
        openQueue: async (qopts) => new MemoryWorkQueue(cluster.queues, { ...qopts, logger }),
        logger,
      });
    },
    async close(): Promise<void> {
      if (owned) await cluster.close();
    },
  };
}
