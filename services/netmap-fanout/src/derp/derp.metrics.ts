/**
 * The relay's and STUN server's counters (their `metricsText()` lines) in the process's metric set,
 * read at scrape time: unlabelled series as they are, `…{reason="x"}` series with a `reason` label.
 */
import { processMetrics, type Observation } from '@switchboard/metrics';

const LINE = /^(switchboard_[a-z_]+)(?:\{reason="([^"]*)"\})? (\S+)$/;

/** Parses `name value` and `name{reason="r"} value` lines into series. */
export function parseRelayMetrics(text: string): Map<string, { reason: string | null; value: number }[]> {
  const out = new Map<string, { reason: string | null; value: number }[]>();
  for (const line of text.split('\n')) {
    const m = LINE.exec(line.trim());
    if (!m) continue;
    const list = out.get(m[1]!) ?? [];
    list.push({ reason: m[2] ?? null, value: Number(m[3]) });
    out.set(m[1]!, list);
  }
  return out;
}

const LABELLED = new Set(['switchboard_derp_refused_total', 'switchboard_derp_packets_dropped_total']);

/** Registers every series the relay reports now (and the labelled ones even when still empty). */
export function observeRelayMetrics(text: () => string): () => void {
  const m = processMetrics();
  const names = new Set([...parseRelayMetrics(text()).keys(), ...LABELLED]);
  const offs = [...names].map((name) => {
    const labelled = LABELLED.has(name);
    const read = (): Observation => {
      const rows = parseRelayMetrics(text()).get(name) ?? [];
      if (!labelled) return rows[0]?.value ?? 0;
      return rows.map((r) => ({ labels: { reason: r.reason ?? '' }, value: r.value }));
    };
    const help = `DERP relay: ${name.replace(/^switchboard_/, '').replaceAll('_', ' ')}.`;
    return name.endsWith('_total')
      ? m.observeCounter(name, help, labelled ? ['reason'] : [], read)
      : m.observeGauge(name, help, labelled ? ['reason'] : [], read);
  });
  return () => {
    for (const off of offs) off();
  };
}
