import { badRequest } from '../errors.js';
import { EVENT_TYPES } from '../events/event-types.js';
import type { AnalyticsStore, HistogramMetric, LlmModelTotals } from '../store/analytics-store.js';
import { mergeBins, percentilesOf, RELATIVE_ERROR, type Percentiles } from '../math/histogram.js';
import { costOf, priceOf, MODEL_PRICES, type ModelPrice } from './prices.js';

export type { Percentiles } from '../math/histogram.js';

/** The longest window, in days. */
export const MAX_DAYS = 365;

/** The relative error of every percentile returned (see src/analytics/histogram.ts). */
export const PERCENTILE_RELATIVE_ERROR = RELATIVE_ERROR;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * The events a result covers, by `received_at`: from `from` to now. `from` is the
 * start of the UTC hour holding `now − days × 24 h` (the rollups count whole
 * hours), so a window spans between `days × 24` and `days × 24 + 1` hours.
 */
export interface AnalyticsWindow {
  days: number;
  from: Date;
  to: Date;
}

/** Events of one type. */
export interface EventTypeCount {
  eventType: string;
  events: number;
}

/** Events of one UTC day. */
export interface DayCount {
  /** The UTC day, `YYYY-MM-DD`. The first and the last day of a window are partial. */
  date: string;
  events: number;
  /** Every event type, zeros included. */
  byType: EventTypeCount[];
}

/** What `usage(days)` answers. */
export interface UsageAnalytics {
  window: AnalyticsWindow;
  totalEvents: number;
  /** The spec's seven types first, zeros included, then any other type stored. */
  eventsByType: EventTypeCount[];
  /** Every UTC day of the window, oldest first, zeros included. */
  eventsByDay: DayCount[];
  /** Sessions with at least one event in the window, counted exactly. */
  distinctSessions: number;
  reviews: {
    started: number;
    completed: number;
    /**
     * completed / started; null when none started. A review started before the
     * window and completed in it counts as completed only, so this can exceed 1.
     */
    completionRate: number | null;
  };
  errors: {
    /** `error_occurred` events. */
    count: number;
    /** count / totalEvents; null when there are no events. */
    rate: number | null;
  };
}

/** Token sums of LLM responses (see src/analytics/prices.ts for the conventions). */
export interface TokenSums {
  prompt: number;
  completion: number;
  cached: number;
  reasoning: number;
}

/** What LLM responses cost, reported by them or priced from the table. */
export interface LlmCost {
  /** reportedUsd + computedUsd: exact when `partial` is false, a lower bound otherwise. */
  usd: number;
  /** Sum of the `cost_usd` the responses reported. */
  reportedUsd: number;
  /** Responses without `cost_usd`, priced from src/analytics/prices.ts. */
  computedUsd: number;
  /** Whether some responses reported no cost and their model has no price. */
  partial: boolean;
  /** How many responses that is. */
  unpricedResponses: number;
}

/** LLM traffic of one model, or of all of them. */
export interface LlmUsage {
  /** `llm_query_sent` events. */
  queries: number;
  /** `llm_feedback_received` events. */
  responses: number;
  /** Responses with `success: false`. */
  failures: number;
  /** failures / responses; null when there are no responses. */
  failureRate: number | null;
  /** Summed from the responses' payloads (`llm_query_sent` token fields are not counted). */
  tokens: TokenSums;
  cost: LlmCost;
  /** From the responses' `latency_ms`. */
  latencyMs: Percentiles;
}

/** LLM traffic of one model. */
export interface LlmModelAnalytics extends LlmUsage {
  /** The payload's `model`, or "unknown" when it was missing. */
  model: string;
  /** Whether src/analytics/prices.ts knows the model. */
  priced: boolean;
}

/** What `llm(days)` answers. */
export interface LlmAnalytics {
  window: AnalyticsWindow;
  /** Most active first (queries + responses), then by name. */
  models: LlmModelAnalytics[];
  totals: LlmUsage;
}

/** Events of one UTC hour. */
export interface HourCount {
  /** Start of the UTC hour. */
  hour: Date;
  events: number;
}

/** What `performance(days)` answers. */
export interface PerformanceAnalytics {
  window: AnalyticsWindow;
  /** From the `duration_ms` of `review_completed` events (events without it are not counted). */
  reviewDurationMs: Percentiles;
  /** From the `duration_ms` of `syntax_analysis_completed` events. */
  syntaxAnalysisDurationMs: Percentiles;
  eventsPerHour: {
    /** The mean of `series`: total events over the hours of the window (the current hour counts whole). */
    average: number;
    /** Every UTC hour of the window, oldest first, zeros included. */
    series: HourCount[];
  };
  /** received_at → persisted_at, the pipeline's own delay; negative (clock skew) counts as 0. */
  pipelineLagMs: Percentiles & { max: number | null };
}

/** What the service reads; the analytics store implements it. */
export type AnalyticsReader = Pick<
  AnalyticsStore,
  'dailyTypeCounts' | 'hourlyCounts' | 'maxLagMs' | 'distinctSessions' | 'llmModelTotals' | 'histograms'
>;

/** What the service is built from. */
export interface AnalyticsServiceDeps {
  store: AnalyticsReader;
  /** The clock windows end at; the system clock unless a test pins it. */
  now?: () => Date;
  /** USD per 1M tokens by model family; defaults to {@link MODEL_PRICES}. */
  prices?: Readonly<Record<string, ModelPrice>>;
}

/**
 * Usage, LLM and performance analytics over the last `days` days, for REST and
 * GraphQL alike. Each call reads only the rollups, folded from each committed
 * batch (a few small, indexed range scans), never the events themselves.
 * Percentiles come from log-binned histograms and are within
 * {@link PERCENTILE_RELATIVE_ERROR} (2 %) of the exact nearest-rank value.
 */
export function createAnalyticsService(deps: AnalyticsServiceDeps) {
  const { store } = deps;
  const now = deps.now ?? (() => new Date());
  const prices = deps.prices ?? MODEL_PRICES;

  return {
    /**
     * Event counts by type, day and session, review completion and error rates.
     * @throws AppError BAD_REQUEST naming `days` unless it is a whole number from 1 to 365.
     */
    async usage(days: number): Promise<UsageAnalytics> {
      const window = windowOf(days, now());
      const [daily, distinctSessions] = await Promise.all([
        store.dailyTypeCounts(window.from),
        store.distinctSessions(window.from),
      ]);
      const types = eventTypesOf(daily.map((row) => row.eventType));
      const byType = new Map<string, number>(types.map((type) => [type, 0]));
      const byDay = new Map<string, Map<string, number>>();
      for (const row of daily) {
        byType.set(row.eventType, (byType.get(row.eventType) ?? 0) + row.events);
        const date = dateOf(row.day);
        const day = byDay.get(date) ?? new Map<string, number>();
        day.set(row.eventType, (day.get(row.eventType) ?? 0) + row.events);
        byDay.set(date, day);
      }
      const lastDay = Math.max(window.to.getTime(), ...daily.map((row) => row.day.getTime()));
      const eventsByDay: DayCount[] = [];
      for (let day = floorTo(window.from.getTime(), DAY_MS); day <= lastDay; day += DAY_MS) {
        const counts = byDay.get(dateOf(new Date(day)));
        const dayTypes = types.map((eventType) => ({ eventType, events: counts?.get(eventType) ?? 0 }));
        eventsByDay.push({ date: dateOf(new Date(day)), events: sum(dayTypes), byType: dayTypes });
      }
      const eventsByType = types.map((eventType) => ({ eventType, events: byType.get(eventType) ?? 0 }));
      const totalEvents = sum(eventsByType);
      const started = byType.get('review_started') ?? 0;
      const completed = byType.get('review_completed') ?? 0;
      const errors = byType.get('error_occurred') ?? 0;
      return {
        window,
        totalEvents,
        eventsByType,
        eventsByDay,
        distinctSessions,
        reviews: { started, completed, completionRate: ratio(completed, started) },
        errors: { count: errors, rate: ratio(errors, totalEvents) },
      };
    },

    /**
     * LLM queries, responses, failures, tokens, cost and latency per model and in total.
     * @throws AppError BAD_REQUEST naming `days` unless it is a whole number from 1 to 365.
     */
    async llm(days: number): Promise<LlmAnalytics> {
      const window = windowOf(days, now());
      const [totals, histograms] = await Promise.all([
        store.llmModelTotals(window.from),
        store.histograms(window.from, ['llm_latency_ms']),
      ]);
      const latencyOf = new Map(histograms.map((histogram) => [histogram.dimension, histogram.bins]));
      const models = totals
        .map((row): LlmModelAnalytics => {
          const price = priceOf(row.model, prices);
          return {
            model: row.model,
            priced: price !== undefined,
            ...llmUsageOf([row], price === undefined ? () => undefined : () => price, [
              latencyOf.get(row.model) ?? [],
            ]),
          };
        })
        .sort(
          (a, b) => b.queries + b.responses - (a.queries + a.responses) || a.model.localeCompare(b.model),
        );
      return {
        window,
        models,
        totals: llmUsageOf(
          totals,
          (model) => priceOf(model, prices),
          histograms.map((histogram) => histogram.bins),
        ),
      };
    },

    /**
     * Review and syntax-analysis durations, events per hour, and the pipeline's lag.
     * @throws AppError BAD_REQUEST naming `days` unless it is a whole number from 1 to 365.
     */
    async performance(days: number): Promise<PerformanceAnalytics> {
      const window = windowOf(days, now());
      const metrics: HistogramMetric[] = [
        'review_duration_ms',
        'syntax_analysis_duration_ms',
        'pipeline_lag_ms',
      ];
      const [hourly, maxLag, histograms] = await Promise.all([
        store.hourlyCounts(window.from),
        store.maxLagMs(window.from),
        store.histograms(window.from, metrics),
      ]);
      const binsOf = (metric: HistogramMetric) =>
        mergeBins(...histograms.filter((histogram) => histogram.metric === metric).map((h) => h.bins));
      const counts = new Map(hourly.map((row) => [row.hour.getTime(), row.events]));
      const lastHour = Math.max(floorTo(window.to.getTime(), HOUR_MS), ...counts.keys());
      const series: HourCount[] = [];
      for (let hour = window.from.getTime(); hour <= lastHour; hour += HOUR_MS) {
        series.push({ hour: new Date(hour), events: counts.get(hour) ?? 0 });
      }
      return {
        window,
        reviewDurationMs: percentilesOf(binsOf('review_duration_ms')),
        syntaxAnalysisDurationMs: percentilesOf(binsOf('syntax_analysis_duration_ms')),
        eventsPerHour: { average: sum(series) / series.length, series },
        pipelineLagMs: { ...percentilesOf(binsOf('pipeline_lag_ms')), max: maxLag },
      };
    },
  };
}

/** The analytics service: `usage`, `llm` and `performance`, each taking `days`. */
export type AnalyticsService = ReturnType<typeof createAnalyticsService>;

/**
 * The window of the last `days` days at `now`.
 * @throws AppError BAD_REQUEST naming `days` unless it is a whole number from 1 to {@link MAX_DAYS}.
 */
export function windowOf(days: number, now: Date): AnalyticsWindow {
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    const message = `must be a whole number from 1 to ${MAX_DAYS}`;
    throw badRequest(`days ${message}, got ${String(days)}`, [{ field: 'days', message }]);
  }
  return { days, from: new Date(floorTo(now.getTime() - days * DAY_MS, HOUR_MS)), to: now };
}

function llmUsageOf(
  rows: readonly LlmModelTotals[],
  priceFor: (model: string) => ModelPrice | undefined,
  latency: ReadonlyArray<ReadonlyArray<{ bin: number; count: number }>>,
): LlmUsage {
  const total = (key: keyof Omit<LlmModelTotals, 'model'>) => rows.reduce((acc, row) => acc + row[key], 0);
  let computedUsd = 0;
  let unpricedResponses = 0;
  for (const row of rows) {
    if (row.uncostedResponses === 0) continue;
    const price = priceFor(row.model);
    if (price === undefined) {
      unpricedResponses += row.uncostedResponses;
      continue;
    }
    computedUsd += costOf(price, {
      prompt: row.uncostedPromptTokens,
      completion: row.uncostedCompletionTokens,
      cached: row.uncostedCachedTokens,
    });
  }
  const reportedUsd = total('reportedCostUsd');
  const responses = total('responses');
  const failures = total('failures');
  return {
    queries: total('queries'),
    responses,
    failures,
    failureRate: ratio(failures, responses),
    tokens: {
      prompt: total('promptTokens'),
      completion: total('completionTokens'),
      cached: total('cachedTokens'),
      reasoning: total('reasoningTokens'),
    },
    cost: {
      usd: reportedUsd + computedUsd,
      reportedUsd,
      computedUsd,
      partial: unpricedResponses > 0,
      unpricedResponses,
    },
    latencyMs: percentilesOf(mergeBins(...latency)),
  };
}

/** The spec's event types in their order, then any other type seen, sorted. */
function eventTypesOf(seen: readonly string[]): string[] {
  const known = new Set<string>(EVENT_TYPES);
  const others = [...new Set(seen.filter((type) => !known.has(type)))].sort();
  return [...EVENT_TYPES, ...others];
}

const ratio = (part: number, whole: number): number | null => (whole === 0 ? null : part / whole);
const sum = (items: ReadonlyArray<{ events: number }>): number =>
  items.reduce((acc, item) => acc + item.events, 0);
const floorTo = (ms: number, unit: number): number => Math.floor(ms / unit) * unit;
const dateOf = (day: Date): string => day.toISOString().slice(0, 10);
