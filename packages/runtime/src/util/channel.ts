import { Deque } from './deque';

/** Options of {@link Channel}. */
export interface ChannelOptions {
  /**
   * Items buffered before {@link Channel.hasSpace} turns false; producers that honour
   * backpressure await {@link Channel.waitForSpace}. Default: unbounded.
   */
  capacity?: number;
  /** Called once when the consumer abandons the iteration (`return()`, e.g. `break`) before its end. */
  onReturn?: () => void;
}

const DONE: IteratorResult<never> = { value: undefined, done: true };

/**
 * A single-consumer async FIFO: producers {@link Channel.push}, the consumer iterates.
 * {@link Channel.end} finishes the iteration after the buffered items (optionally throwing an
 * error there); {@link Channel.abort} finishes it at once, dropping what is buffered.
 * An error is thrown once; later `next()` calls report the end.
 */
export class Channel<T> implements AsyncIterableIterator<T> {
  private readonly buffer = new Deque<T>();
  private readonly readers = new Deque<{ resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }>();
  private spaceWaiters: Array<() => void> = [];
  private state: 'open' | 'ending' | 'done' = 'open';
  private failure: { error: unknown } | undefined;
  private readonly capacity: number;

  constructor(private readonly options: ChannelOptions = {}) {
    this.capacity = options.capacity ?? Number.POSITIVE_INFINITY;
  }

  /** Items buffered and not yet taken. */
  get size(): number {
    return this.buffer.size;
  }

  /** True once no more items are accepted (ended, aborted or returned). */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /** True while the buffer is below capacity. */
  get hasSpace(): boolean {
    return this.buffer.size < this.capacity;
  }

  /** Hands `value` to a waiting reader or buffers it. Returns false (dropping it) when closed. */
  push(value: T): boolean {
    if (this.state !== 'open') return false;
    const reader = this.readers.shift();
    if (reader) reader.resolve({ value, done: false });
    else this.buffer.push(value);
    return true;
  }

  /** Resolves when the buffer is below capacity or the channel is closed. */
  waitForSpace(): Promise<void> {
    if (this.hasSpace || this.state !== 'open') return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  /** Ends the iteration after the buffered items; `error`, when given, is thrown there. */
  end(error?: unknown): void {
    if (this.state !== 'open') return;
    this.state = 'ending';
    if (error !== undefined) this.failure = { error };
    this.wakeProducers();
    if (this.buffer.size === 0) this.settleReaders();
  }

  /** Ends the iteration at once, dropping buffered items; `error`, when given, is thrown by the next read. */
  abort(error?: unknown): void {
    if (this.state === 'done') return;
    this.buffer.clear();
    this.state = 'ending';
    this.failure = error === undefined ? undefined : { error };
    this.wakeProducers();
    this.settleReaders();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffer.size > 0) {
      const value = this.buffer.shift() as T;
      if (this.spaceWaiters.length > 0 && this.hasSpace) this.wakeProducers();
      return Promise.resolve({ value, done: false });
    }
    if (this.state === 'open') {
      return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
    }
    return this.finish();
  }

  return(): Promise<IteratorResult<T>> {
    const abandoned = this.state === 'open' || this.buffer.size > 0;
    this.buffer.clear();
    this.failure = undefined;
    this.state = 'done';
    this.wakeProducers();
    this.settleReaders();
    if (abandoned) this.options.onReturn?.();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finish(): Promise<IteratorResult<T>> {
    this.state = 'done';
    const failure = this.failure;
    this.failure = undefined;
    return failure ? Promise.reject(failure.error) : Promise.resolve(DONE);
  }

  private settleReaders(): void {
    for (let reader = this.readers.shift(); reader; reader = this.readers.shift()) {
      this.state = 'done';
      const failure = this.failure;
      this.failure = undefined;
      if (failure) reader.reject(failure.error);
      else reader.resolve(DONE);
    }
  }

  private wakeProducers(): void {
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of waiters) w();
  }
}
