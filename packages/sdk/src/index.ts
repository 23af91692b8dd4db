/**
 * `@dynamo-ts/sdk`: declare services and their endpoints, link them into a graph, serve it embedded
 * or distributed (the NATS and etcd backends load only when a distributed platform is made).
 * @packageDocumentation
 */
export { defineService, isServiceDefinition } from './service';
export type {
  AnyServiceDefinition,
  EndpointContext,
  EndpointHandler,
  EndpointSpec,
  JsonSchema,
  ServeSettings,
  ServiceContext,
  ServiceDefinition,
  ServiceInstance,
  ServiceOptions,
  ClientFactory,
  NoApi,
  UntypedEndpoints,
} from './service';
export { TypedClient, UnaryResponse, streamEndpoint, unaryEndpoint } from './endpoint';
export type {
  Api,
  ClientOf,
  EndpointDeclaration,
  EndpointKind,
  HandlerOf,
  Handlers,
  RequestOf,
  ResponseOf,
  StreamHandler,
  UnaryHandler,
} from './endpoint';
export { resolveGraph } from './graph';
export type { ResolvedGraph } from './graph';
export {
  COMMON_SERVICE_KEYS,
  MAX_CONFIG_FILE_BYTES,
  checkSections,
  describeAjvError,
  loadConfigFile,
  mergeConfig,
  serviceConfig,
} from './config';
export type { GraphConfig } from './config';
export { embeddedPlatform } from './platform';
export type { EmbeddedPlatformOptions, Platform } from './platform';
export { serveGraph } from './serve';
export type { GraphHandle, RunningService, ServeGraphOptions } from './serve';
export { settingsFromEnv } from './settings';
export type { EnvSettings } from './settings';
export { loadService, moduleServiceNames, parseTarget, resolveModule } from './loader';
export { distributedPlatform } from './distributed';
export type { DistributedPlatformOptions } from './distributed';
export { startMetricsServer } from './metrics-server';
export type { MetricsServer } from './metrics-server';
export { SECRET_ENV, SECURITY_ENV, securityFromEnv } from './security-settings';
export type { NatsClientSettings, SecuritySettings } from './security-settings';
