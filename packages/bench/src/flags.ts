import { InvalidArgumentError } from '@dynamo-ts/runtime';

/** What the user gave, for a message: yargs turns a non-numeric value of a number flag into NaN. */
function given(v: unknown): string {
  return typeof v === 'number' && Number.isNaN(v) ? 'a value that is not a number' : JSON.stringify(v);
}

/** `v` as a positive integer, or INVALID_ARGUMENT naming the flag `--name` (exit code 2 in the CLI). */
export function positiveIntFlag(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new InvalidArgumentError(`--${name} must be a positive integer, got ${given(v)}`);
  }
  return v;
}

/** `v` as a positive finite number (`unit` named in the message), or INVALID_ARGUMENT naming `--name`. */
export function positiveNumberFlag(name: string, v: unknown, unit = ''): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new InvalidArgumentError(`--${name} must be a positive number${unit ? ` of ${unit}` : ''}, got ${given(v)}`);
  }
  return v;
}

/**
 * A comma-separated list of positive integers (`64,1024`; a number alone is a list of one), or
 * INVALID_ARGUMENT naming the flag `--name` and the bad item.
 */
export function positiveIntListFlag(name: string, v: unknown): number[] {
  const items = typeof v === 'number' ? [v] : typeof v === 'string' ? v.split(',').map((x) => x.trim()) : [];
  if (items.length === 0 || items.some((x) => x === '')) {
    throw new InvalidArgumentError(`--${name} must be a comma-separated list of positive integers, got ${given(v)}`);
  }
  return items.map((x) => {
    const n = typeof x === 'number' ? x : /^\d+$/.test(x) ? Number(x) : NaN;
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new InvalidArgumentError(`--${name}: ${given(x)} is not a positive integer`);
    }
    return n;
  });
}
