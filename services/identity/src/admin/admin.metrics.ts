/**
 * The admin API's counters, rendered in the Prometheus text format (0.0.4) like the client edge's
 * `/metrics`: a handful of numbers do not need a metrics library. Served on `GET /metrics` by the
 * admin server (see the identity README for who may read it).
 */

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

  render(): string {
    const g = this.gauges();
    return [
      '# HELP switchboard_admin_auth_failures_total Admin API requests over TCP refused with 401, by reason (missing or invalid API key).',
      '# TYPE switchboard_admin_auth_failures_total counter',
      ...REASONS.map(
        (r) => `switchboard_admin_auth_failures_total{reason="${r}"} ${this.authFailuresFor(r)}`,
      ),
      '# HELP switchboard_admin_auth_rate_limited_total Admin API requests over TCP refused with 429 because their source failed authentication too often.',
      '# TYPE switchboard_admin_auth_rate_limited_total counter',
      `switchboard_admin_auth_rate_limited_total ${this.authRateLimited}`,
      '# HELP switchboard_admin_auth_tracked_sources Source addresses the failed-authentication limit currently remembers.',
      '# TYPE switchboard_admin_auth_tracked_sources gauge',
      `switchboard_admin_auth_tracked_sources ${g.trackedSources}`,
      '# HELP switchboard_admin_auth_evicted_sources_total Live sources dropped to keep the tracked set bounded (many attacking addresses).',
      '# TYPE switchboard_admin_auth_evicted_sources_total counter',
      `switchboard_admin_auth_evicted_sources_total ${g.evictedSources}`,
      '',
    ].join('\n');
  }
}
