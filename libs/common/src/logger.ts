/**
 * Structured JSON logs through pino, one object per line on stderr: level (as a word), time (ISO),
 * pid, hostname, logger name, the fields, msg. Every log line about a failure names the thing that
 * went wrong and, where known, what to do.
 *
 * Secrets are never logged: fields named like credentials (see REDACT_PATHS) are replaced by
 * "[redacted]" wherever they appear at the top level or one level down, and values that look like
 * Switchboard or Tailscale secrets (`privkey:`, `sbkey-`, `sbapi-`, `tskey-`) are masked in messages
 * and string fields. Code should still never pass a secret to a logger; this is the safety net.
 */
import { pino, type Logger as Pino } from 'pino';

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

/** Changes the level and sink of every logger (used by the CLI, `serve`/`service` and tests). */
export function configureLogging(opts: { level?: LogLevel; sink?: LogSink }): void {
  if (opts.level) defaultLevel = opts.level;
  if (opts.sink) defaultSink = opts.sink;
}

/** Field names whose values are credentials, wherever they appear (top level or one down). */
export const REDACT_PATHS: readonly string[] = [
  'authKey',
  'authkey',
  'apiKey',
  'password',
  'secret',
  'token',
  'privateKey',
  'authorization',
  'NOISE_PRIVATE_KEY',
  'KEY_PEPPER',
  'pepper',
].flatMap((k) => [k, `*.${k}`]);

/** Secret-shaped substrings: a Noise private key, a pre-auth key, an admin API key, a Tailscale key. */
// Keys are `<kind>-<public prefix>-<secret>`: the public prefix (how admins name a key) is kept.
const SECRET_PATTERN =
  /\b(privkey:[0-9a-f]{8})[0-9a-f]{56}\b|\b((?:sbkey|sbapi)-[0-9a-f]+-|tskey-[a-z]+-)[A-Za-z0-9_-]+/g;

/** Masks secret-shaped substrings, keeping a short prefix so a line still says what it was about. */
export function maskSecrets(s: string): string {
  if (!s.includes('privkey:') && !s.includes('key-') && !s.includes('sbapi-')) return s;
  return s.replace(SECRET_PATTERN, (_m, noise?: string, prefix?: string) =>
    noise ? `${noise}…[redacted]` : `${prefix ?? ''}[redacted]`,
  );
}

function serialize(v: unknown, depth = 0): unknown {
  if (v instanceof Error) {
    const o: Record<string, unknown> = { message: maskSecrets(v.message), name: v.name };
    const code = (v as { code?: unknown }).code;
    if (code !== undefined) o.code = code;
    const hint = (v as { hint?: unknown }).hint;
    if (hint !== undefined) o.hint = typeof hint === 'string' ? maskSecrets(hint) : hint;
    return o;
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return maskSecrets(v);
  if (depth < 3 && v !== null && typeof v === 'object' && !ArrayBuffer.isView(v)) {
    if (Array.isArray(v)) return v.map((x) => serialize(x, depth + 1));
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) o[k] = serialize(x, depth + 1);
    return o;
  }
  return v;
}

let root: Pino | undefined;

function rootLogger(): Pino {
  root ??= pino(
    {
      level: 'debug', // filtering by the configured level happens in PinoLogger (it may change at run time)
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      serializers: { err: (v: unknown) => v }, // errors are already shaped by serialize()
    },
    { write: (line: string) => defaultSink(line.endsWith('\n') ? line.slice(0, -1) : line) },
  );
  return root;
}

class PinoLogger implements Logger {
  private readonly pino: Pino;

  constructor(
    private readonly name: string,
    private readonly fields: LogFields,
  ) {
    this.pino = rootLogger().child(serialize({ logger: name, ...fields }) as LogFields);
  }

  isLevelEnabled(level: LogLevel): boolean {
    return order[level] >= order[defaultLevel];
  }

  private write(level: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields): void {
    if (!this.isLevelEnabled(level)) return;
    const text = maskSecrets(msg);
    if (!fields) return this.pino[level](text);
    let obj: unknown;
    try {
      obj = serialize(fields);
      JSON.stringify(obj);
    } catch {
      obj = { note: 'fields not serialisable' };
    }
    this.pino[level](obj as object, text);
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
    return new PinoLogger(`${this.name}.${name}`, { ...this.fields, ...fields });
  }
}

export function createLogger(name: string, fields: LogFields = {}): Logger {
  return new PinoLogger(name, fields);
}
