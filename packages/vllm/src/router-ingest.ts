import type { InstanceInfo, Logger } from '@dynamo-ts/runtime';
import type { KvEventSource, KvEventSubscription } from '@dynamo-ts/llm';
import type { KvEvent } from '@dynamo-ts/router';
import { KvEventIngest } from './ingest/index';

/** Config keys a Router gets for reading the engines' KV events itself. */
export interface RouterIngestConfig {
  /**
   * `events`: the workers' `kv_events` topic (the adapters ingest and republish); `direct`: the
   * Router subscribes to each registered engine's ZMQ endpoint (`metadata.kv_events`) itself.
   */
  ingest: 'events' | 'direct';
}

/** JSON-schema properties of {@link RouterIngestConfig}. */
export const ROUTER_INGEST_PROPERTIES = {
  ingest: { enum: ['events', 'direct'], default: 'events' },
} as const;

/** Options of {@link directKvEventSource}. */
export interface DirectKvEventSourceOptions {
  /** The router's KV block size. */
  blockSize: number;
  logger: Logger;
  /** How long one replay may take, ms (the ingest's default when omitted). */
  replayTimeoutMs?: number;
}

/** Most engine blocks remembered per DP rank of one engine, whatever its metadata claims. */
const MAX_BLOCKS_PER_RANK = 1 << 22;

function optString(m: Record<string, unknown>, key: string): string | undefined {
  const v = m[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new Error(`metadata.${key} is not a string`);
  return v;
}

function optInt(m: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = m[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new Error(`metadata.${key} must be an integer in ${min}..${max}`);
  }
  return v;
}

/**
 * A Router's {@link KvEventSource} over the endpoints the engine adapters register: for each
 * worker whose metadata names `kv_events` (and optionally `kv_replay`, `kv_topic`, `dp_size`,
 * `total_blocks`), one {@link KvEventIngest}: the same subscriber, gap replay, restart and
 * bad-input handling as inside the adapter, closed when the worker leaves. Metadata is checked
 * (a bad endpoint throws, and the router logs it).
 */
export function directKvEventSource(o: DirectKvEventSourceOptions): KvEventSource {
  return {
    follow(worker: InstanceInfo, emit: (event: KvEvent) => void): KvEventSubscription | undefined {
      const m = worker.metadata ?? {};
      const endpoint = optString(m, 'kv_events');
      if (endpoint === undefined) return undefined;
      const replay = optString(m, 'kv_replay');
      const totalBlocks = optInt(m, 'total_blocks', 1, Number.MAX_SAFE_INTEGER);
      const dpSize = optInt(m, 'dp_size', 1, 1024) ?? 1;
      const perRank = totalBlocks === undefined ? 1 << 20 : Math.ceil((2 * totalBlocks) / dpSize);
      const ingest = new KvEventIngest({
        workerId: worker.instanceId,
        endpoint,
        ...(replay !== undefined ? { replayEndpoint: replay } : {}),
        dpSize,
        topic: optString(m, 'kv_topic') ?? '',
        blockSize: o.blockSize,
        maxBlocks: Math.min(MAX_BLOCKS_PER_RANK, Math.max(1024, perRank)),
        ...(o.replayTimeoutMs !== undefined ? { replayTimeoutMs: o.replayTimeoutMs } : {}),
        emit,
        logger: o.logger,
      });
      ingest.start();
      return ingest;
    },
  };
}

/**
 * The `kvEventSource` hook of a Router (`routerService({ kvEventSource: routerKvEventSource })`):
 * {@link directKvEventSource} when its config says `ingest: direct`, else none.
 */
export function routerKvEventSource(ctx: {
  config: Partial<RouterIngestConfig> & { block_size: number };
  logger: Logger;
}): KvEventSource | undefined {
  if (ctx.config.ingest !== 'direct') return undefined;
  return directKvEventSource({ blockSize: ctx.config.block_size, logger: ctx.logger });
}
