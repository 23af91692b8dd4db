/**
 * A shared budget for work that runs without giving the event loop a turn. In-process hops
 * (memory planes, in-process pipelines, tokenizers) answer with promise jobs only, so one long
 * request could run start to end in one turn while every other request of the process waits.
 * Code in such a loop asks {@link turnIsLong} between steps (every {@link TURN_CHECK_ITEMS}
 * items when steps are single small items) and, when it says so, awaits {@link nextTurn}. The slice is per turn and process-wide: every participant's work in one turn
 * counts against the same {@link TURN_SLICE_MS}, and a turn that does little costs one
 * `performance.now()` per check and one `setImmediate` per turn.
 */

/** The longest stretch of work a participant lets one turn of the event loop run, ms. */
export const TURN_SLICE_MS = 4;

/** When the first check of this turn ran (-1: no check yet this turn). */
let sliceStart = -1;

function endSlice(): void {
  sliceStart = -1;
}

/**
 * True when this turn of the event loop has run for {@link TURN_SLICE_MS} or more since its
 * first check: the caller should `await nextTurn()` before its next item.
 */
export function turnIsLong(): boolean {
  const now = performance.now();
  if (sliceStart < 0) {
    sliceStart = now;
    setImmediate(endSlice);
    return false;
  }
  return now - sliceStart >= TURN_SLICE_MS;
}

/** The next turn's promise, shared by every caller of this turn (one `setImmediate` for all). */
let next: Promise<void> | undefined;

/** Resolves in the next turn of the event loop (after pending I/O callbacks and timers). */
export function nextTurn(): Promise<void> {
  return (next ??= new Promise((resolve) =>
    setImmediate(() => {
      next = undefined;
      resolve();
    }),
  ));
}

/**
 * How many items a per-item loop handles between checks of {@link turnIsLong} (a power of two):
 * a short request never pays a check or a yield, and under many concurrent short requests (a
 * long turn of useful work) they do not all yield every item; a long stream still yields within
 * this many items of the slice's end.
 */
export const TURN_CHECK_ITEMS = 16;
