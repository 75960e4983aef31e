/**
 * Prometheus metrics for a Switchboard process, on prom-client: ONE registry per process (the
 * default process metrics included), rendered by every `/metrics` the process serves.
 *
 * Two kinds of series:
 * - direct counters and histograms (`counter`, `histogram`): get-or-create by name, so every part
 *   of the process that declares the same series shares it (two replicas in one test process add up);
 * - observed series (`observeGauge`, `observeCounter`): read from the components that own the
 *   numbers at scrape time. Several sources may feed one series; their values are summed per label
 *   set, and a source is removed by the function `observe*` returns (call it when the component stops).
 *
 * Names follow Prometheus conventions: `switchboard_<area>_<what>[_unit][_total]`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type LabelValues = Record<string, string | number>;
/** What an observed series' source reports: one number (no labels) or one per label set. */
export type Observation = number | readonly { labels: LabelValues; value: number }[];
export type ObservedSource = () => Observation;

/** Buckets in seconds for request and propagation latencies: 1 ms to 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export class MetricSet {
  readonly registry = new Registry();
  private readonly sources = new Map<string, Set<ObservedSource>>();

  /** Content type of `text()` (the Prometheus text exposition format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  counter<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return this.expect(existing, Counter, name);
    return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }

  histogram<L extends string = string>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    buckets: readonly number[] = LATENCY_BUCKETS,
  ): Histogram<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return this.expect(existing, Histogram, name);
    return new Histogram<L>({ name, help, labelNames, buckets: [...buckets], registers: [this.registry] });
  }

  /** A gauge read from `source` at every scrape; returns the function that removes the source. */
  observeGauge(
    name: string,
    help: string,
    labelNames: readonly string[],
    source: ObservedSource,
  ): () => void {
    return this.observe('gauge', name, help, labelNames, source);
  }

  /** A counter whose value a component already keeps (it must never go down while the source lives). */
  observeCounter(
    name: string,
    help: string,
    labelNames: readonly string[],
    source: ObservedSource,
  ): () => void {
    return this.observe('counter', name, help, labelNames, source);
  }

  /** Every series in the text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  private observe(
    kind: 'gauge' | 'counter',
    name: string,
    help: string,
    labelNames: readonly string[],
    source: ObservedSource,
  ): () => void {
    let set = this.sources.get(name);
    if (!set) {
      const sources = new Set<ObservedSource>();
      set = sources;
      this.sources.set(name, sources);
      const collect = function (this: Gauge | Counter): void {
        this.reset();
        for (const read of sources) {
          let obs: Observation;
          try {
            obs = read();
          } catch {
            continue; // a source that cannot answer is left out of this scrape
          }
          if (typeof obs === 'number') this.inc(obs);
          else for (const o of obs) this.inc(o.labels, o.value);
        }
      };
      const cfg = { name, help, labelNames: [...labelNames], registers: [this.registry], collect };
      if (kind === 'gauge') new Gauge(cfg);
      else new Counter(cfg);
    }
    const sources = set;
    sources.add(source);
    return () => {
      sources.delete(source);
    };
  }

  private expect<T>(metric: unknown, cls: abstract new (...a: never[]) => T, name: string): T {
    if (metric instanceof cls) return metric;
    throw new Error(`metric ${name} is already registered with another type`);
  }
}

let processSet: MetricSet | undefined;

/** The process's one metric set, with prom-client's default process metrics (CPU, memory, event loop, GC). */
export function processMetrics(): MetricSet {
  if (!processSet) {
    processSet = new MetricSet();
    collectDefaultMetrics({ register: processSet.registry });
  }
  return processSet;
}

/** Records how long `fn` took (seconds) in `h` with `labels` plus `outcome` ("ok" or "error"). */
export async function timed<T>(h: Histogram<string>, labels: LabelValues, fn: () => Promise<T>): Promise<T> {
  const end = h.startTimer(labels);
  try {
    const v = await fn();
    end({ outcome: 'ok' });
    return v;
  } catch (err) {
    end({ outcome: 'error' });
    throw err;
  }
}
