/**
 * A brute-force model of the KV indexer's semantics, for property tests: per worker, a map from
 * block id (block_hash) to sequence hash, computed with the bigint API; a worker holds a sequence
 * hash when any of its block ids maps to it; overlap = leading request hashes it holds.
 */
import { type ApplyResult, type GapPolicy, type KvEvent, hashFromWire, sequenceHash } from '@dynamo-ts/router';
import { mulberry32 } from '../src/random';

interface ModelWorker {
  ids: Map<bigint, bigint>;
  last: number;
}

export class ModelIndexer {
  readonly workers = new Map<string, ModelWorker>();
  constructor(private readonly gapPolicy: GapPolicy) {}

  private worker(id: string): ModelWorker {
    let w = this.workers.get(id);
    if (w === undefined) {
      w = { ids: new Map(), last: -1 };
      this.workers.set(id, w);
    }
    return w;
  }

  /** The expected result (without errors/warnings detail). */
  apply(ev: KvEvent): ApplyResult {
    const w = this.worker(ev.worker_id);
    let gap: ApplyResult['gap'];
    let resynced = false;
    if (w.last >= 0) {
      if (ev.event_id <= w.last) return { status: 'ignored', reason: 'stale_event', blocks: 0 };
      if (ev.event_id > w.last + 1) {
        gap = { expected: w.last + 1, received: ev.event_id };
        resynced = this.gapPolicy === 'clear';
        if (resynced) w.ids.clear();
      }
    }
    w.last = ev.event_id;
    let r: ApplyResult;
    if (ev.type === 'stored') {
      let prev: bigint | undefined;
      if (ev.parent_hash !== null) prev = w.ids.get(hashFromWire(ev.parent_hash));
      if (ev.parent_hash !== null && prev === undefined) {
        r = { status: 'rejected', reason: 'unknown_parent', blocks: 0 };
      } else {
        const seqs: [bigint, bigint][] = [];
        for (const b of ev.blocks) {
          prev = sequenceHash(prev, hashFromWire(b.tokens_hash));
          seqs.push([hashFromWire(b.block_hash), prev]);
        }
        for (const [ext, seq] of seqs) w.ids.set(ext, seq);
        r = { status: 'applied', blocks: ev.blocks.length };
      }
    } else if (ev.type === 'removed') {
      let missing = 0;
      for (const h of ev.block_hashes) if (!w.ids.delete(hashFromWire(h))) missing++;
      r = { status: 'applied', blocks: ev.block_hashes.length - missing };
      if (missing > 0) r.missing = missing;
    } else {
      r = { status: 'applied', blocks: w.ids.size };
      w.ids.clear();
    }
    if (gap !== undefined) {
      r.gap = gap;
      r.resynced = resynced;
    }
    return r;
  }

  removeWorker(id: string): void {
    this.workers.delete(id);
  }

  /** Sequence hashes the worker holds. */
  holds(id: string): Set<bigint> {
    return new Set(this.workers.get(id)?.ids.values() ?? []);
  }

  /** Worker -> overlap (> 0 only). */
  findMatches(seqs: readonly bigint[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const id of this.workers.keys()) {
      const held = this.holds(id);
      let k = 0;
      while (k < seqs.length && held.has(seqs[k]!)) k++;
      if (k > 0) out.set(id, k);
    }
    return out;
  }

  /** Every held block: sequence hash -> worker -> number of block ids mapping to it. */
  references(): Map<bigint, Map<string, number>> {
    const out = new Map<bigint, Map<string, number>>();
    for (const [id, w] of this.workers) {
      for (const seq of w.ids.values()) {
        let m = out.get(seq);
        if (m === undefined) out.set(seq, (m = new Map()));
        m.set(id, (m.get(id) ?? 0) + 1);
      }
    }
    return out;
  }
}

/** Sorted, comparable form of a references map. */
export function normalizeReferences(refs: Map<bigint, Map<string, number>>): [string, [string, number][]][] {
  return [...refs.entries()]
    .map(([seq, m]) => [seq.toString(16), [...m.entries()].sort()] as [string, [string, number][]])
    .filter(([, m]) => m.length > 0)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** A small deterministic PRNG in [0, 1). */
export const prng = mulberry32;
