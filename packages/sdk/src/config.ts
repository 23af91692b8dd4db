import { readFileSync, statSync } from 'node:fs';
import Ajv, { type ErrorObject } from 'ajv';
import YAML from 'yaml';
import { InvalidArgumentError, MAX_TIMER_MS } from '@dynamo-ts/runtime';
import type { JsonSchema, ServiceDefinition } from './service';

/** Config of a whole graph: one section per service name. */
export type GraphConfig = Record<string, Record<string, unknown>>;

/** Keys every service section may hold, whatever the service. */
export const COMMON_SERVICE_KEYS: Record<string, JsonSchema> = {
  replicas: { type: 'integer', minimum: 0, maximum: 256, description: 'instances of the service this process starts' },
};

/** The largest config file read (a graph's config is a few KB; a huge one would parse for minutes). */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/**
 * Reads a YAML config file: a mapping of service name to a mapping of keys. Errors name the
 * file; one over {@link MAX_CONFIG_FILE_BYTES} is refused before it is read.
 */
export function loadConfigFile(file: string): GraphConfig {
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > MAX_CONFIG_FILE_BYTES) {
      throw new InvalidArgumentError(
        `config file ${file} is ${size} bytes, over the limit of ${MAX_CONFIG_FILE_BYTES} bytes`,
      );
    }
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    throw new InvalidArgumentError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`config file ${file} is not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  return checkShape(doc, `config file ${file}`);
}

function checkShape(doc: unknown, where: string): GraphConfig {
  if (typeof doc !== 'object' || Array.isArray(doc) || doc === null) {
    throw new InvalidArgumentError(`${where}: expected a mapping of service name to settings`);
  }
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new InvalidArgumentError(`${where}: section ${k} must be a mapping of keys to values`);
    }
  }
  return doc as GraphConfig;
}

/** Deep-merges config layers, later layers winning (file, then `--Service.key=value` overrides). */
export function mergeConfig(...layers: GraphConfig[]): GraphConfig {
  const out: GraphConfig = {};
  for (const layer of layers) {
    for (const [svc, section] of Object.entries(layer)) {
      out[svc] = deepMerge(out[svc] ?? {}, section);
    }
  }
  return out;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isPlainObject(prev) && isPlainObject(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validators = new WeakMap<ServiceDefinition, ReturnType<typeof ajv.compile>>();

/**
 * Bounds a duration key (`*_ms`, `*_s`) by what Node's timers honour, unless its schema already
 * says less: a longer one overflows the timer, which then fires at once.
 */
function boundDuration(key: string, schema: unknown): unknown {
  if (!isPlainObject(schema) || (schema.type !== 'integer' && schema.type !== 'number')) return schema;
  const limit = key.endsWith('_ms') ? MAX_TIMER_MS : key.endsWith('_s') ? Math.floor(MAX_TIMER_MS / 1000) : undefined;
  if (limit === undefined) return schema;
  const max = typeof schema.maximum === 'number' ? schema.maximum : Infinity;
  return max <= limit ? schema : { ...schema, maximum: limit };
}

function sectionSchema(service: ServiceDefinition): JsonSchema {
  const own = service.configSchema ?? { type: 'object', properties: {} };
  const props: Record<string, unknown> = {
    ...((own.properties as Record<string, unknown>) ?? {}),
    ...COMMON_SERVICE_KEYS,
  };
  for (const [k, v] of Object.entries(props)) props[k] = boundDuration(k, v);
  return { ...own, type: 'object', properties: props, additionalProperties: own.additionalProperties ?? false };
}

/** Edit distance of `a` and `b` (case-insensitive), or 3 when it is more than 2 (all a typo check needs). */
function nearness(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (Math.abs(x.length - y.length) > 2) return 3;
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return Math.min(prev[y.length]!, 3);
}

/**
 * Checks the service sections of a config before anything starts; throws INVALID_ARGUMENT naming
 * `source` and each bad section. With `strict` (command-line overrides: they are for this process)
 * every section must name one of `known`; without (a file shared by every process of a graph,
 * which names services this process does not know) a section that is a near miss of a known name
 * (a typo: case, or up to two letters) is refused.
 */
export function checkSections(config: GraphConfig, known: Iterable<string>, source: string, strict: boolean): void {
  const names = [...new Set(known)].sort();
  const bad: string[] = [];
  for (const k of Object.keys(config)) {
    if (names.includes(k)) continue;
    const near = names.find((n) => nearness(k, n) <= 2);
    if (near !== undefined) bad.push(`${k} is not a service of this graph (did you mean ${near}?)`);
    else if (strict) bad.push(`${k} is not a service of this graph`);
  }
  if (bad.length > 0) throw new InvalidArgumentError(`${source}: ${bad.join('; ')} (services: ${names.join(', ')})`);
}

/** Describes one ajv error as `Service.key must be ...`. */
export function describeAjvError(prefix: string, e: ErrorObject): string {
  const path = e.instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (e.keyword === 'additionalProperties') {
    path.push(String((e.params as { additionalProperty: string }).additionalProperty));
    return `${[prefix, ...path].join('.')} is not a known key`;
  }
  if (e.keyword === 'required') {
    path.push(String((e.params as { missingProperty: string }).missingProperty));
    return `${[prefix, ...path].join('.')} is required`;
  }
  if (e.keyword === 'type') {
    return `${[prefix, ...path].join('.')} must be of type ${String((e.params as { type: string }).type)}`;
  }
  return `${[prefix, ...path].join('.')} ${e.message ?? 'is invalid'}`;
}

/**
 * Validates (and fills defaults into a copy of) the section of `service` in `config`.
 * Throws INVALID_ARGUMENT naming `source` (file or flags), the key, and the expected type.
 */
export function serviceConfig<C>(
  service: ServiceDefinition,
  config: GraphConfig,
  source: string,
): C & { replicas?: number } {
  let validate = validators.get(service);
  if (!validate) {
    validate = ajv.compile(sectionSchema(service));
    validators.set(service, validate);
  }
  const section = structuredClone(config[service.name] ?? {});
  if (!validate(section)) {
    const msgs = (validate.errors ?? []).map((e) => describeAjvError(service.name, e));
    throw new InvalidArgumentError(`${source}: ${msgs.join('; ')}`);
  }
  return section as C & { replicas?: number };
}
