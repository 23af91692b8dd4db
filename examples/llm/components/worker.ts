import { llamaCppPrefillWorker, llamaCppWorker } from '@dynamo-ts/llamacpp';

/** Prefill workers of the disaggregated config: the real prefill on llama.cpp. */
export const LlamaPrefillWorker = llamaCppPrefillWorker();

/** The llama.cpp decode (or aggregated) worker: `--LlamaWorker.model=FILE.gguf`. */
export const LlamaWorker = llamaCppWorker({ prefillWorker: LlamaPrefillWorker });
