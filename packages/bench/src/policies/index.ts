/**
 * Re-implementations of other serving routers' published policies, as {@link RoutingStrategy}s, for
 * comparing against this router's `kv` strategy in benchmarks.
 * @packageDocumentation
 */
export { SglangCacheAwarePolicy, ApproxRadixTree, SGLANG_CACHE_AWARE_DEFAULTS } from './sglang-cache-aware';
export type { SglangCacheAwareOptions } from './sglang-cache-aware';
export { VllmPrefixAwarePolicy, ChunkHashTrie, VLLM_PREFIX_AWARE_DEFAULT_CHUNK_SIZE } from './vllm-prefix-aware';
export type { VllmPrefixAwareOptions } from './vllm-prefix-aware';
export { LlmdScorersPolicy, LLMD_SCORERS_DEFAULTS } from './llm-d-scorers';
export type { LlmdScorersOptions } from './llm-d-scorers';
