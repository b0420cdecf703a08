-- CreateTable
CREATE TABLE "analytics_event_counts" (
    "bucket_hour" TIMESTAMPTZ(0) NOT NULL,
    "event_type" VARCHAR(64) NOT NULL,
    "events" BIGINT NOT NULL DEFAULT 0,
    "max_lag_ms" DOUBLE PRECISION NOT NULL DEFAULT 0,

    CONSTRAINT "analytics_event_counts_pkey" PRIMARY KEY ("bucket_hour","event_type")
);

-- CreateTable
CREATE TABLE "analytics_llm_usage" (
    "bucket_hour" TIMESTAMPTZ(0) NOT NULL,
    "model" VARCHAR(128) NOT NULL,
    "queries" BIGINT NOT NULL DEFAULT 0,
    "responses" BIGINT NOT NULL DEFAULT 0,
    "failures" BIGINT NOT NULL DEFAULT 0,
    "prompt_tokens" BIGINT NOT NULL DEFAULT 0,
    "completion_tokens" BIGINT NOT NULL DEFAULT 0,
    "cached_tokens" BIGINT NOT NULL DEFAULT 0,
    "reasoning_tokens" BIGINT NOT NULL DEFAULT 0,
    "reported_cost_usd" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "uncosted_responses" BIGINT NOT NULL DEFAULT 0,
    "uncosted_prompt_tokens" BIGINT NOT NULL DEFAULT 0,
    "uncosted_completion_tokens" BIGINT NOT NULL DEFAULT 0,
    "uncosted_cached_tokens" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "analytics_llm_usage_pkey" PRIMARY KEY ("bucket_hour","model")
);

-- CreateTable
CREATE TABLE "analytics_histogram_hourly" (
    "metric" VARCHAR(32) NOT NULL,
    "bucket_hour" TIMESTAMPTZ(0) NOT NULL,
    "dimension" VARCHAR(128) NOT NULL,
    "bin" SMALLINT NOT NULL,
    "n" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "analytics_histogram_hourly_pkey" PRIMARY KEY ("metric","bucket_hour","dimension","bin")
);

-- CreateTable
CREATE TABLE "analytics_histogram_daily" (
    "metric" VARCHAR(32) NOT NULL,
    "bucket_day" TIMESTAMPTZ(0) NOT NULL,
    "dimension" VARCHAR(128) NOT NULL,
    "bin" SMALLINT NOT NULL,
    "n" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "analytics_histogram_daily_pkey" PRIMARY KEY ("metric","bucket_day","dimension","bin")
);

-- CreateTable
CREATE TABLE "analytics_session_activity" (
    "session_id" VARCHAR(128) NOT NULL,
    "last_seen_hour" TIMESTAMPTZ(0) NOT NULL,
    "previous_seen_hour" TIMESTAMPTZ(0),

    CONSTRAINT "analytics_session_activity_pkey" PRIMARY KEY ("session_id")
);

-- CreateTable
CREATE TABLE "analytics_session_last_seen" (
    "bucket_hour" TIMESTAMPTZ(0) NOT NULL,
    "sessions" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "analytics_session_last_seen_pkey" PRIMARY KEY ("bucket_hour")
);

-- Backfill: the rollups of the events stored before this migration, computed exactly as
-- the worker's insert maintains them (src/store/analytics-store.ts backfillRollupsSql()).
-- The insert lock (src/store/event-store.ts) first lets batches in flight commit, so they
-- are counted here; workers started from now on maintain the rollups themselves.
SELECT pg_advisory_xact_lock(1635083369);

WITH inserted AS NOT MATERIALIZED (SELECT event_type, session_id, payload, received_at, persisted_at FROM audit_events),
facts AS (
  SELECT event_type, session_id,
    date_trunc('hour', received_at, 'UTC') AS hour,
    date_trunc('day', received_at, 'UTC') AS day,
    -- Negative lags (clock skew between the API host and PostgreSQL) count as 0.
    GREATEST(extract(epoch FROM persisted_at - received_at) * 1000, 0)::float8 AS lag_ms
  FROM inserted
),
llm_facts AS (
  SELECT
    date_trunc('hour', received_at, 'UTC') AS hour,
    date_trunc('day', received_at, 'UTC') AS day,
    event_type = 'llm_feedback_received' AS response,
    COALESCE(
      CASE WHEN jsonb_typeof(payload -> 'model') = 'string' THEN NULLIF(left(payload ->> 'model', 128), '') END,
      'unknown'
    ) AS model,
    COALESCE(CASE WHEN jsonb_typeof(payload -> 'prompt_tokens') = 'number' THEN LEAST(GREATEST((payload -> 'prompt_tokens')::numeric, 0), 1000000000)::float8 END, 0)::bigint AS prompt_tokens,
    COALESCE(CASE WHEN jsonb_typeof(payload -> 'completion_tokens') = 'number' THEN LEAST(GREATEST((payload -> 'completion_tokens')::numeric, 0), 1000000000)::float8 END, 0)::bigint AS completion_tokens,
    COALESCE(CASE WHEN jsonb_typeof(payload -> 'cached_tokens') = 'number' THEN LEAST(GREATEST((payload -> 'cached_tokens')::numeric, 0), 1000000000)::float8 END, 0)::bigint AS cached_tokens,
    COALESCE(CASE WHEN jsonb_typeof(payload -> 'reasoning_tokens') = 'number' THEN LEAST(GREATEST((payload -> 'reasoning_tokens')::numeric, 0), 1000000000)::float8 END, 0)::bigint AS reasoning_tokens,
    CASE WHEN jsonb_typeof(payload -> 'cost_usd') = 'number' THEN LEAST(GREATEST((payload -> 'cost_usd')::numeric, 0), 1000000)::float8 END AS cost_usd,
    CASE WHEN jsonb_typeof(payload -> 'latency_ms') = 'number' THEN LEAST(GREATEST((payload -> 'latency_ms')::numeric, 0), 1000000000000)::float8 END AS latency_ms,
    payload -> 'success' = 'false'::jsonb AS failed
  FROM inserted
  WHERE event_type IN ('llm_query_sent', 'llm_feedback_received')
),
duration_facts AS (
  SELECT
    CASE event_type WHEN 'review_completed' THEN 'review_duration_ms' ELSE 'syntax_analysis_duration_ms' END AS metric,
    date_trunc('hour', received_at, 'UTC') AS hour,
    date_trunc('day', received_at, 'UTC') AS day,
    CASE WHEN jsonb_typeof(payload -> 'duration_ms') = 'number' THEN LEAST(GREATEST((payload -> 'duration_ms')::numeric, 0), 1000000000000)::float8 END AS value
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
  SELECT metric, dimension, hour, day, CASE WHEN value >= 0.001 THEN ceil(ln(value) / 0.040005334613699206::float8)::int ELSE -32768 END AS bin FROM samples WHERE value IS NOT NULL
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
  -- A session already at that hour fails the WHERE: no new row version, nothing returned.
  INSERT INTO analytics_session_activity AS t (session_id, last_seen_hour)
  SELECT session_id, max(hour) FROM facts GROUP BY session_id
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
)
SELECT count(*)::int AS inserted FROM inserted;
