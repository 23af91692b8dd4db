import { readFileSync } from 'node:fs';
import Ajv, { type ErrorObject } from 'ajv';
import YAML from 'yaml';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import type { JsonSchema, ServiceDefinition } from './service';

/** Config of a whole graph: one section per service name. */
export type GraphConfig = Record<string, Record<string, unknown>>;

/** Keys every service section may hold, whatever the service. */
export const COMMON_SERVICE_KEYS: Record<string, JsonSchema> = {
  replicas: { type: 'integer', minimum: 0, maximum: 256, description: 'instances of the service this process starts' },
};

/** Reads a YAML config file: a mapping of service name to a mapping of keys. Errors name the file. */
export function loadConfigFile(file: string): GraphConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
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

function sectionSchema(service: ServiceDefinition): JsonSchema {
  const own = service.configSchema ?? { type: 'object', properties: {} };
  const props = { ...((own.properties as Record<string, unknown>) ?? {}), ...COMMON_SERVICE_KEYS };
  return { ...own, type: 'object', properties: props, additionalProperties: own.additionalProperties ?? false };
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
