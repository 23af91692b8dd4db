import { DistributedRuntime, LocalFirstRequestPlane, MemoryBus, type Logger } from '@dynamo-ts/runtime';
import type * as NatsBackends from '@dynamo-ts/runtime/nats';
import type * as EtcdBackends from '@dynamo-ts/runtime/etcd';
import type { EtcdSecurityOptions } from '@dynamo-ts/runtime/etcd';
import type { NatsClientSettings } from './security-settings';
import type { Platform } from './platform';

/** Options of {@link distributedPlatform}. */
export interface DistributedPlatformOptions {
  natsServers: string[];
  etcdEndpoints: string[];
  leaseTtlMs: number;
  logger: Logger;
  /** Client name shown in NATS monitoring. Default `dynamo-ts`. */
  name?: string;
  /** Replicas of the JetStream work-queue streams this process creates (an existing stream keeps its own). Default 1. */
  queueReplicas?: number;
  /**
   * Calls to an endpoint served by this process skip NATS (an in-process plane shared by the
   * process's runtimes, see `LocalFirstRequestPlane`). Default true.
   */
  localCalls?: boolean;
  /** NATS credentials, TLS files and inbox prefix; shared by the request plane, the event plane and JetStream. */
  nats?: NatsClientSettings;
  /** etcd user/password and TLS files. */
  etcd?: EtcdSecurityOptions;
  /** A token added to the endpoint subjects this process serves (see `DistributedRuntimeOptions.subjectScope`). */
  subjectScope?: string;
}

/**
 * The distributed platform: one NATS connection per process shared by its runtimes (request
 * and event planes, JetStream queues), and one etcd discovery client (one lease) per runtime.
 * Unless `localCalls` is false, the runtimes also share an in-process bus, and a call to an
 * endpoint this process serves stays in the process.
 */
export async function distributedPlatform(options: DistributedPlatformOptions): Promise<Platform> {
  // Loaded here, not at the top: an embedded graph (and `dynamo-ts serve` without NATS) never loads nats.js or gRPC.
  const { connectNats, JetStreamWorkQueue, NatsEventPlane, NatsRequestPlane } =
    require('@dynamo-ts/runtime/nats') as typeof NatsBackends;
  const { EtcdDiscovery } = require('@dynamo-ts/runtime/etcd') as typeof EtcdBackends;
  const nc = await connectNats({
    ...options.nats,
    servers: options.natsServers,
    name: options.name ?? 'dynamo-ts',
    logger: options.logger.child({ component: 'nats' }),
  });
  const local = options.localCalls === false ? undefined : new MemoryBus({ logger: options.logger });
  return {
    mode: 'distributed',
    async newRuntime(logger: Logger): Promise<DistributedRuntime> {
      const discovery = await EtcdDiscovery.connect({
        ...options.etcd,
        endpoints: options.etcdEndpoints,
        leaseTtlMs: options.leaseTtlMs,
        logger: logger.child({ plane: 'etcd' }),
      });
      return new DistributedRuntime({
        discovery,
        requestPlane:
          local === undefined
            ? new NatsRequestPlane(nc, { logger })
            : new LocalFirstRequestPlane(new NatsRequestPlane(nc, { logger }), local, { logger }),
        eventPlane: new NatsEventPlane(nc, { logger }),
        ...(options.subjectScope !== undefined ? { subjectScope: options.subjectScope } : {}),
        openQueue: (qopts) => JetStreamWorkQueue.create(nc, { replicas: options.queueReplicas ?? 1, ...qopts, logger }),
        logger,
      });
    },
    async close(): Promise<void> {
      if (!nc.isClosed()) await nc.drain();
      await local?.close();
    },
  };
}
