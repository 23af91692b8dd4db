import { frontendService } from '@dynamo-ts/llm';
import { Processor } from './processor';
import { DummyWorker } from './worker';

/** The model a DummyWorker serves when its discovery metadata names none. */
export const DEFAULT_MODEL = 'hello-world';

/**
 * The HTTP frontend: `POST /generate` (SSE or JSON), the OpenAI routes, `/health`, `/live`,
 * `/metrics`; calls the Processor. `DYNAMO_API_KEY`, when set, is the API key.
 */
export const Frontend = frontendService({
  processor: Processor,
  worker: DummyWorker,
  defaultModel: DEFAULT_MODEL,
  // The example is an edge of the system, where the environment may be read.
  http: () => ({ apiKey: process.env.DYNAMO_API_KEY || undefined }),
});
