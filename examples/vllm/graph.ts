/**
 * dynamo-ts in front of vLLM (or SGLang) engines: Frontend -> Processor -> Router are served
 * together (`dynamo-ts serve examples/vllm/graph.ts:Frontend --Processor.tokenizer=DIR`), one
 * VllmWorker adapter per engine (`... graph.ts:VllmWorker --VllmWorker.url=... --VllmWorker.kv_events=...`).
 * In embedded mode (no NATS/etcd) `--VllmWorker.engines=URL1,URL2` serves one adapter per engine
 * in the same process. Block sizes default to vLLM's 16 everywhere (they must agree). The adapter
 * speaks vLLM's or SGLang's API (`--VllmWorker.engine=auto|vllm|sglang`).
 */
import { frontendService, processorService, routerService, WORKER_BASE_CONFIG_PROPERTIES } from '@dynamo-ts/llm';
import { loadHfTokenizer, ROUTER_INGEST_PROPERTIES, routerKvEventSource, vllmWorkerService } from '@dynamo-ts/vllm';

const blockSize = { block_size: { ...WORKER_BASE_CONFIG_PROPERTIES.block_size, default: 16 } };

export const VllmWorker = vllmWorkerService();

// `--Router.ingest=direct`: the Router reads each engine's KV events from the endpoint its adapter
// registered (start the adapters with `--VllmWorker.kv_ingest=router`); default: the adapters'.
export const Router = routerService({
  worker: VllmWorker,
  configProperties: { ...blockSize, ...ROUTER_INGEST_PROPERTIES },
  kvEventSource: routerKvEventSource,
});

export const Processor = processorService({
  router: Router,
  worker: VllmWorker,
  configProperties: {
    ...blockSize,
    tokenizer: { type: 'string', minLength: 1, description: "the model's tokenizer.json, or its directory" },
    chat_template: { type: 'boolean', default: true },
  },
  tokenizer: (ctx) => {
    const path = ctx.config.tokenizer;
    if (typeof path !== 'string') throw new Error('--Processor.tokenizer=DIR_OR_tokenizer.json is required');
    return loadHfTokenizer(path, { chatTemplate: ctx.config.chat_template !== false });
  },
});

export const Frontend = frontendService({
  processor: Processor,
  worker: VllmWorker,
  defaultModel: 'vllm',
  // The example is an edge of the system, where the environment may be read.
  http: () => ({ apiKey: process.env.DYNAMO_API_KEY || undefined }),
});

Frontend.link(Processor).link(Router);
