import { metrics, type WorkQueueStats } from '@dynamo-ts/runtime';

/**
 * Prometheus metrics of the serving layer (router, disaggregation), in the process's default registry: the
 * frontend's `/metrics` serves them in embedded mode, `DYNAMO_METRICS_PORT` in other processes.
 */

/** Decode side: each request's prefill decision (`remote` or `local`, and the rule's reason). */
export const prefillDecisions = metrics.counter({
  name: 'dynamo_prefill_decisions_total',
  help: 'Prefill decisions of decode workers: remote (pushed to the prefill queue) or local, with the reason',
  labelNames: ['worker', 'decision', 'reason'] as const,
});

/** Decode side: remote prefills done locally after all (timeout or push failure). */
export const prefillFallbacks = metrics.counter({
  name: 'dynamo_prefill_fallbacks_total',
  help: 'Remote prefills that fell back to a local prefill',
  labelNames: ['worker', 'cause'] as const,
});

/** Jobs waiting on the prefill queue, as last read by a decode or prefill worker. */
export const prefillQueueDepth = metrics.gauge({
  name: 'dynamo_prefill_queue_depth',
  help: 'Jobs waiting on the prefill queue (last read)',
  labelNames: ['queue'] as const,
});

/** Prefill side: jobs settled, by outcome. */
export const prefillJobs = metrics.counter({
  name: 'dynamo_prefill_jobs_total',
  help: 'Prefill jobs settled by prefill workers, by outcome (done, failed, engine_gone, malformed)',
  labelNames: ['worker', 'outcome'] as const,
});

const queueCounters = {
  redelivered: metrics.counter({
    name: 'dynamo_prefill_queue_redeliveries_total',
    help: 'Prefill jobs delivered again to a prefill worker (a previous holder died or gave it back)',
    labelNames: ['worker'] as const,
  }),
  deadLettered: metrics.counter({
    name: 'dynamo_prefill_queue_dead_letters_total',
    help: 'Prefill jobs moved to the dead-letter subject after max_deliver deliveries',
    labelNames: ['worker'] as const,
  }),
  expired: metrics.counter({
    name: 'dynamo_prefill_queue_expired_total',
    help: 'Prefill jobs dropped because their deadline had passed when pulled',
    labelNames: ['worker'] as const,
  }),
};

/** Feeds a queue client's cumulative stats into the counters (adds what changed since the last call). */
export function queueStatsRecorder(worker: string, queue: string): (s: WorkQueueStats) => void {
  const last = { redelivered: 0, deadLettered: 0, expired: 0 };
  return (s) => {
    prefillQueueDepth.set({ queue }, s.depth);
    for (const k of ['redelivered', 'deadLettered', 'expired'] as const) {
      if (s[k] > last[k]) queueCounters[k].inc({ worker }, s[k] - last[k]);
      last[k] = s[k];
    }
  };
}

/** Router: decisions by strategy and chosen worker. */
export const routerDecisions = metrics.counter({
  name: 'dynamo_router_decisions_total',
  help: 'Routing decisions, by strategy and chosen worker',
  labelNames: ['strategy', 'worker'] as const,
});

/** Router: prompt blocks already cached on the chosen worker. */
export const routerOverlapBlocks = metrics.histogram({
  name: 'dynamo_router_overlap_blocks',
  help: 'Leading prompt blocks cached on the chosen worker, per decision',
  labelNames: ['strategy'] as const,
  buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
});
