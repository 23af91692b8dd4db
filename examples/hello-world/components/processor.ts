import { processorService } from '@dynamo-ts/llm';
import { Router } from './router';
import { cl100kTokenizer } from './tokenizer';
import { DummyWorker } from './worker';

/**
 * Pre/post-processing: tokenizes the prompt (cl100k), asks the Router for the best worker, calls
 * it, detokenizes its stream; re-routes and migrates when a worker fails (`max_route_attempts`,
 * `migration_limit`). `--Processor.router_mode=local` routes in-process instead of calling the Router.
 */
export const Processor = processorService({ router: Router, worker: DummyWorker, tokenizer: () => cl100kTokenizer });
