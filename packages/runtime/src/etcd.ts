/**
 * `@dynamo-ts/runtime/etcd`: discovery on etcd (leases, watches, the KV store). A subpath so
 * that the root entry does not load gRPC and etcd3.
 * @packageDocumentation
 */
export { EtcdDiscovery } from './discovery/etcd';
export type { EtcdDiscoveryOptions } from './discovery/etcd';
export type { EtcdSecurityOptions } from './discovery/etcd';
