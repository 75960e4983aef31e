/**
 * @switchboard/bench: the load generator and benchmark that compares Switchboard with Headscale
 * (`pnpm bench`, see bench/README.md). Exported for reuse: the statistics, /proc readers, the
 * generator fleet and the server launchers.
 */
export * from './stats.js';
export * from './clock.js';
export * from './proc-stats.js';
export { Fleet, type FleetOptions, type FleetStats } from './fleet/fleet.js';
export { LeanNode, FrameReader, INITIAL_ENDPOINT } from './fleet/lean-node.js';
export type { Marker } from './fleet/worker-protocol.js';
export { runTarget, type RunPlan, type RunResult, type Metrics } from './run-target.js';
export {
  buildSummary,
  renderTable,
  evaluateTargets,
  metricName,
  SUMMARY_METRICS,
  TARGETS,
} from './report.js';
export type { ServerUnderTest, ServerKey } from './servers/server.js';
export { startSwitchboardOne, startSwitchboardServices } from './servers/switchboard.js';
export { startHeadscale, ensureHeadscale, DEFAULT_HEADSCALE_VERSION } from './servers/headscale.js';
