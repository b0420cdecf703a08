/** Rollups against live SQL: do the analytics the API answers from its rollups equal the same totals computed over audit_events? */
import type pg from 'pg';
import { json } from '../case.js';
import type { Client } from '../client.js';

/** Totals from the rollups (through the API) beside the same totals computed live, for one window. */
export async function compareAnalytics(client: Client, sql: pg.Client): Promise<string[]> {
  const lines: string[] = [];
  for (const days of [7, 30]) {
    const usage = json<{ window: { from: string }; total_events: number; distinct_sessions: number }>(
      (await client.request('GET', `/analytics/usage?days=${days}`)).body,
    );
    const llm = json<{ totals: { responses: number; tokens: { prompt: number } } }>(
      (await client.request('GET', `/analytics/llm?days=${days}`)).body,
    );
    const perf = json<{ review_duration_ms: { samples: number; p95: number | null } }>(
      (await client.request('GET', `/analytics/performance?days=${days}`)).body,
    );
    const from = new Date(usage.window.from);
    const live = (
      await sql.query<{
        events: string;
        sessions: string;
        responses: string;
        prompt: string;
        reviews: string;
        review_p95: number;
      }>(
        `SELECT count(*)::text AS events, count(DISTINCT session_id)::text AS sessions,
                count(*) FILTER (WHERE event_type = 'llm_feedback_received')::text AS responses,
                COALESCE(sum((payload ->> 'prompt_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received'), 0)::text AS prompt,
                count(*) FILTER (WHERE event_type = 'review_completed')::text AS reviews,
                percentile_disc(0.95) WITHIN GROUP (ORDER BY (payload ->> 'duration_ms')::float8)
                  FILTER (WHERE event_type = 'review_completed') AS review_p95
           FROM audit_events WHERE received_at >= $1`,
        [from],
      )
    ).rows[0]!;
    const same = (a: number, b: string) => (a === Number(b) ? 'equal' : `DIFFER (${a} vs ${b})`);
    const p95Error =
      perf.review_duration_ms.p95 === null ? NaN : perf.review_duration_ms.p95 / live.review_p95 - 1;
    lines.push(
      `days=${days} (from ${from.toISOString()}): events ${usage.total_events} ${same(usage.total_events, live.events)}; ` +
        `sessions ${usage.distinct_sessions} ${same(usage.distinct_sessions, live.sessions)}; ` +
        `LLM responses ${same(llm.totals.responses, live.responses)}; prompt tokens ${same(llm.totals.tokens.prompt, live.prompt)}; ` +
        `review durations ${same(perf.review_duration_ms.samples, live.reviews)}, p95 ${perf.review_duration_ms.p95} ms vs exact ${live.review_p95} ms ` +
        `(${(p95Error * 100).toFixed(2)} %)`,
    );
  }
  return lines;
}
