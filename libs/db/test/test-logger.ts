/** Test logger: silent unless TEST_LOG_LEVEL is set (e.g. TEST_LOG_LEVEL=debug). */
import { configureLogging, createLogger, parseLevel, type Logger } from '@switchboard/common';

configureLogging({ level: parseLevel(process.env.TEST_LOG_LEVEL) ?? 'silent' });

export function testLogger(name: string): Logger {
  return createLogger(name);
}
