import { TypeCompiler } from '@sinclair/typebox/compiler';
import { kvTransferKey, startHopSpan, type Job, type Logger } from '@dynamo-ts/runtime';
import { defineService, type JsonSchema, type ServiceContext, type ServiceDefinition } from '@dynamo-ts/sdk';
import { prefillJobs, queueStatsRecorder } from './metrics';
import { KvTransferMetadata, PREFILL_QUEUE, PrefillJob, type KvStateRef, type PrefillDone } from './protocol';

/** Config keys every prefill worker has. */
export interface PrefillWorkerBaseConfig {
  /** Jobs this worker runs at once. */
  max_in_flight: number;
  /** A job not acked (nor kept alive) within this is redelivered to another prefill worker, ms. */
  ack_wait_ms: number;
  /** Deliveries after which a job is dead-lettered. */
  max_deliver: number;
}

/** What a prefill engine is given with each job. */
export interface PrefillTask {
  readonly job: PrefillJob;
  /** The decode engine's KV-transfer metadata (where the prefilled KV would go). */
  readonly target: KvTransferMetadata;
  readonly signal: AbortSignal;
  readonly logger: Logger;
}

/** Runs prefills: the engine side of a prefill worker. */
export interface PrefillEngine {
  /**
   * Prefills `task.job.token_ids`; an engine that can hand the KV state to the decode engine
   * returns where it put it (sent in the {@link PrefillDone}).
   */
  prefill(task: PrefillTask): Promise<KvStateRef | void>;
  close?(): Promise<void> | void;
}

/** Options of {@link prefillWorkerService}. */
export interface PrefillWorkerServiceOptions<C> {
  /** Component name. Default `PrefillWorker`. */
  name?: string;
  /** Config properties of the engine, beside {@link PrefillWorkerBaseConfig}'s. */
  configProperties?: Record<string, JsonSchema>;
  /** Prefill workers the embedded graph starts when nothing asks for them. Default 0. */
  embeddedReplicas?: number;
  createEngine(ctx: ServiceContext<C & PrefillWorkerBaseConfig>): PrefillEngine | Promise<PrefillEngine>;
}

const isJob = TypeCompiler.Compile(PrefillJob);
const isMetadata = TypeCompiler.Compile(KvTransferMetadata);

/**
 * A prefill worker: pulls jobs from the shared prefill queue, checks the decode engine is still
 * there (its KV-transfer metadata, followed by a watch rather than read per job), runs the
 * engine's prefill while keeping the job alive, tells the decode worker it is done, and only then
 * acks, so a prefill worker that dies mid-job loses nothing: the job is redelivered. A malformed
 * job is dead-lettered (`term`), never retried.
 */
export function prefillWorkerService<C = Record<string, never>>(
  o: PrefillWorkerServiceOptions<C>,
): ServiceDefinition<C & PrefillWorkerBaseConfig> {
  type Config = C & PrefillWorkerBaseConfig;
  return defineService<Config>({
    name: o.name ?? 'PrefillWorker',
    embeddedReplicas: o.embeddedReplicas ?? 0,
    configSchema: {
      properties: {
        ...o.configProperties,
        max_in_flight: { type: 'integer', minimum: 1, maximum: 1024, default: 1 },
        ack_wait_ms: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 10000 },
        max_deliver: { type: 'integer', minimum: 1, maximum: 1000, default: 5 },
      },
    },
    async create(ctx) {
      const cfg = ctx.config;
      const engine = await o.createEngine(ctx);
      const ns = ctx.settings.namespace;
      const queue = await ctx.runtime.openQueue({
        namespace: ns,
        name: PREFILL_QUEUE,
        ackWaitMs: cfg.ack_wait_ms,
        maxDeliver: cfg.max_deliver,
      });
      const targets = watchTargets(ctx);
      const worker = ctx.workerName;
      const record = queueStatsRecorder(worker, queue.name);
      const sampleStats = (): Promise<void> =>
        queue.stats().then(record, (e: Error) => ctx.logger.debug('could not read queue stats', { error: e.message }));
      const sampler = setInterval(() => void sampleStats(), 1000);
      sampler.unref();
      // `stop` ends the pulling (drain); `abort` also stops the prefills in hand (close).
      const stop = new AbortController();
      const abort = new AbortController();
      const inflight = new Set<Promise<void>>();
      let done = 0;

      async function run(job: Job): Promise<void> {
        const data = job.data;
        if (!isJob.Check(data)) {
          const first = [...isJob.Errors(data)][0];
          ctx.logger.error('malformed prefill job; dropped', {
            job_id: job.id,
            error: first ? `${first.path || '/'} ${first.message}` : 'not a prefill job',
          });
          prefillJobs.inc({ worker, outcome: 'malformed' });
          await job.term();
          return;
        }
        const log = ctx.logger.child({ request_id: data.request_id, job_id: job.id, delivery: job.deliveryCount });
        await targets.ready;
        const target = targets.get(data.engine_id);
        if (target === undefined) {
          // The decode engine is gone: nobody can use this prefill.
          log.warn('decode engine has no KV-transfer metadata (gone); job dropped', { engine_id: data.engine_id });
          prefillJobs.inc({ worker, outcome: 'engine_gone' });
          await job.ack();
          return;
        }
        log.info('prefill started', { engine_id: data.engine_id, tokens: data.token_ids.length });
        const hop = startHopSpan(`${ctx.name}.prefill`, data.trace, {
          kind: 'consumer',
          attributes: { 'dynamo.request_id': data.request_id, 'dynamo.prefill_tokens': data.token_ids.length },
        });
        const keepAlive = setInterval(
          () => void job.inProgress().catch(() => undefined),
          Math.max(50, cfg.ack_wait_ms / 3),
        );
        try {
          const kv = await engine.prefill({ job: data, target, signal: abort.signal, logger: log });
          const msg: PrefillDone = { request_id: data.request_id, engine_id: data.engine_id, prefill_worker: worker };
          if (kv) msg.kv_state = kv;
          await ctx.runtime.eventPlane.publish(data.reply_to, msg);
          await ctx.runtime.eventPlane.flush();
          await job.ack();
          done++;
          prefillJobs.inc({ worker, outcome: 'done' });
          log.info('prefill done', { engine_id: data.engine_id });
          hop?.end();
        } catch (e) {
          hop?.end(e);
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
          abort.abort();
          targets.close();
          await engine.close?.();
          await queue.close();
        },
      };
    },
  });
}

/** The decode engines' KV-transfer metadata, followed by a watch (a bad value counts as absent). */
function watchTargets(ctx: ServiceContext<unknown>): {
  ready: Promise<void>;
  get(engineId: string): KvTransferMetadata | undefined;
  close(): void;
} {
  const prefix = kvTransferKey(ctx.settings.namespace, '');
  const known = new Map<string, KvTransferMetadata>();
  const watch = ctx.runtime.discovery.watchPrefix(prefix);
  let synced!: () => void;
  const ready = new Promise<void>((r) => (synced = r));
  let closed = false;
  void (async () => {
    try {
      for await (const ev of watch) {
        if (ev.type === 'synced') synced();
        else if (ev.type === 'delete') known.delete(ev.key.slice(prefix.length));
        else {
          const id = ev.key.slice(prefix.length);
          let v: unknown;
          try {
            v = JSON.parse(ev.value);
          } catch {
            v = undefined;
          }
          if (isMetadata.Check(v) && v.engine_id === id) known.set(id, v);
          else {
            known.delete(id);
            ctx.logger.warn('malformed KV-transfer metadata ignored', { key: ev.key.slice(0, 200) });
          }
        }
      }
    } catch (e) {
      if (!closed) ctx.logger.warn('KV-transfer metadata watch ended', { error: (e as Error).message });
    } finally {
      synced();
    }
  })();
  return {
    ready,
    get: (id) => known.get(id),
    close() {
      closed = true;
      watch.close();
    },
  };
}
