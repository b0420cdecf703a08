import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & {
    error?: { code: string; message: string; fields?: Array<{ field: string }> };
  };
}

/** The spec's REST endpoints, as a client sees them; run on the embedded backends and on PostgreSQL + Redis. */
export function restContract(backend: Backend, options: { skip?: boolean } = {}): void {
  describe.skipIf(options.skip === true)(`REST shim on ${backend}`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(backend, { env: { MAX_BODY_BYTES: '4096' } });
    });
    afterAll(async () => {
      await app?.stop();
    });

    const call = async (
      method: string,
      path: string,
      init: { body?: string; key?: string | null; headers?: Record<string, string> } = {},
    ): Promise<Answer> => {
      const headers: Record<string, string> = { ...init.headers };
      if (init.key !== null) headers['x-api-key'] = init.key ?? app.keys.admin;
      if (init.body !== undefined && headers['content-type'] === undefined)
        headers['content-type'] = 'application/json';
      const response = await fetch(`${app.baseUrl}${path}`, { method, headers, body: init.body });
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
    };
    const post = (body: unknown, key?: string | null) =>
      call('POST', '/log', { body: JSON.stringify(body), key });
    const eventsOf = async (sessionId: string, expected: number) =>
      eventually(
        async () => {
          const answer = await call('GET', `/events?session_id=${sessionId}&limit=1000`);
          const events = answer.body['events'] as Array<Record<string, unknown>>;
          return events.length >= expected ? events : undefined;
        },
        15_000,
        `${expected} events of session ${sessionId}`,
      );

    it("accepts the spec's curl body with 202 and the event id, then serves it from GET /events", async () => {
      const session = Math.floor(Math.random() * 1e9);
      const answer = await post({
        session_id: session,
        event_type: 'review_started',
        payload: { code_language: 'python', file_count: 3 },
      });
      expect(answer.status).toBe(202);
      expect(answer.body['status']).toBe('accepted');
      const id = answer.body['event_id'] as string;
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const [event] = await eventsOf(String(session), 1);
      expect(event).toMatchObject({
        id,
        event_type: 'review_started',
        session_id: String(session),
        payload: { code_language: 'python', file_count: 3 },
        client_time: null,
        api_key_id: 'admin',
      });
      expect(Date.parse(event!['persisted_at'] as string)).toBeGreaterThanOrEqual(
        Date.parse(event!['received_at'] as string),
      );
    });

    it('stores an event once however often it is retried with the same event_id', async () => {
      const session = `retry-${randomUUID()}`;
      const body = {
        session_id: session,
        event_type: 'llm_query_sent',
        payload: { model: 'm' },
        event_id: randomUUID(),
      };
      const answers = await Promise.all([post(body), post(body), post(body)]);
      expect(answers.map((answer) => [answer.status, answer.body['event_id']])).toEqual(
        Array.from({ length: 3 }, () => [202, body.event_id]),
      );
      await post({ session_id: session, event_type: 'review_completed', payload: {} });
      const events = await eventsOf(session, 2);
      expect(events.filter((event) => event['id'] === body.event_id)).toHaveLength(1);
    });

    it('keeps payload fields the catalog does not list', async () => {
      const session = `extra-${randomUUID()}`;
      const payload = { model: 'gpt-x', prompt_tokens: 12, team: 'core', tags: ['a'] };
      expect((await post({ session_id: session, event_type: 'llm_query_sent', payload })).status).toBe(202);
      const [event] = await eventsOf(session, 1);
      expect(event!['payload']).toEqual(payload);
    });

    it('keeps the client timestamp beside the received time', async () => {
      const session = `time-${randomUUID()}`;
      await post({
        session_id: session,
        event_type: 'error_occurred',
        payload: {},
        timestamp: '2026-11-01T10:00:00+02:00',
      });
      const [event] = await eventsOf(session, 1);
      expect(event!['client_time']).toBe('2026-11-01T08:00:00.000Z');
      expect(event!['timestamp']).toBe('2026-11-01T08:00:00.000Z');
    });

    it.each([
      ['malformed JSON', '{"session_id": 1,', /Malformed JSON/, undefined],
      ['an empty body', '', /body is empty/, undefined],
      [
        'a missing session_id',
        '{"event_type":"review_started","payload":{}}',
        /session_id is required/,
        'session_id',
      ],
      ['a missing event_type', '{"session_id":1,"payload":{}}', /event_type is required/, 'event_type'],
      [
        'an unknown event type',
        '{"session_id":1,"event_type":"reviewed","payload":{}}',
        /event_type must be one of/,
        'event_type',
      ],
      [
        'a payload that is not an object',
        '{"session_id":1,"event_type":"review_started","payload":[1]}',
        /payload must be a JSON object/,
        'payload',
      ],
      [
        'a session_id of the wrong type',
        '{"session_id":true,"event_type":"review_started"}',
        /session_id must be an integer or a string/,
        'session_id',
      ],
      [
        'an unknown top-level field',
        '{"session_id":1,"event_type":"review_started","user":"x"}',
        /unknown field 'user'/,
        'user',
      ],
      [
        'a NUL character in the payload',
        '{"session_id":1,"event_type":"review_started","payload":{"a":"x\\u0000"}}',
        /payload\.a contains a NUL/,
        'payload.a',
      ],
      [
        'a bad timestamp',
        '{"session_id":1,"event_type":"review_started","timestamp":"yesterday"}',
        /timestamp must be an ISO 8601/,
        'timestamp',
      ],
      [
        'a bad event_id',
        '{"session_id":1,"event_type":"review_started","event_id":"42"}',
        /event_id must be a UUID/,
        'event_id',
      ],
      ['a JSON value that is not an object', '"hello"', /must be a JSON object/, undefined],
      [
        'a catalogued payload field of the wrong type',
        '{"session_id":1,"event_type":"llm_feedback_received","payload":{"model":"m","completion_tokens":"many"}}',
        /payload\.completion_tokens must be a number/,
        'payload.completion_tokens',
      ],
      [
        'a negative duration',
        '{"session_id":1,"event_type":"review_completed","payload":{"duration_ms":-5}}',
        /payload\.duration_ms must not be negative/,
        'payload.duration_ms',
      ],
    ])('answers 400 naming the problem for %s', async (_case, body, message, field) => {
      const answer = await call('POST', '/log', { body });
      expect(answer.status).toBe(400);
      expect(answer.body.error?.code).toBe('BAD_REQUEST');
      expect(answer.body.error?.message).toMatch(message);
      if (field !== undefined)
        expect(answer.body.error?.fields?.map((problem) => problem.field)).toContain(field);
    });

    it('answers 413 naming the limit for a body over it, and 415 for a body that is not JSON', async () => {
      const big = await post({
        session_id: 1,
        event_type: 'review_started',
        payload: { blob: 'x'.repeat(5000) },
      });
      expect(big.status).toBe(413);
      expect(big.body.error?.message).toContain('4096 bytes');
      const form = await call('POST', '/log', { body: 'a=b', headers: { 'content-type': 'text/plain' } });
      expect(form.status).toBe(415);
      expect(form.body.error?.message).toContain('application/json');
    });

    it('answers 401 without a key or with an unknown one, accepts a Bearer token, and 403 without the scope', async () => {
      const body = { session_id: 1, event_type: 'review_started', payload: {} };
      expect((await post(body, null)).status).toBe(401);
      const wrong = await post(body, 'not-a-key');
      expect(wrong.status).toBe(401);
      expect(wrong.body.error?.code).toBe('UNAUTHENTICATED');
      const bearer = await call('POST', '/log', {
        body: JSON.stringify(body),
        key: null,
        headers: { authorization: `Bearer ${app.keys.ingestOnly}` },
      });
      expect(bearer.status).toBe(202);
      const forbidden = await post(body, app.keys.readOnly);
      expect(forbidden.status).toBe(403);
      expect((await call('GET', '/events', { key: app.keys.ingestOnly })).status).toBe(403);
      expect((await call('GET', '/events', { key: null })).status).toBe(401);
      expect((await call('GET', '/events', { key: app.keys.readOnly })).status).toBe(200);
    });

    it('accepts a batch as a JSON array all or nothing, naming the bad item', async () => {
      const session = `batch-${randomUUID()}`;
      const bad = await post([
        { session_id: session, event_type: 'review_started' },
        { session_id: session, event_type: 'nope' },
      ]);
      expect(bad.status).toBe(400);
      expect(bad.body.error?.fields?.map((problem) => problem.field)).toEqual(['[1].event_type']);
      const good = await post([
        { session_id: session, event_type: 'review_started' },
        { session_id: session, event_type: 'review_completed' },
      ]);
      expect(good.status).toBe(202);
      expect(good.body['event_ids']).toHaveLength(2);
      const events = await eventsOf(session, 2);
      expect(events.map((event) => event['event_type'])).toEqual(['review_completed', 'review_started']);
    });

    it('pages GET /events by limit and page as the spec does, and by cursor, newest first', async () => {
      const session = `pages-${randomUUID()}`;
      const types = [
        'review_started',
        'syntax_analysis_started',
        'syntax_analysis_completed',
        'review_completed',
        'review_started',
      ];
      for (const event_type of types) await post({ session_id: session, event_type, payload: {} });
      const all = await eventsOf(session, 5);
      const ids = all.map((event) => event['id']);
      const page2 = await call('GET', `/events?session_id=${session}&limit=2&page=2`);
      expect((page2.body['events'] as Array<{ id: string }>).map((event) => event.id)).toEqual(
        ids.slice(2, 4),
      );
      const first = await call('GET', `/events?session_id=${session}&limit=2`);
      const cursor = first.body['next_cursor'] as string;
      const next = await call('GET', `/events?session_id=${session}&limit=2&cursor=${cursor}`);
      expect(next.body['events']).toEqual(page2.body['events']);
      const started = await call('GET', `/events?session_id=${session}&event_type=review_started`);
      expect((started.body['events'] as unknown[]).length).toBe(2);
    });

    it.each([
      ['limit=0', 'limit'],
      ['limit=abc', 'limit'],
      ['limit=1001', 'limit'],
      ['page=0', 'page'],
      ['event_type=bogus', 'event_type'],
      ['cursor=abc', 'cursor'],
      ['limit=1000&page=500', 'page'],
      ['cursor=bm90LWEtY3Vyc29y', 'cursor'],
      ['colour=red', 'colour'],
    ])('answers 400 naming the parameter for GET /events?%s', async (query, parameter) => {
      const answer = await call('GET', `/events?${query}`);
      expect(answer.status).toBe(400);
      expect(answer.body.error?.fields?.map((problem) => problem.field)).toContain(parameter);
    });

    it('answers health without a key, and 404/405 for unknown routes and methods', async () => {
      const health = await call('GET', '/health', { key: null });
      expect(health.status).toBe(200);
      expect(health.body['status']).toBe('healthy');
      const ready = await call('GET', '/health/ready', { key: null });
      expect(ready.status).toBe(200);
      expect(ready.body['checks']).toEqual({
        database: { ok: true },
        queue: { ok: true },
        worker: { ok: true },
      });
      expect((await call('GET', '/nowhere')).status).toBe(404);
      const wrongMethod = await call('DELETE', '/log');
      expect(wrongMethod.status).toBe(405);
      expect(wrongMethod.headers.get('allow')).toBe('POST');
    });
  });
}
