import type { Logger } from '@dynamo-ts/runtime';
import type { Platform } from './platform';

/** Options of {@link distributedPlatform}. */
export interface DistributedPlatformOptions {
  natsServers: string[];
  etcdEndpoints: string[];
  leaseTtlMs: number;
  logger: Logger;
}

/** The distributed platform: etcd discovery, NATS request/event planes, JetStream queues. */
export async function distributedPlatform(_options: DistributedPlatformOptions): Promise<Platform> {
  throw new Error('distributed mode is not available yet');
}
