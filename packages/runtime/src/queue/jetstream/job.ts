import type { JsMsg } from '@nats-io/jetstream';
import { ClosedError, InvalidArgumentError } from '../../errors';
import type { Logger } from '../../logger';
import type { Job } from '../work-queue';
import { MS } from './options';

/** What a job needs from its queue. */
export interface JobHost {
  isClosed(): boolean;
  settle(msg: JsMsg, payload: string, timeoutMs?: number): Promise<void>;
  logger: Logger;
}

export class JetStreamJob<T> implements Job<T> {
  private done = false;
  /** Resolves once the job is settled (ack, nak or term), whatever the outcome on the server. */
  readonly settled: Promise<void>;
  private markSettled!: () => void;

  constructor(
    private readonly host: JobHost,
    readonly msg: JsMsg,
    readonly id: string,
    readonly data: T,
    readonly deliveryCount: number,
    readonly deadline: number | undefined,
  ) {
    this.settled = new Promise((resolve) => (this.markSettled = resolve));
  }

  get isSettled(): boolean {
    return this.done;
  }

  ack(): Promise<void> {
    return this.settle('+ACK');
  }

  async nak(delayMs = 0): Promise<void> {
    this.check();
    if (!(delayMs >= 0) || !Number.isFinite(delayMs))
      throw new InvalidArgumentError(`nak delay must be >= 0, got ${delayMs}`);
    const ns = Math.round(delayMs * MS);
    await this.settle(ns > 0 ? `-NAK {"delay":${ns}}` : '-NAK');
  }

  async inProgress(): Promise<void> {
    this.check();
    if (this.done) return;
    await this.host.settle(this.msg, '+WPI');
  }

  async term(): Promise<void> {
    await this.settle('+TERM');
    this.host.logger.info('job terminated', { job_id: this.id, delivery_count: this.deliveryCount });
  }

  /** Releases the slot without telling the server (crash, or handing a never-yielded job back). */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.markSettled();
  }

  private async settle(payload: string): Promise<void> {
    this.check();
    if (this.done) return;
    this.done = true;
    try {
      await this.host.settle(this.msg, payload);
    } finally {
      this.markSettled();
    }
  }

  private check(): void {
    if (this.host.isClosed()) throw new ClosedError('work queue closed');
  }
}
