import { setTimeout as sleep } from 'node:timers/promises';
import { nextTurn, turnIsLong } from '@dynamo-ts/runtime';
import { RealTimeEngine, systemScheduler } from '@dynamo-ts/mocker';
import { KvCache, workerService, type Engine, type EngineRequest, type EngineStep } from '@dynamo-ts/llm';
import { PrefillWorker } from './prefill-worker';
import { tokenize } from './tokenizer';

export { workerEvents, type WorkerRequestEvent } from '@dynamo-ts/llm';

/** Engine settings of the DummyWorker (the worker base adds block size, cache, model, disaggregation). */
export interface DummyEngineConfig {
  /** Delay between generated tokens, ms (`dummy` engine). */
  token_delay_ms: number;
  /** Simulated local prefill time per uncached prompt token, ms (`dummy` engine). */
  local_prefill_ms_per_token: number;
  /**
   * `dummy`: fixed `token_delay_ms` per token and an LRU block cache; `mocker`: the simulated
   * engine of `@dynamo-ts/mocker` (paged KV cache, continuous batching, Dynamo's mocker timing
   * divided by `speedup_ratio`), which paces the tokens and publishes KV events and load.
   */
  engine: 'dummy' | 'mocker';
  speedup_ratio: number;
  max_num_seqs: number;
  max_batched_tokens: number;
}

/**
 * The dummy decode (or monolith) worker: answers `<prompt>_GeneratedBy_<worker name>` as a token
 * stream (the prompt echoed token by token, then the signature as one item, so a stream broken
 * anywhere is continued by any worker into a well-formed answer). The worker base does the rest:
 * KV events, load, migration, `max_tokens`, disaggregation.
 */
export const DummyWorker = workerService<DummyEngineConfig>({
  name: 'DummyWorker',
  prefillWorker: PrefillWorker,
  configProperties: {
    token_delay_ms: { type: 'number', minimum: 0, maximum: 60000, default: 0 },
    local_prefill_ms_per_token: { type: 'number', minimum: 0, maximum: 60000, default: 0 },
    engine: { enum: ['dummy', 'mocker'], default: 'dummy' },
    speedup_ratio: { type: 'number', exclusiveMinimum: 0, maximum: 1e6, default: 10 },
    max_num_seqs: { type: 'integer', minimum: 1, maximum: 1 << 20, default: 256 },
    max_batched_tokens: { type: 'integer', minimum: 1, maximum: 1 << 24, default: 8192 },
  },
  createEngine(host, { config: cfg }): Engine {
    const suffix = tokenize(`_GeneratedBy_${host.workerName}`);
    /** The echo, after the tokens generated before a migration. */
    const answer = (req: EngineRequest): EngineStep[] => {
      const echo = req.promptTokenIds;
      const skip = req.generatedTokenIds.length;
      // The answer was complete (its signature sent) when the previous worker died.
      if (skip > echo.length) return [{ tokenIds: [], finishReason: 'stop' }];
      const steps: EngineStep[] = [];
      for (let n = skip; n < echo.length; n++) steps.push({ tokenIds: [echo[n]!] });
      steps.push({ tokenIds: suffix, finishReason: 'stop' });
      return steps;
    };
    if (cfg.engine === 'mocker') {
      const mocker = new RealTimeEngine(
        {
          workerId: host.workerId,
          blockSize: cfg.block_size,
          numBlocks: cfg.cache_blocks,
          maxNumSeqs: cfg.max_num_seqs,
          maxBatchedTokens: cfg.max_batched_tokens,
          speedupRatio: cfg.speedup_ratio,
        },
        systemScheduler,
        { onKvEvent: (e) => host.publishKvEvent(e), onLoadMetrics: (m) => host.publishLoad(m) },
      );
      let seq = 0;
      return {
        publishesLoad: true,
        async *generate(req, ctx) {
          // One answer step per engine token: the engine's steps pace the stream.
          const steps = answer(req);
          const run = mocker.submit(
            { requestId: `${req.requestId}#${++seq}`, tokenIds: req.contextTokenIds, maxTokens: steps.length },
            { signal: ctx.signal },
          );
          let i = 0;
          for await (const batch of run)
            for (let k = 0; k < batch.tokenIds.length && i < steps.length; k++) yield steps[i++]!;
        },
        close: () => mocker.close(),
      };
    }
    const cache = new KvCache({
      workerId: host.workerId,
      blockSize: cfg.block_size,
      capacityBlocks: cfg.cache_blocks,
      publish: (e) => host.publishKvEvent(e),
    });
    return {
      cachedBlocks: (tokens) => cache.matchPrefix(tokens),
      async *generate(req, ctx) {
        // Hashed once for the match and the store (a huge prompt has tens of thousands of blocks),
        // with turns of the event loop between them and within the store when they take long.
        const hashes = cache.hashes(req.contextTokenIds);
        const uncached = req.contextTokenIds.length - cache.matchPrefix(req.contextTokenIds, hashes) * cfg.block_size;
        if (!req.prefilledRemotely && cfg.local_prefill_ms_per_token > 0 && uncached > 0) {
          await sleep(uncached * cfg.local_prefill_ms_per_token, undefined, { signal: ctx.signal });
        } else if (turnIsLong()) await nextTurn();
        await cache.storeAsync(req.contextTokenIds, hashes);
        for (const step of answer(req)) {
          if (cfg.token_delay_ms > 0) await sleep(cfg.token_delay_ms, undefined, { signal: ctx.signal });
          if (ctx.cancelled) return;
          yield step;
        }
      },
    };
  },
});
