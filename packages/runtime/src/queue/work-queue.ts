import type { CallOptions } from '../options';

/** A job pulled from a {@link WorkQueue}. Settle it exactly once with ack, nak or term. */
export interface Job<T = unknown> {
  /** Unique per pushed job (the same across redeliveries). */
  readonly id: string;
  readonly data: T;
  /** 1 on first delivery, then 2, 3, ... on redeliveries. */
  readonly deliveryCount: number;
  /** Absolute deadline (epoch ms) given at push, if any. */
  readonly deadline?: number;
  /** Done: removes the job from the queue. */
  ack(): Promise<void>;
  /** Not done: redeliver (after `delayMs`, default at once). */
  nak(delayMs?: number): Promise<void>;
  /** Still working: restarts the ack-wait timer. */
  inProgress(): Promise<void>;
  /** Never redeliver: drops the job. */
  term(): Promise<void>;
}

/** Options of {@link WorkQueue.push}. */
export interface PushOptions extends CallOptions {
  /** Absolute deadline (epoch ms): a job pulled after it is dropped and counted as expired, never handed out. */
  deadline?: number;
}

/** Counters of a queue as seen by this client (expired, deadLettered, redelivered counted by this client's consumers). */
export interface WorkQueueStats {
  /** Jobs waiting to be delivered or redelivered (cluster-wide). */
  depth: number;
  /** Jobs delivered to this client's consumers and not yet settled. */
  inFlight: number;
  /** Deliveries with deliveryCount > 1 seen by this client. */
  redelivered: number;
  /** Jobs moved to the dead-letter subject by this client. */
  deadLettered: number;
  /** Jobs dropped by this client because their deadline had passed. */
  expired: number;
}

/** Options shared by every {@link WorkQueue} implementation. */
export interface WorkQueueOptions {
  /** Namespace of the queue (subjects and stream names derive from it, see names.ts). */
  namespace: string;
  /** Queue name, matching `^[A-Za-z0-9][A-Za-z0-9_-]*$`. */
  name: string;
  /** A delivered job not acked (nor kept alive with inProgress) within this is redelivered. Default 30000. */
  ackWaitMs?: number;
  /** After this many deliveries a job is moved to the dead-letter subject instead of being handed out again. Default 5. */
  maxDeliver?: number;
  /**
   * Copies of the queue the servers keep (clustered JetStream: 3 survives one server lost).
   * Applies when the queue is created; an existing queue keeps its own. Default 1. The in-memory
   * queue lives in one process and ignores it.
   */
  replicas?: number;
  /**
   * Checks each job's data where it enters the queue's consumers: returns the value to hand out,
   * or throws saying why it is not acceptable. A JetStream job that fails (data from the wire,
   * anyone may publish on the subject) is dead-lettered with reason `invalid`, logged
   * rate-limited and never handed out; the in-memory queue refuses it at push (INVALID_ARGUMENT).
   */
  validate?: (data: unknown) => unknown;
}

/**
 * A shared, durable, at-least-once work queue: each job goes to one consumer at a time, is
 * redelivered when not acked in time (consumer died), and is dead-lettered after `maxDeliver`.
 *
 * Implementations: `MemoryWorkQueue` (embedded default) and `JetStreamWorkQueue`.
 */
export interface WorkQueue<T = unknown> {
  readonly name: string;
  push(data: T, options?: PushOptions): Promise<void>;
  /**
   * Pulls jobs until the signal fires or the queue closes. At most `maxInFlight` (default 1)
   * unsettled jobs are held by this consumer at once: the next one is pulled only when one settles.
   * Expired and over-delivered jobs are settled by the queue and never yielded.
   */
  consume(options?: { signal?: AbortSignal; maxInFlight?: number }): AsyncIterable<Job<T>>;
  /** Jobs waiting (not in flight with a consumer). */
  depth(options?: CallOptions): Promise<number>;
  stats(options?: CallOptions): Promise<WorkQueueStats>;
  /** Stops consuming; unsettled jobs are left to redelivery. Idempotent. */
  close(): Promise<void>;
}
