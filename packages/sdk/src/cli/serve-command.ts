import { createLogger, InvalidArgumentError, redactUrl, type Logger } from '@dynamo-ts/runtime';
import { loadConfigFile, mergeConfig, type GraphConfig } from '../config';
import { loadService } from '../loader';
import { embeddedPlatform, type Platform } from '../platform';
import { serveGraph, type GraphHandle } from '../serve';
import { settingsFromEnv, type EnvSettings } from '../settings';
import { distributedPlatform } from '../distributed';
import { startMetricsServer, type MetricsServer } from '../metrics-server';

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

/** Builds the platform the environment selects. */
export async function platformFor(settings: EnvSettings, logger: Logger): Promise<Platform> {
  if (settings.mode === 'embedded') return embeddedPlatform({ leaseTtlMs: settings.leaseTtlMs });
  return distributedPlatform({
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
  const config = mergeConfig(...files.map(loadConfigFile), args.overrides);
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
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    stopping = true;
    logger.info('draining', { signal, timeout_s: args.drainTimeout });
    graph
      .close({ timeoutMs: args.drainTimeout * 1000 })
      .then(() => metricsServer?.close())
      .then(() => {
        logger.info('stopped', { signal });
        process.exitCode = 0;
        // Let the last log lines out, then leave even if a library left a handle open.
        setTimeout(() => process.exit(0), 50).unref();
      })
      .catch((e: Error) => {
        logger.error('error while draining', { error: e.message });
        process.exit(1);
      });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return graph;
}
