import { routerService } from '@dynamo-ts/llm';
import { LlamaWorker } from './worker';

/** The KV-aware router over the LlamaWorkers' real slot caches. */
export const Router = routerService({ worker: LlamaWorker });
