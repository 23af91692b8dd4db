/**
 * The simulated engine's timing: Dynamo's mocker formulas.
 *
 * Checked against Dynamo's mocker source (`lib/llm/src/mocker/kv_manager.rs` and
 * `lib/llm/src/mocker/scheduler.rs` in ai-dynamo/dynamo):
 * - prefill: `prefill_compute = 1.25e-6 * t^2 + 7.41e-2 * t + 26.2`, in **milliseconds**, where
 *   `t = isl - overlap_blocks * block_size` is the number of new (uncached) prompt tokens;
 * - decode: `-5.47 * p^2 + 43.88 * p + 19.44` ms per step, where `p` is
 *   `KvManager::get_active_perc()` = active blocks / capacity: a **fraction in [0, 1]**, despite the
 *   name (so a step takes 19.44 ms on an empty cache and 57.85 ms on a full one, not a negative time
 *   as a percentage in [0, 100] would give);
 * - one simulation step takes the decode time plus the prefill time of every prefill it runs,
 *   divided by `speedup_ratio`.
 * @packageDocumentation
 */

/** Prefill time in ms (before speedup) for `t` uncached prompt tokens; 0 for `t <= 0`. */
export function prefillTimeMs(t: number): number {
  if (!(t > 0)) return 0;
  return 1.25e-6 * t * t + 0.0741 * t + 26.2;
}

/**
 * Prefill time in ms of tokens `done..done+chunk` of a prompt whose first `done` uncached tokens are
 * already computed: the increment of {@link prefillTimeMs}, so chunking does not change a prompt's
 * total prefill time (the fixed 26.2 ms is charged with the first chunk).
 */
export function prefillChunkTimeMs(done: number, chunk: number): number {
  if (!(chunk > 0)) return 0;
  return prefillTimeMs(done + chunk) - prefillTimeMs(done);
}

/**
 * Decode step time in ms (before speedup) with `p` the active fraction of the KV cache in [0, 1]
 * (clamped).
 */
export function decodeStepTimeMs(p: number): number {
  const x = p < 0 ? 0 : p > 1 ? 1 : p;
  return -5.47 * x * x + 43.88 * x + 19.44;
}
