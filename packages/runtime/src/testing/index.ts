/** `@dynamo-ts/runtime/testing`: real nats-server and etcd processes (and clusters) on free loopback ports, for tests. */
export { etcdArgs, findBinary, freePort, missingBinaries, startEtcd, startNatsServer } from './servers';
export type { EtcdServer, NatsServer, NatsServerOptions, ServerHandle } from './servers';
export { startEtcdCluster, startNatsCluster } from './cluster';
export type {
  EtcdCluster,
  EtcdClusterMember,
  EtcdClusterOptions,
  NatsCluster,
  NatsClusterMember,
  NatsClusterOptions,
} from './cluster';
export { capturedLogger, enableEtcdAuth, expectNoSecret, makeTestCertificates } from './security';
export type { EtcdTestUser, TestCertificates } from './security';
