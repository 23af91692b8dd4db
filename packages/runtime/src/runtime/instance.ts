import { endpointSubject, NAME_PATTERN, parseInstanceKey } from '../names';
import { parseUntrustedJson } from '../util/json';

/** What discovery holds about one served endpoint instance (the JSON value of its key). */
export interface InstanceInfo {
  namespace: string;
  component: string;
  endpoint: string;
  /** The lease id (hex) of the process serving it. */
  instanceId: string;
  /** Human name (e.g. the worker name). */
  name: string;
  hostname: string;
  pid: number;
  /** Request-plane subject to call it on. */
  subject: string;
  /** ISO time it registered. */
  startedAt: string;
  /** Free-form, e.g. `{model: 'hello-world'}`. */
  metadata: Record<string, unknown>;
}

/** An instance joining or leaving an endpoint. */
export interface InstanceChange {
  type: 'added' | 'removed';
  instance: InstanceInfo;
}

/** The largest registration value accepted (a real one is a few hundred bytes). */
export const MAX_INSTANCE_VALUE_BYTES = 64 * 1024;
/** The longest `name` / `hostname` / `startedAt` accepted in a registration. */
const MAX_TEXT = 256;

/** The result of {@link parseInstanceInfo}: the instance, or why the value is not one. */
export type ParsedInstance = { ok: true; info: InstanceInfo } | { ok: false; error: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalText(v: Record<string, unknown>, field: string, fallback: string): string | Error {
  const x = v[field];
  if (x === undefined) return fallback;
  if (typeof x !== 'string' || x.length > MAX_TEXT) return new Error(`${field} must be a string of <= ${MAX_TEXT}`);
  return x;
}

/**
 * Checks a registration read from discovery (untrusted: anyone with write access to the store
 * may put anything) against its key: a JSON object of at most {@link MAX_INSTANCE_VALUE_BYTES},
 * whose namespace, component, endpoint and instance id are the key's own and whose subject is
 * exactly the one that instance serves on. Optional fields of the right type are kept, missing
 * ones defaulted. A value that fails is reported with the reason, never thrown.
 */
export function parseInstanceInfo(key: string, value: string): ParsedInstance {
  const k = parseInstanceKey(key);
  if (!k) return { ok: false, error: 'key is not an instance key' };
  for (const part of [k.namespace, k.component, k.endpoint, k.instanceId]) {
    if (!NAME_PATTERN.test(part)) return { ok: false, error: `key part ${JSON.stringify(part)} is not a valid name` };
  }
  const parsed = parseUntrustedJson(value, MAX_INSTANCE_VALUE_BYTES);
  if (!parsed.ok) return parsed;
  const v = parsed.value;
  if (!isRecord(v)) return { ok: false, error: `value is ${v === null ? 'null' : typeof v}, not an object` };
  for (const f of ['namespace', 'component', 'endpoint', 'instanceId'] as const) {
    if (v[f] !== k[f]) return { ok: false, error: `${f} ${JSON.stringify(v[f])} does not match the key` };
  }
  // The instance's own subject, plain or with a subject scope before the instance id (docs/security.md).
  const plain = endpointSubject(k.namespace, k.component, k.endpoint, k.instanceId);
  const subject = v.subject;
  if (subject !== plain && !isScopedSubject(subject, k)) {
    return { ok: false, error: `subject ${JSON.stringify(subject)} is not the instance's subject ${plain}` };
  }
  const name = optionalText(v, 'name', k.instanceId);
  const hostname = optionalText(v, 'hostname', '');
  const startedAt = optionalText(v, 'startedAt', '');
  for (const x of [name, hostname, startedAt]) if (x instanceof Error) return { ok: false, error: x.message };
  const pid = v.pid ?? 0;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 0) {
    return { ok: false, error: 'pid must be a non-negative integer' };
  }
  const metadata = v.metadata ?? {};
  if (!isRecord(metadata)) return { ok: false, error: 'metadata must be an object' };
  return {
    ok: true,
    info: {
      namespace: k.namespace,
      component: k.component,
      endpoint: k.endpoint,
      instanceId: k.instanceId,
      name: name as string,
      hostname: hostname as string,
      pid,
      subject: subject as string,
      startedAt: startedAt as string,
      metadata,
    },
  };
}

/** `dynamo.{ns}.{component}.{endpoint}.{scope}.{instanceId}` with a valid scope name. */
function isScopedSubject(
  subject: unknown,
  k: { namespace: string; component: string; endpoint: string; instanceId: string },
): boolean {
  if (typeof subject !== 'string') return false;
  const head = `dynamo.${k.namespace}.${k.component}.${k.endpoint}.`;
  const tail = `.${k.instanceId}`;
  if (!subject.startsWith(head) || !subject.endsWith(tail) || subject.length <= head.length + tail.length) return false;
  const scope = subject.slice(head.length, subject.length - tail.length);
  return (
    NAME_PATTERN.test(scope) && endpointSubject(k.namespace, k.component, k.endpoint, k.instanceId, scope) === subject
  );
}
