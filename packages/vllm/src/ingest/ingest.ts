import * as zmq from 'zeromq';
import type { KvEvent } from '@dynamo-ts/router';
import { EngineKvTranslator } from './translate';
import {
  DEFAULT_WIRE_LIMITS,
  END_SEQ,
  decodeBatch,
  readSeq,
  seqFrame,
  type VllmEventBatch,
  type WireLimits,
} from './wire';

/** The logger the ingest writes to (structurally the runtime's `Logger`; any console-like sink). */
export interface IngestLogger {
  error(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
}

/** Options of {@link KvEventIngest}. */
export interface KvEventIngestOptions {
  /** The router's id of this engine (its events carry it). */
  workerId: string;
  /** The engine's PUB endpoint (rank 0), e.g. `tcp://10.0.0.5:5557`. */
  endpoint: string;
  /** Its replay (ROUTER) endpoint; without it a gap drops the rank's blocks instead. */
  replayEndpoint?: string;
  /** Data-parallel ranks; rank r publishes (and replays) on the endpoint's port + r. Default 1. */
  dpSize?: number;
  /** Topic prefix subscribed to; default '' (every topic). */
  topic?: string;
  /** The router's KV block size. */
  blockSize: number;
  /** Engine blocks remembered per rank. Default 1,048,576. */
  maxBlocks?: number;
  /** Limits on one batch. */
  limits?: Partial<WireLimits>;
  /** How long a replay may take before it is given up, ms. Default 2000. */
  replayTimeoutMs?: number;
  /** Receives the router's events. */
  emit(event: KvEvent): void;
  logger: IngestLogger;
}

/** Counts of an ingest (all ranks). */
export interface IngestStats {
  batches: number;
  events: number;
  /** Messages that were not three frames, or whose sequence or payload could not be read. */
  badMessages: number;
  /** Events that could not be read (the rest of their batch was applied). */
  badEvents: number;
  gaps: number;
  replays: number;
  /** Replays that failed or could not cover the gap (the rank's blocks were dropped). */
  resyncs: number;
  restarts: number;
}

/** Rank r's endpoint: the same host, port + r (vLLM's convention). */
export function rankEndpoint(endpoint: string, rank: number): string {
  if (rank === 0) return endpoint;
  const m = /^(.*):(\d+)$/.exec(endpoint);
  if (!m) throw new Error(`endpoint ${endpoint} has no port to offset for data-parallel rank ${rank}`);
  return `${m[1]}:${Number(m[2]) + rank}`;
}

/** Checks an endpoint option: `tcp://HOST:PORT` (or ipc/inproc). */
export function checkEndpoint(name: string, endpoint: string): void {
  if (!/^(tcp:\/\/[^\s/]+:\d{1,5}|ipc:\/\/\S+|inproc:\/\/\S+)$/.test(endpoint)) {
    throw new Error(`${name} must be tcp://HOST:PORT, got ${JSON.stringify(endpoint)}`);
  }
}

/**
 * Subscribes to one engine's KV events (every DP rank) and feeds the router's events to `emit`:
 * per rank, batches are applied in sequence order; a gap is filled through the replay socket
 * (live batches wait meanwhile), a sequence that goes back is an engine restart (the rank's blocks
 * are dropped, then rebuilt from the replay buffer); bad frames and events are logged and skipped.
 */
export class KvEventIngest {
  readonly translator: EngineKvTranslator;
  private readonly ranks: RankStream[] = [];
  private readonly counts: IngestStats = {
    batches: 0,
    events: 0,
    badMessages: 0,
    badEvents: 0,
    gaps: 0,
    replays: 0,
    resyncs: 0,
    restarts: 0,
  };
  private closed = false;

  constructor(readonly o: KvEventIngestOptions) {
    checkEndpoint('kv_events', o.endpoint);
    if (o.replayEndpoint !== undefined) checkEndpoint('kv_replay', o.replayEndpoint);
    const dp = o.dpSize ?? 1;
    if (!Number.isInteger(dp) || dp < 1 || dp > 1024) throw new Error(`dp size must be 1..1024, got ${dp}`);
    this.translator = new EngineKvTranslator({
      workerId: o.workerId,
      blockSize: o.blockSize,
      maxBlocks: o.maxBlocks ?? 1 << 20,
      emit: o.emit,
      warn: (w) => o.logger.warn(w.message, w.fields),
    });
    const limits = { ...DEFAULT_WIRE_LIMITS, ...o.limits };
    for (let r = 0; r < dp; r++) this.ranks.push(new RankStream(this, r, limits));
  }

  /** Counts so far. */
  stats(): IngestStats {
    return { ...this.counts };
  }

  /** @internal */
  get c(): IngestStats {
    return this.counts;
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Connects every rank's subscriber (the loops run until {@link close}). */
  start(): void {
    for (const r of this.ranks) r.start();
  }

  /** Stops every rank. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.ranks) r.close();
  }
}

/** One rank's subscription and replay. */
class RankStream {
  private sub: zmq.Subscriber | undefined;
  private dealer: zmq.Dealer | undefined;
  /** The next sequence number expected; undefined before the first batch. */
  private expected: bigint | undefined;
  private readonly log: IngestLogger;
  private readonly fields: Record<string, unknown>;

  constructor(
    private readonly ingest: KvEventIngest,
    private readonly rank: number,
    private readonly limits: WireLimits,
  ) {
    this.log = ingest.o.logger;
    this.fields = { worker_id: ingest.o.workerId, dp_rank: rank };
  }

  start(): void {
    const sub = (this.sub = new zmq.Subscriber({ linger: 0 }));
    sub.connect(rankEndpoint(this.ingest.o.endpoint, this.rank));
    sub.subscribe(this.ingest.o.topic ?? '');
    void this.loop(sub);
  }

  private async loop(sub: zmq.Subscriber): Promise<void> {
    try {
      for await (const frames of sub) {
        try {
          await this.onMessage(frames);
        } catch (e) {
          this.log.warn('KV event message skipped', { ...this.fields, error: (e as Error).message });
        }
      }
    } catch (e) {
      if (!this.ingest.isClosed)
        this.log.error('KV event subscription ended', { ...this.fields, error: (e as Error).message });
    }
  }

  private bad(why: string): void {
    this.ingest.c.badMessages++;
    this.log.warn('bad KV event message skipped', { ...this.fields, reason: why });
  }

  private async onMessage(frames: Buffer[]): Promise<void> {
    if (frames.length !== 3) return this.bad(`${frames.length} frames, not 3`);
    let seq: bigint;
    try {
      seq = readSeq(frames[1]!);
    } catch (e) {
      return this.bad((e as Error).message);
    }
    if (seq < 0n) return this.bad(`negative sequence ${seq}`);
    const t = this.ingest.o;
    if (this.expected === undefined || seq !== this.expected) {
      if (this.expected !== undefined && seq < this.expected) {
        // The sequence went back: the engine restarted with an empty cache.
        this.ingest.c.restarts++;
        this.log.warn('engine restarted (KV event sequence went back); its blocks dropped', {
          ...this.fields,
          sequence: Number(seq),
          expected: Number(this.expected),
        });
        this.ingest.translator.clearRank(this.rank);
        this.expected = 0n;
      }
      const from = this.expected ?? 0n;
      if (seq > from) {
        if (this.expected !== undefined) this.ingest.c.gaps++;
        this.log.info('KV event gap; replaying', { ...this.fields, from: Number(from), received: Number(seq) });
        if (t.replayEndpoint !== undefined) await this.replay(from);
        if (this.expected === undefined || this.expected < seq) {
          // No replay, or it could not cover the gap: what the engine holds is unknown.
          this.ingest.c.resyncs++;
          this.log.warn('KV event gap not covered by a replay; blocks of this rank dropped', {
            ...this.fields,
            expected: this.expected === undefined ? null : Number(this.expected),
            received: Number(seq),
          });
          this.ingest.translator.clearRank(this.rank);
        } else if (this.expected > seq) return; // the replay already held this batch
      }
    }
    this.expected = seq + 1n;
    this.applyPayload(frames[2]!);
  }

  private applyPayload(payload: Uint8Array): void {
    let batch: VllmEventBatch;
    try {
      batch = decodeBatch(payload, this.limits);
    } catch (e) {
      return this.bad(`undecodable batch: ${(e as Error).message}`);
    }
    const c = this.ingest.c;
    c.batches++;
    if (batch.skipped.length > 0) {
      c.badEvents += batch.skipped.length;
      this.log.warn('unreadable KV events skipped', {
        ...this.fields,
        count: batch.skipped.length,
        first: batch.skipped[0],
      });
    }
    const rank = batch.dpRank ?? this.rank;
    for (const e of batch.events) {
      c.events++;
      this.ingest.translator.apply(rank, e);
    }
  }

  /** Asks the replay socket for every batch from `from` on and applies them in order. */
  private async replay(from: bigint): Promise<void> {
    const o = this.ingest.o;
    this.ingest.c.replays++;
    const dealer = (this.dealer ??= this.newDealer());
    try {
      await dealer.send([Buffer.alloc(0), seqFrame(from)]);
      let first = true;
      for (;;) {
        const frames = await dealer.receive();
        // [empty, seq, payload], or [empty, topic, seq, payload] from publishers that add the topic.
        const body = frames[0]?.length === 0 ? frames.slice(1) : frames;
        if (body.length < 2) throw new Error(`replay reply of ${frames.length} frames`);
        const seq = readSeq(body[body.length - 2]!);
        if (seq === END_SEQ) break;
        if (seq < from) continue;
        if (first && seq > from) {
          // The engine's buffer no longer holds the start of the gap.
          this.log.warn('replay starts after the gap; blocks of this rank dropped', {
            ...this.fields,
            from: Number(from),
            first: Number(seq),
          });
          this.ingest.c.resyncs++;
          this.ingest.translator.clearRank(this.rank);
        }
        first = false;
        if (this.expected !== undefined && seq < this.expected) continue;
        this.expected = seq + 1n;
        this.applyPayload(body[body.length - 1]!);
      }
    } catch (e) {
      this.log.warn('KV event replay failed', {
        ...this.fields,
        endpoint: o.replayEndpoint,
        error: (e as Error).message,
      });
      // The rest of a late answer must not be read as the answer to the next request.
      dealer.close();
      this.dealer = undefined;
    }
  }

  private newDealer(): zmq.Dealer {
    const d = new zmq.Dealer({ linger: 0, receiveTimeout: this.ingest.o.replayTimeoutMs ?? 2000 });
    d.connect(rankEndpoint(this.ingest.o.replayEndpoint!, this.rank));
    return d;
  }

  close(): void {
    this.sub?.close();
    this.dealer?.close();
  }
}
