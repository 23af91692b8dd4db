import { InvalidArgumentError } from '@dynamo-ts/runtime';

/** `v` as a positive integer, or INVALID_ARGUMENT naming the flag `--name` (exit code 2 in the CLI). */
export function positiveIntFlag(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new InvalidArgumentError(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** `v` as a positive finite number (`unit` named in the message), or INVALID_ARGUMENT naming `--name`. */
export function positiveNumberFlag(name: string, v: unknown, unit = ''): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new InvalidArgumentError(
      `--${name} must be a positive number${unit ? ` of ${unit}` : ''}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}
