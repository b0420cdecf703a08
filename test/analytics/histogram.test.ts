import { describe, expect, it } from 'vitest';
import {
  binOf,
  GAMMA,
  mergeBins,
  percentile,
  percentilesOf,
  RELATIVE_ERROR,
  representativeOf,
  ZERO_BIN,
  type BinCount,
} from '../../src/math/histogram.js';

/** The exact nearest-rank quantile: the smallest value with at least q of all values at or below it. */
const nearestRank = (values: readonly number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length - 1e-9)) - 1]!;
};

const histogramOf = (values: readonly number[]): BinCount[] =>
  mergeBins(values.map((value) => ({ bin: binOf(value), count: 1 })));

const relativeError = (actual: number, expected: number) => Math.abs(actual - expected) / expected;

let seed = 7;
/** Deterministic uniform [0, 1) (mulberry32). */
const random = (): number => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

describe('log-binned histogram', () => {
  it('reports every value from 1 µs to 10^12 ms within the 2 % relative error', () => {
    let worst = 0;
    for (let exponent = -3; exponent <= 12; exponent += 0.0013) {
      const value = 10 ** exponent;
      worst = Math.max(worst, relativeError(representativeOf(binOf(value)), value));
    }
    expect(RELATIVE_ERROR).toBe(0.02);
    expect(worst).toBeLessThanOrEqual(RELATIVE_ERROR + 1e-12);
    // The bound is tight: values at a bin's edges are off by almost exactly 2 %.
    expect(worst).toBeGreaterThan(0.0199);
  });

  it('puts each bin between consecutive powers of gamma, upper bound included', () => {
    expect(binOf(1)).toBe(0);
    expect(binOf(GAMMA)).toBe(1);
    expect(binOf(GAMMA * 1.0001)).toBe(2);
    expect(binOf(0.001)).toBe(-172);
    expect(binOf(1e12)).toBe(691);
  });

  it('counts zero, negative and sub-microsecond values in the zero bin, reported as 0', () => {
    expect(binOf(0)).toBe(ZERO_BIN);
    expect(binOf(-5)).toBe(ZERO_BIN);
    expect(binOf(0.0009)).toBe(ZERO_BIN);
    expect(binOf(Number.NaN)).toBe(ZERO_BIN);
    expect(representativeOf(ZERO_BIN)).toBe(0);
    expect(percentile(histogramOf([0, 0, 0, 10]), 0.5)).toBe(0);
  });

  it('gives percentiles within 2 % of the exact nearest-rank values of a skewed sample', () => {
    const values = Array.from({ length: 20_000 }, () =>
      Math.exp(6 + 2 * (random() + random() + random() - 1.5)),
    );
    const histogram = histogramOf(values);
    for (const q of [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1]) {
      expect(relativeError(percentile(histogram, q)!, nearestRank(values, q))).toBeLessThanOrEqual(
        RELATIVE_ERROR + 1e-12,
      );
    }
  });

  it('picks the nearest rank: p50 of 1..100 is 50, p95 is 95, p99 is 99, within 2 %', () => {
    const result = percentilesOf(histogramOf(Array.from({ length: 100 }, (_, index) => index + 1)));
    expect(result.samples).toBe(100);
    expect(relativeError(result.p50!, 50)).toBeLessThanOrEqual(RELATIVE_ERROR);
    expect(relativeError(result.p95!, 95)).toBeLessThanOrEqual(RELATIVE_ERROR);
    expect(relativeError(result.p99!, 99)).toBeLessThanOrEqual(RELATIVE_ERROR);
    // A single value is every percentile.
    const single = percentilesOf(histogramOf([1234]));
    expect([single.p50, single.p95, single.p99].every((p) => relativeError(p!, 1234) <= RELATIVE_ERROR)).toBe(
      true,
    );
  });

  it('merges histograms of parts into the histogram of the whole, in any order', () => {
    const values = Array.from({ length: 3000 }, () => random() * 5000);
    const parts = [values.slice(0, 1000), values.slice(1000, 1200), values.slice(1200)];
    const merged = mergeBins(...parts.reverse().map(histogramOf));
    expect(merged).toEqual(histogramOf(values));
    expect(percentilesOf(merged)).toEqual(percentilesOf(histogramOf(values)));
  });

  it('has no percentiles without samples', () => {
    expect(percentilesOf([])).toEqual({ samples: 0, p50: null, p95: null, p99: null });
    expect(percentilesOf([{ bin: 3, count: 0 }])).toEqual({ samples: 0, p50: null, p95: null, p99: null });
    expect(() => percentile([], 0)).toThrow(RangeError);
  });
});
