/**
 * A second serving graph, built from the packages alone (no example code): a dummy engine that
 * answers with the prompt reversed, then `|<worker name>`. Byte tokens; KV routing, failover,
 * migration and disaggregation come from @dynamo-ts/llm. (The proof that the pieces are reusable.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { TextDecoder } from 'node:util';
import {
  frontendService,
  KvCache,
  prefillWorkerService,
  processorService,
  routerService,
  workerService,
  type Tokenizer,
} from '@dynamo-ts/llm';

/** One token per UTF-8 byte; a character split over tokens waits for its last byte. */
export const byteTokenizer: Tokenizer = {
  encode: (text) => [...Buffer.from(text, 'utf8')],
  decoder() {
    const utf8 = new TextDecoder('utf-8');
    return { push: (t) => utf8.decode(Uint8Array.of(t), { stream: true }), flush: () => utf8.decode() };
  },
};

/** Prefills of the reverse graph, by prefill worker (what the test checks). */
export const prefilled: string[] = [];

export const ReversePrefill = prefillWorkerService<{ delay_ms: number }>({
  name: 'ReversePrefill',
  configProperties: { delay_ms: { type: 'number', minimum: 0, default: 5 } },
  createEngine: (ctx) => ({
    async prefill(task) {
      await sleep(ctx.config.delay_ms, undefined, { signal: task.signal });
      prefilled.push(ctx.workerName);
    },
  }),
});

export const ReverseWorker = workerService<{ token_delay_ms: number }>({
  name: 'ReverseWorker',
  prefillWorker: ReversePrefill,
  configProperties: { token_delay_ms: { type: 'number', minimum: 0, default: 0 } },
  createEngine(host, { config }) {
    const cache = new KvCache({
      workerId: host.workerId,
      blockSize: config.block_size,
      capacityBlocks: config.cache_blocks,
      publish: (e) => host.publishKvEvent(e),
    });
    return {
      cachedBlocks: (tokens) => cache.matchPrefix(tokens),
      async *generate(req, ctx) {
        cache.store(req.contextTokenIds);
        const answer = [...req.promptTokenIds].reverse().concat(byteTokenizer.encode(`|${host.workerName}`));
        for (let i = req.generatedTokenIds.length; i < answer.length; i++) {
          if (config.token_delay_ms > 0) await sleep(config.token_delay_ms, undefined, { signal: ctx.signal });
          if (ctx.cancelled) return;
          yield i === answer.length - 1 ? { tokenIds: [answer[i]!], finishReason: 'stop' } : { tokenIds: [answer[i]!] };
        }
      },
    };
  },
});

export const ReverseRouter = routerService({
  name: 'ReverseRouter',
  worker: ReverseWorker,
  progressFrom: 'ReverseProcessor',
});
export const ReverseProcessor = processorService({
  name: 'ReverseProcessor',
  router: ReverseRouter,
  worker: ReverseWorker,
  tokenizer: () => byteTokenizer,
});
export const ReverseFrontend = frontendService({
  name: 'ReverseFrontend',
  processor: ReverseProcessor,
  worker: ReverseWorker,
  defaultModel: 'reverse',
});
ReverseFrontend.link(ReverseProcessor).link(ReverseRouter);
