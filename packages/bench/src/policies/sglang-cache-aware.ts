/**
 * `sglang-cache-aware`: SGLang router's `cache_aware` policy, re-implemented from its published
 * description (sgl-project/sglang, `sgl-router` README, "Cache-Aware Load-Balancing Router"):
 *
 * - The router keeps an approximate radix tree of the prompts it sent to each worker (one tree,
 *   every node tagged with the workers whose tree holds it and when they last used it). SGLang's
 *   tree holds characters of the prompt text; this one holds token ids.
 * - Load of a worker = requests it is running, as the router counts them. The system is
 *   imbalanced when `max_load - min_load > balance_abs_threshold` AND
 *   `max_load > balance_rel_threshold * min_load`; then the request goes to the least loaded worker
 *   (shortest queue).
 * - Otherwise: the worker with the longest prefix match; if `matched / prompt_length >
 *   cache_threshold` it gets the request, else the worker with the smallest tree (most cache room).
 * - Either way the prompt is inserted into the chosen worker's tree. When a worker's tree exceeds
 *   `max_tree_size` tokens, its least recently used leaves are evicted.
 *
 * Defaults as published: `cache_threshold` 0.5, `balance_abs_threshold` 32,
 * `balance_rel_threshold` 1.0001, `max_tree_size` 2^24. Ties (equal match, equal tree size, equal
 * load) go to the first candidate, as Rust's `max_by_key`/`min_by_key` over the worker list do.
 * @packageDocumentation
 */
import {
  RouterInvalidArgumentError,
  type RoutingChoice,
  type RoutingContext,
  type RoutingStrategy,
} from '@dynamo-ts/router';

/** Options of {@link SglangCacheAwarePolicy}. */
export interface SglangCacheAwareOptions {
  /** Minimum match ratio to follow the cache; default 0.5. */
  cacheThreshold?: number;
  /** Absolute load gap for imbalance; default 32. */
  balanceAbsThreshold?: number;
  /** Relative load ratio for imbalance; default 1.0001. */
  balanceRelThreshold?: number;
  /** Tokens a worker's tree may hold before LRU eviction; default 2^24. */
  maxTreeSize?: number;
}

/** Published defaults of {@link SglangCacheAwareOptions}. */
export const SGLANG_CACHE_AWARE_DEFAULTS = {
  cacheThreshold: 0.5,
  balanceAbsThreshold: 32,
  balanceRelThreshold: 1.0001,
  maxTreeSize: 2 ** 24,
} as const;

class TreeNode {
  children = new Map<number, TreeNode>();
  /** worker -> last access (logical time). */
  tenants = new Map<string, number>();
  constructor(
    public edge: Uint32Array,
    public parent: TreeNode | null,
  ) {}
}

/** A multi-tenant radix tree over token ids (SGLang's approximate tree). Exported for tests. */
export class ApproxRadixTree {
  private readonly root = new TreeNode(new Uint32Array(0), null);
  private readonly sizes = new Map<string, number>();
  private clock = 0;

  /** Tokens held for `worker`. */
  size(worker: string): number {
    return this.sizes.get(worker) ?? 0;
  }

  /** Longest cached prefix of `tokens` per worker (workers with none are absent). */
  match(tokens: ArrayLike<number>): Map<string, number> {
    const out = new Map<string, number>();
    let node = this.root;
    let i = 0;
    const n = tokens.length;
    while (i < n) {
      const child = node.children.get(tokens[i]!);
      if (child === undefined) break;
      const e = child.edge;
      let k = 0;
      while (k < e.length && i + k < n && e[k] === tokens[i + k]) k++;
      for (const t of child.tenants.keys()) out.set(t, i + k);
      if (k < e.length) break;
      i += k;
      node = child;
    }
    return out;
  }

  /** Records that `worker` now holds `tokens`; evicts its LRU leaves beyond `maxSize` tokens. */
  insert(tokens: ArrayLike<number>, worker: string, maxSize = Infinity): void {
    const now = ++this.clock;
    let node = this.root;
    let i = 0;
    const n = tokens.length;
    let added = 0;
    while (i < n) {
      let child = node.children.get(tokens[i]!);
      if (child === undefined) {
        const leaf = new TreeNode(copyRange(tokens, i, n), node);
        leaf.tenants.set(worker, now);
        node.children.set(tokens[i]!, leaf);
        added += n - i;
        break;
      }
      const e = child.edge;
      let k = 0;
      while (k < e.length && i + k < n && e[k] === tokens[i + k]) k++;
      if (k < e.length) child = this.split(child, k);
      if (!child.tenants.has(worker)) added += child.edge.length;
      child.tenants.set(worker, now);
      i += k;
      node = child;
    }
    this.sizes.set(worker, this.size(worker) + added);
    if (this.size(worker) > maxSize) this.evict(worker, maxSize);
  }

  /** Removes everything held for `worker`. */
  removeWorker(worker: string): void {
    this.evict(worker, 0);
    this.sizes.delete(worker);
  }

  /** Splits `node`'s edge after `k` tokens; returns the new upper node. */
  private split(node: TreeNode, k: number): TreeNode {
    const parent = node.parent!;
    const upper = new TreeNode(node.edge.slice(0, k), parent);
    upper.tenants = new Map(node.tenants);
    parent.children.set(upper.edge[0]!, upper);
    node.edge = node.edge.slice(k);
    node.parent = upper;
    upper.children.set(node.edge[0]!, node);
    return upper;
  }

  /** Evicts `worker`'s least recently used leaves until it holds at most `max` tokens. */
  private evict(worker: string, max: number): void {
    let size = this.size(worker);
    while (size > max) {
      const leaves: TreeNode[] = [];
      const stack: TreeNode[] = [this.root];
      while (stack.length > 0) {
        const nd = stack.pop()!;
        let leaf = nd !== this.root;
        for (const c of nd.children.values()) {
          if (c.tenants.has(worker)) {
            leaf = false;
            stack.push(c);
          }
        }
        if (leaf && nd.tenants.has(worker)) leaves.push(nd);
      }
      if (leaves.length === 0) break;
      leaves.sort((a, b) => a.tenants.get(worker)! - b.tenants.get(worker)!);
      for (const leaf of leaves) {
        if (size <= max) break;
        leaf.tenants.delete(worker);
        size -= leaf.edge.length;
        if (leaf.tenants.size === 0 && leaf.children.size === 0) leaf.parent!.children.delete(leaf.edge[0]!);
      }
    }
    this.sizes.set(worker, size);
  }
}

/** See the module comment. */
export class SglangCacheAwarePolicy implements RoutingStrategy {
  /** Always `'sglang-cache-aware'`. */
  readonly name = 'sglang-cache-aware';
  /** Options in force. */
  readonly options: Readonly<Required<SglangCacheAwareOptions>>;
  /** The approximate tree. */
  readonly tree = new ApproxRadixTree();

  constructor(options: SglangCacheAwareOptions = {}) {
    const o = { ...SGLANG_CACHE_AWARE_DEFAULTS, ...definedOnly(options) };
    if (!(o.cacheThreshold >= 0 && o.cacheThreshold <= 1)) {
      throw new RouterInvalidArgumentError(`cacheThreshold must be in [0, 1], got ${String(o.cacheThreshold)}`);
    }
    for (const k of ['balanceAbsThreshold', 'balanceRelThreshold', 'maxTreeSize'] as const) {
      if (typeof o[k] !== 'number' || !(o[k] >= 0)) {
        throw new RouterInvalidArgumentError(`${k} must be a number >= 0, got ${String(o[k])}`);
      }
    }
    this.options = o;
  }

  /** Picks a worker (see the module comment) and records the prompt in its tree. */
  select(ctx: RoutingContext): RoutingChoice {
    const tokens = ctx.tokenIds;
    if (tokens === undefined)
      throw new RouterInvalidArgumentError('sglang-cache-aware needs the token ids in the context');
    const n = ctx.count;
    const load = ctx.inflight ?? ctx.waiting;
    let maxLoad = -Infinity;
    let minLoad = Infinity;
    let minAt = 0;
    for (let i = 0; i < n; i++) {
      const l = load[i]!;
      if (l > maxLoad) maxLoad = l;
      if (l < minLoad) {
        minLoad = l;
        minAt = i;
      }
    }
    const o = this.options;
    let pick: number;
    if (maxLoad - minLoad > o.balanceAbsThreshold && maxLoad > minLoad * o.balanceRelThreshold) {
      pick = minAt;
    } else {
      const matched = this.tree.match(tokens);
      let best = -1;
      let bestLen = 0;
      for (let i = 0; i < n; i++) {
        const m = matched.get(ctx.workerIds[i]!) ?? 0;
        if (m > bestLen) {
          bestLen = m;
          best = i;
        }
      }
      if (best >= 0 && tokens.length > 0 && bestLen / tokens.length > o.cacheThreshold) pick = best;
      else {
        pick = 0;
        let smallest = Infinity;
        for (let i = 0; i < n; i++) {
          const s = this.tree.size(ctx.workerIds[i]!);
          if (s < smallest) {
            smallest = s;
            pick = i;
          }
        }
      }
    }
    this.tree.insert(tokens, ctx.workerIds[pick]!, o.maxTreeSize);
    return { index: pick };
  }
}

function copyRange(tokens: ArrayLike<number>, from: number, to: number): Uint32Array {
  if (tokens instanceof Uint32Array) return tokens.slice(from, to);
  const out = new Uint32Array(to - from);
  for (let j = from; j < to; j++) out[j - from] = tokens[j]!;
  return out;
}

/** `o` without its undefined fields. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
