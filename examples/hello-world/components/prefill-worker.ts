import { setTimeout as sleep } from 'node:timers/promises';
import { prefillWorkerService } from '@dynamo-ts/llm';

/**
 * The dummy prefill worker: pulls prefill jobs from the shared queue and simulates each prefill
 * (`delay_ms`); the package's prefill runner keeps the job alive, replies and acks.
 */
export const PrefillWorker = prefillWorkerService<{ delay_ms: number }>({
  configProperties: { delay_ms: { type: 'number', minimum: 0, maximum: 600000, default: 0 } },
  createEngine: (ctx) => ({
    async prefill(task) {
      if (ctx.config.delay_ms > 0) await sleep(ctx.config.delay_ms, undefined, { signal: task.signal });
    },
  }),
});
