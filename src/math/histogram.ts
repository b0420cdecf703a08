/**
 * Log-spaced histogram bins for durations in milliseconds, the scheme of DDSketch
 * (Masson, Rim, Lee: "DDSketch: a fast and fully-mergeable quantile sketch with
 * relative-error guarantees", VLDB 2019).
 *
 * Bin `b` holds the values in `(γ^(b-1), γ^b]`, with `γ = (1 + α) / (1 - α)`, and
 * reports them as `2γ^b / (1 + γ)`. Every value in the bin is within a relative
 * error `α` of that representative, so a percentile read from the bins is within
 * `α` (2 %) of the exact percentile of the recorded values (nearest-rank definition,
 * see {@link percentile}). Bins only ever hold counts, so histograms of hours, days,
 * models and batches merge by adding counts: that is what lets batches of events be
 * folded into them as they are stored, and a window read them as a sum.
 *
 * PostgreSQL computes the bins as it folds (src/store/rollup-sql.ts, from
 * these constants); this module turns bin counts back into values.
 */

/** The relative error of every value read back from a bin: 2 %. */
export const RELATIVE_ERROR = 0.02;

/** The ratio between consecutive bin bounds: ≈ 1.0408, about 58 bins per decade. */
export const GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR);

/** ln γ: bin `b` of a value `v` is `ceil(ln v / ln γ)`. */
export const LN_GAMMA = Math.log(GAMMA);

/** Values below this (1 µs, in ms) and negative values are counted in {@link ZERO_BIN}. */
export const MIN_TRACKED_VALUE = 0.001;

/** The bin of values reported as 0; below every other bin (the lowest is −172, for 1 µs). */
export const ZERO_BIN = -32768;

/** The bin holding `value` (milliseconds). The SQL in the analytics store computes the same. */
export function binOf(value: number): number {
  if (!(value >= MIN_TRACKED_VALUE)) return ZERO_BIN;
  return Math.ceil(Math.log(value) / LN_GAMMA);
}

/** The value a bin reports: within {@link RELATIVE_ERROR} of every value the bin holds. */
export function representativeOf(bin: number): number {
  if (bin === ZERO_BIN) return 0;
  return (2 * Math.exp(bin * LN_GAMMA)) / (1 + GAMMA);
}

/** How many values fell in one bin. */
export interface BinCount {
  bin: number;
  count: number;
}

/** Percentiles of a distribution; `null` when nothing was recorded. */
export interface Percentiles {
  /** How many values the percentiles are computed from. */
  samples: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Adds up histograms (of several hours, days or models) into one, sorted by bin. */
export function mergeBins(...histograms: ReadonlyArray<readonly BinCount[]>): BinCount[] {
  const counts = new Map<number, number>();
  for (const histogram of histograms) {
    for (const { bin, count } of histogram) counts.set(bin, (counts.get(bin) ?? 0) + count);
  }
  return [...counts]
    .filter(([, count]) => count > 0)
    .map(([bin, count]) => ({ bin, count }))
    .sort((a, b) => a.bin - b.bin);
}

/**
 * The `q`-quantile (0 < q ≤ 1) by nearest rank: the smallest recorded value with
 * at least `q` of all values at or below it, reported as its bin's representative.
 * `percentile_cont` interpolates between that value and the one below it, so on
 * dense data the two agree within the same bound.
 * @returns null for an empty histogram.
 * @throws RangeError when `q` is not in (0, 1].
 */
export function percentile(histogram: readonly BinCount[], q: number): number | null {
  if (!(q > 0 && q <= 1)) throw new RangeError(`quantile must be in (0, 1], got ${q}`);
  const sorted = [...histogram].sort((a, b) => a.bin - b.bin);
  const total = sorted.reduce((sum, { count }) => sum + count, 0);
  if (total === 0) return null;
  // The epsilon keeps q·n = 95.00000000000001 (floating point) at rank 95.
  const rank = Math.max(1, Math.ceil(q * total - 1e-9));
  let seen = 0;
  for (const { bin, count } of sorted) {
    seen += count;
    if (seen >= rank) return representativeOf(bin);
  }
  return representativeOf(sorted[sorted.length - 1]!.bin);
}

/** p50, p95 and p99 of a histogram. */
export function percentilesOf(histogram: readonly BinCount[]): Percentiles {
  return {
    samples: histogram.reduce((sum, { count }) => sum + count, 0),
    p50: percentile(histogram, 0.5),
    p95: percentile(histogram, 0.95),
    p99: percentile(histogram, 0.99),
  };
}
