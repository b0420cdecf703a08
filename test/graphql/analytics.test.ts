import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

const camelize = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(camelize);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
      camelize(item),
    ]),
  );
};

const PERCENTILES = 'samples p50 p95 p99';
const USAGE = `usage { window { days from } totalEvents distinctSessions eventsByType { eventType events }
  eventsByDay { date events byType { eventType events } } reviews { started completed completionRate } errors { count rate } }`;
const LLM_STATS = `queries responses failures failureRate tokens { prompt completion cached reasoning }
  cost { usd reportedUsd computedUsd partial unpricedResponses } latencyMs { ${PERCENTILES} }`;
const LLM = `llm { window { days from } models { model priced ${LLM_STATS} } totals { ${LLM_STATS} } }`;
const PERFORMANCE = `performance { window { days from } reviewDurationMs { ${PERCENTILES} } syntaxAnalysisDurationMs { ${PERCENTILES} }
  eventsPerHour { average series { hour events } } pipelineLagMs { ${PERCENTILES} max } }`;

for (const backend of ['embedded', 'postgres+redis'] as Backend[]) {
  describe.skipIf(backend !== 'embedded' && !(postgresAvailable && redisAvailable))(
    `analytics through GraphQL and REST on ${backend}`,
    () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp(backend);
      });
      afterAll(async () => {
        await app?.stop();
      });

      const headers = () => ({ 'x-api-key': app.keys.admin, 'content-type': 'application/json' });
      const rest = async (path: string) => {
        const response = await fetch(`${app.baseUrl}${path}`, { headers: headers() });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const graphql = async (query: string) => {
        const response = await fetch(`${app.baseUrl}/graphql`, {
          method: 'POST',
          headers: headers(),
          body: JSON.stringify({ query }),
        });
        return (await response.json()) as {
          data?: { analytics: Record<string, unknown> };
          errors?: Array<{ extensions: { code: string; fields?: Array<{ field: string }> } }>;
        };
      };

      it('answers the same as REST, from the same service, with the known values', async () => {
        const session = randomUUID();
        const events = [
          { event_type: 'review_started', payload: {} },
          { event_type: 'review_completed', payload: { duration_ms: 2000 } },
          { event_type: 'llm_query_sent', payload: { model: 'gpt-4o' } },
          {
            event_type: 'llm_feedback_received',
            payload: {
              model: 'gpt-4o',
              prompt_tokens: 1000,
              completion_tokens: 500,
              latency_ms: 400,
              cost_usd: 0.25,
            },
          },
          { event_type: 'error_occurred', payload: { error_type: 'Timeout' } },
        ];
        const posted = await fetch(`${app.baseUrl}/log`, {
          method: 'POST',
          headers: headers(),
          body: JSON.stringify(events.map((event) => ({ session_id: session, ...event }))),
        });
        expect(posted.status).toBe(202);
        await eventually(async () => {
          const usage = await rest('/analytics/usage?days=1');
          return usage.body['total_events'] === events.length ? true : undefined;
        });

        const answer = await graphql(`{ analytics(days: 1) { days ${USAGE} ${LLM} ${PERFORMANCE} } }`);
        expect(answer.errors).toBeUndefined();
        const analytics = answer.data!.analytics;
        for (const section of ['usage', 'llm', 'performance'] as const) {
          const fromRest = camelize((await rest(`/analytics/${section}?days=1`)).body) as Record<
            string,
            unknown
          >;
          const fromGraphql = analytics[section] as Record<string, unknown>;
          // Both read the same rollups; only the window's end ("now") differs between the two calls.
          expect({ ...fromGraphql, window: undefined }).toEqual({ ...fromRest, window: undefined });
        }
        expect(analytics['usage']).toMatchObject({
          totalEvents: 5,
          distinctSessions: 1,
          reviews: { started: 1, completed: 1, completionRate: 1 },
          errors: { count: 1, rate: 0.2 },
        });
        expect(analytics['llm']).toMatchObject({
          totals: {
            queries: 1,
            responses: 1,
            tokens: { prompt: 1000, completion: 500 },
            cost: { usd: 0.25, reportedUsd: 0.25 },
          },
        });
        const review = (analytics['performance'] as { reviewDurationMs: { p50: number; samples: number } })
          .reviewDurationMs;
        expect(review.samples).toBe(1);
        expect(Math.abs(review.p50 - 2000) / 2000).toBeLessThanOrEqual(0.02);
      });

      it('refuses a bad days with BAD_USER_INPUT naming it, and an empty window is zeros', async () => {
        const bad = await graphql('{ analytics(days: 0) { usage { totalEvents } } }');
        expect(bad.errors?.[0]?.extensions).toMatchObject({
          code: 'BAD_USER_INPUT',
          fields: [{ field: 'days' }],
        });
        expect((await rest('/analytics/llm?days=400')).status).toBe(400);
        const empty = await graphql('{ analytics(days: 1) { llm { models { model } totals { queries } } } }');
        expect(empty.errors).toBeUndefined();
      });
    },
  );
}
