/** The compliance suites run against the in-memory implementations. */
import { MemoryDiscovery, MemoryKvStore } from '../../src/discovery/memory';
import type { Discovery } from '../../src/discovery/discovery';
import { MemoryEventPlane } from '../../src/events/memory';
import { MemoryQueueStore, MemoryWorkQueue } from '../../src/queue/memory';
import type { WorkQueue } from '../../src/queue/work-queue';
import { MemoryBus, MemoryRequestPlane } from '../../src/transport/memory';
import {
  describeDiscoveryCompliance,
  describeEventPlaneCompliance,
  describeRequestPlaneCompliance,
  describeWorkQueueCompliance,
} from '@dynamo-ts/runtime/compliance';

describeDiscoveryCompliance('MemoryDiscovery', async () => {
  const store = new MemoryKvStore();
  const clients: MemoryDiscovery[] = [];
  return {
    async connect(options) {
      const c = await MemoryDiscovery.connect(store, options);
      clients.push(c);
      return c;
    },
    crash: (client: Discovery) => (client as MemoryDiscovery).crash(),
    async teardown() {
      await Promise.all(clients.map((c) => c.close()));
      await store.close();
    },
  };
});

describeRequestPlaneCompliance('MemoryRequestPlane', async () => {
  const bus = new MemoryBus();
  return {
    connect: async () => new MemoryRequestPlane(bus),
    teardown: () => bus.close(),
  };
});

describeEventPlaneCompliance('MemoryEventPlane', async () => {
  const bus = new MemoryBus();
  return {
    connect: async () => new MemoryEventPlane(bus),
    teardown: () => bus.close(),
  };
});

describeWorkQueueCompliance('MemoryWorkQueue', async () => {
  const store = new MemoryQueueStore();
  return {
    connect: async (options) => new MemoryWorkQueue(store, options),
    crash: (queue: WorkQueue) => (queue as MemoryWorkQueue).crash(),
    teardown: () => store.close(),
  };
});
