import { routerService } from '@dynamo-ts/llm';
import { DummyWorker } from './worker';

/**
 * The KV-aware router: follows the DummyWorkers through discovery, their KV events and load
 * metrics, and the Processor's request status; answers each `route` call with the worker whose
 * cache holds the longest prefix of the prompt, weighed against its load.
 */
export const Router = routerService({ worker: DummyWorker });
