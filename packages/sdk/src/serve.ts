import {
  InvalidArgumentError,
  noopLogger,
  startHopSpan,
  toDynamoError,
  traceStream,
  type HopSpan,
  type TraceHeaders,
  type DistributedRuntime,
  type EndpointClient,
  type Logger,
  type RequestContext,
  type ServedInstance,
} from '@dynamo-ts/runtime';
import Ajv from 'ajv';
import { describeAjvError, serviceConfig, type GraphConfig } from './config';
import { resolveGraph } from './graph';
import { TypedClient, UnaryResponse, type EndpointDeclaration } from './endpoint';
import type { Platform } from './platform';
import type {
  EndpointContext,
  EndpointHandler,
  EndpointSpec,
  ServeSettings,
  AnyServiceDefinition,
  ServiceContext,
  ServiceDefinition,
  ServiceInstance,
} from './service';

/** Options of {@link serveGraph}. */
export interface ServeGraphOptions {
  platform: Platform;
  config?: GraphConfig;
  /** Where the config came from, for error messages (e.g. `configs/agg.yaml and --flags`). */
  configSource?: string;
  settings: ServeSettings;
  logger?: Logger;
}

/** One running replica of a service. */
export interface RunningService {
  readonly definition: ServiceDefinition;
  readonly replica: number;
  readonly runtime: DistributedRuntime;
  readonly instance: ServiceInstance;
  readonly served: readonly ServedInstance[];
  readonly workerName: string;
}

/** A served graph. */
export interface GraphHandle {
  readonly services: readonly RunningService[];
  /** Replicas of one service, by name. */
  get(name: string): RunningService[];
  /**
   * Graceful stop, dependents first: each service stops taking work and finishes in-flight
   * work (bounded by `timeoutMs`, default 30 s), its endpoints deregister and drain, its lease is
   * revoked; then the platform closes. Idempotent.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

const ajv = new Ajv({ allErrors: true, strict: false });

/** Compiled validators of declared request schemas, shared by every replica serving them. */
const validators = new WeakMap<object, ReturnType<typeof ajv.compile>>();
function validatorOf(schema: object): ReturnType<typeof ajv.compile> {
  let v = validators.get(schema);
  if (!v) validators.set(schema, (v = ajv.compile(schema)));
  return v;
}

function wrapHandler(
  service: string,
  endpoint: string,
  spec: EndpointHandler<never, unknown> | EndpointSpec<never, unknown>,
  declaration: EndpointDeclaration | undefined,
  logger: Logger,
): (req: unknown, ctx: RequestContext) => AsyncIterable<unknown> {
  const handler = (typeof spec === 'function' ? spec : spec.handler) as (req: unknown, ctx: EndpointContext) => unknown;
  const schema = declaration?.request ?? (typeof spec === 'function' ? undefined : spec.requestSchema);
  const validate = schema ? validatorOf(schema) : undefined;
  const unary = declaration?.kind === 'unary';
  const log = logger.child({ endpoint });
  const spanName = `${service}.${endpoint}`;
  return (req, ctx) => {
    if (validate && !validate(req)) {
      const msg = (validate.errors ?? []).map((e) => describeAjvError('request', e)).join('; ');
      const err = new InvalidArgumentError(`${service}.${endpoint}: ${msg}`);
      return new UnaryResponse(() => Promise.reject(err));
    }
    const hop = startHopSpan(spanName, ctx.headers, { attributes: { 'dynamo.request_id': ctx.requestId } });
    const hctx = new HandlerContext(ctx, log, hop);
    const out = unary ? new UnaryResponse(() => handler(req, hctx)) : (handler(req, hctx) as AsyncIterable<unknown>);
    return hop ? traceStream(out, hop) : out;
  };
}

/**
 * The {@link EndpointContext} of one request: the plane's context, read through (its AbortSignal
 * is created only when the handler reads `signal`), and a logger carrying `request_id` made when
 * the handler first uses it. A class rather than an object literal with getters: one small
 * object per request, its accessors shared.
 */
class HandlerContext implements EndpointContext {
  private log: Logger | undefined;

  constructor(
    private readonly ctx: RequestContext,
    private readonly endpointLogger: Logger,
    private readonly hop: HopSpan | undefined,
  ) {}

  get traceHeaders(): TraceHeaders | undefined {
    return this.hop?.headers;
  }

  get requestId(): string {
    return this.ctx.requestId;
  }
  get headers(): Readonly<Record<string, string>> {
    return this.ctx.headers;
  }
  get deadline(): number | undefined {
    return this.ctx.deadline;
  }
  get subject(): string {
    return this.ctx.subject;
  }
  get signal(): AbortSignal {
    return this.ctx.signal;
  }
  get cancelled(): boolean {
    return this.ctx.cancelled;
  }
  onCancel(listener: (reason: Error) => void): () => void {
    return this.ctx.onCancel(listener);
  }
  get logger(): Logger {
    return (this.log ??= this.endpointLogger.child({ request_id: this.ctx.requestId }));
  }
}

/**
 * Serves `root` and the services linked below it (in embedded mode also their dependencies),
 * dependencies first, each replica on its own runtime (lease). Resolves when every replica is
 * serving and registered.
 */
export async function serveGraph(root: AnyServiceDefinition, options: ServeGraphOptions): Promise<GraphHandle> {
  const { platform, settings } = options;
  const baseLogger = options.logger ?? noopLogger;
  const config = options.config ?? {};
  const source = options.configSource ?? 'config';
  const graph = resolveGraph(root, { includeDependencies: platform.mode === 'embedded' });

  // Validate every section first, so a bad key fails before anything starts.
  const configs = new Map<ServiceDefinition, Record<string, unknown> & { replicas?: number }>();
  for (const s of graph.services) configs.set(s, serviceConfig(s, config, source));

  const stopping = new AbortController();
  const running: RunningService[] = [];
  const runtimes: DistributedRuntime[] = [];

  const closeAll = async (timeoutMs: number): Promise<void> => {
    stopping.abort(new Error('shutting down'));
    // Dependents first: reverse start order.
    for (const r of [...running].reverse()) {
      const log = baseLogger.child({ component: r.definition.name });
      try {
        await r.instance.drain?.({ timeoutMs });
        await Promise.all(r.served.map((s) => s.drain({ timeoutMs })));
        await r.instance.close?.();
      } catch (e) {
        log.error('error while stopping service', { error: toDynamoError(e).message });
      }
    }
    for (const rt of [...runtimes].reverse()) {
      try {
        await rt.close({ timeoutMs });
      } catch (e) {
        baseLogger.error('error while closing runtime', { error: toDynamoError(e).message });
      }
    }
    await platform.close();
  };

  try {
    for (const def of graph.services) {
      const cfg = configs.get(def)!;
      const replicas =
        cfg.replicas ?? (graph.dependencyOnly.has(def) ? (def.embeddedReplicasFor?.(cfg) ?? def.embeddedReplicas) : 1);
      delete cfg.replicas;
      for (let replica = 0; replica < replicas; replica++) {
        const workerName = replicas > 1 ? `${settings.workerName}-${replica}` : settings.workerName;
        const logger = baseLogger.child(
          replicas > 1 ? { component: def.name, replica, worker: workerName } : { component: def.name },
        );
        const runtime = await platform.newRuntime(logger);
        runtimes.push(runtime);
        const namespace = runtime.namespace(settings.namespace);
        const component = namespace.component(def.name);
        const clients = new Map<string, Promise<EndpointClient>>();
        const ctx = {
          name: def.name,
          config: { ...cfg },
          runtime,
          namespace,
          component,
          logger,
          replica,
          replicas,
          workerName,
          settings,
          signal: stopping.signal,
          client(service: AnyServiceDefinition | string, endpoint: string): Promise<never> {
            const name = typeof service === 'string' ? service : service.name;
            const key = `${name}/${endpoint}`;
            let c = clients.get(key);
            if (!c) {
              c = namespace.component(name).endpoint(endpoint).client();
              clients.set(key, c);
            }
            // A declared endpoint of a service definition gets its typed client.
            const declared = typeof service !== 'string' && Object.hasOwn(service.api, endpoint);
            return (declared ? c.then((raw) => new TypedClient(raw)) : c) as Promise<never>;
          },
        } as ServiceContext;
        const instance: ServiceInstance = await def.create(ctx);
        const endpoints = (instance.endpoints ?? {}) as Record<string, EndpointHandler<never, unknown>>;
        for (const ep of Object.keys(def.api)) {
          if (!Object.hasOwn(endpoints, ep))
            throw new Error(`${def.name} declares endpoint ${ep} but serves no handler for it`);
        }
        const served: ServedInstance[] = [];
        for (const [ep, spec] of Object.entries(endpoints)) {
          const declaration = Object.hasOwn(def.api, ep)
            ? (def.api as Record<string, EndpointDeclaration>)[ep]
            : undefined;
          served.push(
            await component.endpoint(ep).serve(wrapHandler(def.name, ep, spec, declaration, logger), {
              name: workerName,
              metadata: instance.metadata,
            }),
          );
        }
        running.push({ definition: def, replica, runtime, instance, served, workerName });
        logger.info('service ready', {
          service: def.name,
          name: workerName,
          instance_id: runtime.instanceId,
          endpoints: served.map((s) => s.info.endpoint),
          mode: platform.mode,
        });
      }
    }
  } catch (e) {
    await closeAll(1000);
    throw e;
  }

  let closing: Promise<void> | undefined;
  return {
    services: running,
    get: (name) => running.filter((r) => r.definition.name === name),
    close: (opts = {}) => (closing ??= closeAll(opts.timeoutMs ?? 30000)),
  };
}
