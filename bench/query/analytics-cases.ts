/** The analytics cases (rollups through the API beside the same answer computed live) and GET /events/types. */
import type { createAnalyticsService } from '../../src/analytics/analytics-service.js';
import { EVENT_TYPES } from '../../src/events/event-types.js';
import type { createEventQueries } from '../../src/query/event-queries.js';
import { expect, oneStatement, type Case } from './case.js';
import { DAY_MS, HOUR_MS } from './events.js';

/** The window the analytics service uses: from the start of the UTC hour holding now − days. */
export const windowStart = (days: number): Date =>
  new Date(Math.floor((Date.now() - days * DAY_MS) / HOUR_MS) * HOUR_MS);

const LIVE_SQL = {
  usage: [
    `SELECT date_trunc('day', received_at, 'UTC') AS day, event_type, count(*) AS events
       FROM audit_events WHERE received_at >= $1 GROUP BY 1, 2 ORDER BY 1, 2`,
    `SELECT count(DISTINCT session_id) AS sessions FROM audit_events WHERE received_at >= $1`,
  ],
  llm: [
    `SELECT COALESCE(payload ->> 'model', 'unknown') AS model,
            count(*) FILTER (WHERE event_type = 'llm_query_sent') AS queries,
            count(*) FILTER (WHERE event_type = 'llm_feedback_received') AS responses,
            count(*) FILTER (WHERE event_type = 'llm_feedback_received' AND payload -> 'success' = 'false') AS failures,
            sum((payload ->> 'prompt_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received') AS prompt_tokens,
            sum((payload ->> 'completion_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received') AS completion_tokens,
            sum((payload ->> 'cached_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received') AS cached_tokens,
            sum((payload ->> 'reasoning_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received') AS reasoning_tokens,
            sum((payload ->> 'cost_usd')::float8) FILTER (WHERE event_type = 'llm_feedback_received') AS reported_cost_usd,
            percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY (payload ->> 'latency_ms')::float8)
              FILTER (WHERE event_type = 'llm_feedback_received') AS latency_ms
       FROM audit_events
      WHERE received_at >= $1 AND event_type IN ('llm_query_sent', 'llm_feedback_received')
      GROUP BY ROLLUP (1)`,
  ],
  performance: [
    `SELECT event_type, count(payload -> 'duration_ms') AS samples,
            percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY (payload ->> 'duration_ms')::float8) AS duration_ms
       FROM audit_events
      WHERE received_at >= $1 AND event_type IN ('review_completed', 'syntax_analysis_completed')
      GROUP BY 1`,
    `SELECT date_trunc('hour', received_at, 'UTC') AS hour, count(*) AS events
       FROM audit_events WHERE received_at >= $1 GROUP BY 1 ORDER BY 1`,
    `SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM persisted_at - received_at) * 1000) AS lag_ms,
            max(extract(epoch FROM persisted_at - received_at) * 1000) AS max_lag_ms
       FROM audit_events WHERE received_at >= $1`,
  ],
} as const;

export function analyticsCases(context: {
  queries: ReturnType<typeof createEventQueries>;
  analytics: ReturnType<typeof createAnalyticsService>;
}): Case[] {
  const { queries, analytics } = context;
  const cases: Case[] = [];
  for (const days of [7, 30]) {
    for (const name of ['usage', 'llm', 'performance'] as const) {
      const statements = LIVE_SQL[name];
      cases.push({
        id: `analytics-${name}-${days}d`,
        label: `GET /analytics/${name}?days=${days}`,
        targetMs: 100,
        api: () => ({ method: 'GET', path: `/analytics/${name}?days=${days}` }),
        check: (body) =>
          expect((body as { window?: { days?: number } }).window?.days === days, 'window.days'),
        inProcess: () => analytics[name](days),
        sql: {
          label: `live over audit_events: ${
            name === 'usage'
              ? 'count by day×type + count(DISTINCT session)'
              : name === 'llm'
                ? 'jsonb token/cost sums + percentile_cont(latency) by model'
                : 'percentile_cont(durations), count by hour, lag percentiles'
          }`,
          text: statements.map((text) => text.replace(/\s+/g, ' ')).join(';\n'),
          call: () => {
            const from = windowStart(days);
            return { statements: statements.map((text) => ({ text, params: [from] })) };
          },
          slow: true,
        },
      });
    }
  }
  cases.push({
    id: 'event-types',
    label: 'GET /events/types',
    api: () => ({ method: 'GET', path: '/events/types' }),
    check: (body) =>
      expect((body as { event_types?: unknown[] }).event_types?.length === EVENT_TYPES.length, 'seven types'),
    inProcess: () => queries.eventTypes(),
    sql: {
      ...oneStatement(
        'SELECT event_type, count(*), max(received_at) GROUP BY 1',
        'SELECT event_type, count(*), max(received_at) FROM audit_events GROUP BY 1',
      ),
      slow: true,
    },
  });
  return cases;
}
