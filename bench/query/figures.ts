/** Timings summarized (nearest-rank percentiles) and printed as the query bench prints them. */
import { percentile } from '../support/stats.js';

export interface Stats {
  n: number;
  p50: number;
  p95: number;
  max: number;
  mean: number;
}

export function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted.at(-1) ?? NaN,
    mean: sorted.reduce((sum, value) => sum + value, 0) / sorted.length,
  };
}

export const ms = (value: number | undefined): string =>
  value === undefined || Number.isNaN(value)
    ? '—'
    : value >= 100
      ? value.toFixed(0)
      : value >= 10
        ? value.toFixed(1)
        : value.toFixed(2);
export const round3 = (value: number): number => Math.round(value * 1000) / 1000;

export const roundStats = (value: Stats) => ({
  n: value.n,
  p50: round3(value.p50),
  p95: round3(value.p95),
  max: round3(value.max),
  mean: round3(value.mean),
});
