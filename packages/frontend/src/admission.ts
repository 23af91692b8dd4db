import type { Counter, Gauge, Registry } from 'prom-client';
import { CancelledError, checkTimerMs, metrics } from '@dynamo-ts/runtime';
import { HttpError } from './errors';

/** The statuses an overloaded frontend may answer with. */
export const OVERLOAD_STATUSES = [529, 503, 429] as const;
export type OverloadStatus = (typeof OVERLOAD_STATUSES)[number];

/** Options of {@link Admission}: how many requests of one model run and wait at once. */
export interface AdmissionOptions {
  /** Requests of one model answered at once; more wait in the queue. 0 (default): no limit. */
  maxConcurrentRequests?: number;
  /** Requests of one model waiting for a slot; beyond it a request is rejected at once. Default 0 (no queue). */
  maxQueuedRequests?: number;
  /** The longest a request waits in the queue before it is rejected, ms. Default 1000. */
  queueTimeoutMs?: number;
  /** Status of a rejection: 529 (default, as Dynamo), 503 or 429. */
  overloadStatus?: OverloadStatus;
  /** `Retry-After` of a rejection, seconds. Default 1. */
  retryAfterS?: number;
}

/** Why a request was not admitted. */
export type RejectReason = 'queue_full' | 'queue_timeout';

interface Waiter {
  admit(): void;
}

/** Admission state of one model; dropped while nothing runs or waits. */
interface ModelSlots {
  active: number;
  readonly queue: Set<Waiter>;
}

/** Hands back an admitted request's slot (idempotent). */
export type Release = () => void;

const NOOP_RELEASE: Release = () => undefined;

/**
 * Load shedding at the edge: per model, at most `maxConcurrentRequests` requests are answered
 * at once, at most `maxQueuedRequests` wait (first come, first served, each at most
 * `queueTimeoutMs`), and every other request is rejected at once with the overload status and
 * `Retry-After`, before any work is spent on it. Memory is bounded by the two limits, admitted
 * requests keep their latency, and when load drops the queue empties at the rate slots free.
 */
export class Admission {
  private readonly models = new Map<string, ModelSlots>();
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly queueTimeoutMs: number;
  private readonly status: OverloadStatus;
  private readonly retryAfter: string;
  private readonly admitted: Counter<'model'>;
  private readonly rejected: Counter<'model' | 'reason'>;
  private readonly queuedGauge: Gauge<'model'>;

  constructor(options: AdmissionOptions = {}, registry: Registry = metrics.defaultRegistry) {
    this.maxConcurrent = nonNegativeInt('maxConcurrentRequests', options.maxConcurrentRequests ?? 0);
    this.maxQueued = nonNegativeInt('maxQueuedRequests', options.maxQueuedRequests ?? 0);
    this.queueTimeoutMs = checkTimerMs('queueTimeoutMs', options.queueTimeoutMs ?? 1000);
    this.status = options.overloadStatus ?? 529;
    if (!OVERLOAD_STATUSES.includes(this.status)) {
      throw new RangeError(
        `overloadStatus must be one of ${OVERLOAD_STATUSES.join(', ')} (got ${String(this.status)})`,
      );
    }
    this.retryAfter = String(nonNegativeInt('retryAfterS', options.retryAfterS ?? 1));
    const registers = [registry];
    this.admitted = metrics.counter({
      name: 'dynamo_frontend_admitted_requests_total',
      help: 'Generation requests admitted by the frontend, by model',
      labelNames: ['model'],
      registers,
    });
    this.rejected = metrics.counter({
      name: 'dynamo_frontend_rejected_overload_requests_total',
      help: 'Generation requests shed because the model was at its limit, by model and reason (queue_full|queue_timeout)',
      labelNames: ['model', 'reason'],
      registers,
    });
    this.queuedGauge = metrics.gauge({
      name: 'dynamo_frontend_queued_requests',
      help: 'Generation requests waiting for admission, by model',
      labelNames: ['model'],
      registers,
    });
  }

  /** Whether any limit is set (with none, {@link Admission.acquire} admits at once). */
  get enabled(): boolean {
    return this.maxConcurrent > 0;
  }

  /** Requests of `model` answered now and waiting now. */
  load(model: string): { active: number; queued: number } {
    const m = this.models.get(model);
    return { active: m?.active ?? 0, queued: m?.queue.size ?? 0 };
  }

  /**
   * Admits a request of `model`: at once when a slot is free, else after waiting its turn.
   * Rejects with an {@link HttpError} carrying the overload status and `Retry-After` when the
   * queue is full or the wait times out; rejects with `signal`'s reason when it fires while waiting.
   */
  acquire(model: string, signal?: AbortSignal): Release | Promise<Release> {
    if (!this.enabled) return NOOP_RELEASE;
    let m = this.models.get(model);
    if (m === undefined) {
      m = { active: 0, queue: new Set() };
      this.models.set(model, m);
    }
    if (m.active < this.maxConcurrent && m.queue.size === 0) return this.grant(model, m);
    if (m.queue.size >= this.maxQueued) throw this.reject(model, 'queue_full');
    const slots = m;
    return new Promise<Release>((resolve, reject) => {
      const leave = (): void => {
        slots.queue.delete(waiter);
        this.queuedGauge.dec({ model });
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        admit: () => {
          leave();
          resolve(this.grant(model, slots));
        },
      };
      const timer = setTimeout(() => {
        leave();
        this.forget(model, slots);
        reject(this.reject(model, 'queue_timeout'));
      }, this.queueTimeoutMs);
      const onAbort = (): void => {
        leave();
        this.forget(model, slots);
        reject(signal!.reason);
      };
      slots.queue.add(waiter);
      this.queuedGauge.inc({ model });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private grant(model: string, m: ModelSlots): Release {
    m.active++;
    this.admitted.inc({ model });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      m.active--;
      const next = m.queue.values().next();
      if (!next.done) next.value.admit();
      else this.forget(model, m);
    };
  }

  private forget(model: string, m: ModelSlots): void {
    if (m.active === 0 && m.queue.size === 0 && this.models.get(model) === m) this.models.delete(model);
  }

  private reject(model: string, reason: RejectReason): HttpError {
    this.rejected.inc({ model, reason });
    const why = reason === 'queue_full' ? 'its queue is full' : `no slot freed within ${this.queueTimeoutMs} ms`;
    const e = new HttpError(
      this.status,
      'overloaded_error',
      'overloaded',
      `model '${model}' is at its limit of ${this.maxConcurrent} concurrent requests and ${why}; retry after ${this.retryAfter} s`,
    );
    e.headers = { 'Retry-After': this.retryAfter };
    return e;
  }
}

function nonNegativeInt(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 1_000_000) {
    throw new RangeError(`${what} must be an integer in [0, 1000000] (got ${String(v)})`);
  }
  return v;
}

/**
 * {@link Admission.acquire} for one HTTP request: a client that leaves while queued gives up its
 * place (the wait ends with a CANCELLED error). `admission` undefined admits at once.
 */
export async function admitRequest(
  admission: Admission | undefined,
  model: string,
  res: { once(event: 'close', l: () => void): unknown; off(event: 'close', l: () => void): unknown },
): Promise<Release> {
  if (admission === undefined || !admission.enabled) return NOOP_RELEASE;
  const ac = new AbortController();
  const onClose = (): void => ac.abort(new CancelledError('client left while queued for admission'));
  res.once('close', onClose);
  try {
    return await admission.acquire(model, ac.signal);
  } finally {
    res.off('close', onClose);
  }
}
