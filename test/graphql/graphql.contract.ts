import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';

interface GraphQLAnswer<T> {
  status: number;
  data?: T;
  errors?: Array<{ message: string; extensions?: { code?: string; fields?: Array<{ field: string }> } }>;
}

interface EventsPage {
  events: {
    edges: Array<{
      cursor: string;
      node: { id: string; eventType: string; sessionId: string; payload: unknown };
    }>;
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

/** The GraphQL API as a frontend sees it; run on the embedded backends and on PostgreSQL + Redis. */
export function graphqlContract(backend: Backend, options: { skip?: boolean } = {}): void {
  describe.skipIf(options.skip === true)(`GraphQL API on ${backend}`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(backend);
    });
    afterAll(async () => {
      await app?.stop();
    });

    const gql = async <T>(
      query: string,
      variables: Record<string, unknown> = {},
      key: string | null = app.keys.admin,
    ): Promise<GraphQLAnswer<T>> => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (key !== null) headers['x-api-key'] = key;
      const response = await fetch(`${app.baseUrl}/graphql`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, ...((await response.json()) as object) };
    };

    const LOG = 'mutation($input: LogEventInput!) { logEvent(input: $input) { eventId } }';
    const EVENTS = `query($filter: EventFilter, $first: Int!, $after: String) {
      events(filter: $filter, first: $first, after: $after) {
        edges { cursor node { id eventType sessionId payload } }
        pageInfo { hasNextPage endCursor }
      }
    }`;
    const eventsOf = (sessionId: string, expected: number) =>
      eventually(async () => {
        const answer = await gql<EventsPage>(EVENTS, { filter: { sessionId }, first: 100 });
        return (answer.data?.events.edges.length ?? 0) >= expected ? answer.data!.events : undefined;
      }, 15_000);

    it('logs an event with logEvent and reads it back with event(id) and events(filter)', async () => {
      const session = `gql-${randomUUID()}`;
      const logged = await gql<{ logEvent: { eventId: string } }>(LOG, {
        input: {
          sessionId: session,
          eventType: 'llm_query_sent',
          payload: { model: 'gpt-4o', prompt_tokens: 10 },
        },
      });
      expect(logged.errors).toBeUndefined();
      const id = logged.data!.logEvent.eventId;
      const page = await eventsOf(session, 1);
      expect(page.edges[0]!.node).toEqual({
        id,
        eventType: 'llm_query_sent',
        sessionId: session,
        payload: { model: 'gpt-4o', prompt_tokens: 10 },
      });
      const single = await gql<{ event: { id: string; apiKeyId: string; receivedAt: string } | null }>(
        'query($id: ID!) { event(id: $id) { id apiKeyId receivedAt } }',
        { id },
      );
      expect(single.data!.event).toMatchObject({ id, apiKeyId: 'admin' });
      expect(Number.isNaN(Date.parse(single.data!.event!.receivedAt))).toBe(false);
      const missing = await gql<{ event: null }>('query($id: ID!) { event(id: $id) { id } }', {
        id: randomUUID(),
      });
      expect(missing.data!.event).toBeNull();
    });

    it('is idempotent on eventId, like POST /log', async () => {
      const session = `gql-idem-${randomUUID()}`;
      const eventId = randomUUID();
      const input = { sessionId: session, eventType: 'review_started', eventId };
      const answers = await Promise.all([gql(LOG, { input }), gql(LOG, { input })]);
      expect(answers.map((answer) => answer.data)).toEqual([
        { logEvent: { eventId } },
        { logEvent: { eventId } },
      ]);
      await gql(LOG, { input: { sessionId: session, eventType: 'review_completed' } });
      const page = await eventsOf(session, 2);
      expect(page.edges.filter((edge) => edge.node.id === eventId)).toHaveLength(1);
    });

    it('refuses invalid input with BAD_USER_INPUT naming the field in GraphQL terms', async () => {
      const answer = await gql(LOG, {
        input: { sessionId: 'x', eventType: 'llm_feedback_received', payload: { latency_ms: 'slow' } },
      });
      expect(answer.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(answer.errors?.[0]?.extensions?.fields?.map((problem) => problem.field)).toEqual([
        'payload.latency_ms',
      ]);
      const unknownType = await gql(LOG, { input: { sessionId: 'x', eventType: 'nope' } });
      expect(unknownType.status).toBe(400);
      expect(unknownType.errors?.[0]?.message).toMatch(/EventType/);
    });

    it('logs a batch with logEvents, a result per item, accepting the valid ones', async () => {
      const session = `gql-batch-${randomUUID()}`;
      const answer = await gql<{
        logEvents: {
          accepted: number;
          rejected: number;
          items: Array<{ index: number; eventId: string | null; problems: Array<{ field: string }> | null }>;
        };
      }>(
        `mutation($inputs: [LogEventInput!]!) {
          logEvents(inputs: $inputs) { accepted rejected items { index eventId problems { field message } } }
        }`,
        {
          inputs: [
            { sessionId: session, eventType: 'review_started' },
            { sessionId: session, eventType: 'review_completed', payload: { duration_ms: -1 } },
            { sessionId: session, eventType: 'review_completed', payload: { duration_ms: 1200 } },
          ],
        },
      );
      const result = answer.data!.logEvents;
      expect(result).toMatchObject({ accepted: 2, rejected: 1 });
      expect(result.items[1]).toEqual({
        index: 1,
        eventId: null,
        problems: [expect.objectContaining({ field: 'payload.duration_ms' })],
      });
      const page = await eventsOf(session, 2);
      expect(page.edges.map((edge) => edge.node.id).sort()).toEqual(
        [result.items[0]!.eventId, result.items[2]!.eventId].sort(),
      );
    });

    it('pages newest first with cursors and filters by types, time and payload values', async () => {
      const session = `gql-pages-${randomUUID()}`;
      const inputs = Array.from({ length: 6 }, (_, index) => ({
        sessionId: session,
        eventType: index % 3 === 0 ? 'error_occurred' : 'llm_feedback_received',
        payload: { model: index % 2 === 0 ? 'a' : 'b', n: index },
      }));
      for (const input of inputs) await gql(LOG, { input });
      const all = await eventsOf(session, 6);
      expect(all.edges.map((edge) => (edge.node.payload as { n: number }).n)).toEqual([5, 4, 3, 2, 1, 0]);

      const first = await gql<EventsPage>(EVENTS, { filter: { sessionId: session }, first: 4 });
      expect(first.data!.events.pageInfo.hasNextPage).toBe(true);
      const second = await gql<EventsPage>(EVENTS, {
        filter: { sessionId: session },
        first: 4,
        after: first.data!.events.pageInfo.endCursor,
      });
      expect(second.data!.events.edges.map((edge) => (edge.node.payload as { n: number }).n)).toEqual([1, 0]);
      expect(second.data!.events.pageInfo).toEqual({
        hasNextPage: false,
        endCursor: second.data!.events.edges[1]!.cursor,
      });

      const errors = await gql<EventsPage>(EVENTS, {
        filter: { sessionId: session, eventTypes: ['error_occurred'] },
        first: 10,
      });
      expect(errors.data!.events.edges.map((edge) => (edge.node.payload as { n: number }).n)).toEqual([3, 0]);
      const modelB = await gql<EventsPage>(EVENTS, {
        filter: { sessionId: session, payload: [{ path: 'model', value: 'b' }] },
        first: 10,
      });
      expect(modelB.data!.events.edges.map((edge) => (edge.node.payload as { n: number }).n)).toEqual([
        5, 3, 1,
      ]);
      const future = await gql<EventsPage>(EVENTS, {
        filter: { sessionId: session, from: new Date(Date.now() + 3_600_000).toISOString() },
        first: 10,
      });
      expect(future.data!.events.edges).toEqual([]);
      const badCursor = await gql(EVENTS, { first: 1, after: 'garbage' });
      expect(badCursor.errors?.[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        fields: [{ field: 'after' }],
      });
    });

    it('counts event types with their last-seen time', async () => {
      await gql(LOG, { input: { sessionId: 'types', eventType: 'syntax_analysis_started' } });
      const answer = await eventually(async () => {
        const result = await gql<{
          eventTypes: Array<{ eventType: string; count: number; lastSeenAt: string }>;
        }>('{ eventTypes { eventType count lastSeenAt } }');
        return result.data?.eventTypes.some((type) => type.eventType === 'syntax_analysis_started')
          ? result
          : undefined;
      });
      const syntax = answer.data!.eventTypes.find((type) => type.eventType === 'syntax_analysis_started')!;
      expect(syntax.count).toBeGreaterThanOrEqual(1);
      expect(Date.now() - Date.parse(syntax.lastSeenAt)).toBeLessThan(60_000);
    });

    it('answers 401 without a valid key and FORBIDDEN for a key without the scope', async () => {
      const anonymous = await gql('{ eventTypes { count } }', {}, null);
      expect(anonymous.status).toBe(401);
      expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect((await gql('{ eventTypes { count } }', {}, 'wrong-key')).status).toBe(401);
      const reader = await gql(
        LOG,
        { input: { sessionId: 1, eventType: 'review_started' } },
        app.keys.readOnly,
      );
      expect(reader.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      const ingester = await gql('{ eventTypes { count } }', {}, app.keys.ingestOnly);
      expect(ingester.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    });
  });
}
