import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type TestApp } from '../support/app.js';

const RUNS = 5_000;

/** Almost-valid event bodies: right shape, with one field broken or extra. */
const nearlyValidBody = fc.record(
  {
    session_id: fc.oneof(
      fc.integer(),
      fc.string(),
      fc.constant(null),
      fc.double(),
      fc.boolean(),
      fc.object(),
    ),
    event_type: fc.oneof(
      fc.constantFrom('review_started', 'llm_feedback_received', 'error_occurred', 'REVIEW_STARTED', ''),
      fc.string(),
      fc.integer(),
    ),
    payload: fc.oneof(
      fc.object({ maxDepth: 4 }),
      fc.jsonValue(),
      fc.record({ latency_ms: fc.oneof(fc.double(), fc.string(), fc.constant(-1)), model: fc.anything() }),
      fc.dictionary(fc.string(), fc.string({ unit: 'binary' })),
    ),
    event_id: fc.oneof(fc.uuid(), fc.string(), fc.integer()),
    timestamp: fc.oneof(
      fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
      fc.string(),
    ),
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);

/** Whole request bodies: valid JSON of any shape, near-valid events, and text that is not JSON at all. */
const logBody = fc.oneof(
  nearlyValidBody.map((body) => JSON.stringify(body)),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.array(nearlyValidBody, { maxLength: 5 }).map((bodies) => JSON.stringify(bodies)),
  fc.string({ unit: 'binary' }),
  fc.string().map((text) => `{"session_id": 1, "event_type": "review_started", "payload": ${text}}`),
);

/** GraphQL documents and variables: random text, mutated valid operations, wrong variable types. */
const graphqlBody = fc.oneof(
  fc.record({ query: fc.string(), variables: fc.anything() }).map((body) => JSON.stringify(body)),
  fc.record({ input: fc.anything(), sessionId: fc.anything(), eventType: fc.anything() }).map((variables) =>
    JSON.stringify({
      query: 'mutation($input: LogEventInput!) { logEvent(input: $input) { eventId } }',
      variables,
    }),
  ),
  fc.record({ sessionId: fc.anything(), eventType: fc.string(), payload: fc.anything() }).map((input) =>
    JSON.stringify({
      query: 'mutation($input: LogEventInput!) { logEvent(input: $input) { eventId } }',
      variables: { input },
    }),
  ),
  fc.tuple(fc.string(), fc.integer(), fc.string()).map(([path, first, after]) =>
    JSON.stringify({
      query: `{ events(first: ${first}, after: ${JSON.stringify(after)}, filter: { payload: [{ path: ${JSON.stringify(path)}, value: 1 }] }) { nodes { id } } }`,
    }),
  ),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.string({ unit: 'binary' }),
);

/**
 * Thousands of generated malformed requests against `/log` and `/graphql`:
 * never a 5xx, never a crash, and nothing stored but what was accepted.
 */
describe('property: malformed input never breaks the front door', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('embedded', {
      env: { RATE_LIMIT_PER_MINUTE: '10000000', MAX_BODY_BYTES: '65536' },
    });
  });
  afterAll(async () => {
    await app?.stop();
  });

  const send = async (path: string, body: string) => {
    const response = await fetch(`${app.baseUrl}${path}`, {
      method: 'POST',
      headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
      body,
    });
    return { status: response.status, text: await response.text() };
  };

  it(`answers ${RUNS} generated bodies at /log and ${RUNS} at /graphql with 2xx or 4xx, storing only accepted events`, async () => {
    // Ids, not a count: a generated event_id may repeat, and a repeat is stored once by design.
    const accepted = new Set<string>();
    const countAccepted = (status: number, text: string, path: string) => {
      if (path === '/log' && status === 202) {
        const body = JSON.parse(text) as { event_id?: string; event_ids?: string[] };
        for (const id of body.event_ids ?? [body.event_id ?? '']) accepted.add(id);
      }
      if (path === '/graphql' && status === 200) {
        const body = JSON.parse(text) as { data?: { logEvent?: { eventId: string } | null } | null };
        if (body.data?.logEvent?.eventId) accepted.add(body.data.logEvent.eventId);
      }
    };
    for (const [path, arbitrary] of [
      ['/log', logBody],
      ['/graphql', graphqlBody],
    ] as const) {
      await fc.assert(
        fc.asyncProperty(arbitrary, async (body) => {
          const { status, text } = await send(path, body);
          expect(
            status,
            `${path} answered ${status} to ${body.slice(0, 300)}: ${text.slice(0, 300)}`,
          ).toBeLessThan(500);
          if (status >= 400) expect(() => JSON.parse(text), 'error answers are JSON').not.toThrow();
          countAccepted(status, text, path);
        }),
        { numRuns: RUNS },
      );
    }
    expect((await fetch(`${app.baseUrl}/health`)).status).toBe(200);
    const stored = await eventually(async () => {
      if ((await app.running.backends.queue.stats()).depth > 0) return undefined;
      return (
        await app.running.backends.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')
      )[0]!.n;
    }, 60_000);
    expect(stored).toBe(accepted.size);
    expect((await app.running.backends.queue.stats()).deadLetters).toBe(0);
  }, 600_000);
});
