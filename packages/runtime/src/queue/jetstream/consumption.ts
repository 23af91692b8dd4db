import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ClosedError } from '../../errors';
import { noop, sleep } from '../../util/abort';
import { Channel } from '../../util/channel';
import type { JetStreamJob, JobHost } from './job';

/** What a consume loop needs from its queue. */
export interface ConsumeHost<T> extends JobHost {
  readonly nc: NatsConnection;
  readonly pullExpiresMs: number;
  consumer(): Promise<Consumer>;
  admit(msg: JsMsg): Promise<JetStreamJob<T> | undefined>;
  giveBack(msg: JsMsg): void;
  recover(e: unknown): Promise<void>;
}

/** One `consume()` call: `maxInFlight` slots, each holding at most one pull or one unsettled job. */
export class Consumption<T> {
  readonly channel = new Channel<JetStreamJob<T>>();
  /** Jobs delivered into the channel and not yet taken by the iterating code. */
  readonly unyielded = new Set<JetStreamJob<T>>();
  private readonly fetches = new Set<ConsumerMessages>();
  private readonly abort = new AbortController();
  private mode: 'running' | 'stopped' | 'crashed' = 'running';
  private slots: Promise<void>[] = [];
  /** Wakes the slots waiting for their job to settle (on stop). */
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly host: ConsumeHost<T>,
    private readonly maxInFlight: number,
  ) {}

  get running(): boolean {
    return this.mode === 'running';
  }

  start(): void {
    for (let i = 0; i < this.maxInFlight; i++) this.slots.push(this.slot());
  }

  /**
   * Stops pulling. `crash` leaves everything as is (as a dead process would); otherwise jobs
   * delivered but never handed out are nak'ed back at once. Handed-out unsettled jobs are left
   * to redelivery after their ack wait. `error`, when given, is thrown to the iterating code.
   */
  stop(mode: 'stopped' | 'crashed', error?: unknown): void {
    if (this.mode !== 'running') return;
    this.mode = mode;
    this.abort.abort();
    for (const wake of this.wakers) wake();
    this.wakers.clear();
    for (const f of this.fetches) f.stop();
    this.fetches.clear();
    for (const job of this.unyielded) {
      job.release();
      if (mode === 'stopped') this.host.giveBack(job.msg);
    }
    this.unyielded.clear();
    if (error !== undefined) this.channel.end(error);
    else this.channel.abort();
  }

  /** Waits for every slot loop to finish (after {@link Consumption.stop}). */
  async stopped(): Promise<void> {
    await Promise.all(this.slots);
  }

  private async slot(): Promise<void> {
    let failures = 0;
    while (this.running) {
      let msgs: JsMsg[];
      const pulledAt = Date.now();
      try {
        msgs = await this.pullOnce();
        failures = 0;
      } catch (e) {
        if (!this.running) break;
        if (this.host.nc.isClosed()) {
          this.stop('stopped', new ClosedError('NATS connection closed', { cause: e }));
          break;
        }
        failures += 1;
        this.host.logger.warn('pull failed; retrying', { error: (e as Error).message, failures });
        await this.host.recover(e).catch(noop);
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)), this.abort.signal).catch(noop);
        continue;
      }
      if (msgs.length === 0) {
        if (this.running && this.host.nc.isClosed()) this.stop('stopped', new ClosedError('NATS connection closed'));
        // A pull normally ends empty only at its expiry; never spin on one that ends at once.
        else if (Date.now() - pulledAt < 100) await sleep(100, this.abort.signal).catch(noop);
        continue;
      }
      const [msg, ...extra] = msgs as [JsMsg, ...JsMsg[]];
      // A pull re-issued after a reconnect may be answered twice: hand extras back, never hoard.
      for (const m of extra) this.host.giveBack(m);
      if (!this.running) {
        if (this.mode === 'stopped') this.host.giveBack(msg);
        break;
      }
      let job: JetStreamJob<T> | undefined;
      try {
        job = await this.host.admit(msg);
      } catch (e) {
        this.host.logger.error('could not admit a delivery', { error: (e as Error).message });
        continue;
      }
      if (!job) continue;
      if (!this.running) {
        job.release();
        if (this.mode === 'stopped') this.host.giveBack(msg);
        break;
      }
      this.unyielded.add(job);
      this.channel.push(job);
      await this.untilSettledOrStopped(job);
    }
  }

  private async untilSettledOrStopped(job: JetStreamJob<T>): Promise<void> {
    let wake: () => void = noop;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    this.wakers.add(wake);
    try {
      if (this.running) await Promise.race([job.settled, woken]);
    } finally {
      this.wakers.delete(wake);
    }
  }

  /** One pull request for one job: resolves with what it delivered (usually 0 or 1 message). */
  private async pullOnce(): Promise<JsMsg[]> {
    const consumer = await this.host.consumer();
    if (!this.running) return [];
    const iter = await consumer.fetch({ max_messages: 1, expires: this.host.pullExpiresMs });
    this.fetches.add(iter);
    if (!this.running) iter.stop();
    const out: JsMsg[] = [];
    try {
      for await (const m of iter) out.push(m);
    } finally {
      this.fetches.delete(iter);
    }
    return out;
  }
}
