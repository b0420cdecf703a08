import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueuedEvent } from '../../src/ingest/event.js';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
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
  describe.skipIf(skip)(`dead letters over REST (${backend})`, () => {
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
      const event: QueuedEvent = {
        v: 1,
        id: randomUUID(),
        eventType: 'review_started',
        sessionId: `replayed-${randomUUID()}`,
        payload: { file_count: 2 },
        clientTime: null,
        receivedAt: new Date().toISOString(),
        apiKeyId: 'admin',
      };
      await app.running.backends.queue.deadLetter(
        { id: '1-1', body: JSON.stringify(event) },
        'set aside by the test',
      );
      const before = await list();
      const letter = before.body.dead_letters.find((item) => item.reason === 'set aside by the test')!;
      expect(before.body.total).toBe(2);

      const answer = await replay({ ids: [letter.id, '9-9'] });
      expect(answer).toEqual({ status: 200, body: { replayed: [letter.id], missing: ['9-9'] } });
      const stored = await eventually(async () => {
        const response = await fetch(`${app.baseUrl}/events?session_id=${event.sessionId}`, {
          headers: { 'x-api-key': app.keys.admin },
        });
        const page = (await response.json()) as { events: Array<{ id: string }> };
        return page.events.length > 0 ? page.events : undefined;
      });
      expect(stored.map((item) => item.id)).toEqual([event.id]);
      const after = await list();
      expect(after.body.total).toBe(1);
      expect(after.body.dead_letters.map((item) => item.id)).not.toContain(letter.id);
    });

    it('refuses bad requests with 400 naming the problem, and keys without the admin scope with 403', async () => {
      expect((await list('?limit=0')).status).toBe(400);
      const unknownField = await replay({ ids: ['1-1'], all: true });
      expect(unknownField.status).toBe(400);
      expect(JSON.stringify(unknownField.body)).toContain('unknown field all');
      const empty = await replay({ ids: [] });
      expect(empty.status).toBe(400);
      expect(JSON.stringify(empty.body)).toContain('ids must hold 1 to 1000 ids');
      expect((await replay(['1-1'])).status).toBe(400);
      expect((await list('', app.keys.readOnly)).status).toBe(403);
      expect((await replay({ ids: ['1-1'] }, app.keys.ingestOnly)).status).toBe(403);
    });
  });
}
