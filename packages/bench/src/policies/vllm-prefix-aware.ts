/**
 * `vllm-prefix-aware`: vLLM production-stack router's `prefixaware` routing logic, re-implemented
 * from its published description and source layout (vllm-project/production-stack,
 * `src/vllm_router/routers/routing_logic.py` `PrefixAwareRouter` and `prefix/hashtrie.py`
 * `HashTrie`):
 *
 * - A trie keyed by hashes of fixed-size chunks of the prompt (production-stack: 128 characters of
 *   the prompt text; here 128 tokens, `chunkSize`), each node holding the set of endpoints that were
 *   sent a prompt through it.
 * - Routing: walk the trie with the prompt's chunks, narrowing the candidate set to the endpoints
 *   present at each node, stopping at a missing chunk or when no candidate is left; the longest
 *   match wins, and a **random** endpoint among the remaining candidates is chosen (all endpoints
 *   when nothing matches).
 * - The prompt is then inserted for the chosen endpoint. No eviction, no load awareness (as
 *   published: "we do not consider the eviction of prefix cache").
 * @packageDocumentation
 */
import {
  RouterInvalidArgumentError,
  randomIndex,
  type RoutingChoice,
  type RoutingContext,
  type RoutingStrategy,
} from '@dynamo-ts/router';

/** Options of {@link VllmPrefixAwarePolicy}. */
export interface VllmPrefixAwareOptions {
  /** Tokens per chunk; default 128 (production-stack's `HashTrie(chunk_size=128)`). */
  chunkSize?: number;
}

/** Published default of {@link VllmPrefixAwareOptions.chunkSize}. */
export const VLLM_PREFIX_AWARE_DEFAULT_CHUNK_SIZE = 128;

interface TrieNode {
  children: Map<number, TrieNode>;
  endpoints: Set<string>;
}

/** The hash trie over fixed chunks. Exported for tests. */
export class ChunkHashTrie {
  private readonly root: TrieNode = { children: new Map(), endpoints: new Set() };
  constructor(readonly chunkSize: number) {}

  /** Chunk hashes of `tokens` (the last chunk may be partial). */
  chunks(tokens: ArrayLike<number>): number[] {
    const out: number[] = [];
    const cs = this.chunkSize;
    for (let at = 0; at < tokens.length; at += cs) {
      const end = Math.min(at + cs, tokens.length);
      let h1 = 0x811c9dc5;
      let h2 = 0x01000193 ^ (end - at);
      for (let i = at; i < end; i++) {
        const t = tokens[i]! >>> 0;
        h1 = Math.imul(h1 ^ t, 0x01000193) >>> 0;
        h2 = Math.imul(h2 ^ (t + 0x9e3779b9), 0x85ebca6b) >>> 0;
        h2 ^= h2 >>> 15;
      }
      out.push(h1 * 0x200000 + (h2 >>> 11));
    }
    return out;
  }

  /**
   * Longest match restricted to `available`: the matched chunk count and the endpoints that hold
   * it (all of `available` when nothing matches).
   */
  longestMatch(chunks: readonly number[], available: readonly string[]): { chunks: number; endpoints: string[] } {
    let selected = available.slice();
    let node = this.root;
    let matched = 0;
    for (const h of chunks) {
      const child = node.children.get(h);
      if (child === undefined) break;
      const next = selected.filter((e) => child.endpoints.has(e));
      if (next.length === 0) break;
      selected = next;
      node = child;
      matched++;
    }
    return { chunks: matched, endpoints: selected };
  }

  /** Records that `endpoint` was sent the prompt with these chunks. */
  insert(chunks: readonly number[], endpoint: string): void {
    let node = this.root;
    for (const h of chunks) {
      let child = node.children.get(h);
      if (child === undefined) {
        child = { children: new Map(), endpoints: new Set() };
        node.children.set(h, child);
      }
      child.endpoints.add(endpoint);
      node = child;
    }
  }
}

/** See the module comment. */
export class VllmPrefixAwarePolicy implements RoutingStrategy {
  /** Always `'vllm-prefix-aware'`. */
  readonly name = 'vllm-prefix-aware';
  /** The trie. */
  readonly trie: ChunkHashTrie;

  constructor(options: VllmPrefixAwareOptions = {}) {
    const cs = options.chunkSize ?? VLLM_PREFIX_AWARE_DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(cs) || cs <= 0) {
      throw new RouterInvalidArgumentError(`chunkSize must be a positive integer, got ${String(cs)}`);
    }
    this.trie = new ChunkHashTrie(cs);
  }

  /** Longest match, random among ties; records the prompt for the pick. */
  select(ctx: RoutingContext): RoutingChoice {
    const tokens = ctx.tokenIds;
    if (tokens === undefined)
      throw new RouterInvalidArgumentError('vllm-prefix-aware needs the token ids in the context');
    const ids = ctx.workerIds.slice(0, ctx.count);
    const chunks = this.trie.chunks(tokens);
    const m = this.trie.longestMatch(chunks, ids);
    const chosen = m.endpoints[randomIndex(ctx.random, m.endpoints.length)]!;
    this.trie.insert(chunks, chosen);
    return { index: ids.indexOf(chosen) };
  }
}
