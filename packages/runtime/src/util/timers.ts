import { InvalidArgumentError } from '../errors';

/**
 * The longest delay Node's timers honour: a longer one (or a non-finite one) fires after 1 ms
 * with a TimeoutOverflowWarning, so a large configured timeout would expire at once.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Returns `ms` when it is a finite number in `[min, MAX_TIMER_MS]` (`min` default 0); throws
 * INVALID_ARGUMENT naming `what` otherwise, so a bad timeout fails where it is configured.
 */
export function checkTimerMs(what: string, ms: number, min = 0): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < min || ms > MAX_TIMER_MS) {
    throw new InvalidArgumentError(`${what} must be a number of ms in [${min}, ${MAX_TIMER_MS}], got ${String(ms)}`);
  }
  return ms;
}
