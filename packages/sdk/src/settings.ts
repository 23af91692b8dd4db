import os from 'node:os';
import Ajv from 'ajv';
import { DEFAULT_NAMESPACE, InvalidArgumentError, NAME_PATTERN, type LogLevel } from '@dynamo-ts/runtime';
import { describeAjvError } from './config';
import { securityFromEnv, SECURITY_ENV, type SecuritySettings } from './security-settings';
import type { ServeSettings } from './service';

/** Everything the CLI reads from the environment, validated. */
export interface EnvSettings extends Omit<ServeSettings, keyof SecuritySettings>, SecuritySettings {
  mode: 'embedded' | 'distributed';
  natsServers: string[];
  etcdEndpoints: string[];
  logLevel: LogLevel;
  logFormat: 'json' | 'pretty';
  /** `DYNAMO_METRICS_PORT`: serve Prometheus `/metrics` on this port (frontends serve it on their own port). */
  metricsPort?: number;
  /** `DYNAMO_METRICS_HOST`: address of that server; default 0.0.0.0. */
  metricsHost: string;
  /** `DYNAMO_QUEUE_REPLICAS`: replicas of the work-queue streams this process creates (JetStream); default 1. */
  queueReplicas: number;
  /**
   * `DYNAMO_LOCAL_CALLS` (`1` default, `0` off): calls to an endpoint served in the same process
   * skip NATS (distributed mode; see `LocalFirstRequestPlane`).
   */
  localCalls: boolean;
}

/** The longest `DYNAMO_NAMESPACE`. */
export const MAX_NAMESPACE_LENGTH = 64;
/** The longest `DYNAMO_LEASE_TTL` in seconds: a dead process must leave discovery within an hour. */
export const MAX_LEASE_TTL_S = 3600;

const ENV_SCHEMA = {
  type: 'object',
  properties: {
    NATS_SERVER: { type: 'string', minLength: 1 },
    ETCD_ENDPOINTS: { type: 'string', minLength: 1 },
    // Longer names make JetStream stream and consumer names the server refuses, late and unnamed.
    DYNAMO_NAMESPACE: { type: 'string', pattern: NAME_PATTERN.source, maxLength: MAX_NAMESPACE_LENGTH },
    DYNAMO_PORT: { type: 'string', pattern: '^[0-9]{1,5}$' },
    DYNAMO_METRICS_PORT: { type: 'string', pattern: '^[0-9]{1,5}$' },
    DYNAMO_METRICS_HOST: { type: 'string', minLength: 1 },
    DYNAMO_QUEUE_REPLICAS: { enum: ['1', '2', '3', '4', '5'] },
    DYNAMO_LOCAL_CALLS: { enum: ['0', '1'] },
    // Shown in answers, logs and discovery: printable text only.
    DYNAMO_WORKER_NAME: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
    DYNAMO_LEASE_TTL: { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?$' },
    DYNAMO_LOG_LEVEL: { enum: ['error', 'warn', 'info', 'debug'] },
    DYNAMO_LOG_FORMAT: { enum: ['json', 'pretty'] },
    DYN_HTTP_OVERLOAD_STATUS_CODE: { enum: ['529', '503', '429'] },
    ...SECURITY_ENV,
  },
};
const validate = new Ajv({ allErrors: true, strict: false }).compile(ENV_SCHEMA);

/**
 * Reads and validates the environment (the only place dynamo-ts reads it). NATS_SERVER and
 * ETCD_ENDPOINTS both set select distributed mode, neither embedded; one alone is an error.
 */
export function settingsFromEnv(env: NodeJS.ProcessEnv, options: { stderrIsTTY?: boolean } = {}): EnvSettings {
  const picked: Record<string, string> = {};
  for (const k of Object.keys(ENV_SCHEMA.properties)) {
    const v = env[k];
    if (v !== undefined && v !== '') picked[k] = v;
  }
  if (!validate(picked)) {
    const msgs = (validate.errors ?? []).map((e) => describeAjvError('environment', e).replace('environment.', ''));
    throw new InvalidArgumentError(`invalid environment: ${msgs.join('; ')}`);
  }
  const nats = picked.NATS_SERVER;
  const etcd = picked.ETCD_ENDPOINTS;
  if ((nats === undefined) !== (etcd === undefined)) {
    throw new InvalidArgumentError(
      `${nats ? 'NATS_SERVER' : 'ETCD_ENDPOINTS'} is set but ${nats ? 'ETCD_ENDPOINTS' : 'NATS_SERVER'} is not: ` +
        'set both for distributed mode, or neither for the embedded (single-process) mode',
    );
  }
  const port = picked.DYNAMO_PORT !== undefined ? Number(picked.DYNAMO_PORT) : 8000;
  if (port > 65535) throw new InvalidArgumentError(`DYNAMO_PORT must be at most 65535 (got ${port})`);
  const metricsPort = picked.DYNAMO_METRICS_PORT !== undefined ? Number(picked.DYNAMO_METRICS_PORT) : undefined;
  if (metricsPort !== undefined && metricsPort > 65535) {
    throw new InvalidArgumentError(`DYNAMO_METRICS_PORT must be at most 65535 (got ${metricsPort})`);
  }
  const ttlS = picked.DYNAMO_LEASE_TTL !== undefined ? Number(picked.DYNAMO_LEASE_TTL) : 10;
  if (ttlS < 1 || ttlS > MAX_LEASE_TTL_S) {
    throw new InvalidArgumentError(`DYNAMO_LEASE_TTL must be between 1 and ${MAX_LEASE_TTL_S} seconds (got ${ttlS})`);
  }
  const security = securityFromEnv(picked);
  const split = (s: string | undefined): string[] =>
    (s ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  return {
    mode: nats ? 'distributed' : 'embedded',
    natsServers: split(nats),
    etcdEndpoints: split(etcd),
    namespace: picked.DYNAMO_NAMESPACE ?? DEFAULT_NAMESPACE,
    port,
    workerName: picked.DYNAMO_WORKER_NAME ?? os.hostname(),
    leaseTtlMs: Math.round(ttlS * 1000),
    logLevel: (picked.DYNAMO_LOG_LEVEL as LogLevel | undefined) ?? 'info',
    logFormat: (picked.DYNAMO_LOG_FORMAT as 'json' | 'pretty' | undefined) ?? (options.stderrIsTTY ? 'pretty' : 'json'),
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    metricsHost: picked.DYNAMO_METRICS_HOST ?? '0.0.0.0',
    queueReplicas: picked.DYNAMO_QUEUE_REPLICAS !== undefined ? Number(picked.DYNAMO_QUEUE_REPLICAS) : 1,
    localCalls: picked.DYNAMO_LOCAL_CALLS !== '0',
    ...(picked.DYN_HTTP_OVERLOAD_STATUS_CODE !== undefined
      ? { overloadStatusCode: Number(picked.DYN_HTTP_OVERLOAD_STATUS_CODE) as 529 | 503 | 429 }
      : {}),
    ...security,
  };
}
