import { setTimeout as sleep } from 'node:timers/promises';
import Ajv from 'ajv';
import { kvTransferKey, type Job } from '@dynamo-ts/runtime';
import { defineService } from '@dynamo-ts/sdk';
import { PREFILL_JOB_SCHEMA, PREFILL_QUEUE, type PrefillDone, type PrefillJob } from './disagg';
import { prefillJobs, queueStatsRecorder } from './metrics';

/** Config of the PrefillWorker. */
export interface PrefillWorkerConfig {
  /** Simulated prefill time per job, ms. */
  delay_ms: number;
  /** Jobs this worker runs at once. */
  max_in_flight: number;
  /** A job not acked (nor kept alive) within this is redelivered to another prefill worker, ms. */
  ack_wait_ms: number;
  /** Deliveries after which a job is dead-lettered. */
  max_deliver: number;
}

const validateJob = new Ajv({ strict: false }).compile<PrefillJob>(PREFILL_JOB_SCHEMA);

/**
 * The dummy prefill worker: pulls prefill jobs from the shared queue, reads the requesting decode
 * worker's KV-transfer metadata, simulates the prefill (keeping the job alive while it runs),
 * tells the decode worker it is done, and only then acks — so a prefill worker that dies mid-job
 * loses nothing: the job is redelivered to another one.
 */
export const PrefillWorker = defineService<PrefillWorkerConfig>({
  name: 'PrefillWorker',
  embeddedReplicas: 0,
  configSchema: {
    properties: {
      delay_ms: { type: 'number', minimum: 0, maximum: 600000, default: 0 },
      max_in_flight: { type: 'integer', minimum: 1, maximum: 1024, default: 1 },
      ack_wait_ms: { type: 'integer', minimum: 100, default: 10000 },
      max_deliver: { type: 'integer', minimum: 1, default: 5 },
    },
  },
  async create(ctx) {
    const cfg = ctx.config;
    const queue = await ctx.runtime.openQueue({
      namespace: ctx.settings.namespace,
      name: PREFILL_QUEUE,
      ackWaitMs: cfg.ack_wait_ms,
      maxDeliver: cfg.max_deliver,
    });
    const worker = ctx.workerName;
    const record = queueStatsRecorder(worker, queue.name);
    const sampleStats = (): Promise<void> =>
      queue.stats().then(record, (e: Error) => ctx.logger.debug('could not read queue stats', { error: e.message }));
    const sampler = setInterval(() => void sampleStats(), 1000);
    sampler.unref();
    const stop = new AbortController();
    const inflight = new Set<Promise<void>>();
    let done = 0;

    async function run(job: Job): Promise<void> {
      const data = job.data as PrefillJob;
      const log = ctx.logger.child({ request_id: data?.request_id, job_id: job.id, delivery: job.deliveryCount });
      if (!validateJob(data)) {
        log.error('malformed prefill job; dropped', { error: JSON.stringify(validateJob.errors?.[0]) });
        prefillJobs.inc({ worker, outcome: 'malformed' });
        await job.term();
        return;
      }
      const meta = await ctx.runtime.discovery.get(kvTransferKey(ctx.settings.namespace, data.engine_id));
      if (meta === undefined) {
        // The decode engine is gone: nobody can use this prefill.
        log.warn('decode engine has no KV-transfer metadata (gone); job dropped', { engine_id: data.engine_id });
        prefillJobs.inc({ worker, outcome: 'engine_gone' });
        await job.ack();
        return;
      }
      log.info('prefill started', { engine_id: data.engine_id, tokens: data.token_ids.length });
      const keepAlive = setInterval(
        () => void job.inProgress().catch(() => undefined),
        Math.max(50, cfg.ack_wait_ms / 3),
      );
      try {
        if (cfg.delay_ms > 0) await sleep(cfg.delay_ms);
        const msg: PrefillDone = {
          request_id: data.request_id,
          engine_id: data.engine_id,
          prefill_worker: ctx.workerName,
        };
        await ctx.runtime.eventPlane.publish(data.reply_to, msg);
        await ctx.runtime.eventPlane.flush();
        await job.ack();
        done++;
        prefillJobs.inc({ worker, outcome: 'done' });
        log.info('prefill done', { engine_id: data.engine_id });
      } catch (e) {
        log.warn('prefill failed; handing the job back', { error: (e as Error).message });
        prefillJobs.inc({ worker, outcome: 'failed' });
        await job.nak().catch(() => undefined);
      } finally {
        clearInterval(keepAlive);
      }
    }

    const loop = (async () => {
      try {
        for await (const job of queue.consume({ signal: stop.signal, maxInFlight: cfg.max_in_flight })) {
          const p = run(job)
            .catch((e: Error) => ctx.logger.error('prefill job crashed', { error: e.message }))
            .finally(() => inflight.delete(p));
          inflight.add(p);
        }
      } catch (e) {
        if (!stop.signal.aborted) ctx.logger.error('prefill consumer stopped', { error: (e as Error).message });
      }
    })();

    return {
      metadata: { queue: PREFILL_QUEUE },
      async drain() {
        // Stop pulling; finish the jobs in hand (they are acked when done).
        stop.abort();
        await Promise.all([...inflight]);
        await loop;
        clearInterval(sampler);
        await sampleStats();
        ctx.logger.info('prefill worker drained', { jobs_done: done });
      },
      async close() {
        clearInterval(sampler);
        stop.abort();
        await queue.close();
      },
    };
  },
});
