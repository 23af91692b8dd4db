import { KvEventBuilder, sequenceHashes, type KvEvent } from '@dynamo-ts/router';

/** One sequence of the engine's context and the tokens its KV cache holds. */
export interface Slot {
  readonly index: number;
  tokens: number[];
  busy: boolean;
  lastUsed: number;
}

/** Length of the common prefix of two token lists. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * The slots of one worker and the router's view of them: a request takes the free slot whose
 * tokens share the longest prefix with its context (then the least recently used); when a
 * slot's tokens change, its full blocks are announced as `stored`/`removed` KV events with the
 * router's own sequence hashes. A block two slots hold (a shared prefix) is announced once and
 * removed only when no slot holds it any more.
 */
export class SlotTable {
  readonly slots: Slot[];
  private readonly refs = new Map<bigint, number>();
  private readonly events: KvEventBuilder;
  private readonly waiters: (() => void)[] = [];
  private clock = 0;

  constructor(
    count: number,
    private readonly blockSize: number,
    workerId: string,
    private readonly publish: (e: KvEvent) => void,
  ) {
    this.slots = Array.from({ length: count }, (_, index) => ({ index, tokens: [], busy: false, lastUsed: 0 }));
    this.events = new KvEventBuilder(workerId, blockSize);
  }

  /** Requests waiting for a free slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Slots running a request. */
  get busy(): number {
    return this.slots.filter((s) => s.busy).length;
  }

  /** Full blocks held by all slots (counted once each). */
  get heldBlocks(): number {
    return this.refs.size;
  }

  /** The free slot {@link SlotTable} would give `context`, without taking it. */
  choose(context: readonly number[]): Slot | undefined {
    let best: Slot | undefined;
    let bestLen = -1;
    for (const s of this.slots) {
      if (s.busy) continue;
      const len = commonPrefix(s.tokens, context);
      if (len > bestLen || (len === bestLen && best && s.lastUsed < best.lastUsed)) {
        best = s;
        bestLen = len;
      }
    }
    return best;
  }

  /** Leading full blocks of `tokens` some slot holds. */
  cachedBlocks(tokens: readonly number[]): number {
    const hashes = sequenceHashes(tokens, this.blockSize);
    let n = 0;
    while (n < hashes.length && this.refs.has(hashes[n]!)) n++;
    return n;
  }

  /** Takes the best free slot for `context`, waiting for one; `signal` gives up waiting. */
  async acquire(context: readonly number[], signal?: AbortSignal): Promise<Slot> {
    for (;;) {
      const s = this.choose(context);
      if (s) {
        s.busy = true;
        s.lastUsed = ++this.clock;
        return s;
      }
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', abort);
          resolve();
        };
        const abort = (): void => {
          const i = this.waiters.indexOf(wake);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal?.reason instanceof Error ? signal.reason : new Error('cancelled'));
        };
        if (signal?.aborted) return abort();
        signal?.addEventListener('abort', abort, { once: true });
        this.waiters.push(wake);
      });
    }
  }

  /** Gives the slot back. */
  release(slot: Slot): void {
    slot.busy = false;
    slot.lastUsed = ++this.clock;
    this.waiters.shift()?.();
  }

  /** The slot now holds `tokens`: announces the blocks it gained and those no slot holds any more. */
  update(slot: Slot, tokens: number[]): void {
    const before = sequenceHashes(slot.tokens, this.blockSize);
    const after = sequenceHashes(tokens, this.blockSize);
    let same = 0;
    while (same < before.length && same < after.length && before[same] === after[same]) same++;
    slot.tokens = tokens;
    const removed: bigint[] = [];
    for (let i = same; i < before.length; i++) {
      const h = before[i]!;
      const n = (this.refs.get(h) ?? 1) - 1;
      if (n <= 0) {
        this.refs.delete(h);
        removed.push(h);
      } else this.refs.set(h, n);
    }
    if (removed.length) this.publish(this.events.removed(removed));
    let firstNew = -1;
    for (let i = same; i < after.length; i++) {
      const h = after[i]!;
      const n = this.refs.get(h) ?? 0;
      if (n === 0 && firstNew < 0) firstNew = i;
      this.refs.set(h, n + 1);
    }
    if (firstNew >= 0) this.publish(this.events.stored(tokens, firstNew));
  }

  /** The engine lost every slot's cache (its child died): announces `cleared`. */
  clear(): void {
    for (const s of this.slots) s.tokens = [];
    this.refs.clear();
    this.publish(this.events.cleared());
  }
}
