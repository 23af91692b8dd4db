/**
 * How the `dynamo-ts` command ends: one table of exit codes for every command, and the error
 * written last, to standard error, after the log lines still waiting to be written.
 */
import { flushLogs, isDynamoError } from '@dynamo-ts/runtime';

/** The CLI's exit codes (docs/cli.md). */
export const EXIT = {
  /** Served and drained after SIGINT/SIGTERM, or the command finished. */
  OK: 0,
  /** Runtime failure: a service could not start, NATS/etcd unreachable, a drain that failed. */
  FAILURE: 1,
  /** Usage: a bad flag, variable, config file or target. */
  USAGE: 2,
  /** A second SIGINT/SIGTERM while draining: left at once. */
  INTERRUPTED: 130,
} as const;

/** Error codes that mean the command line, the environment or a config file is wrong. */
const USAGE_CODES = new Set(['INVALID_ARGUMENT', 'NOT_FOUND']);

/** {@link EXIT.USAGE} for a usage error, {@link EXIT.FAILURE} for anything else. */
export function exitCodeFor(e: unknown): number {
  return isDynamoError(e) && USAGE_CODES.has(e.code) ? EXIT.USAGE : EXIT.FAILURE;
}

/** Writes the pending log lines, then `dynamo-ts: error: ...` on standard error, and exits. */
export function fail(e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  flushLogs();
  process.stderr.write(`dynamo-ts: error: ${msg}\n`);
  process.exit(exitCodeFor(e));
}

/**
 * A reader of our output that went away (`| tee` killed by the same Ctrl-C, `| head`) must not
 * turn a clean drain into a crash: writes to a closed pipe are dropped instead of throwing.
 */
export function ignoreBrokenPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
}
