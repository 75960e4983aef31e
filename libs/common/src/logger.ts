/**
 * Structured JSON logs, one object per line on stderr: time, level, logger name, message and fields.
 * Every log line about a failure names the thing that went wrong and, where known, what to do.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(name: string, fields?: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

export type LogSink = (line: string) => void;

let defaultLevel: LogLevel = parseLevel(process.env.LOG_LEVEL) ?? 'info';
let defaultSink: LogSink = (line) => process.stderr.write(line + '\n');

export function parseLevel(v: string | undefined): LogLevel | undefined {
  if (v === undefined) return undefined;
  return v in order ? (v as LogLevel) : undefined;
}

/** Changes the level and sink of loggers created afterwards (used by the CLI and tests). */
export function configureLogging(opts: { level?: LogLevel; sink?: LogSink }): void {
  if (opts.level) defaultLevel = opts.level;
  if (opts.sink) defaultSink = opts.sink;
}

function serialize(v: unknown): unknown {
  if (v instanceof Error) {
    const o: Record<string, unknown> = { message: v.message, name: v.name };
    const code = (v as { code?: unknown }).code;
    if (code !== undefined) o.code = code;
    const hint = (v as { hint?: unknown }).hint;
    if (hint !== undefined) o.hint = hint;
    return o;
  }
  if (typeof v === 'bigint') return v.toString();
  return v;
}

class JsonLogger implements Logger {
  constructor(
    private readonly name: string,
    private readonly fields: LogFields,
    private readonly level: () => LogLevel,
    private readonly sink: () => LogSink,
  ) {}

  isLevelEnabled(level: LogLevel): boolean {
    return order[level] >= order[this.level()];
  }

  private write(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.isLevelEnabled(level)) return;
    const rec: LogFields = { time: new Date().toISOString(), level, logger: this.name, msg, ...this.fields };
    if (fields) for (const [k, v] of Object.entries(fields)) rec[k] = serialize(v);
    let line: string;
    try {
      line = JSON.stringify(rec);
    } catch {
      line = JSON.stringify({
        time: rec.time,
        level,
        logger: this.name,
        msg,
        note: 'fields not serialisable',
      });
    }
    this.sink()(line);
  }

  debug(msg: string, fields?: LogFields): void {
    this.write('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.write('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.write('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.write('error', msg, fields);
  }
  child(name: string, fields?: LogFields): Logger {
    return new JsonLogger(`${this.name}.${name}`, { ...this.fields, ...fields }, this.level, this.sink);
  }
}

export function createLogger(name: string, fields: LogFields = {}): Logger {
  return new JsonLogger(
    name,
    fields,
    () => defaultLevel,
    () => defaultSink,
  );
}
