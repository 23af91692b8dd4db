import winston from 'winston';
import { InvalidArgumentError } from './errors';

/** Structured fields attached to a log line (e.g. `request_id`, `component`). */
export type LogFields = Record<string, unknown>;

/**
 * The logger every dynamo-ts component takes by injection: one line per event,
 * structured fields, scoped with {@link Logger.child}. Lines may be written at the end of the
 * event-loop turn (the JSON logger batches them), with the fields as they are then: pass each
 * line a fresh fields object.
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

/**
 * Collects the lines logged during one event-loop turn and hands them to the stream as one
 * write at the end of the turn (`setImmediate`), and synchronously when the process exits. On
 * Linux a write to standard error (a file, a pipe, a terminal) is a synchronous system call:
 * one per line was a measurable part of a request's cost (issue #9). The lines are also
 * formatted then, all together, rather than one in each request: a request only records what it
 * logs, and the JSON is built in one loop over the turn's lines, whose code then stays in the
 * CPU's caches (with two smaller changes of the same session: x0.92 and x0.98 of the embedded
 * graph's CPU a request, `packages/bench/scripts/http/ab-servers.ts`, docs/benchmarks.md). One sink
 * per stream, shared by every logger writing to it, so lines keep their order.
 */
class LineSink {
  /**
   * The turn's lines, five slots each (no object per line): the logger, level, message, fields,
   * and the time (epoch ms) the line was logged.
   */
  private pending: unknown[] = [];
  private scheduled = false;
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly stream: NodeJS.WritableStream) {}

  add(logger: JsonLogger, level: LogLevel, message: string, fields: LogFields | undefined, time: number): void {
    this.pending.push(logger, level, message, fields, time);
    if (this.scheduled) return;
    this.scheduled = true;
    waiting.add(this);
    setImmediate(this.flushNow);
  }

  /** Formats and writes the collected lines now. */
  flush(): void {
    this.scheduled = false;
    waiting.delete(this);
    const p = this.pending;
    if (p.length === 0) return;
    this.pending = [];
    const lines: string[] = [];
    for (let i = 0; i < p.length; i += 5) {
      lines.push(
        (p[i] as JsonLogger).format(
          p[i + 1] as LogLevel,
          p[i + 2] as string,
          p[i + 3] as LogFields | undefined,
          p[i + 4] as number,
        ),
      );
    }
    this.stream.write(lines.join('\n') + '\n');
  }
}

/** The sink of each stream (a stream nobody logs to any more is not kept alive by it). */
const sinks = new WeakMap<NodeJS.WritableStream, LineSink>();
/** Sinks holding lines until the end of the turn. */
const waiting = new Set<LineSink>();
let exitHook = false;

function sinkFor(stream: NodeJS.WritableStream): LineSink {
  let sink = sinks.get(stream);
  if (sink === undefined) {
    sink = new LineSink(stream);
    sinks.set(stream, sink);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', flushLogs);
    }
  }
  return sink;
}

/**
 * Writes the log lines still waiting for the end of the event-loop turn (JSON loggers batch
 * their writes per turn). Runs by itself when the process exits; call it before a
 * `process.abort()` or anything else that skips the `exit` event.
 */
export function flushLogs(): void {
  for (const sink of [...waiting]) sink.flush();
}

/** JSON.stringify's replacer for what it cannot write: bigints as strings, errors, cycles. */
function safeReplacer(): (key: string, value: unknown) => unknown {
  const seen = new WeakSet<object>();
  return (_key, value) => {
    if (typeof value === 'bigint') return value.toString();
    if (value instanceof Error) return { name: value.name, message: value.message };
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) return '[Circular]';
      seen.add(value);
    }
    return value;
  };
}

const RESERVED = new Set(['level', 'message', 'timestamp']);

/**
 * `fields` as the members of a JSON object (no braces; '' for none), or undefined when the
 * general path must write them: a reserved key, or a value JSON.stringify cannot write.
 */
function membersJson(fields: LogFields | undefined): string | undefined {
  if (fields === undefined) return '';
  for (const k in fields) if (RESERVED.has(k)) return undefined;
  let json: string | undefined;
  try {
    json = JSON.stringify(fields);
  } catch {
    return undefined;
  }
  if (json === undefined || json[0] !== '{') return undefined;
  return json.length <= 2 ? '' : json.slice(1, -1);
}

/** True when no key of `fields` is one of `own`'s (a line's fields replace the logger's). */
function disjoint(fields: LogFields, own: LogFields | undefined): boolean {
  if (own === undefined) return true;
  for (const k in fields) if (k in own) return false;
  return true;
}

function jsonLine(record: Record<string, unknown>): string {
  try {
    return JSON.stringify(record);
  } catch {
    return JSON.stringify(record, safeReplacer());
  }
}

/** The last time {@link isoTime} wrote (the lines of one turn mostly share their millisecond). */
let isoMs = Number.NaN;
let isoText = '';

/** `time` (epoch ms) as an ISO 8601 UTC timestamp. */
function isoTime(time: number): string {
  if (time !== isoMs) {
    isoText = new Date(time).toISOString();
    isoMs = time;
  }
  return isoText;
}

/**
 * The `json` format's logger: `{"level","message",...fields,"timestamp"}`, one object a line,
 * built with `JSON.stringify` and written through a {@link LineSink}. It does what winston's
 * `timestamp()` + `json()` formats and stream transport did, at about a fifth of the cost
 * (17-28 us -> 5 us an info line, `packages/bench/scripts/http/logger-cost.ts`): winston's
 * object-mode stream pipeline alone costs ~9 us a line, and the frontend writes an access-log
 * line per request. winston stays behind the `pretty` format. A line's time is taken when it is
 * logged; its fields are read when it is written, at the end of the event-loop turn (pass a
 * fresh object, as every caller does, not one that changes before then).
 */
class JsonLogger implements Logger {
  constructor(
    private readonly sink: LineSink,
    private readonly max: number,
    /** Fields of every line (default fields, then each child's), without `added`. */
    private base: LogFields | undefined,
    /** A child's own fields, merged into `base` when first needed (most children never log). */
    private added?: LogFields,
  ) {}
  /**
   * The logger's own fields as JSON members (`"a":1,"b":2`, '' for none), written once and
   * spliced into every line; undefined when they cannot be (a reserved key, an odd value).
   */
  private fieldsJson: string | undefined | null = null;

  private get fields(): LogFields | undefined {
    if (this.added !== undefined) {
      this.base = { ...this.base, ...this.added };
      this.added = undefined;
    }
    return this.base;
  }

  private line(level: LogLevel, message: string, fields: LogFields | undefined): void {
    this.sink.add(this, level, message, fields, Date.now());
  }

  /**
   * One line as JSON, built when its turn's lines are written ({@link LineSink}); a line whose
   * fields cannot be read (a getter that throws) is written without them, saying why.
   */
  format(level: LogLevel, message: string, fields: LogFields | undefined, time: number): string {
    try {
      const own = this.fields;
      if (this.fieldsJson === null) this.fieldsJson = membersJson(own);
      const ownJson = this.fieldsJson;
      if (ownJson !== undefined && (fields === undefined || disjoint(fields, own))) {
        const extra = fields === undefined ? '' : membersJson(fields);
        if (extra !== undefined) {
          let text = `{"level":"${level}","message":${JSON.stringify(message)}`;
          if (ownJson) text += `,${ownJson}`;
          if (extra) text += `,${extra}`;
          return `${text},"timestamp":"${isoTime(time)}"}`;
        }
      }
      const record: Record<string, unknown> = { level, message, ...own, ...fields };
      // Fields cannot replace the line's own level and message (their keys stay first).
      record.level = level;
      record.message = message;
      record.timestamp = isoTime(time);
      return jsonLine(record);
    } catch (e) {
      return JSON.stringify({
        level,
        message,
        log_error: `fields could not be written: ${e instanceof Error ? e.message : String(e)}`,
        timestamp: isoTime(time),
      });
    }
  }
  error(message: string, fields?: LogFields): void {
    if (this.max >= 0) this.line('error', message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    if (this.max >= 1) this.line('warn', message, fields);
  }
  info(message: string, fields?: LogFields): void {
    if (this.max >= 2) this.line('info', message, fields);
  }
  debug(message: string, fields?: LogFields): void {
    if (this.max >= 3) this.line('debug', message, fields);
  }
  child(fields: LogFields): Logger {
    return new JsonLogger(this.sink, this.max, this.fields, fields);
  }
  isLevelEnabled(level: LogLevel): boolean {
    return RANK[level] <= this.max;
  }
}

/** Creates a {@link Logger}: JSON lines (the default) or winston's human format (`pretty`). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const pretty = options.format === 'pretty';
  const level = options.level ?? 'info';
  if (!(level in RANK))
    throw new InvalidArgumentError(`log level must be one of error, warn, info, debug; got ${String(level)}`);
  // A silent logger drops everything before any formatting.
  const max = options.silent ? -1 : RANK[level];
  const stream = options.stream ?? process.stderr;
  if (!pretty) return new JsonLogger(sinkFor(stream), max, options.defaultFields);
  const format = winston.format.combine(
    winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
    winston.format.printf((info) => {
      const { level, message, timestamp, component, ...rest } = info as Record<string, unknown>;
      const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
      const comp = component ? ` [${String(component)}]` : '';
      return `${String(timestamp)} ${String(level).toUpperCase().padEnd(5)}${comp} ${String(message)}${extra}`;
    }),
  );
  const w = winston.createLogger({
    level,
    silent: options.silent ?? false,
    defaultMeta: options.defaultFields,
    format,
    transports: [new winston.transports.Stream({ stream })],
  });
  return new WinstonLogger(() => w, max);
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
