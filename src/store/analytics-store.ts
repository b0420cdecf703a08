import { LN_GAMMA, MIN_TRACKED_VALUE, ZERO_BIN, type BinCount } from '../math/histogram.js';
import type { Database } from './database.js';

/**
 * All analytics SQL: the rollup maintenance (folded in after the worker's
 * commits, see {@link createRollupFolder}), and the queries that read the
 * rollups. Analytics read `audit_events` only to fold events not yet counted.
 *
 * Rollups (prisma/schema.prisma documents each table), all keyed by the UTC hour
 * or day of `received_at`:
 * - analytics_event_counts: events per hour and type, with the longest pipeline lag;
 * - analytics_llm_usage: LLM queries, responses, failures, tokens and reported cost per hour and model;
 * - analytics_histogram_hourly / _daily: log-binned durations (src/analytics/histogram.ts);
 * - analytics_session_activity + analytics_session_last_seen: the hour of each session's
 *   latest event, and how many sessions have their latest event in each hour.
 */

/** The histograms kept at write time, each in milliseconds. */
export const HISTOGRAM_METRICS = [
  'review_duration_ms',
  'syntax_analysis_duration_ms',
  'llm_latency_ms',
  'pipeline_lag_ms',
] as const;

/** The name of one histogram kept at write time. */
export type HistogramMetric = (typeof HISTOGRAM_METRICS)[number];

/** The columns of the inserted rows that the rollups read: what the insert must RETURN. */
export const ROLLUP_INPUT_COLUMNS = 'event_type, session_id, payload, received_at, persisted_at';

// Payload numbers are read defensively: a field of the wrong JSON type counts as
// absent and values are clamped, so no payload can make the cast (and with it the
// insert of the audit rows, the product) fail. The ingest catalog already refuses
// such payloads; rows stored before it, or by another writer, may still hold them.
const payloadNumber = (field: string, max: number) =>
  `CASE WHEN jsonb_typeof(payload -> '${field}') = 'number' ` +
  `THEN LEAST(GREATEST((payload -> '${field}')::numeric, 0), ${max})::float8 END`;
/** Token counts over this, per event, are taken as this: far above any real call, far below bigint overflow. */
const MAX_TOKENS = 1e9;
/** Durations over this (ms, ~31 years) are taken as this. */
const MAX_MILLISECONDS = 1e12;
/** A reported `cost_usd` over this is taken as this. */
const MAX_COST_USD = 1e6;

const tokens = (field: string) => `COALESCE(${payloadNumber(field, MAX_TOKENS)}, 0)::bigint`;

// The UTC hour and day of an event, as date_trunc(unit, column, 'UTC') would give them: date_bin is
// arithmetic on the instant, where date_trunc with a zone converts to local time and back per row.
// The fold computes both for every event: a 3,600-event fold took 8-18 % less with date_bin
// (bench/ingest/README.md, session 9). Identical for every instant (2,000,000 random ones between
// 1900 and 2100 compared).
const UTC_ORIGIN = `TIMESTAMPTZ '1970-01-01 00:00:00+00'`;
const utcHourOf = (column: string) => `date_bin('1 hour', ${column}, ${UTC_ORIGIN})`;
const utcDayOf = (column: string) => `date_bin('1 day', ${column}, ${UTC_ORIGIN})`;

// The bin formula of src/analytics/histogram.ts `binOf`, in SQL.
const binOf = (value: string) =>
  `CASE WHEN ${value} >= ${MIN_TRACKED_VALUE} THEN ceil(ln(${value}) / ${LN_GAMMA}::float8)::int ELSE ${ZERO_BIN} END`;

/**
 * The rollup maintenance, as CTEs that read a relation named `inserted` with
 * {@link ROLLUP_INPUT_COLUMNS}. Every rollup is one set-based upsert grouped by its
 * key (so no key occurs twice in one statement), adding to what is stored. Each
 * upsert is atomic per row, so concurrent batches would stay exact too; folds
 * are serialized anyway (the fold lock), which also rules out deadlocks between
 * them upserting the same rollup rows in different orders.
 */
const ROLLUP_CTES = `
facts AS (
  SELECT event_type, session_id,
    ${utcHourOf('received_at')} AS hour,
    ${utcDayOf('received_at')} AS day,
    -- Negative lags (clock skew between the API host and PostgreSQL) count as 0.
    GREATEST(extract(epoch FROM persisted_at - received_at) * 1000, 0)::float8 AS lag_ms
  FROM inserted
),
llm_facts AS (
  SELECT
    ${utcHourOf('received_at')} AS hour,
    ${utcDayOf('received_at')} AS day,
    event_type = 'llm_feedback_received' AS response,
    COALESCE(
      CASE WHEN jsonb_typeof(payload -> 'model') = 'string' THEN NULLIF(left(payload ->> 'model', 128), '') END,
      'unknown'
    ) AS model,
    ${tokens('prompt_tokens')} AS prompt_tokens,
    ${tokens('completion_tokens')} AS completion_tokens,
    ${tokens('cached_tokens')} AS cached_tokens,
    ${tokens('reasoning_tokens')} AS reasoning_tokens,
    ${payloadNumber('cost_usd', MAX_COST_USD)} AS cost_usd,
    ${payloadNumber('latency_ms', MAX_MILLISECONDS)} AS latency_ms,
    payload -> 'success' = 'false'::jsonb AS failed
  FROM inserted
  WHERE event_type IN ('llm_query_sent', 'llm_feedback_received')
),
duration_facts AS (
  SELECT
    CASE event_type WHEN 'review_completed' THEN 'review_duration_ms' ELSE 'syntax_analysis_duration_ms' END AS metric,
    ${utcHourOf('received_at')} AS hour,
    ${utcDayOf('received_at')} AS day,
    ${payloadNumber('duration_ms', MAX_MILLISECONDS)} AS value
  FROM inserted
  WHERE event_type IN ('review_completed', 'syntax_analysis_completed')
),
event_counts AS (
  INSERT INTO analytics_event_counts AS t (bucket_hour, event_type, events, max_lag_ms)
  SELECT hour, event_type, count(*), max(lag_ms) FROM facts GROUP BY hour, event_type
  ON CONFLICT (bucket_hour, event_type) DO UPDATE
  SET events = t.events + excluded.events, max_lag_ms = GREATEST(t.max_lag_ms, excluded.max_lag_ms)
),
llm_usage AS (
  INSERT INTO analytics_llm_usage AS t (
    bucket_hour, model, queries, responses, failures,
    prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, reported_cost_usd,
    uncosted_responses, uncosted_prompt_tokens, uncosted_completion_tokens, uncosted_cached_tokens)
  SELECT hour, model,
    count(*) FILTER (WHERE NOT response),
    count(*) FILTER (WHERE response),
    count(*) FILTER (WHERE response AND failed),
    COALESCE(sum(prompt_tokens) FILTER (WHERE response), 0),
    COALESCE(sum(completion_tokens) FILTER (WHERE response), 0),
    COALESCE(sum(cached_tokens) FILTER (WHERE response), 0),
    COALESCE(sum(reasoning_tokens) FILTER (WHERE response), 0),
    COALESCE(sum(cost_usd) FILTER (WHERE response), 0),
    count(*) FILTER (WHERE response AND cost_usd IS NULL),
    COALESCE(sum(prompt_tokens) FILTER (WHERE response AND cost_usd IS NULL), 0),
    COALESCE(sum(completion_tokens) FILTER (WHERE response AND cost_usd IS NULL), 0),
    COALESCE(sum(cached_tokens) FILTER (WHERE response AND cost_usd IS NULL), 0)
  FROM llm_facts GROUP BY hour, model
  ON CONFLICT (bucket_hour, model) DO UPDATE SET
    queries = t.queries + excluded.queries,
    responses = t.responses + excluded.responses,
    failures = t.failures + excluded.failures,
    prompt_tokens = t.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = t.completion_tokens + excluded.completion_tokens,
    cached_tokens = t.cached_tokens + excluded.cached_tokens,
    reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens,
    reported_cost_usd = t.reported_cost_usd + excluded.reported_cost_usd,
    uncosted_responses = t.uncosted_responses + excluded.uncosted_responses,
    uncosted_prompt_tokens = t.uncosted_prompt_tokens + excluded.uncosted_prompt_tokens,
    uncosted_completion_tokens = t.uncosted_completion_tokens + excluded.uncosted_completion_tokens,
    uncosted_cached_tokens = t.uncosted_cached_tokens + excluded.uncosted_cached_tokens
),
samples AS (
  SELECT metric, '' AS dimension, hour, day, value FROM duration_facts
  UNION ALL
  SELECT 'llm_latency_ms', model, hour, day, latency_ms FROM llm_facts WHERE response
  UNION ALL
  SELECT 'pipeline_lag_ms', '', hour, day, lag_ms FROM facts
),
binned AS (
  SELECT metric, dimension, hour, day, ${binOf('value')} AS bin FROM samples WHERE value IS NOT NULL
),
histogram_hourly AS (
  INSERT INTO analytics_histogram_hourly AS t (metric, bucket_hour, dimension, bin, n)
  SELECT metric, hour, dimension, bin, count(*) FROM binned GROUP BY metric, hour, dimension, bin
  ON CONFLICT (metric, bucket_hour, dimension, bin) DO UPDATE SET n = t.n + excluded.n
),
histogram_daily AS (
  INSERT INTO analytics_histogram_daily AS t (metric, bucket_day, dimension, bin, n)
  SELECT metric, day, dimension, bin, count(*) FROM binned GROUP BY metric, day, dimension, bin
  ON CONFLICT (metric, bucket_day, dimension, bin) DO UPDATE SET n = t.n + excluded.n
),
session_moves AS (
  -- Sessions whose latest hour advances, each with the hour it leaves (NULL for a new session).
  -- Sessions already at that hour, most of a batch's, are left out before the insert: ON CONFLICT's
  -- WHERE would refuse them too, but only after locking each one's row, a write (and WAL record) per
  -- session: without them a fold took 17 % less (bench/ingest/README.md, session 9). Folds are
  -- serialized (the fold lock), so no row moves
  -- between the check and the insert; the WHERE stays for rows written around this fold.
  INSERT INTO analytics_session_activity AS t (session_id, last_seen_hour)
  SELECT latest.session_id, latest.hour
  FROM (SELECT session_id, max(hour) AS hour FROM facts GROUP BY session_id) latest
  WHERE NOT EXISTS (
    SELECT 1 FROM analytics_session_activity seen
    WHERE seen.session_id = latest.session_id AND seen.last_seen_hour >= latest.hour)
  ON CONFLICT (session_id) DO UPDATE
  SET last_seen_hour = excluded.last_seen_hour, previous_seen_hour = t.last_seen_hour
  WHERE t.last_seen_hour < excluded.last_seen_hour
  RETURNING last_seen_hour AS hour, previous_seen_hour AS previous_hour
),
session_last_seen AS (
  -- Each moved session leaves its previous hour and joins its new one.
  INSERT INTO analytics_session_last_seen AS t (bucket_hour, sessions)
  SELECT hour, sum(delta) FROM (
    SELECT hour, 1 AS delta FROM session_moves
    UNION ALL
    SELECT previous_hour, -1 FROM session_moves WHERE previous_hour IS NOT NULL
  ) moves GROUP BY hour
  ON CONFLICT (bucket_hour) DO UPDATE SET sessions = t.sessions + excluded.sessions
)`;

/**
 * Turns `insert` (an `INSERT INTO audit_events … ON CONFLICT (id) DO NOTHING`
 * without RETURNING) into one statement that also adds the rows it inserted to
 * every rollup, and answers `[{ inserted: number }]`. Rows the insert skipped as
 * duplicates are not returned, so a redelivered batch changes no rollup.
 * The insert worked this way before rollups were folded after commit; the
 * benchmarks keep it as a point of comparison.
 */
export function insertWithRollupsSql(insert: string): string {
  return `WITH inserted AS (${insert}\nRETURNING ${ROLLUP_INPUT_COLUMNS}),${ROLLUP_CTES}
SELECT count(*)::int AS inserted FROM inserted`;
}

/**
 * Adds the events after the folded position to every rollup and moves the
 * position, in one statement (one snapshot), at most `$1` positions at a time.
 * Run it in a transaction under the fold lock (createRollupFolder in src/store/analytics-store.ts).
 * Positions become visible in commit order (the event store's insert lock), so
 * every position up to the newest visible one is either stored or never will
 * be: nothing can appear later below it. Answers `[{ folded, caught_up }]`.
 */
export function foldRollupsSql(): string {
  return `WITH stored AS (SELECT max(seq) AS newest FROM audit_events),
bounds AS (
  SELECT f.through_seq AS lo,
    LEAST(COALESCE(stored.newest, f.through_seq), f.through_seq + $1::bigint) AS hi,
    COALESCE(stored.newest, f.through_seq) AS newest
  FROM analytics_folded f, stored WHERE f.id = 1
),
inserted AS (
  SELECT ${ROLLUP_INPUT_COLUMNS} FROM audit_events, bounds WHERE seq > bounds.lo AND seq <= bounds.hi
),${ROLLUP_CTES},
advanced AS (
  UPDATE analytics_folded AS f SET through_seq = bounds.hi FROM bounds WHERE f.id = 1 AND bounds.hi > bounds.lo
)
SELECT (SELECT count(*)::int FROM inserted) AS folded, bool_and(bounds.hi >= bounds.newest) AS caught_up FROM bounds`;
}

/** Serializes folds across every process: two folds must not count the same range. */
const FOLD_LOCK_KEY = 0x666f6c64; // "fold"
/** Positions folded per statement: bounds one transaction's work after a long pause. */
const FOLD_WINDOW = 20_000;
/**
 * Background folds start at most this often: at a high commit rate a fold per
 * commit would add a transaction per batch; spaced, each folds several batches
 * at once. Readers fold what is left first, so answers never lag.
 */
const FOLD_SPACING_MS = 200;

/**
 * Keeps the analytics rollups up to date with the stored events. The insert
 * does not maintain them (that work would sit inside the insert lock, which
 * serializes every worker); instead the events above the folded position are
 * added in bulk: by the worker after each commit, off its insert path, and by
 * every reader of the rollups first, so an answer always counts every event
 * stored before it was asked for.
 */
export function createRollupFolder(db: Database, options: { spacingMs?: number } = {}) {
  const spacingMs = options.spacingMs ?? FOLD_SPACING_MS;
  const foldStatement = foldRollupsSql();
  let running: Promise<void> | undefined;
  let requestedAgain = false;
  /** When the last background fold started: the spacing holds across idle moments too. */
  let lastStartedAt = Number.NEGATIVE_INFINITY;

  /** Folds everything stored so far; resolves when the rollups count it all. */
  async function fold(): Promise<number> {
    let folded = 0;
    for (;;) {
      const [row] = await db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [FOLD_LOCK_KEY]);
        return tx.query<{ folded: number; caught_up: boolean | null }>(foldStatement, [FOLD_WINDOW]);
      });
      folded += row?.folded ?? 0;
      // No row: the position is missing (a database the migrations have not reached).
      if (!row || row.caught_up !== false) return folded;
    }
  }

  return {
    fold,

    /** Folds unless the rollups already count every stored event: one indexed read when they do. */
    async foldIfBehind(): Promise<void> {
      const [state] = await db.query<{ behind: boolean | null }>(
        `SELECT (SELECT max(seq) FROM audit_events) > through_seq AS behind FROM analytics_folded WHERE id = 1`,
      );
      if (state?.behind === true) await fold();
    },

    /**
     * Starts a fold in the background, at most one every {@link FOLD_SPACING_MS}
     * (a request inside the spacing waits for it; requests meanwhile share that
     * fold): the worker calls this after each commit and never waits for it.
     * Failures go to `onError`; the next request, or the next reader, folds what was left.
     */
    request(onError: (error: unknown) => void): void {
      if (running) {
        requestedAgain = true;
        return;
      }
      running = (async () => {
        do {
          // Spaced from the previous fold's start even when nothing was requested during it: a fold
          // takes less than a batch, so the next commit would otherwise always find none running.
          const wait = spacingMs - (Date.now() - lastStartedAt);
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          // Requests until now are served by this fold; those during it need one more.
          requestedAgain = false;
          lastStartedAt = Date.now();
          await fold().catch(onError);
        } while (requestedAgain);
        running = undefined;
      })();
    },

    /** Resolves when no background fold is running (before the database is closed). */
    async idle(): Promise<void> {
      while (running) await running;
    },
  };
}

export type RollupFolder = ReturnType<typeof createRollupFolder>;

/**
 * The same maintenance over every row of `audit_events`, for a migration that
 * creates (or rebuilds) the rollups of events stored before it; the rollup tables
 * must be empty. Answers `[{ inserted: number }]`, the rows it counted.
 */
export function backfillRollupsSql(): string {
  // NOT MATERIALIZED: each rollup scans the table again, rather than spooling every payload to disk.
  return `WITH inserted AS NOT MATERIALIZED (SELECT ${ROLLUP_INPUT_COLUMNS} FROM audit_events),${ROLLUP_CTES}
SELECT count(*)::int AS inserted FROM inserted`;
}

/** Events of one type in one UTC day. */
export interface DailyTypeCount {
  /** UTC midnight starting the day. */
  day: Date;
  eventType: string;
  events: number;
}

/** Events of every type in one UTC hour. */
export interface HourlyCount {
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
export interface MetricHistogram {
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

/**
 * Reads the rollups. Every window starts at `from`, which must be the start of a
 * UTC hour (the rollups' granularity), and runs to the newest data. Each query is
 * an index range scan over at most a few thousand rollup rows for 30 days.
 * The functions throw RangeError for a `from` that is not the start of an hour.
 */
export function createAnalyticsStore(db: Database) {
  // Each read first folds what the rollups do not count yet, so answers include every stored event.
  const rollups = createRollupFolder(db);
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
