/**
 * Turns the runs into `bench/out/summary.json` and the printed table. Metric names: the names
 * (`register_per_s`, `delete_propagation_p99_ms`, …) hold the value at the comparison size (the
 * smallest size, where every server ran); the same metric at each size carries a size suffix
 * (`delete_propagation_p99_ms_10k`); the first-map metrics always name their size before the unit
 * (`first_map_10k_ms`, `first_map_cpu_10k_ms`), as the issue spells them. `advantage` is how many times
 * better Switchboard is than Headscale for each metric both have (above 1 = Switchboard better).
 */
import type { Metrics, RunResult } from './run-target.js';
import type { ServerKey } from './servers/server.js';
import { advantage, roundSig, sizeLabel, type Better } from './stats.js';

interface MetricDef {
  readonly base: string;
  readonly better: Better;
  readonly title: string;
  /** 'suffix': base_<size>; 'infix': size before the unit (first_map_<size>_ms); 'none': one value. */
  readonly sized: 'suffix' | 'infix';
}

/** The metrics that go into the summary and the table, in order. */
export const SUMMARY_METRICS: readonly MetricDef[] = [
  { base: 'register_per_s', better: 'higher', title: 'registrations per second', sized: 'suffix' },
  { base: 'register_p50_ms', better: 'lower', title: 'registration latency p50', sized: 'suffix' },
  { base: 'register_p99_ms', better: 'lower', title: 'registration latency p99', sized: 'suffix' },
  { base: 'register_cpu_ms', better: 'lower', title: 'server CPU per registration', sized: 'suffix' },
  { base: 'first_map_ms', better: 'lower', title: 'first full map: time', sized: 'infix' },
  { base: 'first_map_cpu_ms', better: 'lower', title: 'first full map: server CPU', sized: 'infix' },
  { base: 'join_propagation_p50_ms', better: 'lower', title: 'join → all streams p50', sized: 'suffix' },
  { base: 'join_propagation_p99_ms', better: 'lower', title: 'join → all streams p99', sized: 'suffix' },
  { base: 'join_propagation_max_ms', better: 'lower', title: 'join → last stream', sized: 'suffix' },
  { base: 'endpoint_propagation_p50_ms', better: 'lower', title: 'endpoint change p50', sized: 'suffix' },
  { base: 'endpoint_propagation_p99_ms', better: 'lower', title: 'endpoint change p99', sized: 'suffix' },
  { base: 'endpoint_propagation_max_ms', better: 'lower', title: 'endpoint change, last', sized: 'suffix' },
  {
    base: 'delete_propagation_p50_ms',
    better: 'lower',
    title: 'deletion → all streams p50',
    sized: 'suffix',
  },
  {
    base: 'delete_propagation_p99_ms',
    better: 'lower',
    title: 'deletion → all streams p99',
    sized: 'suffix',
  },
  { base: 'delete_propagation_max_ms', better: 'lower', title: 'deletion → last stream', sized: 'suffix' },
  { base: 'stream_idle_kb', better: 'lower', title: 'server memory per idle stream', sized: 'suffix' },
  { base: 'idle_cpu_pct', better: 'lower', title: 'idle server CPU, of one core', sized: 'suffix' },
  { base: 'settle_after_open_s', better: 'lower', title: 'busy after all streams opened', sized: 'suffix' },
  { base: 'streams_open_s', better: 'lower', title: 'all streams opened', sized: 'suffix' },
  { base: 'reconnect_storm_s', better: 'lower', title: 'reconnect storm: all have a map', sized: 'suffix' },
  { base: 'storm_cpu_s', better: 'lower', title: 'reconnect storm: server CPU', sized: 'suffix' },
  {
    base: 'reconnect_abrupt_storm_s',
    better: 'lower',
    title: 'storm, connections cut: all have a map',
    sized: 'suffix',
  },
];

export function metricName(d: MetricDef, size: number | null): string {
  if (d.sized === 'infix') {
    const i = d.base.lastIndexOf('_');
    return `${d.base.slice(0, i)}_${sizeLabel(size ?? 0)}${d.base.slice(i)}`;
  }
  return size === null ? d.base : `${d.base}_${sizeLabel(size)}`;
}

export interface Target {
  readonly text: string;
  readonly metric: string;
  readonly server: ServerKey;
  readonly op: '<=' | '>=' | '<';
  readonly limit: number;
  /** Compare the advantage ratio, not the value. */
  readonly ratio?: boolean;
}

export const TARGETS: readonly Target[] = [
  {
    text: 'deletion propagation p99 ≤ 150 ms at 10k connected nodes',
    metric: 'delete_propagation_p99_ms_10k',
    server: 'switchboard',
    op: '<=',
    limit: 150,
  },
  {
    text: 'deletion propagation p99 ≥ 10× lower than Headscale at 1k',
    metric: 'delete_propagation_p99_ms_1k',
    server: 'switchboard',
    op: '>=',
    limit: 10,
    ratio: true,
  },
  {
    text: 'first full map at 10k peers ≤ 60 ms of server CPU',
    metric: 'first_map_cpu_10k_ms',
    server: 'switchboard',
    op: '<=',
    limit: 60,
  },
  { text: '≤ 60 KB per idle stream', metric: 'stream_idle_kb', server: 'switchboard', op: '<=', limit: 60 },
  { text: '≥ 1,000 registrations/s', metric: 'register_per_s', server: 'switchboard', op: '>=', limit: 1000 },
  {
    text: 'registration p99 < 100 ms',
    metric: 'register_p99_ms',
    server: 'switchboard',
    op: '<',
    limit: 100,
  },
];

export interface TargetOutcome {
  readonly target: string;
  readonly metric: string;
  readonly value: number | null;
  readonly limit: number;
  readonly met: boolean | null;
  /** value/limit or limit/value: how far off (above 1 = missed by that factor). */
  readonly missedBy: number | null;
}

export interface Summary {
  machine: Record<string, unknown>;
  sizes: Record<string, unknown>;
  switchboard: Metrics;
  headscale: Metrics;
  advantage: Metrics;
  switchboard_services: Metrics;
  advantage_services: Metrics;
  targets: TargetOutcome[];
  runs: {
    server: string;
    label: string;
    nodes: number;
    duration_s: number;
    error: string | null;
    notes: string[];
    metrics: Metrics;
  }[];
}

function flatten(runs: readonly RunResult[], key: ServerKey, comparison: number): Metrics {
  const out: Metrics = {};
  for (const r of runs) {
    if (r.server !== key) continue;
    // A run that could not register all its nodes in time measured the rest at a smaller size.
    const partial = (r.metrics.registered ?? r.nodes) < r.nodes;
    for (const d of SUMMARY_METRICS) {
      const v = partial && !d.base.startsWith('register') ? null : roundSig(r.metrics[d.base] ?? null);
      out[metricName(d, r.nodes)] = v;
      if (d.sized === 'suffix' && r.nodes === comparison) out[metricName(d, null)] = v;
    }
  }
  return out;
}

function ratios(ours: Metrics, theirs: Metrics): Metrics {
  const out: Metrics = {};
  for (const d of SUMMARY_METRICS)
    for (const k of Object.keys(ours)) {
      if (!(k === d.base || k.startsWith(`${d.base}_`) || isInfixOf(d, k))) continue;
      if (!(k in theirs)) continue;
      out[k] = roundSig(advantage(ours[k] ?? null, theirs[k] ?? null, d.better));
    }
  return out;
}

function isInfixOf(d: MetricDef, k: string): boolean {
  if (d.sized !== 'infix') return false;
  const i = d.base.lastIndexOf('_');
  return new RegExp(`^${d.base.slice(0, i)}_[0-9.]+k?${d.base.slice(i)}$`).test(k);
}

export function evaluateTargets(s: Pick<Summary, 'switchboard' | 'advantage'>): TargetOutcome[] {
  return TARGETS.map((t) => {
    const value = (t.ratio ? s.advantage[t.metric] : s.switchboard[t.metric]) ?? null;
    let met: boolean | null = null;
    let missedBy: number | null = null;
    if (value !== null) {
      met = t.op === '<=' ? value <= t.limit : t.op === '<' ? value < t.limit : value >= t.limit;
      missedBy = roundSig(t.op === '>=' ? t.limit / value : value / t.limit);
    }
    return {
      target: t.text,
      metric: t.ratio ? `advantage.${t.metric}` : t.metric,
      value,
      limit: t.limit,
      met,
      missedBy,
    };
  });
}

export function buildSummary(
  runs: readonly RunResult[],
  machine: Record<string, unknown>,
  sizes: Record<string, unknown>,
  comparison: number,
): Summary {
  const switchboard = flatten(runs, 'switchboard', comparison);
  const headscale = flatten(runs, 'headscale', comparison);
  const services = flatten(runs, 'switchboard_services', comparison);
  const adv = ratios(switchboard, headscale);
  return {
    machine,
    sizes,
    switchboard,
    headscale,
    advantage: adv,
    switchboard_services: services,
    advantage_services: ratios(services, headscale),
    targets: evaluateTargets({ switchboard, advantage: adv }),
    runs: runs.map((r) => ({
      server: r.server,
      label: r.label,
      nodes: r.nodes,
      duration_s: Math.round(r.durationS),
      error: r.error,
      notes: r.notes,
      metrics: Object.fromEntries(Object.entries(r.metrics).map(([k, v]) => [k, roundSig(v)])),
    })),
  };
}

function unitOf(base: string): string {
  if (base.endsWith('_per_s')) return '/s';
  if (base.endsWith('_kb')) return 'KiB';
  if (base.endsWith('_pct')) return '%';
  if (base.endsWith('_ms')) return 'ms';
  if (base.endsWith('_s')) return 's';
  return '';
}

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function fmtRatio(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  return `${v >= 10 ? v.toFixed(0) : v.toFixed(1)}×`;
}

/** The table: one row per metric and size, one column per server, and the advantage ratios. */
export function renderTable(s: Summary, sizes: readonly number[]): string {
  const header = ['metric', 'size', 'Switchboard', 'SB services', 'Headscale', 'SB vs HS', 'SB svc vs HS'];
  const rows: string[][] = [];
  for (const d of SUMMARY_METRICS)
    for (const size of sizes) {
      const k = metricName(d, size);
      if (!(k in s.switchboard) && !(k in s.headscale) && !(k in s.switchboard_services)) continue;
      rows.push([
        `${d.title} (${unitOf(d.base)})`,
        sizeLabel(size),
        fmt(s.switchboard[k]),
        fmt(s.switchboard_services[k]),
        fmt(s.headscale[k]),
        fmtRatio(s.advantage[k]),
        fmtRatio(s.advantage_services[k]),
      ]);
    }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    '| ' + r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  const rule =
    '|' + widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  const out = [line(header), rule];
  for (const r of rows) out.push(line(r));
  out.push('');
  out.push('Targets (Switchboard, one process):');
  for (const t of s.targets) {
    const state = t.met === null ? 'not measured in this run' : t.met ? 'met' : `MISSED (by ${t.missedBy}×)`;
    out.push(`  - ${t.target}: ${t.value === null ? '—' : fmt(t.value)} → ${state}`);
  }
  return out.join('\n');
}
