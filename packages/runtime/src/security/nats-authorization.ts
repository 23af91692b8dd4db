import { InvalidArgumentError } from '../errors';
import { NAME_PATTERN, deadLetterSubject, queueStreamName, queueSubject, validateName } from '../names';
import { JETSTREAM_QUEUE_CONSUMER } from '../queue/jetstream/options';

/**
 * Least-privilege NATS permissions for each dynamo-ts role, and the nats-server
 * `authorization { users = [...] }` block that grants them (docs/security.md explains each rule).
 *
 * - `frontend`: the Frontend, Processor and Router processes (they hold the users' prompts
 *   anyway): every subject of the namespace and the JetStream API.
 * - `worker` (decode): serves only its own endpoint subjects (`dynamo.{ns}.{component}.*.{scope}.*`),
 *   publishes only its own events (`dynamo.{ns}.events.{component}.*.{scope}`) and pushes to the
 *   work queues; reads only its own inbox.
 * - `prefill`: consumes the work queues, answers decode workers (their `prefill_done_*` event
 *   topics, but not their KV-event or load topics), reads only its own inbox.
 *
 * Every role replies only to requests it received (`allow_responses`) and receives replies on
 * its own inbox prefix (`_INBOX_{user}`, set on the client with `inboxPrefix`).
 */
export type NatsRole = 'frontend' | 'worker' | 'prefill';

/** One NATS user of {@link natsAuthorizationConfig}. */
export interface NatsRoleUser {
  /** User name (also names its inbox prefix `_INBOX_{user}`). */
  user: string;
  /** Password (or a bcrypt hash from `nats server passwd`). Omit when `nkey` is given. */
  password?: string;
  /** Public user nkey (`U...`) instead of a password. */
  nkey?: string;
  role: NatsRole;
  /** Subject scope of the process (`DYNAMO_SUBJECT_SCOPE`); required for `worker` and `prefill`. */
  scope?: string;
}

/** Options of {@link natsPermissions} and {@link natsAuthorizationConfig}. */
export interface NatsAuthorizationOptions {
  namespace: string;
  /** Component of the decode workers. Default `DummyWorker`. */
  workerComponent?: string;
  /** Component of the prefill workers. Default `PrefillWorker`. */
  prefillComponent?: string;
  /** Event topics of the decode workers (prefill workers may not publish them). Default `['kv_events', 'load_metrics']`. */
  workerTopics?: string[];
  /** Work queues of the namespace. Default `['prefill']`. */
  queues?: string[];
  /** How long, and for how many messages, a request may be answered (a whole stream). Default 1 h, 1 000 000. */
  responses?: { expires?: string; max?: number };
}

/** The permissions of one user, in nats-server's shape. */
export interface NatsPermissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[] };
  allow_responses: { max: number; expires: string };
}

/** The inbox prefix of a user: `_INBOX_{user}` (give it to the client as `inboxPrefix`). */
export function inboxPrefixFor(user: string): string {
  if (!NAME_PATTERN.test(user))
    throw new InvalidArgumentError(`NATS user ${JSON.stringify(user)} must match ${NAME_PATTERN.source}`);
  return `_INBOX_${user}`;
}

/** The JetStream API subjects a work-queue producer (`push`, `depth`) or consumer needs on one queue. */
function queueApi(namespace: string, queue: string, consume: boolean): string[] {
  const stream = queueStreamName(namespace, queue);
  const dlq = `${stream}_DLQ`;
  const subjects = ['$JS.API.INFO', queueSubject(namespace, queue)];
  // Either side may create the streams; only the queue's own durable consumer, never one on the
  // dead letters (they hold the jobs' payloads) nor a second one on the queue.
  for (const s of [stream, dlq]) {
    subjects.push(`$JS.API.STREAM.INFO.${s}`, `$JS.API.STREAM.CREATE.${s}`, `$JS.API.STREAM.UPDATE.${s}`);
  }
  const c = `${stream}.${JETSTREAM_QUEUE_CONSUMER}`;
  subjects.push(`$JS.API.CONSUMER.INFO.${c}`, `$JS.API.CONSUMER.CREATE.${c}`, `$JS.API.CONSUMER.CREATE.${c}.>`);
  subjects.push(`$JS.API.CONSUMER.DURABLE.CREATE.${c}`);
  if (consume) subjects.push(`$JS.API.CONSUMER.MSG.NEXT.${c}`, `$JS.ACK.${c}.>`, deadLetterSubject(namespace, queue));
  return subjects;
}

/** The permissions of `u` in the namespace of `options`. */
export function natsPermissions(u: NatsRoleUser, options: NatsAuthorizationOptions): NatsPermissions {
  const ns = validateName('namespace', options.namespace);
  const worker = validateName('workerComponent', options.workerComponent ?? 'DummyWorker');
  const prefill = validateName('prefillComponent', options.prefillComponent ?? 'PrefillWorker');
  const queues = (options.queues ?? ['prefill']).map((q) => validateName('queue', q));
  const workerTopics = (options.workerTopics ?? ['kv_events', 'load_metrics']).map((t) => validateName('topic', t));
  const inbox = `${inboxPrefixFor(u.user)}.>`;
  const allow_responses = { max: options.responses?.max ?? 1_000_000, expires: options.responses?.expires ?? '1h' };
  if (u.role === 'frontend') {
    return {
      publish: { allow: [`dynamo.${ns}.>`, '$JS.API.>', '$JS.ACK.>'] },
      subscribe: { allow: [`dynamo.${ns}.>`, inbox] },
      allow_responses,
    };
  }
  if (u.scope === undefined) throw new InvalidArgumentError(`NATS user ${u.user}: role ${u.role} needs a scope`);
  const scope = validateName('scope', u.scope);
  const own = u.role === 'worker' ? worker : prefill;
  return {
    publish: {
      allow: [
        // Its own events only: a scoped runtime publishes on `...{topic}.{scope}`.
        `dynamo.${ns}.events.${own}.*.${scope}`,
        // Prefill workers answer decode workers on their `prefill_done_{instance}` topics ...
        ...(u.role === 'prefill' ? [`dynamo.${ns}.events.${worker}.*`] : []),
        ...queues.flatMap((q) => queueApi(ns, q, u.role === 'prefill')),
      ],
      // ... but may not pose as a decode worker on its event topics.
      ...(u.role === 'prefill' ? { deny: workerTopics.map((t) => `dynamo.${ns}.events.${worker}.${t}`) } : {}),
    },
    subscribe: { allow: [`dynamo.${ns}.${own}.*.${scope}.*`, `dynamo.${ns}.events.${own}.*`, inbox] },
    allow_responses,
  };
}

/** Renders the `authorization { users = [...] }` block of a nats-server config for `users`. */
export function natsAuthorizationConfig(users: readonly NatsRoleUser[], options: NatsAuthorizationOptions): string {
  const q = (s: string): string => JSON.stringify(s);
  const list = (xs: string[]): string => `[${xs.map(q).join(', ')}]`;
  const lines = ['authorization {', '  users = ['];
  for (const u of users) {
    const p = natsPermissions(u, options);
    if ((u.password === undefined) === (u.nkey === undefined)) {
      throw new InvalidArgumentError(`NATS user ${u.user}: give a password or an nkey, not both or neither`);
    }
    const who = u.nkey !== undefined ? `nkey: ${q(u.nkey)}` : `user: ${q(u.user)}, password: ${q(u.password!)}`;
    lines.push(
      `    { ${who}, permissions: {`,
      `        publish: { allow: ${list(p.publish.allow)}${p.publish.deny ? `, deny: ${list(p.publish.deny)}` : ''} }`,
      `        subscribe: { allow: ${list(p.subscribe.allow)} }`,
      `        allow_responses: { max: ${p.allow_responses.max}, expires: ${q(p.allow_responses.expires)} }`,
      '    } }',
    );
  }
  lines.push('  ]', '}');
  return lines.join('\n');
}
