/**
 * `@dynamo-ts/runtime`: errors, logging, names, the plane interfaces (discovery, request plane,
 * event plane, work queue), the distributed runtime, and the in-memory backends. The NATS
 * backends are in `@dynamo-ts/runtime/nats`, etcd discovery in `@dynamo-ts/runtime/etcd`, so
 * importing this entry loads neither nats.js nor gRPC/etcd3.
 * @packageDocumentation
 */
export {
  CancelledError,
  ClosedError,
  DynamoError,
  ERROR_CODES,
  InternalError,
  InvalidArgumentError,
  NoRespondersError,
  NotFoundError,
  PayloadTooLargeError,
  TimeoutError,
  UnavailableError,
  abortReason,
  cancelReason,
  fromWireError,
  isDynamoError,
  throwIfAborted,
  toDynamoError,
  toWireError,
} from './errors';
export type { DynamoErrorOptions, ErrorCode, WireError } from './errors';
export { createLogger, flushLogs, noopLogger } from './logger';
export type { LogFields, LogLevel, Logger, LoggerOptions } from './logger';
export type { CallOptions } from './options';
export {
  DEFAULT_NAMESPACE,
  NAME_PATTERN,
  configKey,
  deadLetterSubject,
  endpointSubject,
  eventSubject,
  instanceKey,
  instancesPrefix,
  kvTransferKey,
  parseInstanceKey,
  queueStreamName,
  queueSubject,
  randomId64,
  validateName,
} from './names';
export type { Discovery, DiscoveryStatus, KvEntry, DiscoveryEvent, KvWatch, PutOptions } from './discovery/discovery';
export type {
  CancelSource,
  RequestContext,
  RequestHandler,
  RequestOptions,
  RequestPlane,
  ResponseStream,
  ServeOptions,
  ServedEndpoint,
} from './transport/request-plane';
export { DEFAULT_MAX_PAYLOAD } from './transport/request-plane';
export type { EventMessage, EventPlane, EventSubscription } from './events/event-plane';
export type { Job, PushOptions, WorkQueue, WorkQueueOptions, WorkQueueStats } from './queue/work-queue';
export {
  Component,
  DistributedRuntime,
  Endpoint,
  EndpointClient,
  Namespace,
  parseInstanceInfo,
  MAX_INSTANCE_VALUE_BYTES,
  MAX_INSTANCES,
} from './runtime';
export type {
  ClientRequestOptions,
  DistributedRuntimeOptions,
  EndpointServeOptions,
  InstanceChange,
  InstanceInfo,
  ParsedInstance,
  RouterMode,
  RuntimeBackends,
  ServedInstance,
} from './runtime';
export { MemoryDiscovery, MemoryKvStore } from './discovery/memory';
export type { MemoryDiscoveryOptions, MemoryKvStoreClient, MemoryKvStoreOptions } from './discovery/memory';
export { MemoryBus, MemoryRequestPlane } from './transport/memory/index';
export type {
  MemoryBusClient,
  MemoryBusListener,
  MemoryBusOptions,
  MemoryRequestPlaneOptions,
} from './transport/memory/index';
export { LocalFirstRequestPlane } from './transport/local-first';
export type { LocalFirstRequestPlaneOptions } from './transport/local-first';
export { Cancellation } from './util/cancellation';
export { MemoryEventPlane } from './events/memory';
export type { MemoryEventPlaneOptions } from './events/memory';
export { MemoryQueueStore, MemoryWorkQueue } from './queue/memory';
export type { DeadLetter, MemoryQueueStoreOptions, MemoryWorkQueueOptions } from './queue/memory';
export { MemoryCluster } from './memory';
export type { MemoryClusterOptions } from './memory';
export { checkTimerMs, MAX_TIMER_MS } from './util/timers';
export { nextTurn, turnIsLong, TURN_CHECK_ITEMS, TURN_SLICE_MS } from './util/turn';
export * as metrics from './metrics';
export { RetryPolicy } from './retry';
export type { RetryPolicyOptions } from './retry';
export * as dashboard from './dashboard';
export { startHopSpan, traceStream, HopSpan, TRACER_NAME } from './tracing';
export type { TraceHeaders } from './tracing';
export { redactSecrets, redactUrl, splitUrlCredentials } from './security/redact';
export type { SplitUrl } from './security/redact';
export { readTlsFiles } from './security/tls';
export type { TlsFiles, TlsMaterial } from './security/tls';
export { inboxPrefixFor, natsAuthorizationConfig, natsPermissions } from './security/nats-authorization';
export type { NatsAuthorizationOptions, NatsPermissions, NatsRole, NatsRoleUser } from './security/nats-authorization';
