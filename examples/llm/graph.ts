/**
 * A real model behind the graph: Frontend -> Processor -> Router -> LlamaWorkers (llama.cpp).
 * `dynamo-ts serve examples/llm/graph.ts:Frontend --LlamaWorker.model=FILE.gguf` serves it all
 * embedded (2 LlamaWorkers); with NATS_SERVER and ETCD_ENDPOINTS set, serve `components/worker.ts:LlamaWorker`
 * on other machines.
 */
import { Frontend } from './components/frontend';
import { Processor } from './components/processor';
import { Router } from './components/router';
import { LlamaPrefillWorker, LlamaWorker } from './components/worker';

Frontend.link(Processor).link(Router);

export { Frontend, Processor, Router, LlamaWorker, LlamaPrefillWorker };
