/**
 * `@dynamo-ts/vllm/ingest`: vLLM's and SGLang's ZMQ KV-event stream turned into the router's KV
 * events. Depends on `@dynamo-ts/router` only (no runtime), so any Node service can feed a
 * `KvRouter` from a fleet of engines.
 * @packageDocumentation
 */
export { KvEventIngest, rankEndpoint, checkEndpoint } from './ingest';
export type { KvEventIngestOptions, IngestStats, IngestLogger } from './ingest';
export { EngineKvTranslator } from './translate';
export type { EngineKvTranslatorOptions, TranslateWarning } from './translate';
export { decodeBatch, readEvent, readSeq, seqFrame, engineHash, END_SEQ, DEFAULT_WIRE_LIMITS } from './wire';
export type {
  VllmEvent,
  VllmBlockStored,
  VllmBlockRemoved,
  VllmAllCleared,
  VllmEventBatch,
  WireLimits,
  EngineHash,
} from './wire';
