import winston from 'winston';
import { InvalidArgumentError } from './errors';

/** Structured fields attached to a log line (e.g. `request_id`, `component`). */
export type LogFields = Record<string, unknown>;

/**
 * The logger every dynamo-ts component takes by injection: one line per event,
 * structured fields, scoped with {@link Logger.child}.
 */
export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
  /** True when lines at `level` are written (lets hot paths skip building fields). */
  isLevelEnabled(level: LogLevel): boolean;
}

/** Log levels, most severe first. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. Default `info`. */
  level?: LogLevel;
  /** `json` (one JSON object a line) or `pretty` (human, coloured when a TTY). Default `json`. */
  format?: 'json' | 'pretty';
  /** Where lines go. Default: standard error, so standard output stays free for results. */
  stream?: NodeJS.WritableStream;
  /** Write nothing (tests). */
  silent?: boolean;
  /** Fields on every line. */
  defaultFields?: LogFields;
}

/** Severity rank of each level: a line is written when its rank is at most the logger's. */
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/**
 * Checks the level before handing a line to winston (which would run its whole format
 * pipeline, timestamp and JSON included, and only then drop a disabled line at the
 * transport), and creates the winston child of {@link Logger.child} only when the child first
 * writes a line: per-request children that log nothing at the configured level cost one object.
 */
class WinstonLogger implements Logger {
  private w: winston.Logger | undefined;
  constructor(
    private readonly make: () => winston.Logger,
    /** Rank of the configured level; lines above it are dropped here. */
    private readonly max: number,
  ) {}
  private get out(): winston.Logger {
    return (this.w ??= this.make());
  }
  error(message: string, fields?: LogFields): void {
    if (this.max >= 0) this.out.error(message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    if (this.max >= 1) this.out.warn(message, fields);
  }
  info(message: string, fields?: LogFields): void {
    if (this.max >= 2) this.out.info(message, fields);
  }
  debug(message: string, fields?: LogFields): void {
    if (this.max >= 3) this.out.debug(message, fields);
  }
  child(fields: LogFields): Logger {
    return new WinstonLogger(() => this.out.child(fields), this.max);
  }
  isLevelEnabled(level: LogLevel): boolean {
    return RANK[level] <= this.max;
  }
}

/** Creates a winston-backed {@link Logger}. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const pretty = options.format === 'pretty';
  const format = pretty
    ? winston.format.combine(
        winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
        winston.format.printf((info) => {
          const { level, message, timestamp, component, ...rest } = info as Record<string, unknown>;
          const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
          const comp = component ? ` [${String(component)}]` : '';
          return `${String(timestamp)} ${String(level).toUpperCase().padEnd(5)}${comp} ${String(message)}${extra}`;
        }),
      )
    : winston.format.combine(winston.format.timestamp(), winston.format.json());
  const level = options.level ?? 'info';
  if (!(level in RANK))
    throw new InvalidArgumentError(`log level must be one of error, warn, info, debug; got ${String(level)}`);
  const w = winston.createLogger({
    level,
    silent: options.silent ?? false,
    defaultMeta: options.defaultFields,
    format,
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stderr })],
  });
  // A silent logger drops everything before winston sees it.
  return new WinstonLogger(() => w, options.silent ? -1 : RANK[level]);
}

class NoopLogger implements Logger {
  error(): void {}
  warn(): void {}
  info(): void {}
  debug(): void {}
  child(): Logger {
    return this;
  }
  isLevelEnabled(): boolean {
    return false;
  }
}

/** A logger that writes nothing: the default where none is injected. */
export const noopLogger: Logger = new NoopLogger();
