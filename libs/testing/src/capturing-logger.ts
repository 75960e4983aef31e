import type { LogFields, Logger, LogLevel } from '@switchboard/common';

/** One line a capturing logger recorded: its level, message and fields (the child's merged in). */
export interface LogLine {
  level: LogLevel;
  msg: string;
  fields: LogFields;
}

export interface CapturingLoggerOptions {
  /** Lowest level recorded (and reported by `isLevelEnabled`); default 'debug', i.e. everything. */
  minLevel?: Exclude<LogLevel, 'silent'>;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/**
 * A logger that appends every line to `lines`, so a test can count or inspect what was logged.
 * `base` fields are merged into each line (a line's own fields win); `child()` adds its fields to
 * the base and records into the same array.
 */
export function capturingLogger(
  lines: LogLine[],
  base: LogFields = {},
  opts: CapturingLoggerOptions = {},
): Logger {
  const min = RANK[opts.minLevel ?? 'debug'];
  const enabled = (level: LogLevel): boolean => RANK[level] >= min && level !== 'silent';
  const log =
    (level: LogLevel) =>
    (msg: string, fields: LogFields = {}): void => {
      if (enabled(level)) lines.push({ level, msg, fields: { ...base, ...fields } });
    };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (_name: string, fields?: LogFields) => capturingLogger(lines, { ...base, ...fields }, opts),
    isLevelEnabled: enabled,
  };
}
