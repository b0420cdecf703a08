import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { payloadFieldsValid, payloadSchemas } from '../../src/events/catalog.js';
import { EVENT_TYPES } from '../../src/events/event-types.js';
import { logRequestSchema, readLogRequestFast } from '../../src/events/log-request.js';
import {
  queuedEventOf,
  eventMessageSchema,
  requestMessageSchema,
  requestMessageText,
  readQueuedEventFast,
  readQueuedMessage,
  type Envelope,
  type QueuedEvent,
} from '../../src/events/queue-message.js';

// Values near the rules' edges, so both sides of every check are drawn often.
const sessionIds = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 1.5, -0, Number.NaN),
  fc.string({ maxLength: 4 }),
  fc.constantFrom('  ', ' s ', 'x'.repeat(128), ` ${'x'.repeat(128)} `, 'x'.repeat(129)),
  fc.constant(null),
  fc.constant(undefined),
);
const eventTypes = fc.oneof(
  fc.constantFrom(...EVENT_TYPES),
  fc.constantFrom('review', '', 1, null, undefined),
);
const fieldValues = fc.oneof(
  fc.integer({ min: -2, max: 5 }),
  fc.double({ noDefaultInfinity: false }),
  fc.string({ maxLength: 5 }),
  fc.constantFrom('x'.repeat(64), 'x'.repeat(65), 'x'.repeat(129), true, false, null),
  fc.constant(undefined),
);
const payloads = fc.oneof(
  fc.dictionary(
    fc.constantFrom(
      'code_language',
      'file_count',
      'duration_ms',
      'model',
      'prompt_tokens',
      'cost_usd',
      'success',
      'message',
      'stage',
      'custom',
      '__proto__',
    ),
    fieldValues,
    { maxKeys: 4 },
  ),
  fc.constantFrom(null, [], [1], 'text', 3, undefined),
);
const bodies = fc.oneof(
  fc.record(
    {
      session_id: sessionIds,
      event_type: eventTypes,
      payload: payloads,
      event_id: fc.oneof(fc.uuid(), fc.constantFrom('not-a-uuid', 7)),
      timestamp: fc.constantFrom('2026-11-26T15:00:00Z', '2026-11-26T15:00:00+01:00', 'yesterday', 0),
      extra: fc.constant(1),
    },
    { requiredKeys: [] },
  ),
  fc.constantFrom(null, [], 'text', 42, Object.create(null) as object),
);

describe('the fast path of the POST /log body', () => {
  it('vouches only for bodies the schemas accept, and returns what they return', () => {
    fc.assert(
      fc.property(bodies, (input) => {
        // What JSON.parse would hand over (a "__proto__" key stays an own property).
        const body: unknown = input === undefined ? input : JSON.parse(JSON.stringify(input) ?? 'null');
        const fast = readLogRequestFast(body);
        const parsed = logRequestSchema.safeParse(body);
        if (fast !== undefined) {
          expect(parsed.success).toBe(true);
          expect(fast).toEqual(parsed.data);
        }
        if (parsed.success) {
          expect(payloadFieldsValid(parsed.data.event_type, parsed.data.payload)).toBe(
            payloadSchemas[parsed.data.event_type].safeParse(parsed.data.payload).success,
          );
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('takes the common shapes of a valid event', () => {
    const body = JSON.parse(
      '{"session_id":123456,"event_type":"review_started","payload":{"code_language":"python","file_count":12,"repo":"r"}}',
    ) as unknown;
    expect(readLogRequestFast(body)).toEqual(logRequestSchema.parse(body));
    // Refused by both, not trimmed: a stored value is the value sent.
    for (const sessionId of [' s-1', 's-1\n'])
      expect([
        readLogRequestFast({ session_id: sessionId, event_type: 'llm_query_sent' }),
        logRequestSchema.safeParse({ session_id: sessionId, event_type: 'llm_query_sent' }).success,
      ]).toEqual([undefined, false]);
    expect(
      readLogRequestFast({
        session_id: 's-1',
        event_type: 'llm_query_sent',
        event_id: '019ac0de-0000-7000-8000-000000000000',
        timestamp: '2026-11-26T15:00:00Z',
      }),
    ).toEqual({
      session_id: 's-1',
      event_type: 'llm_query_sent',
      payload: {},
      event_id: '019ac0de-0000-7000-8000-000000000000',
      timestamp: '2026-11-26T15:00:00Z',
    });
  });
});

// Each field valid most of the time, so whole entries are often valid and both sides are drawn;
// `undefined` drops the key.
const mostly = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: valid, weight: 5 }, { arbitrary: invalid, weight: 1 });
const times = mostly(
  fc.constantFrom('2026-11-26T15:00:00.000Z', '2026-11-26T15:00:00Z', '2026-11-26T15:00:00+01:00'),
  fc.constantFrom('2026-02-30T15:00:00.000Z', '2026-11-26 15:00:00Z', '', 0, undefined),
);
const queued = fc.oneof(
  fc.record({
    v: mostly(fc.constant(1), fc.constantFrom(2, '1', undefined)),
    id: mostly(fc.uuid(), fc.constantFrom('019AC0DE-0000-7000-8000-000000000000', 'not-a-uuid', 7)),
    eventType: mostly(
      fc.constantFrom(...EVENT_TYPES),
      fc.constantFrom('', 'x'.repeat(64), 'x'.repeat(65), 1),
    ),
    sessionId: mostly(fc.string({ minLength: 1, maxLength: 4 }), sessionIds),
    payload: mostly(fc.dictionary(fc.string({ maxLength: 3 }), fieldValues, { maxKeys: 3 }), payloads),
    clientTime: fc.oneof(fc.constant(null), times),
    receivedAt: times,
    apiKeyId: mostly(
      fc.constantFrom(null, 'key_1', 'x'.repeat(64)),
      fc.constantFrom('x'.repeat(65), 3, undefined),
    ),
    extra: fc.constantFrom(1, undefined),
  }),
  fc.constantFrom(null, [], 'text', 42),
);

/** A queued message read by the schemas alone, as the worker does when the fast path declines. */
function readBySchemas(json: unknown): QueuedEvent | undefined {
  if ((json as { v?: unknown } | null)?.v === 2) {
    const parsed = requestMessageSchema.safeParse(json);
    return parsed.success ? queuedEventOf(parsed.data.request, parsed.data) : undefined;
  }
  const parsed = eventMessageSchema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

// Request bodies valid most of the time (`bodies` above seldom is, to try every rule).
const mostlyValidBodies = fc.record(
  {
    session_id: mostly(
      fc.oneof(fc.integer({ min: 0, max: 1e9 }), fc.constantFrom('s-1', ' 42 ', 'x'.repeat(128))),
      sessionIds,
    ),
    event_type: mostly(fc.constantFrom(...EVENT_TYPES), eventTypes),
    payload: mostly(fc.dictionary(fc.string({ maxLength: 3 }), fieldValues, { maxKeys: 3 }), payloads),
    event_id: mostly(fc.uuid(), fc.constantFrom('not-a-uuid', 7)),
    timestamp: times,
  },
  { requiredKeys: ['session_id', 'event_type'] },
);

// Request messages: a request body in an envelope, each valid most of the time.
const queuedRequests = fc.record({
  v: mostly(fc.constant(2), fc.constantFrom('2', undefined)),
  envelope: fc.record({
    id: mostly(fc.uuid(), fc.constantFrom('not-a-uuid', 7)),
    receivedAt: times,
    apiKeyId: mostly(fc.constantFrom(null, 'key_1', 'x"\\'), fc.constantFrom('x'.repeat(65), 3)),
  }),
  request: mostlyValidBodies,
});

describe('the fast path of a queued event (worker)', () => {
  it('vouches only for entries the schemas accept, and returns what they return', () => {
    let vouched = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          queued,
          queuedRequests.map(({ v, envelope, request }) => ({ v, ...envelope, request })),
        ),
        (input) => {
          const json: unknown = JSON.parse(JSON.stringify(input) ?? 'null');
          const fast = readQueuedEventFast(json);
          const bySchemas = readBySchemas(json);
          if (fast !== undefined) {
            vouched += 1;
            expect(bySchemas).toBeDefined();
            expect(fast).toEqual(bySchemas);
          }
          const read = readQueuedMessage(json);
          expect(read.ok ? read.event : undefined).toEqual(bySchemas);
        },
      ),
      { numRuns: 5000 },
    );
    // The property above is empty unless valid entries are drawn (about a quarter of them).
    expect(vouched).toBeGreaterThan(100);
  });

  it('stores from a request message (the request as it arrived) exactly the event an event message carries', () => {
    let compared = 0;
    fc.assert(
      fc.property(
        mostlyValidBodies,
        fc.uuid(),
        fc.constantFrom(null, 'admin', 'key "1"'),
        (input, id, apiKeyId) => {
          const text = JSON.stringify(input) ?? 'null';
          const request = readLogRequestFast(JSON.parse(text));
          // The API queues a request message only for a body its fast path read.
          if (request === undefined) return;
          compared += 1;
          const envelope: Envelope = { id, receivedAt: '2026-11-26T15:00:00.000Z', apiKeyId };
          const event = queuedEventOf(request, envelope);
          const eventMessage = readQueuedMessage(JSON.parse(JSON.stringify(event)));
          const requestMessage = readQueuedMessage(JSON.parse(requestMessageText(envelope, text)));
          expect(eventMessage).toEqual({ ok: true, event });
          expect(requestMessage).toEqual({ ok: true, event });
        },
      ),
      { numRuns: 3000 },
    );
    expect(compared).toBeGreaterThan(50);
  });

  it('reads a request message whatever the spacing of the request text, as earlier APIs accepted it (trimmed session ids), and names what is wrong in it', () => {
    const envelope: Envelope = {
      id: '019ac0de-0000-7000-8000-000000000000',
      receivedAt: '2026-11-26T15:00:00.000Z',
      apiKeyId: 'admin',
    };
    const spaced =
      '{\n  "session_id" : " 42 ",\n  "event_type": "llm_query_sent",\n  "timestamp": "2026-11-26T16:00:00+01:00"\n}\n';
    expect(readQueuedMessage(JSON.parse(requestMessageText(envelope, spaced)))).toEqual({
      ok: true,
      event: {
        v: 1,
        ...envelope,
        eventType: 'llm_query_sent',
        sessionId: '42',
        payload: {},
        clientTime: '2026-11-26T15:00:00.000Z',
      },
    });
    const broken = requestMessageText(envelope, '{"session_id":-1,"event_type":"review_started"}');
    expect(readQueuedMessage(JSON.parse(broken))).toEqual({
      ok: false,
      problems: expect.stringContaining('request.session_id') as unknown as string,
    });
  });

  it('takes what the API enqueues', () => {
    const entry = {
      v: 1,
      id: '019ac0de-0000-7000-8000-000000000000',
      eventType: 'review_started',
      sessionId: '42',
      payload: { code_language: 'python' },
      clientTime: null,
      receivedAt: '2026-11-26T15:00:00.000Z',
      apiKeyId: 'admin',
    };
    expect(readQueuedEventFast(JSON.parse(JSON.stringify(entry)))).toEqual(entry);
  });
});
