/**
 * Bus series in the process's metric set: request (RPC) latency and errors by subject as the caller
 * saw them, and whether the NATS connection is up. Subjects are the fixed contract subjects, so the
 * label set stays small.
 */
import { processMetrics } from '@switchboard/metrics';

const metrics = processMetrics();
const requestSeconds = metrics.histogram(
  'switchboard_bus_request_duration_seconds',
  'Bus requests (RPC) by subject and outcome ("ok" or the error code), as the caller saw them.',
  ['subject', 'outcome'],
);
const requestErrors = metrics.counter(
  'switchboard_bus_request_errors_total',
  'Bus requests that failed, by subject and error code (timeout, unavailable, or the remote error code).',
  ['subject', 'code'],
);

/** Runs one request and records its duration and outcome. */
export async function observeRequest<T>(subject: string, send: () => Promise<T>): Promise<T> {
  const end = requestSeconds.startTimer({ subject });
  try {
    const r = await send();
    end({ outcome: 'ok' });
    return r;
  } catch (err) {
    const raw = (err as { code?: unknown }).code;
    const code = typeof raw === 'string' ? raw : 'error';
    end({ outcome: code });
    requestErrors.inc({ subject, code });
    throw err;
  }
}

/** Feeds `switchboard_bus_connected` from `connected` until the returned function is called. */
export function observeConnection(name: string, connected: () => boolean): () => void {
  return metrics.observeGauge(
    'switchboard_bus_connected',
    'Whether this process is connected to NATS (1) or not (0), by connection name.',
    ['connection'],
    () => [{ labels: { connection: name }, value: connected() ? 1 : 0 }],
  );
}
