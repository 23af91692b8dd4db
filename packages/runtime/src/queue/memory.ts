import { ClosedError, InternalError, InvalidArgumentError, throwIfAborted } from '../errors';
import type { Logger } from '../logger';
import { noopLogger } from '../logger';
import { deadLetterSubject, queueSubject, randomId64, validateName } from '../names';
import type { CallOptions } from '../options';
import type { MemoryBus } from '../transport/memory';
import { noop, onAbort, unrefTimeout } from '../util/abort';
import { Deque } from '../util/deque';
import { decodeJson, encodeJson } from '../util/json';
import type { Job, PushOptions, WorkQueue, WorkQueueOptions, WorkQueueStats } from './work-queue';

/** Options of {@link MemoryQueueStore}. */
export interface MemoryQueueStoreOptions {
  /** When given, dead letters are also published on the queue's dead-letter subject (see names.ts). */
  bus?: MemoryBus;
  logger?: Logger;
}

/** A job moved to the dead-letter list after too many deliveries. */
export interface DeadLetter {
  id: string;
  data: unknown;
  /** Deliveries made before it was dead-lettered. */
  deliveryCount: number;
  deadline?: number;
}

interface JobRecord {
  readonly id: string;
  readonly encoded: string;
  readonly deadline: number | undefined;
  /** Deliveries made so far. */
  deliveries: number;
}

/** Counters kept per client ({@link WorkQueueStats}). */
interface ClientCounters {
  redelivered: number;
  deadLettered: number;
  expired: number;
  inFlight: number;
}

/** One `consume()` loop: its settings and the deliveries it holds. */
class Consumer {
  readonly held = new Set<Delivery>();
  private slotWaiter: (() => void) | undefined;

  constructor(
    readonly counters: ClientCounters,
    readonly ackWaitMs: number,
    readonly maxDeliver: number,
    readonly maxInFlight: number,
    readonly logger: Logger,
  ) {}

  /** Resolves when a slot frees (or `wake()` is called). */
  waitForSlot(): Promise<void> {
    return new Promise((resolve) => (this.slotWaiter = resolve));
  }

  wake(): void {
    const w = this.slotWaiter;
    this.slotWaiter = undefined;
    w?.();
  }

  hold(d: Delivery): void {
    this.held.add(d);
    this.counters.inFlight += 1;
  }

  release(d: Delivery): void {
    if (!this.held.delete(d)) return;
    this.counters.inFlight -= 1;
    this.wake();
  }
}

/** One delivery of a job to a consumer; stale once settled or timed out. */
class Delivery {
  timer: NodeJS.Timeout | undefined;
  constructor(
    readonly record: JobRecord,
    readonly consumer: Consumer,
    readonly deliveryCount: number,
  ) {}
}

interface PullWaiter {
  readonly consumer: Consumer;
  resolve(d: Delivery | undefined): void;
}

/** The state of one durable queue (one JetStream stream with its shared consumer). */
class QueueState {
  private readonly fresh = new Deque<JobRecord>();
  /** Jobs to redeliver: served before fresh ones. */
  private readonly retry = new Deque<JobRecord>();
  private readonly delayed = new Map<JobRecord, NodeJS.Timeout>();
  private readonly inFlight = new Map<JobRecord, Delivery>();
  private waiters: PullWaiter[] = [];
  readonly dead: DeadLetter[] = [];

  constructor(
    readonly namespace: string,
    readonly name: string,
    private readonly bus: MemoryBus | undefined,
    private readonly logger: Logger,
  ) {}

  get depth(): number {
    return this.fresh.size + this.retry.size + this.delayed.size;
  }

  push(record: JobRecord): void {
    this.fresh.push(record);
    this.dispatch();
  }

  /** Asks for the next job; the waiter is resolved with a delivery, or with undefined by {@link QueueState.cancelPull}. */
  pull(consumer: Consumer): { promise: Promise<Delivery | undefined>; waiter: PullWaiter } {
    let waiter!: PullWaiter;
    const promise = new Promise<Delivery | undefined>((resolve) => {
      waiter = { consumer, resolve };
    });
    this.waiters.push(waiter);
    this.dispatch();
    return { promise, waiter };
  }

  cancelPull(waiter: PullWaiter): void {
    const i = this.waiters.indexOf(waiter);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    waiter.resolve(undefined);
  }

  /** True while `d` is the current delivery of its job. */
  isCurrent(d: Delivery): boolean {
    return this.inFlight.get(d.record) === d;
  }

  ack(d: Delivery): boolean {
    return this.settle(d);
  }

  term(d: Delivery): boolean {
    if (!this.settle(d)) return false;
    d.consumer.logger.info('job terminated', { job_id: d.record.id, delivery_count: d.deliveryCount });
    return true;
  }

  nak(d: Delivery, delayMs: number): boolean {
    if (!this.settle(d)) return false;
    this.requeue(d.record, delayMs);
    return true;
  }

  inProgress(d: Delivery): boolean {
    if (!this.isCurrent(d)) return false;
    d.timer?.refresh();
    return true;
  }

  /** Gives back a delivery its consumer never handed out (it stopped meanwhile): as if never delivered. */
  undeliver(d: Delivery): void {
    if (!this.settle(d)) return;
    d.record.deliveries -= 1;
    this.retry.unshift(d.record);
    this.dispatch();
  }

  /** Clears every timer and ends every pull. */
  close(): void {
    for (const d of this.inFlight.values()) if (d.timer) clearTimeout(d.timer);
    this.inFlight.clear();
    for (const t of this.delayed.values()) clearTimeout(t);
    this.delayed.clear();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(undefined);
  }

  private settle(d: Delivery): boolean {
    if (!this.isCurrent(d)) return false;
    if (d.timer) clearTimeout(d.timer);
    d.timer = undefined;
    this.inFlight.delete(d.record);
    d.consumer.release(d);
    return true;
  }

  private requeue(record: JobRecord, delayMs: number): void {
    if (delayMs > 0) {
      const timer = unrefTimeout(() => {
        this.delayed.delete(record);
        this.retry.push(record);
        this.dispatch();
      }, delayMs);
      this.delayed.set(record, timer);
      return;
    }
    this.retry.push(record);
    this.dispatch();
  }

  private ackWaitExpired(d: Delivery): void {
    if (!this.settle(d)) return;
    d.consumer.logger.debug('ack wait expired; redelivering', { job_id: d.record.id, delivery_count: d.deliveryCount });
    this.retry.push(d.record);
    this.dispatch();
  }

  /** Hands waiting jobs to waiting consumers, dead-lettering and expiring on the way. */
  private dispatch(): void {
    while (this.waiters.length > 0) {
      const record = this.retry.shift() ?? this.fresh.shift();
      if (!record) return;
      const waiter = this.waiters[0]!;
      const consumer = waiter.consumer;
      if (record.deliveries >= consumer.maxDeliver) {
        this.deadLetter(record, consumer);
        continue;
      }
      if (record.deadline !== undefined && record.deadline <= Date.now()) {
        consumer.counters.expired += 1;
        consumer.logger.info('dropped a job past its deadline', {
          job_id: record.id,
          late_ms: Date.now() - record.deadline,
        });
        continue;
      }
      this.waiters.shift();
      record.deliveries += 1;
      if (record.deliveries > 1) consumer.counters.redelivered += 1;
      const d = new Delivery(record, consumer, record.deliveries);
      d.timer = unrefTimeout(() => this.ackWaitExpired(d), consumer.ackWaitMs);
      this.inFlight.set(record, d);
      consumer.hold(d);
      waiter.resolve(d);
    }
  }

  private deadLetter(record: JobRecord, consumer: Consumer): void {
    const letter: DeadLetter = { id: record.id, data: decodeJson(record.encoded), deliveryCount: record.deliveries };
    if (record.deadline !== undefined) letter.deadline = record.deadline;
    this.dead.push(letter);
    consumer.counters.deadLettered += 1;
    consumer.logger.warn('job dead-lettered after too many deliveries', {
      job_id: record.id,
      delivery_count: record.deliveries,
    });
    if (this.bus && !this.bus.closed) {
      const event = { id: record.id, deliveryCount: record.deliveries, data: decodeJson(record.encoded) };
      try {
        this.bus.publish(deadLetterSubject(this.namespace, this.name), event);
      } catch (e) {
        this.logger.warn('could not publish a dead letter', { error: (e as Error).message });
      }
    }
  }
}

interface StoreInternals {
  queue(namespace: string, name: string): QueueState;
  attach(client: MemoryWorkQueue<unknown>): void;
  detach(client: MemoryWorkQueue<unknown>): void;
}

/** The queue state of the stores, reachable only from this module. */
const storeInternals = new WeakMap<MemoryQueueStore, StoreInternals>();

/**
 * The embedded "JetStream": one durable queue per (namespace, name), shared by every
 * {@link MemoryWorkQueue} of the process. It owns the jobs, their ack-wait and nak timers, and the
 * dead-letter lists, so a client that closes or crashes leaves its unsettled jobs to redelivery.
 */
export class MemoryQueueStore {
  private readonly queues = new Map<string, QueueState>();
  private readonly clients = new Set<MemoryWorkQueue<unknown>>();
  private isClosed = false;
  private readonly logger: Logger;

  constructor(private readonly options: MemoryQueueStoreOptions = {}) {
    this.logger = (options.logger ?? noopLogger).child({ component: 'memory-queue-store' });
    storeInternals.set(this, {
      queue: (namespace, name) => {
        if (this.isClosed) throw new ClosedError('queue store closed');
        const key = queueSubject(namespace, name);
        let q = this.queues.get(key);
        if (!q) {
          q = new QueueState(namespace, name, this.options.bus, this.logger.child({ queue: key }));
          this.queues.set(key, q);
        }
        return q;
      },
      attach: (c) => this.clients.add(c),
      detach: (c) => this.clients.delete(c),
    });
  }

  /** True once {@link MemoryQueueStore.close} was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** The jobs dead-lettered on a queue so far, oldest first (copies). */
  deadLetters(namespace: string, name: string): DeadLetter[] {
    const q = this.queues.get(queueSubject(namespace, name));
    return q ? q.dead.map((l) => ({ ...l, data: decodeJson(JSON.stringify(l.data) ?? 'null') })) : [];
  }

  /** Jobs waiting on a queue (not in flight). */
  depth(namespace: string, name: string): number {
    return this.queues.get(queueSubject(namespace, name))?.depth ?? 0;
  }

  /** Closes every client, stops every timer and drops the queues. Idempotent. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await Promise.all([...this.clients].map((c) => c.close()));
    this.clients.clear();
    for (const q of this.queues.values()) q.close();
    this.queues.clear();
  }
}

/** Options of {@link MemoryWorkQueue}. */
export interface MemoryWorkQueueOptions extends WorkQueueOptions {
  logger?: Logger;
}

class MemoryJob<T> implements Job<T> {
  readonly data: T;

  constructor(
    private readonly queue: QueueState,
    private readonly delivery: Delivery,
    private readonly isOpen: () => boolean,
  ) {
    this.data = decodeJson(delivery.record.encoded) as T;
  }

  get id(): string {
    return this.delivery.record.id;
  }

  get deliveryCount(): number {
    return this.delivery.deliveryCount;
  }

  get deadline(): number | undefined {
    return this.delivery.record.deadline;
  }

  async ack(): Promise<void> {
    this.check();
    this.queue.ack(this.delivery);
  }

  async nak(delayMs = 0): Promise<void> {
    this.check();
    if (!(delayMs >= 0)) throw new InvalidArgumentError(`nak delay must be >= 0, got ${delayMs}`);
    this.queue.nak(this.delivery, delayMs);
  }

  async inProgress(): Promise<void> {
    this.check();
    this.queue.inProgress(this.delivery);
  }

  async term(): Promise<void> {
    this.check();
    this.queue.term(this.delivery);
  }

  private check(): void {
    if (!this.isOpen()) throw new ClosedError('work queue closed');
  }
}

/**
 * The embedded {@link WorkQueue}: a client of one durable queue of a {@link MemoryQueueStore}
 * (a "process"). Each job goes to one consumer at a time and is redelivered with
 * `deliveryCount + 1` when nak'ed or not acked within `ackWaitMs`; after `maxDeliver` deliveries
 * it is dead-lettered; a job pulled after its deadline is dropped. Settling a job whose delivery
 * is stale (it timed out and was redelivered) does nothing; settling after close throws CLOSED.
 */
export class MemoryWorkQueue<T = unknown> implements WorkQueue<T> {
  readonly name: string;
  readonly namespace: string;
  private readonly queue: QueueState;
  private readonly ackWaitMs: number;
  private readonly maxDeliver: number;
  private readonly counters: ClientCounters = { redelivered: 0, deadLettered: 0, expired: 0, inFlight: 0 };
  private readonly stops = new Set<() => void>();
  private closed = false;
  private readonly logger: Logger;
  private readonly validate: ((data: unknown) => unknown) | undefined;

  constructor(
    private readonly store: MemoryQueueStore,
    options: MemoryWorkQueueOptions,
  ) {
    this.namespace = validateName('namespace', options.namespace);
    this.name = validateName('queue name', options.name);
    this.ackWaitMs = options.ackWaitMs ?? 30_000;
    this.maxDeliver = options.maxDeliver ?? 5;
    if (!(this.ackWaitMs > 0)) throw new InvalidArgumentError(`ackWaitMs must be positive, got ${this.ackWaitMs}`);
    if (!Number.isInteger(this.maxDeliver) || this.maxDeliver < 1) {
      throw new InvalidArgumentError(`maxDeliver must be an integer >= 1, got ${this.maxDeliver}`);
    }
    this.logger = (options.logger ?? noopLogger).child({ component: 'memory-work-queue', queue: this.name });
    this.validate = options.validate;
    const internals = storeInternals.get(store);
    if (!internals) throw new InternalError('unknown queue store');
    this.queue = internals.queue(this.namespace, this.name);
    internals.attach(this as MemoryWorkQueue<unknown>);
  }

  async push(data: T, options: PushOptions = {}): Promise<void> {
    this.check();
    throwIfAborted(options.signal);
    if (options.deadline !== undefined && !Number.isFinite(options.deadline)) {
      throw new InvalidArgumentError(`deadline must be a finite epoch ms, got ${options.deadline}`);
    }
    if (this.validate) {
      try {
        this.validate(data);
      } catch (e) {
        throw new InvalidArgumentError(`job data refused by validate: ${(e as Error).message}`);
      }
    }
    this.queue.push({
      id: randomId64(),
      encoded: encodeJson(data, 'job data'),
      deadline: options.deadline,
      deliveries: 0,
    });
  }

  consume(options: { signal?: AbortSignal; maxInFlight?: number } = {}): AsyncIterable<Job<T>> {
    const maxInFlight = options.maxInFlight ?? 1;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new InvalidArgumentError(`maxInFlight must be an integer >= 1, got ${maxInFlight}`);
    }
    return this.run(maxInFlight, options.signal);
  }

  async depth(options: CallOptions = {}): Promise<number> {
    this.check();
    throwIfAborted(options.signal);
    return this.queue.depth;
  }

  async stats(options: CallOptions = {}): Promise<WorkQueueStats> {
    this.check();
    throwIfAborted(options.signal);
    return {
      depth: this.queue.depth,
      inFlight: this.counters.inFlight,
      redelivered: this.counters.redelivered,
      deadLettered: this.counters.deadLettered,
      expired: this.counters.expired,
    };
  }

  /** Stops consuming; unsettled jobs are redelivered after their ack wait. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of [...this.stops]) stop();
    storeInternals.get(this.store)?.detach(this as MemoryWorkQueue<unknown>);
  }

  /** Testing: simulates the consumer process dying (no job is settled; they redeliver after ack wait). */
  crash(): Promise<void> {
    return this.close();
  }

  private async *run(maxInFlight: number, signal: AbortSignal | undefined): AsyncGenerator<Job<T>> {
    if (this.closed || signal?.aborted) return;
    const consumer = new Consumer(this.counters, this.ackWaitMs, this.maxDeliver, maxInFlight, this.logger);
    let stopped = false;
    let waiter: PullWaiter | undefined;
    const stop = (): void => {
      stopped = true;
      if (waiter) this.queue.cancelPull(waiter);
      consumer.wake();
    };
    this.stops.add(stop);
    const offSignal = signal ? onAbort(signal, stop) : noop;
    try {
      while (!stopped) {
        if (consumer.held.size >= maxInFlight) {
          await consumer.waitForSlot();
          continue;
        }
        const pull = this.queue.pull(consumer);
        waiter = pull.waiter;
        const delivery = await pull.promise;
        waiter = undefined;
        if (!delivery) break;
        if (stopped) {
          this.queue.undeliver(delivery);
          break;
        }
        yield new MemoryJob<T>(this.queue, delivery, () => !this.closed);
      }
    } finally {
      offSignal();
      this.stops.delete(stop);
      if (waiter) this.queue.cancelPull(waiter);
    }
  }

  private check(): void {
    if (this.closed) throw new ClosedError('work queue closed');
  }
}
