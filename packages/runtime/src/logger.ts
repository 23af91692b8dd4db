import winston from 'winston';

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

class WinstonLogger implements Logger {
  constructor(private readonly w: winston.Logger) {}
  error(message: string, fields?: LogFields): void {
    this.w.error(message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.w.warn(message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.w.info(message, fields);
  }
  debug(message: string, fields?: LogFields): void {
    this.w.debug(message, fields);
  }
  child(fields: LogFields): Logger {
    return new WinstonLogger(this.w.child(fields));
  }
  isLevelEnabled(level: LogLevel): boolean {
    return this.w.isLevelEnabled(level);
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
  const w = winston.createLogger({
    level: options.level ?? 'info',
    silent: options.silent ?? false,
    defaultMeta: options.defaultFields,
    format,
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stderr })],
  });
  return new WinstonLogger(w);
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
