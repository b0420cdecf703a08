import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { queuedEvent } from '../support/queued-event.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

interface DeadLetterList {
  dead_letters: Array<{ id: string; original_id: string; failed_at: string; reason: string; body: string }>;
  count: number;
  total: number;
}

for (const [backend, skip] of [
  ['embedded', false],
  ['postgres+redis', !(postgresAvailable && redisAvailable)],
] as Array<[Backend, boolean]>) {
  describe.skipIf(skip)(`dead letters over REST and GraphQL (${backend})`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(backend);
    });
    afterAll(async () => {
      await app?.stop();
    });

    const list = async (query = '', key = app.keys.admin) => {
      const response = await fetch(`${app.baseUrl}/dead-letters${query}`, { headers: { 'x-api-key': key } });
      return { status: response.status, body: (await response.json()) as DeadLetterList };
    };
    const replay = async (body: unknown, key = app.keys.admin) => {
      const response = await fetch(`${app.baseUrl}/dead-letters/replay`, {
        method: 'POST',
        headers: { 'x-api-key': key, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    const graphql = async (query: string, variables: Record<string, unknown> = {}, key = app.keys.admin) => {
      const response = await fetch(`${app.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'x-api-key': key, 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as {
        data?: Record<string, unknown> | null;
        errors?: Array<{ message: string; extensions?: { code?: string } }>;
      };
    };
    const replayable = () =>
      queuedEvent({ sessionId: `replayed-${randomUUID()}`, payload: { file_count: 2 } });
    const storedIds = (sessionId: string) =>
      eventually(async () => {
        const response = await fetch(`${app.baseUrl}/events?session_id=${sessionId}`, {
          headers: { 'x-api-key': app.keys.admin },
        });
        const page = (await response.json()) as { events: Array<{ id: string }> };
        return page.events.length > 0 ? page.events.map((item) => item.id) : undefined;
      });

    it('lists what a worker set aside, with the reason and the entry as it was', async () => {
      await app.running.backends.queue.enqueue(['not json']);
      const { body } = await eventually(async () => {
        const answer = await list();
        return answer.body.total === 1 ? answer : undefined;
      });
      expect(body.count).toBe(1);
      const [letter] = body.dead_letters;
      expect(letter).toMatchObject({ body: 'not json' });
      expect(letter!.reason).toMatch(/^not JSON/);
      expect(Number.isNaN(Date.parse(letter!.failed_at))).toBe(false);
    });

    it('replays a letter once its cause is fixed: the worker stores the event, and the letter is gone', async () => {
      const event = replayable();
      await app.running.backends.queue.deadLetter(
        { id: '1-1', body: JSON.stringify(event) },
        'set aside by the test',
      );
      const before = await list();
      const letter = before.body.dead_letters.find((item) => item.reason === 'set aside by the test')!;
      expect(before.body.total).toBe(2);

      const answer = await replay({ ids: [letter.id, '9-9'] });
      expect(answer).toEqual({ status: 200, body: { replayed: [letter.id], missing: ['9-9'] } });
      expect(await storedIds(event.sessionId)).toEqual([event.id]);
      const after = await list();
      expect(after.body.total).toBe(1);
      expect(after.body.dead_letters.map((item) => item.id)).not.toContain(letter.id);
    });

    it('lists and replays over GraphQL as over REST, for admin keys only', async () => {
      const event = replayable();
      await app.running.backends.queue.deadLetter(
        { id: '1-2', body: JSON.stringify(event) },
        'set aside for GraphQL',
      );
      const listed = await graphql('{ deadLetters(limit: 5) { total letters { id reason body failedAt } } }');
      const { total, letters } = listed.data!['deadLetters'] as {
        total: number;
        letters: Array<{ id: string; reason: string; body: string; failedAt: string }>;
      };
      const letter = letters.find((item) => item.reason === 'set aside for GraphQL')!;
      expect(total).toBe(letters.length);
      expect(JSON.parse(letter.body)).toEqual(event);
      expect(Number.isNaN(Date.parse(letter.failedAt))).toBe(false);

      const forbidden = await graphql('{ deadLetters { total } }', {}, app.keys.readOnly);
      expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      const tooMany = await graphql('{ deadLetters(limit: 1001) { total } }');
      expect(tooMany.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

      const replayed = await graphql(
        'mutation ($ids: [ID!]!) { replayDeadLetters(ids: $ids) { replayed missing } }',
        { ids: [letter.id, '9-9'] },
      );
      expect(replayed.data).toEqual({ replayDeadLetters: { replayed: [letter.id], missing: ['9-9'] } });
      expect(await storedIds(event.sessionId)).toEqual([event.id]);
      const none = await graphql('mutation { replayDeadLetters(ids: []) { replayed } }');
      expect(none.errors?.[0]?.message).toContain('ids must hold 1 to 1000 ids');
    });

    it('refuses bad requests with 400 naming the problem, and keys without the admin scope with 403', async () => {
      expect((await list('?limit=0')).status).toBe(400);
      const unknownField = await replay({ ids: ['1-1'], all: true });
      expect(unknownField.status).toBe(400);
      expect(JSON.stringify(unknownField.body)).toContain("unknown field 'all'");
      const empty = await replay({ ids: [] });
      expect(empty.status).toBe(400);
      expect(JSON.stringify(empty.body)).toContain('ids must hold 1 to 1000 ids');
      expect((await replay(['1-1'])).status).toBe(400);
      expect((await list('', app.keys.readOnly)).status).toBe(403);
      expect((await replay({ ids: ['1-1'] }, app.keys.ingestOnly)).status).toBe(403);
    });
  });
}
