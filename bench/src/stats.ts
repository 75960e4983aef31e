/**
 * Statistics for latency samples: nearest-rank percentiles (the value below which p% of the samples
 * lie, never an interpolation between two samples), a five-number summary, and the ratio helpers the
 * report uses to say how many times better one server is than another.
 */

export interface Summary {
  readonly count: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/**
 * Nearest-rank percentile of already sorted samples: the smallest sample such that at least p% of
 * all samples are at or below it. p in [0, 100]; NaN for no samples.
 */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  return sorted[rank - 1]!;
}

/** Nearest-rank percentile of unsorted samples (sorts a copy). */
export function percentile(samples: readonly number[], p: number): number {
  return percentileSorted(sortedCopy(samples), p);
}

function sortedCopy(samples: readonly number[]): number[] {
  const out = Float64Array.from(samples).sort();
  return Array.from(out);
}

/** Count, min, p50, p90, p99, max and mean; every field is NaN (count 0) for no samples. */
export function summarize(samples: readonly number[]): Summary {
  const s = sortedCopy(samples);
  if (s.length === 0) return { count: 0, min: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  let sum = 0;
  for (const v of s) sum += v;
  return {
    count: s.length,
    min: s[0]!,
    p50: percentileSorted(s, 50),
    p90: percentileSorted(s, 90),
    p99: percentileSorted(s, 99),
    max: s[s.length - 1]!,
    mean: sum / s.length,
  };
}

/** Median of a few repeated measurements (the lower middle for an even count, as nearest-rank p50). */
export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/** Whether a smaller or a larger value of a metric is better. */
export type Better = 'lower' | 'higher';

/**
 * How many times better `ours` is than `theirs`: theirs/ours when lower is better, ours/theirs when
 * higher is better. Above 1 means ours is better. Null when either is missing or not positive.
 */
export function advantage(ours: number | null, theirs: number | null, better: Better): number | null {
  if (ours === null || theirs === null || !Number.isFinite(ours) || !Number.isFinite(theirs)) return null;
  if (ours <= 0 || theirs <= 0) return null;
  return better === 'lower' ? theirs / ours : ours / theirs;
}

/** Rounds to a number of significant digits (for the JSON summary); keeps null and integers >= 1000. */
export function roundSig(v: number | null, digits = 3): number | null {
  if (v === null || !Number.isFinite(v)) return null;
  if (v === 0) return 0;
  if (Math.abs(v) >= 10 ** digits) return Math.round(v);
  return Number(v.toPrecision(digits));
}

/** Short size label used in metric names: 500 → "500", 1000 → "1k", 10000 → "10k", 2500 → "2.5k". */
export function sizeLabel(n: number): string {
  if (n >= 1000 && n % 100 === 0) return `${n / 1000}k`;
  return String(n);
}
