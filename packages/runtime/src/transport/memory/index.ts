export { MemoryBus, type MemoryBusClient, type MemoryBusListener, type MemoryBusOptions } from './bus';
export { MemoryRequestPlane, type MemoryRequestPlaneOptions } from './plane';
