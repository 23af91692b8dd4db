import type { CallOptions } from '../options';

/** One key/value pair of the discovery store. */
export interface KvEntry {
  key: string;
  value: string;
}

/**
 * What a prefix watch yields: first every existing key under the prefix as a `put`
 * (sorted by key), then one `synced`, then every later change in order. Implementations
 * take the snapshot and start watching from its revision, so no change is missed between them.
 */
export type DiscoveryEvent =
  { type: 'put'; key: string; value: string } | { type: 'delete'; key: string } | { type: 'synced' };

/** A running prefix watch. Iterate it once; {@link KvWatch.close} (or the signal) ends the iteration. */
export interface KvWatch extends AsyncIterable<DiscoveryEvent> {
  close(): void;
}

/** Options of {@link Discovery.put}. */
export interface PutOptions extends CallOptions {
  /**
   * Bind the key to this client's lease (default true): it vanishes when the client closes
   * (lease revoked) or dies (lease expires after its TTL).
   */
  lease?: boolean;
}

/** Health of a discovery client's link to its store. */
export type DiscoveryStatus = 'connected' | 'disconnected' | 'closed';

/**
 * A leased key/value store: the contract behind instance registration and live config.
 * One client stands for one process: it holds one lease, kept alive while the client is open.
 *
 * Implementations: `MemoryDiscovery` (embedded default) and `EtcdDiscovery`.
 *
 * Semantics every implementation keeps (checked by `describeDiscoveryCompliance`):
 * - leased keys vanish at once on {@link Discovery.close} and after the lease TTL when keep-alives stop;
 * - a watch reports the snapshot, then `synced`, then changes in order, including deletions caused by lease loss;
 * - when the store is unreachable the client keeps its last view and re-grants its lease and
 *   re-puts its leased keys when the store returns; {@link Discovery.leaseId} does not change.
 */
export interface Discovery {
  /** The id of this client's lease as lowercase hex (the instance id of the process). Stable for the client's life. */
  readonly leaseId: string;
  /** Current link health. */
  readonly status: DiscoveryStatus;
  put(key: string, value: string, options?: PutOptions): Promise<void>;
  get(key: string, options?: CallOptions): Promise<string | undefined>;
  /** Every key under `prefix`, sorted by key. */
  getPrefix(prefix: string, options?: CallOptions): Promise<KvEntry[]>;
  delete(key: string, options?: CallOptions): Promise<void>;
  /** Watches every key under `prefix` (see {@link DiscoveryEvent}). */
  watchPrefix(prefix: string, options?: { signal?: AbortSignal }): KvWatch;
  /** Revokes the lease (its keys vanish at once), ends all watches and releases the connection. Idempotent. */
  close(): Promise<void>;
}
