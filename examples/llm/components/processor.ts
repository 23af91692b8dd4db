import { processorService } from '@dynamo-ts/llm';
import { modelTokenizer } from '@dynamo-ts/llamacpp';
import { Router } from './router';
import { LlamaWorker } from './worker';

/**
 * Tokenizes with the model's own GGUF vocabulary: the file a LlamaWorker registers, or, on a
 * machine without it at that path, `DYNAMO_TOKENIZER_MODEL` (read here, at the app's edge).
 */
export const Processor = processorService({
  router: Router,
  worker: LlamaWorker,
  tokenizer: modelTokenizer(LlamaWorker, process.env.DYNAMO_TOKENIZER_MODEL || undefined),
});
