/**
 * `@dynamo-ts/llm`: the serving layer of a disaggregated LLM graph, engine-agnostic. The wire
 * contracts (declared once), the processor pipeline with one retry policy, the KV router service
 * (a unary Router endpoint, or in-process), the worker base engines plug into, the
 * disaggregation protocol (decode side and prefill worker), and stream resume.
 * @packageDocumentation
 */
export {
  WireFinishReason,
  SamplingFields,
  ChatTurn,
  MAX_CHAT_TURNS,
  LlmRequest,
  LlmEvent,
  RouteQuery,
  RouteResult,
  EngineRequestWire,
  EngineOutputWire,
  RequestProgress,
  PrefillJob,
  PrefillDone,
  KvStateRef,
  KvTransferMetadata,
  ProcessorApi,
  RouterApi,
  WorkerApi,
  PREFILL_QUEUE,
  PROGRESS_TOPIC,
  KV_EVENTS_TOPIC,
  LOAD_METRICS_TOPIC,
} from './protocol';
export type { Tokenizer, StreamDecoder, AsyncTokenizer, AsyncStreamDecoder } from './tokenizer';
export { ProcessorPipeline, RemoteRouteSource, LocalRouteSource } from './processor';
export type { RouteSource, ProcessorPipelineOptions } from './processor';
export { processorService, processorRetryPolicy, PROCESSOR_CONFIG_PROPERTIES } from './processor-service';
export type { ProcessorConfig, ProcessorServiceOptions } from './processor-service';
export { KvRouterService, routerService, ROUTER_CONFIG_PROPERTIES } from './router-service';
export type {
  RouterConfig,
  RouterServiceOptions,
  KvRouterServiceOptions,
  WorkerSet,
  KvEventSource,
  KvEventSubscription,
} from './router-service';
export { workerService, workerEvents, WORKER_BASE_CONFIG_PROPERTIES } from './worker';
export type {
  Engine,
  EngineHost,
  EngineRequest,
  EngineStep,
  EngineLoad,
  WorkerBaseConfig,
  WorkerServiceOptions,
  WorkerRequestEvent,
} from './worker';
export { KvCache, MAX_EVENT_BLOCKS } from './kv-cache';
export type { KvCacheOptions } from './kv-cache';
export { PrefillClient } from './disagg';
export type { DisaggThresholds, PrefillStats, PrefillClientOptions } from './disagg';
export { prefillWorkerService } from './prefill-worker';
export type {
  PrefillWorkerBaseConfig,
  PrefillTask,
  PrefillEngine,
  PrefillWorkerServiceOptions,
} from './prefill-worker';
export { ResumableStream } from './resume';
export type { ResumeOptions } from './resume';
export { frontendService } from './frontend-service';
export type { FrontendConfig, FrontendServiceOptions } from './frontend-service';
export {
  prefillDecisions,
  prefillFallbacks,
  prefillQueueDepth,
  prefillJobs,
  queueStatsRecorder,
  routerDecisions,
  routerOverlapBlocks,
} from './metrics';
