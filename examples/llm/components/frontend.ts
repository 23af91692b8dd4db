import { frontendService } from '@dynamo-ts/llm';
import { Processor } from './processor';
import { LlamaWorker } from './worker';

/** The OpenAI-compatible HTTP frontend; `/v1/models` lists the GGUF's name. */
export const Frontend = frontendService({
  processor: Processor,
  worker: LlamaWorker,
  defaultModel: 'llama',
  http: () => ({ apiKey: process.env.DYNAMO_API_KEY || undefined }),
});
