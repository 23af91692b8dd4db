import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamConfig,
} from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  ClosedError,
  DynamoError,
  InternalError,
  InvalidArgumentError,
  PayloadTooLargeError,
  UnavailableError,
  throwIfAborted,
} from '../../errors';
import type { Logger } from '../../logger';
import { noopLogger } from '../../logger';
import { deadLetterSubject, queueStreamName, queueSubject } from '../../names';
import type { CallOptions } from '../../options';
import { noop, onAbort } from '../../util/abort';
import { encodeJson } from '../../util/json';
import { RateLimiter } from '../../util/rate-limit';
import type { Job, PushOptions, WorkQueue, WorkQueueStats } from '../work-queue';
import {
  JOB_ID_HEADER,
  JOB_DEADLINE_HEADER,
  JETSTREAM_QUEUE_CONSUMER,
  deadLetterStreamName,
  type JetStreamDeadLetter,
  type JetStreamWorkQueueOptions,
  type CompiledOptions,
  type StreamSpec,
  DEFAULT_DUPLICATE_WINDOW_MS,
  DEAD_LETTER_MAX_MSGS,
  MS,
  compileOptions,
  toQueueError,
  apiCode,
  STREAM_NOT_FOUND,
  CONSUMER_NOT_FOUND,
  STREAM_NAME_IN_USE,
  CONSUMER_EXISTS,
  guarded,
} from './options';
import { JetStreamJob } from './job';

/** The longest job id taken from a message header (a longer one is replaced by stream:sequence). */
const MAX_JOB_ID_LENGTH = 256;
import { Consumption, type ConsumeHost } from './consumption';

/**
 * {@link WorkQueue} on NATS JetStream (server 2.9 or later). Create it with
 * {@link JetStreamWorkQueue.create}; the NatsConnection stays the caller's (close the queue first,
 * then the connection).
 *
 * - `consume({ maxInFlight })` runs `maxInFlight` slots; each keeps one pull request for one job
 *   open while it is free and none while its job is unsettled, so a consumer never holds more than
 *   `maxInFlight` jobs and a job pushed to an idle queue is delivered to a waiting consumer at once
 *   (about 1 ms on loopback). Pulls survive reconnects (a restarted server loses them: they are
 *   re-issued on reconnect, and missed heartbeats re-issue them too).
 * - `depth()` is the consumer's `num_pending`: jobs never delivered yet. nats-server reports jobs
 *   awaiting redelivery (nak'ed, or whose holder died) inside `num_ack_pending` together with the
 *   jobs in flight, so they cannot be told apart and are not counted (they are served first when a
 *   consumer frees, so they wait briefly; see docs). `stats().depth` is the same figure.
 * - Settling (ack, nak, term, inProgress) waits for the server's confirmation (an ack with a reply),
 *   so a settled job is settled on the server when the promise resolves. Settling after `close()`
 *   throws CLOSED; settling twice does nothing; a settlement that fails (TIMEOUT, UNAVAILABLE) is
 *   not retried: the job is redelivered after its ack wait (at-least-once). An ack arriving after
 *   the job was redelivered to another consumer still removes it (JetStream semantics).
 */
export class JetStreamWorkQueue<T = unknown> implements WorkQueue<T> {
  /** Queue name. */
  readonly name: string;
  /** Namespace of the queue. */
  readonly namespace: string;
  /** Work-queue subject (`dynamo.{ns}.queue.{name}`). */
  readonly subject: string;
  /** Work-queue stream name. */
  readonly streamName: string;
  /** Dead-letter subject (`dynamo.{ns}.queue.{name}.dead`). */
  readonly deadLetterSubject: string;
  /** Dead-letter stream name. */
  readonly deadLetterStreamName: string;

  private readonly js: JetStreamClient;
  private readonly logger: Logger;
  private readonly consumptions = new Set<Consumption<T>>();
  private readonly counters = { inFlight: 0, redelivered: 0, deadLettered: 0, expired: 0 };
  private isClosed = false;
  private consumerHandle: Consumer | undefined;
  private recovering: Promise<void> | undefined;
  private host: ConsumeHost<T> | undefined;
  private readonly rejections = new RateLimiter();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly o: CompiledOptions,
    logger: Logger,
  ) {
    this.name = o.name;
    this.namespace = o.namespace;
    this.subject = queueSubject(o.namespace, o.name);
    this.streamName = queueStreamName(o.namespace, o.name);
    this.deadLetterSubject = deadLetterSubject(o.namespace, o.name);
    this.deadLetterStreamName = deadLetterStreamName(o.namespace, o.name);
    this.js = jetstream(nc, { timeout: o.requestTimeoutMs });
    this.logger = logger.child({ component: 'jetstream-work-queue', queue: this.subject });
  }

  /**
   * Opens the queue `options.namespace`/`options.name` on `nc`: creates its streams and its shared
   * consumer when missing (several processes may do so at once), checks that existing ones fit
   * (INVALID_ARGUMENT naming the stream otherwise), and, when `ackWaitMs` is given, sets the
   * consumer's `ack_wait` to it (the last process to open the queue with one sets it; a producer
   * that gives none leaves it alone). UNAVAILABLE when JetStream is not
   * enabled on the server.
   */
  static async create<T = unknown>(
    nc: NatsConnection,
    options: JetStreamWorkQueueOptions,
  ): Promise<JetStreamWorkQueue<T>> {
    const o = compileOptions(options);
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc, { timeout: o.requestTimeoutMs });
    } catch (e) {
      throw toQueueError(e, 'JetStream');
    }
    const q = new JetStreamWorkQueue<T>(nc, jsm, o, options.logger ?? noopLogger);
    await q.ensure();
    // A closed connection ends every consume loop (a waiting one would not notice otherwise).
    nc.closed()
      .then(() => q.connectionClosed())
      .catch(noop);
    return q;
  }

  /** True once {@link JetStreamWorkQueue.close} (or `crash`) was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Stores a job (waits for the server's PubAck). INVALID_ARGUMENT when `data` is not
   * JSON-serializable, PAYLOAD_TOO_LARGE above the server's max payload, UNAVAILABLE when no
   * stream answers (after one attempt to recreate it), TIMEOUT, CLOSED after close().
   */
  async push(data: T, options: PushOptions = {}): Promise<void> {
    this.checkOpen();
    throwIfAborted(options.signal);
    const { deadline } = options;
    if (deadline !== undefined && !Number.isFinite(deadline)) {
      throw new InvalidArgumentError(`deadline must be a finite epoch ms, got ${deadline}`);
    }
    const body = Buffer.from(encodeJson(data, 'job data'), 'utf8');
    const id = randomUUID();
    const h = natsHeaders();
    h.set(JOB_ID_HEADER, id);
    if (deadline !== undefined) h.set(JOB_DEADLINE_HEADER, String(deadline));
    const limit = this.nc.info?.max_payload;
    if (limit !== undefined) {
      // The server's limit covers the headers too (ours and the Nats-Msg-Id the client adds).
      let headerBytes =
        'NATS/1.0\r\n\r\n'.length + `Nats-Msg-Id: ${id}\r\nNats-Expected-Stream: ${this.streamName}\r\n`.length;
      for (const k of h.keys()) headerBytes += `${k}: ${h.get(k)}\r\n`.length;
      if (body.length > limit - headerBytes) throw new PayloadTooLargeError(body.length, limit - headerBytes);
    }
    const publish = (): Promise<unknown> =>
      this.js.publish(this.subject, body, {
        msgID: id,
        headers: h,
        timeout: options.timeoutMs ?? this.o.requestTimeoutMs,
        expect: { streamName: this.streamName },
      });
    try {
      await guarded(publish(), { signal: options.signal }, 'push');
    } catch (e) {
      const err = toQueueError(e, `push to ${this.subject}`);
      if (err.code !== 'UNAVAILABLE' || this.isClosed) throw err;
      // Nobody stores the subject: JetStream is down, or the stream was deleted. Recreate it and
      // retry once (same msgID: the server drops a duplicate).
      try {
        await this.ensure();
        await guarded(publish(), { signal: options.signal }, 'push');
      } catch (e2) {
        throw new UnavailableError(
          `push to ${this.subject}: no JetStream stream answered (${toQueueError(e2, 'retry').message})`,
          { cause: e2 },
        );
      }
    }
    if (this.logger.isLevelEnabled('debug')) this.logger.debug('job pushed', { job_id: id, deadline });
  }

  /**
   * Pulls jobs until the signal fires, close() is called or the NATS connection closes (then the
   * iteration throws CLOSED). Pulling starts at the first `next()`.
   */
  consume(options: { signal?: AbortSignal; maxInFlight?: number } = {}): AsyncIterable<Job<T>> {
    const maxInFlight = options.maxInFlight ?? 1;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new InvalidArgumentError(`maxInFlight must be an integer >= 1, got ${maxInFlight}`);
    }
    return this.run(maxInFlight, options.signal);
  }

  /** Jobs never delivered yet (the consumer's `num_pending`; see the class comment). */
  async depth(options: CallOptions = {}): Promise<number> {
    this.checkOpen();
    const info = await this.consumerInfo(options);
    return info.num_pending;
  }

  /** {@link JetStreamWorkQueue.depth} and this client's counters. */
  async stats(options: CallOptions = {}): Promise<WorkQueueStats> {
    const depth = await this.depth(options);
    return { depth, ...this.counters };
  }

  /** Stops consuming; unsettled jobs are left to redelivery (never-handed-out ones are nak'ed back). Idempotent. */
  async close(): Promise<void> {
    await this.shutdown('stopped');
  }

  /**
   * Testing: simulates the consumer process dying. Stops pulling and drops local state without
   * settling anything, so every job it held is redelivered after its ack wait. Idempotent.
   */
  async crash(): Promise<void> {
    await this.shutdown('crashed');
  }

  private connectionClosed(): void {
    if (this.isClosed || this.consumptions.size === 0) return;
    this.logger.warn('NATS connection closed; consumers stop');
    for (const c of this.consumptions) c.stop('stopped', new ClosedError('NATS connection closed'));
  }

  private async shutdown(mode: 'stopped' | 'crashed'): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    const all = [...this.consumptions];
    for (const c of all) c.stop(mode);
    await Promise.all(all.map((c) => c.stopped()));
    this.logger.debug(mode === 'crashed' ? 'work queue crashed (testing)' : 'work queue closed');
  }

  private async *run(maxInFlight: number, signal: AbortSignal | undefined): AsyncGenerator<Job<T>> {
    if (this.isClosed || signal?.aborted) return;
    const c = new Consumption<T>(this.consumeHost(), maxInFlight);
    this.consumptions.add(c);
    const off = onAbort(signal, () => c.stop('stopped'));
    c.start();
    try {
      for (;;) {
        const r = await c.channel.next();
        if (r.done) return;
        c.unyielded.delete(r.value);
        yield r.value;
      }
    } finally {
      off();
      c.stop('stopped');
      this.consumptions.delete(c);
    }
  }

  private consumeHost(): ConsumeHost<T> {
    if (this.host) return this.host;
    this.host = {
      isClosed: () => this.isClosed,
      nc: this.nc,
      pullExpiresMs: this.o.pullExpiresMs,
      logger: this.logger,
      consumer: () => this.consumer(),
      admit: (msg) => this.admit(msg),
      settle: (msg, payload, timeoutMs) => this.settle(msg, payload, timeoutMs),
      giveBack: (msg) => {
        this.settle(msg, '-NAK').catch((e: unknown) =>
          this.logger.debug('could not nak a job back', { error: (e as Error).message }),
        );
      },
      recover: (e) => this.recover(e),
    };
    return this.host;
  }

  /** Turns a delivery into a job, or settles it here (over-delivered, expired, malformed). */
  private async admit(msg: JsMsg): Promise<JetStreamJob<T> | undefined> {
    const given = msg.headers?.get(JOB_ID_HEADER);
    // The id is logged and echoed in dead letters: a forged huge one is replaced.
    const id = given && given.length <= MAX_JOB_ID_LENGTH ? given : `${this.streamName}:${msg.seq}`;
    const rawDeadline = msg.headers?.get(JOB_DEADLINE_HEADER);
    const deadline = rawDeadline ? Number(rawDeadline) : undefined;
    const dl = deadline !== undefined && Number.isFinite(deadline) ? deadline : undefined;
    const deliveryCount = msg.info.deliveryCount;
    if (deliveryCount > this.o.maxDeliver) {
      await this.deadLetter(msg, id, dl, deliveryCount, 'max_deliver');
      return undefined;
    }
    if (dl !== undefined && dl <= Date.now()) {
      this.counters.expired += 1;
      this.logger.info('dropped a job past its deadline', {
        job_id: id,
        deadline: dl,
        late_ms: Date.now() - dl,
        delivery_count: deliveryCount,
      });
      await this.settle(msg, '+TERM').catch((e: unknown) =>
        this.logger.warn('could not drop an expired job', { job_id: id, error: (e as Error).message }),
      );
      return undefined;
    }
    let data: T;
    try {
      data = JSON.parse(msg.string()) as T;
    } catch {
      await this.deadLetter(msg, id, dl, deliveryCount, 'malformed');
      return undefined;
    }
    if (this.o.validate) {
      try {
        data = this.o.validate(data) as T;
      } catch (e) {
        const t = this.rejections.take();
        if (t.ok) {
          this.logger.warn('job refused by validate', {
            job_id: id,
            error: (e as Error).message,
            suppressed: t.suppressed,
          });
        }
        await this.deadLetter(msg, id, dl, deliveryCount, 'invalid');
        return undefined;
      }
    }
    if (deliveryCount > 1) this.counters.redelivered += 1;
    this.counters.inFlight += 1;
    const job = new JetStreamJob<T>(this.consumeHost(), msg, id, data, deliveryCount, dl);
    void job.settled.then(() => {
      this.counters.inFlight -= 1;
    });
    return job;
  }

  private async deadLetter(
    msg: JsMsg,
    id: string,
    deadline: number | undefined,
    deliveryCount: number,
    reason: JetStreamDeadLetter['reason'],
  ): Promise<void> {
    let data: unknown;
    try {
      data = JSON.parse(msg.string());
    } catch {
      data = msg.string();
    }
    const letter: JetStreamDeadLetter = {
      id,
      data,
      deliveryCount,
      reason,
      subject: this.subject,
      deadLetteredAt: Date.now(),
    };
    if (deadline !== undefined) letter.deadline = deadline;
    let body = Buffer.from(JSON.stringify(letter), 'utf8');
    const limit = this.nc.info?.max_payload;
    if (limit !== undefined && body.length > limit - 512) {
      body = Buffer.from(JSON.stringify({ ...letter, data: null, dataOmitted: true }), 'utf8');
    }
    const h = natsHeaders();
    h.set(JOB_ID_HEADER, id);
    try {
      await this.js.publish(this.deadLetterSubject, body, {
        msgID: id,
        headers: h,
        expect: { streamName: this.deadLetterStreamName },
      });
      await this.settle(msg, '+TERM');
    } catch (e) {
      this.logger.error('could not dead-letter a job; it will be retried', {
        job_id: id,
        delivery_count: deliveryCount,
        error: (e as Error).message,
      });
      await this.settle(msg, '-NAK {"delay":1000000000}').catch(noop);
      return;
    }
    this.counters.deadLettered += 1;
    this.logger.warn(
      reason === 'max_deliver' ? 'job dead-lettered after too many deliveries' : `dead-lettered a ${reason} job`,
      {
        job_id: id,
        delivery_count: deliveryCount,
        reason,
      },
    );
  }

  /** Sends an ack-protocol message for `msg` and waits for the server's confirmation. */
  private async settle(msg: JsMsg, payload: string, timeoutMs?: number): Promise<void> {
    const reply = (msg as JsMsg & { reply?: string }).reply;
    if (!reply) throw new InternalError('delivery has no ack subject');
    try {
      await this.nc.request(reply, payload, { timeout: timeoutMs ?? this.o.requestTimeoutMs });
    } catch (e) {
      throw toQueueError(e, `settle (${payload.split(' ')[0]})`);
    }
  }

  private async consumer(): Promise<Consumer> {
    if (!this.consumerHandle)
      this.consumerHandle = await this.js.consumers.get(this.streamName, JETSTREAM_QUEUE_CONSUMER);
    return this.consumerHandle;
  }

  /** After a pull failed because the stream or consumer vanished: creates them again (once at a time). */
  private async recover(e: unknown): Promise<void> {
    const code = apiCode(e);
    const message = e instanceof Error ? e.message.toLowerCase() : '';
    const missing =
      code === STREAM_NOT_FOUND ||
      code === CONSUMER_NOT_FOUND ||
      message.includes('consumer not found') ||
      message.includes('stream not found') ||
      message.includes('consumer deleted');
    if (!missing || this.isClosed) return;
    this.recovering ??= this.ensure()
      .then(() => this.logger.info('recreated the queue stream and consumer'))
      .catch((err: unknown) => this.logger.warn('could not recreate the queue', { error: (err as Error).message }))
      .finally(() => {
        this.recovering = undefined;
      });
    await this.recovering;
  }

  private async consumerInfo(options: CallOptions): Promise<ConsumerInfo> {
    try {
      return await guarded(this.jsm.consumers.info(this.streamName, JETSTREAM_QUEUE_CONSUMER), options, 'depth');
    } catch (e) {
      if (apiCode(e) === STREAM_NOT_FOUND || apiCode(e) === CONSUMER_NOT_FOUND) {
        throw new UnavailableError(`work queue ${this.streamName} is missing on the server`, { cause: e });
      }
      throw toQueueError(e, `depth of ${this.subject}`);
    }
  }

  /** Creates or checks the two streams and the consumer. */
  private async ensure(): Promise<void> {
    const o = this.o;
    const main: StreamSpec = {
      ...this.baseStream(this.streamName, this.subject),
      retention: RetentionPolicy.Workqueue,
      max_age: o.maxAgeMs * MS,
      duplicate_window:
        (o.maxAgeMs > 0 ? Math.min(o.maxAgeMs, DEFAULT_DUPLICATE_WINDOW_MS) : DEFAULT_DUPLICATE_WINDOW_MS) * MS,
    };
    const dead: StreamSpec = {
      ...this.baseStream(this.deadLetterStreamName, this.deadLetterSubject),
      retention: RetentionPolicy.Limits,
      max_age: o.deadLetterMaxAgeMs * MS,
      max_msgs: DEAD_LETTER_MAX_MSGS,
      discard: DiscardPolicy.Old,
      duplicate_window: Math.min(o.deadLetterMaxAgeMs, DEFAULT_DUPLICATE_WINDOW_MS) * MS,
    };
    try {
      await this.ensureStream(main, (c) => c.retention === RetentionPolicy.Workqueue);
      await this.ensureStream(dead, (c) => c.retention !== RetentionPolicy.Workqueue);
      await this.ensureConsumer();
      this.consumerHandle = undefined;
    } catch (e) {
      if (e instanceof DynamoError) throw e;
      throw toQueueError(e, `opening work queue ${this.streamName}`);
    }
  }

  private baseStream(name: string, subject: string): StreamSpec {
    return {
      name,
      subjects: [subject],
      storage: StorageType.File,
      num_replicas: this.o.replicas,
      discard: DiscardPolicy.Old,
      max_msgs: -1,
      max_bytes: -1,
      max_msg_size: -1,
      max_msgs_per_subject: -1,
      max_consumers: -1,
    };
  }

  private async ensureStream(cfg: StreamSpec, retentionOk: (c: StreamConfig) => boolean): Promise<void> {
    let existing: StreamConfig | undefined;
    try {
      existing = (await this.jsm.streams.info(cfg.name)).config;
    } catch (e) {
      if (apiCode(e) !== STREAM_NOT_FOUND) throw e;
    }
    if (!existing) {
      try {
        await this.jsm.streams.add(cfg);
        this.logger.info('created stream', { stream: cfg.name, subject: cfg.subjects[0] });
        return;
      } catch (e) {
        // Another process created it meanwhile (with another config if this fails again).
        if (apiCode(e) !== STREAM_NAME_IN_USE) throw e;
        existing = (await this.jsm.streams.info(cfg.name)).config;
      }
    }
    const subject = cfg.subjects[0]!;
    if (!existing.subjects?.includes(subject) || !retentionOk(existing)) {
      throw new InvalidArgumentError(
        `stream ${cfg.name} exists with subjects ${JSON.stringify(existing.subjects)} and retention ` +
          `${existing.retention}; the work queue needs subject ${subject} with ${cfg.retention} retention`,
      );
    }
    if (
      existing.storage !== cfg.storage ||
      existing.num_replicas !== cfg.num_replicas ||
      existing.max_age !== cfg.max_age
    ) {
      this.logger.warn('stream exists with other settings; keeping them', {
        stream: cfg.name,
        storage: existing.storage,
        replicas: existing.num_replicas,
        max_age_ms: existing.max_age / MS,
      });
    }
  }

  private async ensureConsumer(): Promise<void> {
    const ackWait = this.o.ackWaitMs * MS;
    let info: ConsumerInfo | undefined;
    try {
      info = await this.jsm.consumers.info(this.streamName, JETSTREAM_QUEUE_CONSUMER);
    } catch (e) {
      if (apiCode(e) !== CONSUMER_NOT_FOUND) throw e;
    }
    if (!info) {
      try {
        await this.jsm.consumers.add(this.streamName, {
          durable_name: JETSTREAM_QUEUE_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          ack_wait: ackWait,
          max_deliver: -1,
          deliver_policy: DeliverPolicy.All,
          replay_policy: ReplayPolicy.Instant,
        });
        this.logger.info('created consumer', { stream: this.streamName, consumer: JETSTREAM_QUEUE_CONSUMER });
        return;
      } catch (e) {
        const code = apiCode(e);
        if (code === undefined || !CONSUMER_EXISTS.includes(code)) throw e;
        info = await this.jsm.consumers.info(this.streamName, JETSTREAM_QUEUE_CONSUMER);
      }
    }
    const c = info.config;
    if (c.ack_policy !== AckPolicy.Explicit || c.deliver_subject) {
      throw new InvalidArgumentError(
        `consumer ${JETSTREAM_QUEUE_CONSUMER} of stream ${this.streamName} must be a pull consumer with explicit acks`,
      );
    }
    const ackWaitChanged = this.o.ackWaitGiven && c.ack_wait !== ackWait;
    if (ackWaitChanged || (c.max_deliver !== -1 && c.max_deliver !== undefined)) {
      await this.jsm.consumers.update(this.streamName, JETSTREAM_QUEUE_CONSUMER, {
        ack_wait: ackWaitChanged ? ackWait : c.ack_wait,
        max_deliver: -1,
      });
      this.logger.info('updated consumer', {
        consumer: JETSTREAM_QUEUE_CONSUMER,
        ack_wait_ms: (ackWaitChanged ? ackWait : (c.ack_wait ?? 0)) / MS,
        previous_ms: (c.ack_wait ?? 0) / MS,
      });
    }
  }

  private checkOpen(): void {
    if (this.isClosed) throw new ClosedError('work queue closed');
  }
}
