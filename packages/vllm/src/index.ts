/**
 * `@dynamo-ts/vllm`: dynamo-ts in front of vLLM and SGLang engines. The engine-adapter worker
 * (one external engine per worker: generate over its OpenAI-compatible HTTP server with token
 * ids, load from `/metrics`, health from `/health`, its ZMQ KV events republished for the
 * router), the KV-event ingest (also alone, as `@dynamo-ts/vllm/ingest`), and a processor
 * tokenizer loaded from a local HuggingFace `tokenizer.json` with the model's chat template.
 * @packageDocumentation
 */
export * from './ingest/index';
export { vllmWorkerService, engineTarget } from './worker';
export type { VllmWorkerConfig, VllmWorkerServiceOptions } from './worker';
export { directKvEventSource, routerKvEventSource, ROUTER_INGEST_PROPERTIES } from './router-ingest';
export type { DirectKvEventSourceOptions, RouterIngestConfig } from './router-ingest';
export { loadHfTokenizer } from './hf-tokenizer';
export type { HfTokenizer, HfTokenizerOptions } from './hf-tokenizer';
export {
  streamCompletion,
  streamSglang,
  parseChunk,
  parseSglangChunk,
  detectEngine,
  parsePrometheus,
  readEngineMetrics,
  scrapeMetrics,
  checkHealth,
} from './engine-http';
export type { CompletionCall, EngineMetrics, EngineInfo, EngineKind } from './engine-http';
