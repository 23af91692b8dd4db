import type {
  Component,
  DistributedRuntime,
  EndpointClient,
  Logger,
  Namespace,
  RequestContext,
  TraceHeaders,
} from '@dynamo-ts/runtime';
import { validateName } from '@dynamo-ts/runtime';
import type { Api, ClientOf, Handlers } from './endpoint';

/** Any service definition, whatever its config type (for dependency lists). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyServiceDefinition = ServiceDefinition<any, any>;

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
  /** `DYN_HTTP_OVERLOAD_STATUS_CODE`: the status a frontend sheds load with (default 529). */
  overloadStatusCode?: 529 | 503 | 429;
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
  /**
   * When the request is traced: the headers that carry this hop's span to the calls it makes
   * (typed clients given this context as `parent` send them; pass them on in other carriers, e.g. a job).
   */
  readonly traceHeaders?: TraceHeaders;
}

/** An endpoint: an async generator over the response items. */
export type EndpointHandler<Req = unknown, Res = unknown> = (request: Req, ctx: EndpointContext) => AsyncIterable<Res>;

/** An endpoint with a JSON schema its requests are validated against before the handler runs. */
export interface EndpointSpec<Req = unknown, Res = unknown> {
  /** Requests failing it are answered with INVALID_ARGUMENT naming the field. */
  requestSchema?: JsonSchema;
  handler: EndpointHandler<Req, Res>;
}

/** The endpoints a service without a declared {@link ServiceOptions.api} serves, by name. */
export type UntypedEndpoints = Record<string, EndpointHandler<never, unknown> | EndpointSpec<never, unknown>>;

/** A service that declares no {@link ServiceOptions.api}. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export type NoApi = {};

/** What {@link ServiceDefinition.create} returns: the running service. */
export interface ServiceInstance<A extends Api = NoApi> {
  /**
   * Endpoints to serve, by name (each becomes `dynamo.{ns}.{Service}.{endpoint}.{instanceId}`):
   * one handler per endpoint of the service's declared `api`, or any handlers when it declares none.
   */
  endpoints?: [keyof A] extends [never] ? UntypedEndpoints : string extends keyof A ? UntypedEndpoints : Handlers<A>;
  /** Metadata registered in discovery with each endpoint instance. */
  metadata?: Record<string, unknown>;
  /** First step of a graceful stop: stop taking new work (e.g. close an HTTP listener), finish in-flight. */
  drain?(options: { timeoutMs: number }): Promise<void>;
  /** Last step of a stop: release resources. */
  close?(): Promise<void>;
}

/** What a service is given when it is created. */
export interface ServiceContext<C = Record<string, unknown>> extends ClientFactory {
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
}

/** Makes clients of other services' endpoints. */
export interface ClientFactory {
  /** A typed client of a declared endpoint of a service, following its instances. */
  client<A extends Api, K extends keyof A & string>(
    service: ServiceDefinition<never, A>,
    endpoint: K,
  ): Promise<ClientOf<A[K]>>;
  /** A client of an endpoint of a dependency (or any service by name), following its instances. */
  client(service: AnyServiceDefinition | string, endpoint: string): Promise<EndpointClient>;
}

/** How to declare a service with {@link defineService}. */
export interface ServiceOptions<C, A extends Api = NoApi> {
  /** Component name, e.g. `DummyWorker`. */
  name: string;
  /**
   * Its endpoints' wire contracts ({@link streamEndpoint}, {@link unaryEndpoint}): requests are
   * validated against them, handlers and clients typed by them.
   */
  api?: A;
  /** JSON schema of the service's config section (an object schema; `default`s are applied). */
  configSchema?: JsonSchema;
  /** Services this one calls (found through discovery; served in-process in embedded mode). */
  dependencies?: AnyServiceDefinition[];
  /** How many replicas the embedded graph starts when this service is reached only as a dependency. Default 1. */
  embeddedReplicas?: number;
  /** The embedded replica count read from the validated config (e.g. one per configured engine); wins over `embeddedReplicas`. */
  embeddedReplicasFor?(config: C): number;
  /** Builds the running service. */
  create(ctx: ServiceContext<C>): Promise<ServiceInstance<A>> | ServiceInstance<A>;
}

/** A declared service: a component with endpoints, config and dependencies; link services into a graph. */
export interface ServiceDefinition<C = Record<string, unknown>, A extends Api = NoApi> {
  readonly name: string;
  /** Its endpoints' declared contracts (empty when it declares none). */
  readonly api: A;
  readonly configSchema?: JsonSchema;
  readonly dependencies: readonly AnyServiceDefinition[];
  /** Services served together with this one (`serve module:This` serves them too). */
  readonly links: readonly AnyServiceDefinition[];
  readonly embeddedReplicas: number;
  /** See {@link ServiceOptions.embeddedReplicasFor}. */
  embeddedReplicasFor?(config: C): number;
  create(ctx: ServiceContext<C>): Promise<ServiceInstance<A>> | ServiceInstance<A>;
  /** Serves `other` with this service; returns `other`, so `A.link(B).link(C)` chains. */
  link<S extends AnyServiceDefinition>(other: S): S;
}

/** Declares a service. */
export function defineService<C = Record<string, unknown>, A extends Api = NoApi>(
  options: ServiceOptions<C, A>,
): ServiceDefinition<C, A> {
  validateName('service name', options.name);
  const links: AnyServiceDefinition[] = [];
  const def: ServiceDefinition<C, A> = {
    name: options.name,
    api: options.api ?? ({} as A),
    configSchema: options.configSchema,
    dependencies: options.dependencies ?? [],
    links,
    embeddedReplicas: options.embeddedReplicas ?? 1,
    embeddedReplicasFor: options.embeddedReplicasFor,
    create: (ctx) => options.create(ctx),
    link<S extends AnyServiceDefinition>(other: S): S {
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
