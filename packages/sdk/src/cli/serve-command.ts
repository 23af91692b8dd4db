import {
  createLogger,
  flushLogs,
  InvalidArgumentError,
  isDynamoError,
  redactUrl,
  UnavailableError,
  type Logger,
} from '@dynamo-ts/runtime';
import { checkSections, loadConfigFile, mergeConfig, type GraphConfig } from '../config';
import { loadService, moduleServiceNames } from '../loader';
import { embeddedPlatform, type Platform } from '../platform';
import { serveGraph, type GraphHandle } from '../serve';
import { settingsFromEnv, type EnvSettings } from '../settings';
import { distributedPlatform } from '../distributed';
import { startMetricsServer, type MetricsServer } from '../metrics-server';
import { EXIT } from './exit';

/** Parsed arguments of `dynamo-ts serve`. */
export interface ServeArgs {
  target: string;
  /** Config files, later ones winning. */
  file?: string[];
  /** `--Service.key=value` overrides, as yargs nests them. */
  overrides: GraphConfig;
  /** Seconds to let in-flight work finish on SIGINT/SIGTERM. */
  drainTimeout: number;
}

/** Splits yargs' parsed options into known flags and `--Service.key=value` overrides. */
export function splitOverrides(argv: Record<string, unknown>, known: ReadonlySet<string>): GraphConfig {
  const overrides: GraphConfig = {};
  for (const [k, v] of Object.entries(argv)) {
    if (k === '_' || k === '$0' || known.has(k)) continue;
    if (!/^[A-Z]/.test(k)) throw new InvalidArgumentError(`unknown option --${k}`);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new InvalidArgumentError(`--${k} needs a key: use --${k}.<key>=<value>`);
    }
    overrides[k] = v as Record<string, unknown>;
  }
  return overrides;
}

/**
 * An unreachable etcd, said in the terms of the variable that names it (the runtime's error
 * carries gRPC's own words, kept at the end).
 */
export function etcdUnreachable(e: unknown, endpoints: readonly string[]): unknown {
  if (!isDynamoError(e) || e.code !== 'UNAVAILABLE' || !/etcd/.test(e.message)) return e;
  const detail = /Last error: (.*)$/.exec(e.message)?.[1] ?? e.message;
  return new UnavailableError(
    `cannot reach etcd at ETCD_ENDPOINTS=${endpoints.join(',')}: is etcd running there? (${detail})`,
    { cause: e },
  );
}

/** Builds the platform the environment selects. */
export async function platformFor(settings: EnvSettings, logger: Logger): Promise<Platform> {
  if (settings.mode === 'embedded') return embeddedPlatform({ leaseTtlMs: settings.leaseTtlMs });
  const platform = await distributedPlatform({
    natsServers: settings.natsServers,
    etcdEndpoints: settings.etcdEndpoints,
    leaseTtlMs: settings.leaseTtlMs,
    queueReplicas: settings.queueReplicas,
    localCalls: settings.localCalls,
    nats: settings.nats,
    etcd: settings.etcd,
    ...(settings.subjectScope !== undefined ? { subjectScope: settings.subjectScope } : {}),
    logger,
  });
  return {
    mode: platform.mode,
    newRuntime: (l) =>
      platform.newRuntime(l).catch((e: unknown) => Promise.reject(etcdUnreachable(e, settings.etcdEndpoints))),
    close: () => platform.close(),
  };
}

/**
 * Under `npx`/`npm exec` the server runs below npm and a shell that may not pass SIGTERM on: when
 * that parent goes away the server would be left serving, orphaned. So under npm, a changed
 * parent process id counts as SIGTERM.
 */
function watchParent(env: NodeJS.ProcessEnv, onOrphaned: () => void): NodeJS.Timeout | undefined {
  if (env.npm_command === undefined && env.npm_lifecycle_event === undefined) return undefined;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      onOrphaned();
    }
  }, 250);
  timer.unref();
  return timer;
}

/**
 * `dynamo-ts serve`: loads the target service, reads config and environment, serves the graph,
 * and stops gracefully on SIGINT/SIGTERM (exit 0; a second signal exits at once with 130).
 */
export async function runServe(args: ServeArgs, env: NodeJS.ProcessEnv = process.env): Promise<GraphHandle> {
  const settings = settingsFromEnv(env, { stderrIsTTY: process.stderr.isTTY });
  const logger = createLogger({ level: settings.logLevel, format: settings.logFormat });
  const root = loadService(args.target);
  const files = args.file ?? [];
  // Sections for services the target's module does not define: a typo in a shared file, or a
  // flag for a service this process does not serve.
  const known = moduleServiceNames(args.target);
  const layers = files.map((f) => {
    const layer = loadConfigFile(f);
    checkSections(layer, known, `config file ${f}`, false);
    return layer;
  });
  checkSections(args.overrides, known, 'command-line overrides', true);
  const config = mergeConfig(...layers, args.overrides);
  const source =
    [...files, ...(Object.keys(args.overrides).length ? ['command-line overrides'] : [])].join(' + ') || 'defaults';
  const platform = await platformFor(settings, logger);
  logger.info('serving', {
    target: args.target,
    mode: settings.mode,
    namespace: settings.namespace,
    config: source,
    // URLs without their user:password@ part: the serving line must not carry credentials.
    ...(settings.mode === 'distributed'
      ? { nats: settings.natsServers.map(redactUrl), etcd: settings.etcdEndpoints.map(redactUrl) }
      : {}),
  });
  let graph: GraphHandle;
  try {
    graph = await serveGraph(root, { platform, config, configSource: source, settings, logger });
  } catch (e) {
    await platform.close();
    throw e;
  }
  let metricsServer: MetricsServer | undefined;
  if (settings.metricsPort !== undefined) {
    try {
      metricsServer = await startMetricsServer({ port: settings.metricsPort, host: settings.metricsHost });
      logger.info('metrics served', { url: `${metricsServer.url}/metrics` });
    } catch (e) {
      await graph.close({ timeoutMs: 0 });
      throw new InvalidArgumentError(
        `DYNAMO_METRICS_PORT ${settings.metricsPort}: cannot listen (${(e as Error).message})`,
      );
    }
  }
  // A graph serves until it is asked to stop, even one with nothing listening (embedded, no HTTP).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      flushLogs();
      process.exit(EXIT.INTERRUPTED);
    }
    stopping = true;
    clearInterval(keepAlive);
    if (parentWatch) clearInterval(parentWatch);
    logger.info('draining', { signal, timeout_s: args.drainTimeout });
    graph
      .close({ timeoutMs: args.drainTimeout * 1000 })
      .then(() => metricsServer?.close())
      .then(() => {
        logger.info('stopped', { signal });
        process.exitCode = EXIT.OK;
        // Let the last log lines out, then leave even if a library left a handle open.
        setTimeout(() => process.exit(EXIT.OK), 50).unref();
      })
      .catch((e: Error) => {
        logger.error('error while draining', { error: e.message });
        flushLogs();
        process.exit(EXIT.FAILURE);
      });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const parentWatch = watchParent(env, () => {
    logger.warn('parent process gone (npx/npm did not pass the signal on): stopping');
    stop('SIGTERM');
  });
  return graph;
}
