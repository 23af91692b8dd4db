import type { Etcd3, IEvent, IWatchResponse } from 'etcd3';
import type { Logger } from '../logger';
import type { CallOptions } from '../options';
import { noop, onAbort, unrefTimeout } from '../util/abort';
import { Channel } from '../util/channel';
import type { KvEntry, DiscoveryEvent, KvWatch } from './discovery';
import {
  RETRY_MAX_MS,
  RETRY_MIN_MS,
  closeStream,
  errorMessage,
  jitter,
  prefixRange,
  type WatchStream,
} from './etcd-client';

/** What the watches need from their client. */
export interface WatchHost {
  readonly client: Etcd3;
  readonly logger: Logger;
  readonly callTimeoutMs: number;
  range(prefix: string, options: CallOptions): Promise<{ revision: string; entries: KvEntry[] }>;
  /** Resolves when the client is connected (its lease and leased keys restored), or after `maxMs`. */
  whenConnected(maxMs: number): Promise<void>;
  forget(w: EtcdKvWatch): void;
}

/**
 * A prefix watch that survives outages: snapshot (get), then a watch from the snapshot's
 * revision + 1; when the stream breaks it re-reads the prefix, reports the difference with what
 * it reported so far (puts of new or changed keys, deletes of vanished keys), and watches again.
 */
export class EtcdKvWatch implements KvWatch {
  private readonly channel = new Channel<DiscoveryEvent>({ onReturn: () => this.close() });
  /** What the consumer was told: key -> value. */
  private readonly view = new Map<string, string>();
  private synced = false;
  private closed = false;
  private offSignal: () => void = noop;
  private stopFollow: (() => void) | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly host: WatchHost,
    private readonly prefix: string,
  ) {}

  start(signal: AbortSignal | undefined): void {
    this.offSignal = onAbort(signal, () => this.close());
    if (!this.closed) void this.run();
  }

  /** Ends the iteration with `error` before it started (the client was closed). */
  fail(error: unknown): void {
    this.closed = true;
    this.channel.end(error);
  }

  /** Ends the iteration (buffered events are dropped). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.offSignal();
    this.stopFollow?.();
    this.wake?.();
    this.channel.abort();
    this.host.forget(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<DiscoveryEvent> {
    return this.channel;
  }

  private async run(): Promise<void> {
    let backoff = RETRY_MIN_MS;
    while (!this.closed) {
      try {
        // After an outage, let the client restore its own lease and keys first, so a resync does
        // not report this process's own keys as gone and back.
        await this.host.whenConnected(this.host.callTimeoutMs);
        if (this.closed) return;
        const { revision, entries } = await this.host.range(this.prefix, {});
        if (this.closed) return;
        this.applySnapshot(entries);
        const established = await this.follow((BigInt(revision) + 1n).toString());
        if (established) backoff = RETRY_MIN_MS;
        if (this.closed) return;
        this.host.logger.debug('watch stream broke; resyncing', { prefix: this.prefix });
      } catch (e) {
        if (this.closed) return;
        this.host.logger.debug('watch cannot resync yet', { prefix: this.prefix, error: errorMessage(e) });
      }
      await this.sleep(jitter(backoff));
      backoff = Math.min(backoff * 2, RETRY_MAX_MS);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = unrefTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private applySnapshot(entries: KvEntry[]): void {
    if (!this.synced) {
      for (const e of entries) {
        this.view.set(e.key, e.value);
        this.channel.push({ type: 'put', key: e.key, value: e.value });
      }
      this.synced = true;
      this.channel.push({ type: 'synced' });
      return;
    }
    // Resync after an outage: report only what changed since the last reported state.
    const present = new Set<string>();
    for (const e of entries) present.add(e.key);
    const gone = [...this.view.keys()].filter((k) => !present.has(k)).sort();
    for (const key of gone) {
      this.view.delete(key);
      this.channel.push({ type: 'delete', key });
    }
    for (const e of entries) {
      if (this.view.get(e.key) === e.value) continue;
      this.view.set(e.key, e.value);
      this.channel.push({ type: 'put', key: e.key, value: e.value });
    }
    if (gone.length > 0) this.host.logger.info('watch resynced', { prefix: this.prefix, deleted: gone.length });
  }

  private applyEvent(ev: IEvent): void {
    const key = ev.kv.key.toString('utf8');
    if (ev.type === 'Put') {
      const value = ev.kv.value.toString('utf8');
      this.view.set(key, value);
      this.channel.push({ type: 'put', key, value });
    } else if (ev.type === 'Delete') {
      if (!this.view.delete(key)) return;
      this.channel.push({ type: 'delete', key });
    }
  }

  /**
   * Watches from `startRevision` until the stream breaks, is compacted away, or the watch closes.
   * Resolves true when the stream was established (so the retry delay starts over).
   */
  private async follow(startRevision: string): Promise<boolean> {
    const stream: WatchStream = await this.host.client.watchClient.watch();
    return await new Promise<boolean>((resolve) => {
      let created = false;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(createTimer);
        this.stopFollow = undefined;
        closeStream(stream);
        resolve(created);
      };
      const createTimer = unrefTimeout(() => {
        this.host.logger.debug('watch not created in time', { prefix: this.prefix });
        finish();
      }, this.host.callTimeoutMs);
      stream.on('data', (res: IWatchResponse) => {
        if (done) return;
        if (res.created && !created) {
          created = true;
          clearTimeout(createTimer);
        }
        if (res.canceled || (res.compact_revision && res.compact_revision !== '0')) {
          this.host.logger.debug('watch cancelled by etcd', {
            prefix: this.prefix,
            reason: res.cancel_reason,
            compact_revision: res.compact_revision,
          });
          finish();
          return;
        }
        for (const ev of res.events ?? []) this.applyEvent(ev);
      });
      stream.on('error', finish);
      stream.on('end', finish);
      if (this.closed) {
        finish();
        return;
      }
      this.stopFollow = finish;
      const { key, range_end } = prefixRange(this.prefix);
      stream.write({ create_request: { key, range_end, start_revision: startRevision } });
    });
  }
}
