/**
 * The disaggregation decision: prefill a request on the remote prefill workers, or locally on the
 * decode worker. Remote when the uncached part of the prompt is long enough to be worth moving
 * (`uncachedPrefillTokens > maxLocalPrefillLength`) and the prefill queue is not backed up
 * (`queueDepth < maxPrefillQueueSize`), as in Dynamo.
 * @packageDocumentation
 */
import { RouterInvalidArgumentError } from './errors';

/** Default {@link DisaggregationOptions.maxLocalPrefillLength}. */
export const DEFAULT_MAX_LOCAL_PREFILL_LENGTH = 1000;
/** Default {@link DisaggregationOptions.maxPrefillQueueSize}. */
export const DEFAULT_MAX_PREFILL_QUEUE_SIZE = 2;

/** Thresholds of the decision (live-configurable in dynamo-ts). */
export interface DisaggregationOptions {
  /** Prefills of at most this many uncached tokens stay local; default 1000. */
  maxLocalPrefillLength?: number;
  /** No remote prefill while the queue holds this many jobs or more; default 2. */
  maxPrefillQueueSize?: number;
}

/** The request's side of the decision. */
export interface PrefillSituation {
  /** Prompt tokens not in the decode worker's cache (e.g. `RouteDecision.uncached_tokens`). */
  uncachedPrefillTokens: number;
  /** Jobs currently in the prefill queue. */
  queueDepth: number;
}

/** Why the decision went the way it did. */
export type DisaggregationReason = 'short_prefill' | 'prefill_queue_full' | 'long_prefill';

/** Outcome of {@link shouldPrefillRemotely}, with the figures it was based on. */
export interface DisaggregationDecision {
  /** True: push the prefill onto the prefill queue. */
  remote: boolean;
  /** `short_prefill` (local), `prefill_queue_full` (local), `long_prefill` (remote). */
  reason: DisaggregationReason;
  /** The request's uncached prompt tokens, as given. */
  uncachedPrefillTokens: number;
  /** The prefill queue depth, as given. */
  queueDepth: number;
  /** The threshold applied. */
  maxLocalPrefillLength: number;
  /** The threshold applied. */
  maxPrefillQueueSize: number;
}

/** JSON schema (draft-07 / 2019-09) of {@link DisaggregationOptions}, e.g. for a live config key. */
export const disaggregationOptionsSchema = {
  $id: 'https://dynamo-ts.dev/schemas/disaggregation-options.json',
  title: 'DisaggregationOptions',
  type: 'object',
  properties: {
    maxLocalPrefillLength: { type: 'number' },
    maxPrefillQueueSize: { type: 'number' },
  },
  additionalProperties: false,
} as const;

/**
 * Decides whether to prefill remotely (see the module comment).
 * @throws RouterInvalidArgumentError when a figure is not a number
 */
export function shouldPrefillRemotely(
  situation: PrefillSituation,
  options: DisaggregationOptions = {},
): DisaggregationDecision {
  const maxLocalPrefillLength = options.maxLocalPrefillLength ?? DEFAULT_MAX_LOCAL_PREFILL_LENGTH;
  const maxPrefillQueueSize = options.maxPrefillQueueSize ?? DEFAULT_MAX_PREFILL_QUEUE_SIZE;
  const { uncachedPrefillTokens, queueDepth } = situation;
  for (const [k, v] of Object.entries({
    uncachedPrefillTokens,
    queueDepth,
    maxLocalPrefillLength,
    maxPrefillQueueSize,
  })) {
    if (typeof v !== 'number' || Number.isNaN(v))
      throw new RouterInvalidArgumentError(`${k} must be a number, got ${String(v)}`);
  }
  const base = { uncachedPrefillTokens, queueDepth, maxLocalPrefillLength, maxPrefillQueueSize };
  if (uncachedPrefillTokens <= maxLocalPrefillLength) return { remote: false, reason: 'short_prefill', ...base };
  if (queueDepth >= maxPrefillQueueSize) return { remote: false, reason: 'prefill_queue_full', ...base };
  return { remote: true, reason: 'long_prefill', ...base };
}
