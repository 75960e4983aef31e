/** Capability-version constants and the gates the server varies its output by. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CAPVER_BY_RELEASE,
  CURRENT_CAPVER,
  INTEROP_CAPVER,
  needsExplicitAllowedIPs,
  needsLegacyDerpString,
  sendsEmptyAuthObject,
  supportsDisplayMessages,
  supportsNoMeasureNoHome,
  supportsRegisterRetryAfter,
} from './capver.js';

void describe('capability versions', () => {
  void test('current and interop versions match the tailscale sources we build against', () => {
    assert.equal(CURRENT_CAPVER, 148);
    assert.equal(CAPVER_BY_RELEASE['1.104'], CURRENT_CAPVER);
    assert.equal(INTEROP_CAPVER, 113);
    assert.equal(CAPVER_BY_RELEASE['1.80'], INTEROP_CAPVER);
  });

  void test('the release table never goes down', () => {
    const values = Object.values(CAPVER_BY_RELEASE);
    for (let i = 1; i < values.length; i++) assert.ok(values[i]! >= values[i - 1]!);
  });

  void test('gates at their boundaries', () => {
    assert.ok(needsLegacyDerpString(110) && !needsLegacyDerpString(111));
    assert.ok(needsExplicitAllowedIPs(111) && !needsExplicitAllowedIPs(112));
    assert.ok(sendsEmptyAuthObject(94) && !sendsEmptyAuthObject(95));
    assert.ok(!supportsNoMeasureNoHome(114) && supportsNoMeasureNoHome(115));
    assert.ok(!supportsDisplayMessages(116) && supportsDisplayMessages(117));
    assert.ok(!supportsRegisterRetryAfter(136) && supportsRegisterRetryAfter(137));
    // v1.78 (109) needs both legacy forms; v1.80 (113) needs neither.
    assert.ok(
      needsLegacyDerpString(CAPVER_BY_RELEASE['1.78']!) &&
        needsExplicitAllowedIPs(CAPVER_BY_RELEASE['1.78']!),
    );
    assert.ok(!needsLegacyDerpString(113) && !needsExplicitAllowedIPs(113));
  });
});
