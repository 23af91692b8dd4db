/** `graph-server.ts` with the Processor's in-process router (`Processor.router_mode=local`), for A/B runs. */
process.env.BENCH_ROUTER_MODE = 'local';
require('./graph-server');
