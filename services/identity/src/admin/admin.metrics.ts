/**
 * The admin API's counters, kept per AdminServer and exposed through the process's metric set
 * (`@switchboard/metrics`, prom-client) while the server runs. `GET /metrics` on the admin socket
 * and on ADMIN_LISTEN serves the whole process's set (see the identity README for who may read it).
 */
import { processMetrics, type MetricSet } from '@switchboard/metrics';

/** Why an authentication attempt on the TCP listener failed. */
export type AuthFailureReason = 'missing' | 'invalid';
const REASONS: readonly AuthFailureReason[] = ['missing', 'invalid'];

export class AdminMetrics {
  private readonly authFailures = new Map<AuthFailureReason, number>(REASONS.map((r) => [r, 0]));
  authRateLimited = 0;

  constructor(
    private readonly gauges: () => { trackedSources: number; evictedSources: number } = () => ({
      trackedSources: 0,
      evictedSources: 0,
    }),
  ) {}

  authFailed(reason: AuthFailureReason): void {
    this.authFailures.set(reason, (this.authFailures.get(reason) ?? 0) + 1);
  }

  authFailuresFor(reason: AuthFailureReason): number {
    return this.authFailures.get(reason) ?? 0;
  }

  /** Feeds `set` (the process's by default) from this instance until the returned function is called. */
  observe(set: MetricSet = processMetrics()): () => void {
    const offs = [
      set.observeCounter(
        'switchboard_admin_auth_failures_total',
        'Admin API requests over TCP refused with 401, by reason (missing or invalid API key).',
        ['reason'],
        () => REASONS.map((reason) => ({ labels: { reason }, value: this.authFailuresFor(reason) })),
      ),
      set.observeCounter(
        'switchboard_admin_auth_rate_limited_total',
        'Admin API requests over TCP refused with 429 because their source failed authentication too often.',
        [],
        () => this.authRateLimited,
      ),
      set.observeGauge(
        'switchboard_admin_auth_tracked_sources',
        'Source addresses the failed-authentication limit currently remembers.',
        [],
        () => this.gauges().trackedSources,
      ),
      set.observeCounter(
        'switchboard_admin_auth_evicted_sources_total',
        'Live sources dropped to keep the tracked set bounded (many attacking addresses).',
        [],
        () => this.gauges().evictedSources,
      ),
    ];
    return () => offs.forEach((f) => f());
  }
}
