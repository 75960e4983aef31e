import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricSet } from '@switchboard/metrics';
import { AdminMetrics } from './admin.metrics.js';

describe('AdminMetrics', () => {
  test('renders every series, zeros included, with HELP and TYPE', async () => {
    const m = new AdminMetrics(() => ({ trackedSources: 4, evictedSources: 2 }));
    const set = new MetricSet();
    const off = m.observe(set);
    m.authFailed('invalid');
    m.authFailed('invalid');
    m.authRateLimited = 7;
    const text = await set.text();
    assert.match(text, /^switchboard_admin_auth_failures_total\{reason="invalid"\} 2$/m);
    assert.match(text, /^switchboard_admin_auth_failures_total\{reason="missing"\} 0$/m);
    assert.match(text, /^switchboard_admin_auth_rate_limited_total 7$/m);
    assert.match(text, /^switchboard_admin_auth_tracked_sources 4$/m);
    assert.match(text, /^switchboard_admin_auth_evicted_sources_total 2$/m);
    assert.match(text, /^# TYPE switchboard_admin_auth_failures_total counter$/m);
    assert.match(text, /^# HELP switchboard_admin_auth_tracked_sources /m);
    off();
    assert.doesNotMatch(await set.text(), /^switchboard_admin_auth_rate_limited_total 7$/m);
  });
});
