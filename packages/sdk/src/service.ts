import type {
  Component,
  DistributedRuntime,
  EndpointClient,
  Logger,
  Namespace,
  RequestContext,
} from '@dynamo-ts/runtime';
import { validateName } from '@dynamo-ts/runtime';

/** Any service definition, whatever its config type (for dependency lists). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyServiceDefinition = ServiceDefinition<any>;

/** A JSON schema (draft-07 subset understood by ajv). */
export type JsonSchema = Record<string, unknown>;

/** Process-wide settings, read from the environment at the CLI edge and passed down. */
export interface ServeSettings {
  /** Namespace every service registers in. Default `dynamo-demo`. */
  namespace: string;
  /** HTTP port of a frontend. Default 8000. */
  port: number;
  /** Base worker name (`DYNAMO_WORKER_NAME`, default the host name). */
  workerName: string;
  /** Discovery lease TTL in ms. */
  leaseTtlMs: number;
  /** API keys a frontend accepts (`DYNAMO_API_KEYS`, `DYNAMO_API_KEY_FILE`); none: no key required. */
  apiKeys?: string[];
  /** A frontend's `/metrics` needs an API key too (`DYNAMO_METRICS_REQUIRE_KEY=1`). */
  metricsRequireKey?: boolean;
  /** Address a frontend listens on (`DYNAMO_HOST`). */
  host?: string;
}

/** What an endpoint handler gets with each request. */
export interface EndpointContext extends RequestContext {
  /** Logger carrying `request_id`, `component` and `endpoint`. */
  readonly logger: Logger;
}

/** An endpoint: an async generator over the response items. */
export type EndpointHandler<Req = unknown, Res = unknown> = (request: Req, ctx: EndpointContext) => AsyncIterable<Res>;

/** An endpoint with a JSON schema its requests are validated against before the handler runs. */
export interface EndpointSpec<Req = unknown, Res = unknown> {
  /** Requests failing it are answered with INVALID_ARGUMENT naming the field. */
  requestSchema?: JsonSchema;
  handler: EndpointHandler<Req, Res>;
}

/** What {@link ServiceDefinition.create} returns: the running service. */
export interface ServiceInstance {
  /** Endpoints to serve, by name (each becomes `dynamo.{ns}.{Service}.{endpoint}.{instanceId}`). */
  endpoints?: Record<string, EndpointHandler<never, unknown> | EndpointSpec<never, unknown>>;
  /** Metadata registered in discovery with each endpoint instance. */
  metadata?: Record<string, unknown>;
  /** First step of a graceful stop: stop taking new work (e.g. close an HTTP listener), finish in-flight. */
  drain?(options: { timeoutMs: number }): Promise<void>;
  /** Last step of a stop: release resources. */
  close?(): Promise<void>;
}

/** What a service is given when it is created. */
export interface ServiceContext<C = Record<string, unknown>> {
  /** The service (component) name. */
  readonly name: string;
  /** Its validated config section (defaults applied). */
  readonly config: C;
  readonly runtime: DistributedRuntime;
  readonly namespace: Namespace;
  /** The component named after the service. */
  readonly component: Component;
  /** Logger scoped to the service (and replica). */
  readonly logger: Logger;
  /** Replica index, 0-based. */
  readonly replica: number;
  /** Number of replicas of this service started by this process. */
  readonly replicas: number;
  /** `settings.workerName`, with `-{replica}` appended when this process runs several replicas. */
  readonly workerName: string;
  readonly settings: ServeSettings;
  /** Fires when the process starts to stop. */
  readonly signal: AbortSignal;
  /** A client of an endpoint of a dependency (or any service by name), following its instances. */
  client(service: AnyServiceDefinition | string, endpoint: string): Promise<EndpointClient>;
}

/** How to declare a service with {@link defineService}. */
export interface ServiceOptions<C> {
  /** Component name, e.g. `DummyWorker`. */
  name: string;
  /** JSON schema of the service's config section (an object schema; `default`s are applied). */
  configSchema?: JsonSchema;
  /** Services this one calls (found through discovery; served in-process in embedded mode). */
  dependencies?: AnyServiceDefinition[];
  /** How many replicas the embedded graph starts when this service is reached only as a dependency. Default 1. */
  embeddedReplicas?: number;
  /** Builds the running service. */
  create(ctx: ServiceContext<C>): Promise<ServiceInstance> | ServiceInstance;
}

/** A declared service: a component with endpoints, config and dependencies; link services into a graph. */
export interface ServiceDefinition<C = Record<string, unknown>> {
  readonly name: string;
  readonly configSchema?: JsonSchema;
  readonly dependencies: readonly AnyServiceDefinition[];
  /** Services served together with this one (`serve module:This` serves them too). */
  readonly links: readonly AnyServiceDefinition[];
  readonly embeddedReplicas: number;
  create(ctx: ServiceContext<C>): Promise<ServiceInstance> | ServiceInstance;
  /** Serves `other` with this service; returns `other`, so `A.link(B).link(C)` chains. */
  link<D>(other: ServiceDefinition<D>): ServiceDefinition<D>;
}

/** Declares a service. */
export function defineService<C = Record<string, unknown>>(options: ServiceOptions<C>): ServiceDefinition<C> {
  validateName('service name', options.name);
  const links: AnyServiceDefinition[] = [];
  const def: ServiceDefinition<C> = {
    name: options.name,
    configSchema: options.configSchema,
    dependencies: options.dependencies ?? [],
    links,
    embeddedReplicas: options.embeddedReplicas ?? 1,
    create: (ctx) => options.create(ctx),
    link<D>(other: ServiceDefinition<D>): ServiceDefinition<D> {
      if (!links.includes(other)) links.push(other);
      return other;
    },
  };
  return def;
}

/** True when `x` looks like a {@link ServiceDefinition}. */
export function isServiceDefinition(x: unknown): x is ServiceDefinition {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as ServiceDefinition).name === 'string' &&
    typeof (x as ServiceDefinition).create === 'function' &&
    Array.isArray((x as ServiceDefinition).links)
  );
}
