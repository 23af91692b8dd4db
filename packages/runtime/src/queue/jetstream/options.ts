import type { StreamConfig } from '@nats-io/jetstream';
import {
  ClosedError,
  DynamoError,
  InternalError,
  InvalidArgumentError,
  TimeoutError,
  UnavailableError,
  abortReason,
  throwIfAborted,
} from '../../errors';
import type { Logger } from '../../logger';
import { queueStreamName, validateName } from '../../names';
import type { CallOptions } from '../../options';
import { noop, onAbort } from '../../util/abort';
import type { WorkQueueOptions } from '../work-queue';

/** Header carrying the job id. */
export const JOB_ID_HEADER = 'Dynamo-Job-Id';
/** Header carrying the job deadline (epoch milliseconds, decimal). */
export const JOB_DEADLINE_HEADER = 'Dynamo-Deadline';
/** Name of the durable pull consumer shared by every consumer of a queue. */
export const JETSTREAM_QUEUE_CONSUMER = 'workers';

/** Name of the dead-letter stream of a work queue: `{queueStreamName}_DLQ`. */
export function deadLetterStreamName(namespace: string, queue: string): string {
  return `${queueStreamName(namespace, queue)}_DLQ`;
}

/** A dead letter as stored (JSON) in the dead-letter stream. */
export interface JetStreamDeadLetter {
  /** Job id. */
  id: string;
  /** The job data (the raw body as a string when it was not JSON). */
  data: unknown;
  /** Deadline of the job (epoch ms), when it had one. */
  deadline?: number;
  /** The delivery that was dead-lettered (so `maxDeliver + 1` after too many deliveries). */
  deliveryCount: number;
  /** Why: `max_deliver` (too many deliveries), `malformed` (body not JSON) or `invalid` (refused by `validate`). */
  reason: 'max_deliver' | 'malformed' | 'invalid';
  /** Work-queue subject the job was pushed on. */
  subject: string;
  /** When it was dead-lettered (epoch ms). */
  deadLetteredAt: number;
  /** True when `data` was left out to keep the letter under the server's max payload. */
  dataOmitted?: boolean;
}

/** Options of {@link JetStreamWorkQueue.create}. */
export interface JetStreamWorkQueueOptions extends WorkQueueOptions {
  /** Logger (scoped with `component` and `queue`). Default: {@link noopLogger}. */
  logger?: Logger;
  /** Jobs older than this are removed by the server, consumed or not. Default: kept until settled. */
  maxAgeMs?: number;
  /** How long dead letters are kept. Default 7 days. */
  deadLetterMaxAgeMs?: number;
  /**
   * Expiry of each pull request a waiting consumer keeps open (the server answers it at once when
   * a job arrives; on expiry the consumer simply pulls again). Heartbeats every half of it detect
   * a lost pull. Default 10000, at least 1000.
   */
  pullExpiresMs?: number;
  /** Timeout of JetStream API calls, pushes and job settlements when the call gives none. Default 5000. */
  requestTimeoutMs?: number;
}

/** Settled options, defaults applied. */
export interface CompiledOptions {
  namespace: string;
  name: string;
  ackWaitMs: number;
  /** Whether the caller chose `ackWaitMs` (only then is an existing consumer's ack wait changed). */
  ackWaitGiven: boolean;
  maxDeliver: number;
  replicas: number;
  maxAgeMs: number;
  deadLetterMaxAgeMs: number;
  pullExpiresMs: number;
  requestTimeoutMs: number;
  validate: ((data: unknown) => unknown) | undefined;
}

/** The stream settings this queue asks for. */
export type StreamSpec = Partial<StreamConfig> & { name: string; subjects: string[] };

export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;
export const DEAD_LETTER_MAX_MSGS = 100_000;
export const MS = 1_000_000; // nanoseconds per millisecond

export function compileOptions(options: JetStreamWorkQueueOptions): CompiledOptions {
  const o: CompiledOptions = {
    namespace: validateName('namespace', options.namespace),
    name: validateName('queue name', options.name),
    ackWaitMs: options.ackWaitMs ?? 30_000,
    ackWaitGiven: options.ackWaitMs !== undefined,
    maxDeliver: options.maxDeliver ?? 5,
    replicas: options.replicas ?? 1,
    maxAgeMs: options.maxAgeMs ?? 0,
    deadLetterMaxAgeMs: options.deadLetterMaxAgeMs ?? 7 * 24 * 3600_000,
    pullExpiresMs: options.pullExpiresMs ?? 10_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    validate: options.validate,
  };
  const positiveInt = (key: keyof CompiledOptions, min: number): void => {
    const v = o[key] as number;
    if (!Number.isInteger(v) || v < min)
      throw new InvalidArgumentError(`${key} must be an integer >= ${min}, got ${v}`);
  };
  positiveInt('ackWaitMs', 1);
  positiveInt('maxDeliver', 1);
  positiveInt('replicas', 1);
  positiveInt('maxAgeMs', 0);
  positiveInt('deadLetterMaxAgeMs', 1);
  positiveInt('pullExpiresMs', 1000);
  positiveInt('requestTimeoutMs', 1);
  return o;
}

/** Maps a nats.js error to a dynamo-ts error. */
export function toQueueError(e: unknown, what: string): DynamoError {
  if (e instanceof DynamoError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const cause = (err as { cause?: unknown }).cause;
  const name = err.name;
  const msg = `${what}: ${err.message}`;
  if (name === 'ClosedConnectionError' || name === 'DrainingConnectionError') return new ClosedError(msg, { cause: e });
  if (name === 'TimeoutError') return new TimeoutError(msg, { cause: e });
  if (name === 'NoResponders' || (cause instanceof Error && cause.name === 'NoResponders')) {
    return new UnavailableError(`${what}: JetStream is not available (no responders)`, { cause: e });
  }
  if (name === 'JetStreamNotEnabled' || name === 'ConnectionError') return new UnavailableError(msg, { cause: e });
  if (name === 'RequestError' && cause instanceof Error) return toQueueError(cause, what);
  return new InternalError(msg, { cause: e });
}

/** Error code of a JetStream API error, if it is one. */
export function apiCode(e: unknown): number | undefined {
  if (e instanceof Error && typeof (e as { apiError?: unknown }).apiError === 'function') {
    const c = (e as { code?: unknown }).code;
    return typeof c === 'number' ? c : undefined;
  }
  return undefined;
}

export const STREAM_NOT_FOUND = 10059;
export const CONSUMER_NOT_FOUND = 10014;
export const STREAM_NAME_IN_USE = 10058;
export const CONSUMER_EXISTS = [10013, 10105, 10148];

/** Races `p` against `options.signal` and `options.timeoutMs`. */
export async function guarded<R>(p: Promise<R>, options: CallOptions, what: string): Promise<R> {
  throwIfAborted(options.signal);
  if (!options.signal && options.timeoutMs === undefined) return await p;
  let timer: NodeJS.Timeout | undefined;
  let off: () => void = noop;
  const stop = new Promise<never>((_, reject) => {
    off = onAbort(options.signal, () => reject(abortReason(options.signal!)));
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(
        () => reject(new TimeoutError(`${what} timed out after ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
    }
  });
  try {
    return await Promise.race([p, stop]);
  } finally {
    off();
    if (timer) clearTimeout(timer);
    p.catch(noop);
  }
}
