/**
 * The hello-world graph, as in the seed: Frontend -> Processor -> Router are served together
 * (`dynamo-ts serve components/graph:Frontend`); DummyWorkers and PrefillWorkers are served on
 * their own, on any node, and found through discovery. In embedded mode (no NATS/etcd) the
 * workers are served in the same process too.
 */
import { Frontend } from './frontend';
import { Processor } from './processor';
import { Router } from './router';
import { DummyWorker } from './worker';
import { PrefillWorker } from './prefill-worker';

Frontend.link(Processor).link(Router);

export { Frontend, Processor, Router, DummyWorker, PrefillWorker };
