/**
 * What a `KvRouter` keeps about the other replicas of its deployment and about fenced workers:
 * the peers' requests (tracked as load in the router's {@link LoadTracker}, under keys that cannot
 * collide with local ids), the fences, and the outbox of {@link ReplicaMessage}s to publish.
 *
 * Fencing: a fenced worker stays registered (its index and load are kept, so it routes as before
 * once it is back) but is never chosen. It is unfenced by `unfence`, by a peer's `unfence`, by a
 * first token of a request it runs, or by a load report or KV event of its own that arrives at
 * least `fenceHoldMs` after the fence.
 * @packageDocumentation
 */
import type { WarningHandler } from './common';
import { packedToHex, parseHexInto } from './events';
import type { LoadTracker } from './load';
import type { WorkerLoadState } from './load-state';
import {
  peerRequestKey,
  type ReplicaMessage,
  type ReplicaRequest,
  type ReplicaStateMessage,
  validateReplicaMessage,
} from './replica';

/** Most messages kept for `takeReplicaMessages`; beyond, the oldest are dropped (a `state` repairs). */
export const MAX_OUTBOX = 65_536;
/** Most peer replicas followed at once. */
export const MAX_PEERS = 1024;

/** Why a worker is fenced, and since when. */
export interface FenceInfo {
  /** Why, e.g. `marked_down`, `no_responders`, or `peer:<router_id>:<reason>`. */
  reason: string;
  /** When it was fenced (the router's clock, ms). */
  since: number;
}

/** The result of applying a replica message. */
export interface ReplicaApplyResult {
  /** Whether it changed anything. */
  applied: boolean;
  /** Validation errors, or why it was ignored. */
  reason?: string;
  /** A `routed` message for a request this router already tracked (redelivered): not a new arrival. */
  repeat?: boolean;
}

/** See the module comment. */
export class RouterPeers {
  /** Fenced workers. */
  readonly fences = new Map<string, FenceInfo>();
  private readonly peers = new Map<string, Set<string>>();
  private outbox: ReplicaMessage[] = [];
  private scratch = new Uint32Array(64);

  constructor(
    /** This replica's id (undefined: nothing is queued). */
    readonly routerId: string | undefined,
    private readonly load: LoadTracker,
    private readonly resolve: (workerId: string) => WorkerLoadState | undefined,
    private readonly warn: WarningHandler,
    private readonly fenceHoldMs: number,
  ) {}

  /** Queues a message for the other replicas (when sharing). */
  publish(m: ReplicaMessage): void {
    if (this.routerId === undefined) return;
    if (this.outbox.length >= MAX_OUTBOX) this.outbox.splice(0, this.outbox.length - MAX_OUTBOX + 1);
    this.outbox.push(m);
  }

  /** The queued messages, oldest first; the queue is emptied. */
  take(): ReplicaMessage[] {
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  /** Fences a worker. @returns whether it was not fenced before */
  fence(workerId: string, reason: string, now: number, share: boolean): boolean {
    if (this.fences.has(workerId)) return false;
    this.fences.set(workerId, { reason, since: now });
    this.warn('worker fenced', { worker_id: workerId, reason });
    if (share && this.routerId !== undefined) {
      this.publish({ type: 'fence', router_id: this.routerId, worker_id: workerId, reason });
    }
    return true;
  }

  /** Unfences a worker. @returns whether it was fenced */
  unfence(workerId: string, why: string, share: boolean): boolean {
    if (!this.fences.delete(workerId)) return false;
    this.warn('worker unfenced', { worker_id: workerId, reason: why });
    if (share && this.routerId !== undefined) {
      this.publish({ type: 'unfence', router_id: this.routerId, worker_id: workerId });
    }
    return true;
  }

  /** The worker spoke (a load report or KV event) at `now`: unfences it once the hold is over. */
  heardFrom(workerId: string, now: number): void {
    const f = this.fences.get(workerId);
    if (f !== undefined && now - f.since >= this.fenceHoldMs) this.unfence(workerId, 'reported', true);
  }

  /** Requests of peers being tracked. */
  get peerRequests(): number {
    let n = 0;
    for (const s of this.peers.values()) n += s.size;
    return n;
  }

  /** Ids of the peers followed. */
  peerIds(): string[] {
    return [...this.peers.keys()];
  }

  /**
   * Applies a peer's message (validated; never throws on bad input).
   * @param registered whether a worker id is registered here
   */
  apply(message: unknown, now: number, registered: (workerId: string) => boolean): ReplicaApplyResult {
    const v = validateReplicaMessage(message);
    if (!v.ok) {
      this.warn('replica message rejected: invalid', { errors: v.errors.slice(0, 5) });
      return { applied: false, reason: v.errors.join('; ') };
    }
    const m = v.value;
    if (m.router_id === this.routerId) return { applied: false, reason: 'own message' };
    switch (m.type) {
      case 'routed':
        return this.track(m.router_id, m, now);
      case 'first_token':
        return { applied: this.load.onFirstToken(peerRequestKey(m.router_id, m.request_id)) };
      case 'finished': {
        const key = peerRequestKey(m.router_id, m.request_id);
        this.peers.get(m.router_id)?.delete(key);
        return { applied: this.load.onFinished(key) };
      }
      case 'fence':
        if (!registered(m.worker_id)) return { applied: false, reason: 'unknown worker' };
        return { applied: this.fence(m.worker_id, `peer:${m.router_id}:${m.reason ?? 'fenced'}`, now, false) };
      case 'unfence':
        return { applied: this.unfence(m.worker_id, `peer:${m.router_id}`, false) };
      case 'state': {
        this.leave(m.router_id);
        let any = false;
        for (const r of m.requests) any = this.track(m.router_id, r, now).applied || any;
        for (const w of m.fenced) {
          if (registered(w)) any = this.fence(w, `peer:${m.router_id}:fenced`, now, false) || any;
        }
        return { applied: any };
      }
      case 'leave':
        return { applied: this.leave(m.router_id) > 0 };
    }
  }

  /** Releases every request of a peer (it left). @returns how many */
  leave(routerId: string): number {
    const keys = this.peers.get(routerId);
    if (keys === undefined) return 0;
    let n = 0;
    for (const k of keys) if (this.load.onFinished(k)) n++;
    this.peers.delete(routerId);
    return n;
  }

  private track(routerId: string, r: ReplicaRequest, now: number): ReplicaApplyResult {
    const w = this.resolve(r.worker_id);
    if (w === undefined) return { applied: false, reason: 'unknown worker' };
    let keys = this.peers.get(routerId);
    if (keys === undefined) {
      if (this.peers.size >= MAX_PEERS) return { applied: false, reason: 'too many peers' };
      keys = new Set();
      this.peers.set(routerId, keys);
    }
    const key = peerRequestKey(routerId, r.request_id);
    const repeat = keys.has(key);
    const n = r.sequence_hashes.length;
    if (this.scratch.length < 2 * n) this.scratch = new Uint32Array(4 * n);
    const words = this.scratch;
    for (let i = 0; i < n; i++) parseHexInto(r.sequence_hashes[i]!, words, 2 * i);
    this.load.onRoutedPacked(key, w, r.prefill_tokens, n > 0 ? words : null, 0, 2, n, r.blocks - n, now);
    if (r.prefill_done === true) this.load.onFirstToken(key);
    keys.delete(key);
    keys.add(key);
    // The tracker may have released some of this peer's requests (timeout, capacity): forget those.
    if (keys.size > this.load.maxTrackedRequests) {
      for (const k of keys) {
        if (this.load.workerOf(k) === undefined) keys.delete(k);
        if (keys.size <= this.load.maxTrackedRequests) break;
      }
    }
    return repeat ? { applied: true, repeat } : { applied: true };
  }

  /** This replica's whole picture: its own requests in flight and its fences. */
  state(): ReplicaStateMessage | undefined {
    if (this.routerId === undefined) return undefined;
    const requests: ReplicaRequest[] = [];
    this.load.forEachRequest((r) => {
      if (r.requestId.charCodeAt(0) === 0) return; // a peer's
      const h = r.hashes;
      const n = h === null ? 0 : h.length / 2;
      const prefill = r.prefillDone ? 0 : r.prefillTokens;
      requests.push(routedEntry(r.requestId, r.workerId, prefill, h, 0, 2, n, r.privateBlocks, r.prefillDone));
    });
    return { type: 'state', router_id: this.routerId, requests, fenced: [...this.fences.keys()] };
  }
}

/** A {@link ReplicaRequest} from `count` (lo, hi) pairs at `words[at + stride * i]`. */
export function routedEntry(
  requestId: string,
  workerId: string,
  prefillTokens: number,
  words: ArrayLike<number> | null,
  at: number,
  stride: number,
  count: number,
  privateBlocks: number,
  prefillDone: boolean,
): ReplicaRequest {
  const n = words === null ? 0 : count;
  const seq = new Array<string>(n);
  for (let i = 0; i < n; i++) seq[i] = packedToHex(words![at + stride * i]!, words![at + stride * i + 1]!);
  const r: ReplicaRequest = {
    request_id: requestId,
    worker_id: workerId,
    prefill_tokens: prefillTokens,
    blocks: n + privateBlocks,
    sequence_hashes: seq,
  };
  if (prefillDone) r.prefill_done = true;
  return r;
}
