import { InvalidArgumentError } from './errors';

/** Names of namespaces, components, endpoints, topics and queues. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/** The namespace used when none is configured. */
export const DEFAULT_NAMESPACE = 'dynamo-demo';

/** Throws INVALID_ARGUMENT naming `what` unless `name` matches {@link NAME_PATTERN}. */
export function validateName(what: string, name: string): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new InvalidArgumentError(`${what} ${JSON.stringify(name)} must match ${NAME_PATTERN.source}`);
  }
  return name;
}

/** Discovery key prefix of every instance of a namespace, component or endpoint. */
export function instancesPrefix(namespace: string, component?: string, endpoint?: string): string {
  let p = `dynamo/${namespace}/instances/`;
  if (component !== undefined) {
    p += `${component}/`;
    if (endpoint !== undefined) p += `${endpoint}/`;
  }
  return p;
}

/** Discovery key of one endpoint instance: `dynamo/{ns}/instances/{component}/{endpoint}/{instanceId}`. */
export function instanceKey(namespace: string, component: string, endpoint: string, instanceId: string): string {
  return `${instancesPrefix(namespace, component, endpoint)}${instanceId}`;
}

/**
 * Request-plane subject of one endpoint instance: `dynamo.{ns}.{component}.{endpoint}.{instanceId}`,
 * or `dynamo.{ns}.{component}.{endpoint}.{scope}.{instanceId}` with a subject scope (a name the
 * operator gives the process, so a NATS permission can name its subjects before its instance id,
 * a lease id, exists).
 */
export function endpointSubject(
  namespace: string,
  component: string,
  endpoint: string,
  instanceId: string,
  scope?: string,
): string {
  return scope === undefined
    ? `dynamo.${namespace}.${component}.${endpoint}.${instanceId}`
    : `dynamo.${namespace}.${component}.${endpoint}.${scope}.${instanceId}`;
}

/** Event-plane subject: `dynamo.{ns}.events.{component}.{topic}` (`*` allowed for subscriptions). */
export function eventSubject(namespace: string, component: string, topic: string): string {
  return `dynamo.${namespace}.events.${component}.${topic}`;
}

/** Work-queue subject: `dynamo.{ns}.queue.{queue}`. */
export function queueSubject(namespace: string, queue: string): string {
  return `dynamo.${namespace}.queue.${queue}`;
}

/** Dead-letter subject of a work queue: `dynamo.{ns}.queue.{queue}.dead`. */
export function deadLetterSubject(namespace: string, queue: string): string {
  return `${queueSubject(namespace, queue)}.dead`;
}

/** JetStream stream name of a work queue: `DYNAMO_{NS}_{QUEUE}`, upper-cased, `-` as `_`. */
export function queueStreamName(namespace: string, queue: string): string {
  return `DYNAMO_${namespace}_${queue}`.toUpperCase().replace(/-/g, '_');
}

/** Live config key: `dynamo/{ns}/config/{name}`. */
export function configKey(namespace: string, name: string): string {
  return `dynamo/${namespace}/config/${name}`;
}

/** KV-transfer metadata key of an instance: `dynamo/{ns}/kv-transfer/{instanceId}`. */
export function kvTransferKey(namespace: string, instanceId: string): string {
  return `dynamo/${namespace}/kv-transfer/${instanceId}`;
}

/** Parses an instance key back into its parts, or undefined when it is not one. */
export function parseInstanceKey(
  key: string,
): { namespace: string; component: string; endpoint: string; instanceId: string } | undefined {
  const m = /^dynamo\/([^/]+)\/instances\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(key);
  if (!m) return undefined;
  return { namespace: m[1]!, component: m[2]!, endpoint: m[3]!, instanceId: m[4]! };
}

/** A random 64-bit id as 16 lowercase hex digits. */
export function randomId64(): string {
  const b = new Uint8Array(8);
  globalThis.crypto.getRandomValues(b);
  return Buffer.from(b).toString('hex');
}
