import type { BinCount } from '../math/histogram.js';
import type { Database } from './database.js';
import type { RollupFolder } from './rollup-folder.js';

/**
 * The analytics reads: every query reads the rollups (src/store/rollup-sql.ts
 * documents each), after folding in the events they do not count yet, and
 * `audit_events` only through that fold.
 */

/** The name of one histogram the rollups keep (src/store/rollup-sql.ts), each in milliseconds. */
export type HistogramMetric =
  'review_duration_ms' | 'syntax_analysis_duration_ms' | 'llm_latency_ms' | 'pipeline_lag_ms';

/** Events of one type in one UTC day. */
interface DailyTypeCount {
  /** UTC midnight starting the day. */
  day: Date;
  eventType: string;
  events: number;
}

/** Events of every type in one UTC hour. */
interface HourlyCount {
  /** Start of the UTC hour. */
  hour: Date;
  events: number;
}

/** LLM traffic of one model, summed over a window. */
export interface LlmModelTotals {
  model: string;
  queries: number;
  responses: number;
  failures: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  reasoningTokens: number;
  reportedCostUsd: number;
  /** Responses that reported no `cost_usd`, and their tokens, to be priced by the caller. */
  uncostedResponses: number;
  uncostedPromptTokens: number;
  uncostedCompletionTokens: number;
  uncostedCachedTokens: number;
}

/** The bin counts of one metric (and model), summed over a window. */
interface MetricHistogram {
  metric: HistogramMetric;
  /** The model for `llm_latency_ms`, empty otherwise. */
  dimension: string;
  bins: BinCount[];
}

interface LlmRow {
  model: string;
  queries: number;
  responses: number;
  failures: number;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  reasoning_tokens: number;
  reported_cost_usd: number;
  uncosted_responses: number;
  uncosted_prompt_tokens: number;
  uncosted_completion_tokens: number;
  uncosted_cached_tokens: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

interface AnalyticsStoreDeps {
  /** Folded first by every read, so answers include every stored event. */
  rollups: Pick<RollupFolder, 'foldIfBehind'>;
}

/**
 * Reads the rollups. Every window starts at `from`, which must be the start of a
 * UTC hour (the rollups' granularity), and runs to the newest data. Each query is
 * an index range scan over at most a few thousand rollup rows for 30 days.
 * The functions throw RangeError for a `from` that is not the start of an hour.
 */
export function createAnalyticsStore(db: Database, { rollups }: AnalyticsStoreDeps) {
  const hourStart = (from: Date): Date => {
    if (from.getTime() % HOUR_MS !== 0) {
      throw new RangeError(`window start ${from.toISOString()} is not the start of a UTC hour`);
    }
    return from;
  };

  return {
    /** Events per UTC day and type since `from`; a day starting before `from` counts only its hours from `from`. */
    async dailyTypeCounts(from: Date): Promise<DailyTypeCount[]> {
      await rollups.foldIfBehind();
      const rows = await db.query<{ day: Date; event_type: string; events: number }>(
        `SELECT date_trunc('day', bucket_hour, 'UTC') AS day, event_type, sum(events)::float8 AS events
         FROM analytics_event_counts WHERE bucket_hour >= $1
         GROUP BY 1, 2 ORDER BY 1, 2`,
        [hourStart(from)],
      );
      return rows.map((row) => ({ day: row.day, eventType: row.event_type, events: row.events }));
    },

    /** Events per UTC hour since `from`, hours without events left out; oldest first. */
    async hourlyCounts(from: Date): Promise<HourlyCount[]> {
      await rollups.foldIfBehind();
      const rows = await db.query<{ hour: Date; events: number }>(
        `SELECT bucket_hour AS hour, sum(events)::float8 AS events
         FROM analytics_event_counts WHERE bucket_hour >= $1
         GROUP BY 1 ORDER BY 1`,
        [hourStart(from)],
      );
      return rows;
    },

    /** The longest received → persisted delay (ms) of the events since `from`; null without events. */
    async maxLagMs(from: Date): Promise<number | null> {
      await rollups.foldIfBehind();
      const rows = await db.query<{ max_lag_ms: number | null }>(
        'SELECT max(max_lag_ms) AS max_lag_ms FROM analytics_event_counts WHERE bucket_hour >= $1',
        [hourStart(from)],
      );
      return rows[0]?.max_lag_ms ?? null;
    },

    /**
     * Distinct sessions with an event since `from`, exactly: every session is counted
     * in the hour of its latest event, and a session has an event since `from` if and
     * only if its latest one is.
     */
    async distinctSessions(from: Date): Promise<number> {
      await rollups.foldIfBehind();
      const rows = await db.query<{ sessions: number }>(
        'SELECT COALESCE(sum(sessions), 0)::float8 AS sessions FROM analytics_session_last_seen WHERE bucket_hour >= $1',
        [hourStart(from)],
      );
      return rows[0]?.sessions ?? 0;
    },

    /** LLM traffic per model since `from`. */
    async llmModelTotals(from: Date): Promise<LlmModelTotals[]> {
      await rollups.foldIfBehind();
      const rows = await db.query<LlmRow>(
        `SELECT model,
           sum(queries)::float8 AS queries, sum(responses)::float8 AS responses, sum(failures)::float8 AS failures,
           sum(prompt_tokens)::float8 AS prompt_tokens, sum(completion_tokens)::float8 AS completion_tokens,
           sum(cached_tokens)::float8 AS cached_tokens, sum(reasoning_tokens)::float8 AS reasoning_tokens,
           sum(reported_cost_usd)::float8 AS reported_cost_usd,
           sum(uncosted_responses)::float8 AS uncosted_responses,
           sum(uncosted_prompt_tokens)::float8 AS uncosted_prompt_tokens,
           sum(uncosted_completion_tokens)::float8 AS uncosted_completion_tokens,
           sum(uncosted_cached_tokens)::float8 AS uncosted_cached_tokens
         FROM analytics_llm_usage WHERE bucket_hour >= $1
         GROUP BY model ORDER BY model`,
        [hourStart(from)],
      );
      return rows.map((row) => ({
        model: row.model,
        queries: row.queries,
        responses: row.responses,
        failures: row.failures,
        promptTokens: row.prompt_tokens,
        completionTokens: row.completion_tokens,
        cachedTokens: row.cached_tokens,
        reasoningTokens: row.reasoning_tokens,
        reportedCostUsd: row.reported_cost_usd,
        uncostedResponses: row.uncosted_responses,
        uncostedPromptTokens: row.uncosted_prompt_tokens,
        uncostedCompletionTokens: row.uncosted_completion_tokens,
        uncostedCachedTokens: row.uncosted_cached_tokens,
      }));
    },

    /**
     * The histograms of `metrics` since `from`, one per metric and dimension. The
     * hours of the window's first, partial UTC day come from the hourly table and
     * every later day from the daily one, so a 30-day window reads ~30 buckets.
     */
    async histograms(from: Date, metrics: readonly HistogramMetric[]): Promise<MetricHistogram[]> {
      await rollups.foldIfBehind();
      const start = hourStart(from);
      const firstWholeDay = new Date(Math.ceil(start.getTime() / DAY_MS) * DAY_MS);
      const rows = await db.query<{ metric: HistogramMetric; dimension: string; bin: number; n: number }>(
        `SELECT metric, dimension, bin, sum(n)::float8 AS n FROM (
           SELECT metric, dimension, bin, n FROM analytics_histogram_hourly
           WHERE metric = ANY($1::text[]) AND bucket_hour >= $2 AND bucket_hour < $3
           UNION ALL
           SELECT metric, dimension, bin, n FROM analytics_histogram_daily
           WHERE metric = ANY($1::text[]) AND bucket_day >= $3
         ) bins
         GROUP BY metric, dimension, bin ORDER BY metric, dimension, bin`,
        [[...metrics], start, firstWholeDay],
      );
      const byKey = new Map<string, MetricHistogram>();
      for (const row of rows) {
        const key = `${row.metric}\u0000${row.dimension}`;
        let histogram = byKey.get(key);
        if (!histogram) {
          histogram = { metric: row.metric, dimension: row.dimension, bins: [] };
          byKey.set(key, histogram);
        }
        histogram.bins.push({ bin: row.bin, count: row.n });
      }
      return [...byKey.values()];
    },
  };
}

export type AnalyticsStore = ReturnType<typeof createAnalyticsStore>;
