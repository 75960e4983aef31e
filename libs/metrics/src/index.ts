/** Public API of @switchboard/metrics: the process's Prometheus metric set and the ops HTTP listener. */
export {
  LATENCY_BUCKETS,
  MetricSet,
  processMetrics,
  timed,
  type LabelValues,
  type Observation,
  type ObservedSource,
} from './metrics.js';
export type { Counter, Gauge, Histogram } from 'prom-client';
export {
  OpsServer,
  runChecks,
  type OpsServerOptions,
  type ReadinessCheck,
  type ReadinessReport,
} from './ops-server.js';
