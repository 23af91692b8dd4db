/**
 * `@dynamo-ts/llamacpp`: llama.cpp workers for dynamo-ts. A real GGUF model (node-llama-cpp, the
 * engine in a child process) behind the KV-aware router: slots that keep their KV cache, KV
 * events from the slots' real tokens, the model's own tokenizer for the processor, and a tiny
 * deterministic test model.
 * @packageDocumentation
 */
export {
  llamaCppWorker,
  checkModelFile,
  promptTokens,
  generatedTokens,
  slotsInUse,
  engineRestarts,
  kvHandovers,
} from './worker';
export type { LlamaCppConfig, LlamaCppWorkerOptions } from './worker';
export { TransferDir, KvStateRejected, modelFingerprint, transferDir } from './kv-handover';
export type { KvTransferConfig } from './kv-handover';
export { EngineProcess, ModelLoadError, childScript } from './engine-process';
export type { EngineProcessOptions, ModelInfo } from './engine-process';
export { SlotTable } from './slots';
export type { Slot } from './slots';
export { GgufTokenizer } from './tokenizer';
export { modelTokenizer } from './processor-tokenizer';
export { tinyModel, tinyVocabulary, ggufHeaderCheck } from './tiny-model';
export type { TinyModelOptions } from './tiny-model';
export { llamaCppPrefillWorker } from './prefill';
export type { LlamaCppPrefillConfig } from './prefill';
