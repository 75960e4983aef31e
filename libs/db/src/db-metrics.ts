/**
 * Postgres series in the process's metric set: pool connections by state, callers waiting for one,
 * the pool's size, and errors ("connection": the server could not be reached or dropped us;
 * "sql": the server refused a statement — constraint violations included).
 */
import { processMetrics, type Counter } from '@switchboard/metrics';

const metrics = processMetrics();

export const dbErrors: Counter<'kind'> = metrics.counter(
  'switchboard_db_errors_total',
  'Postgres errors by kind: connection (unreachable, dropped) or sql (the server refused a statement).',
  ['kind'],
);

export function observePool(
  pool: string,
  stats: () => { total: number; idle: number; waiting: number },
  max: number,
): () => void {
  const offs = [
    metrics.observeGauge(
      'switchboard_db_pool_connections',
      'Postgres pool connections by state (idle or in use).',
      ['pool', 'state'],
      () => {
        const s = stats();
        return [
          { labels: { pool, state: 'idle' }, value: s.idle },
          { labels: { pool, state: 'in_use' }, value: s.total - s.idle },
        ];
      },
    ),
    metrics.observeGauge(
      'switchboard_db_pool_waiting',
      'Callers waiting for a Postgres pool connection (the pool is exhausted while this is above 0).',
      ['pool'],
      () => [{ labels: { pool }, value: stats().waiting }],
    ),
    metrics.observeGauge('switchboard_db_pool_max', 'Size limit of the Postgres pool.', ['pool'], () => [
      { labels: { pool }, value: max },
    ]),
  ];
  return () => offs.forEach((f) => f());
}
