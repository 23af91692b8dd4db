import { prefillWorkerService } from '@dynamo-ts/llm';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import { EngineProcess, ModelLoadError } from './engine-process';
import { checkModelFile, promptTokens } from './worker';

/** Config of {@link llamaCppPrefillWorker}. */
export interface LlamaCppPrefillConfig {
  model: string;
  context_size: number;
  threads: number;
}

/**
 * A prefill worker that runs the real prefill on llama.cpp (its own engine child, one slot):
 * it evaluates each job's tokens. The prefilled KV state is not handed to the decode worker
 * (the decode worker evaluates the prompt again): see the package README.
 */
export function llamaCppPrefillWorker(name = 'LlamaPrefillWorker') {
  return prefillWorkerService<LlamaCppPrefillConfig>({
    name,
    configProperties: {
      model: { type: 'string', maxLength: 4096, default: '' },
      context_size: { type: 'integer', minimum: 16, maximum: 1 << 20, default: 2048 },
      threads: { type: 'integer', minimum: 1, maximum: 256, default: 1 },
    },
    async createEngine(ctx) {
      const file = checkModelFile(ctx.config.model, `--${name}.model`);
      const proc = new EngineProcess({
        modelPath: file,
        slots: 1,
        contextSize: ctx.config.context_size,
        threads: ctx.config.threads,
        logger: ctx.logger,
        restart: true,
      });
      try {
        await proc.start();
      } catch (e) {
        if (e instanceof ModelLoadError)
          throw new InvalidArgumentError(`--${name}.model=${ctx.config.model}: cannot load the model: ${e.message}`);
        throw e;
      }
      return {
        async prefill(task) {
          const tokens = [...task.job.token_ids];
          const r = proc.request<{ cached: number; evaluated: number }>(
            (id) => ({ type: 'prefill', id, slot: 0, tokens }),
            (m, ok, fail) => {
              if (m.type === 'done') ok(m);
              else if (m.type === 'failed') fail(new Error(m.error));
            },
          );
          const done = await r.done;
          promptTokens.inc({ worker: ctx.workerName, cached: 'true' }, done.cached);
          promptTokens.inc({ worker: ctx.workerName, cached: 'false' }, done.evaluated);
        },
        close: () => proc.close(),
      };
    },
  });
}
