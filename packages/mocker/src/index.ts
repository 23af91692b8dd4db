/**
 * `@dynamo-ts/mocker`: simulated LLM engines (paged KV cache with prefix reuse and LRU eviction,
 * continuous batching; Dynamo's mocker timing, and a vLLM-like scheduler with chunked prefill and
 * preemption) that emit `@dynamo-ts/router`'s KV events and load metrics, plus a virtual-clock event
 * loop and a real-time runner. For benchmarks, tests and demo workers without GPUs; kept out of the
 * router package, which stays pure routing.
 * @packageDocumentation
 */
export { prefillTimeMs, prefillChunkTimeMs, decodeStepTimeMs } from './timing';
export { PagedKvCache } from './kv-cache';
export { SimEngine, SIM_ENGINE_DEFAULTS } from './engine';
export type { SimEngineOptions, SimRequest, SimStep, SimTokenOutput, SimAdmission } from './engine';
export { VllmSimEngine, VLLM_SIM_TIMING } from './vllm-engine';
export type { VllmSimEngineOptions, VllmTiming } from './vllm-engine';
export { VirtualEventLoop } from './event-loop';
export { RealTimeEngine, systemScheduler } from './realtime';
export type { EngineScheduler, RealTimeEngineListeners, TokenBatch } from './realtime';
export { mulberry32, seededRandom } from '@dynamo-ts/router';
