import { LN_GAMMA, MIN_TRACKED_VALUE, ZERO_BIN } from '../math/histogram.js';

/**
 * The rollup maintenance SQL: the statement that folds stored events into the
 * rollups (run by createRollupFolder in src/store/rollup-folder.ts), and the
 * insert that maintained them before they were folded, which the benchmarks keep.
 *
 * Rollups (prisma/schema.prisma documents each table), all keyed by the UTC hour
 * or day of `received_at`:
 * - analytics_event_counts: events per hour and type, with the longest pipeline lag;
 * - analytics_llm_usage: LLM queries, responses, failures, tokens and reported cost per hour and model;
 * - analytics_histogram_hourly / _daily: log-binned durations (src/math/histogram.ts);
 * - analytics_session_activity + analytics_session_last_seen: the hour of each session's
 *   latest event, and how many sessions have their latest event in each hour.
 */

/** The columns of the inserted rows that the rollups read: what the insert must RETURN. */
const ROLLUP_INPUT_COLUMNS = 'event_type, session_id, payload, received_at, persisted_at';

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
// (bench/ingest/README.md). Identical for every instant (2,000,000 random ones between
// 1900 and 2100 compared).
const UTC_ORIGIN = `TIMESTAMPTZ '1970-01-01 00:00:00+00'`;
const utcHourOf = (column: string) => `date_bin('1 hour', ${column}, ${UTC_ORIGIN})`;
const utcDayOf = (column: string) => `date_bin('1 day', ${column}, ${UTC_ORIGIN})`;

// The bin formula of src/math/histogram.ts `binOf`, in SQL.
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
  -- session: without them a fold took 17 % less (bench/ingest/README.md). Folds are
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
 * Run it in a transaction under the fold lock (createRollupFolder in src/store/rollup-folder.ts).
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
