import { frontendService } from '@dynamo-ts/llm';
import { Processor } from './processor';
import { DummyWorker } from './worker';

/** The model a DummyWorker serves when its discovery metadata names none. */
export const DEFAULT_MODEL = 'hello-world';

/**
 * The HTTP frontend: `POST /generate` (SSE or JSON), the OpenAI routes, `/health`, `/live`,
 * `/metrics`, `/dashboard`; calls the Processor. API keys, bind host and the overload status come
 * from the settings (`DYNAMO_API_KEYS`, `DYNAMO_HOST`, `DYN_HTTP_OVERLOAD_STATUS_CODE`).
 */
export const Frontend = frontendService({ processor: Processor, worker: DummyWorker, defaultModel: DEFAULT_MODEL });
