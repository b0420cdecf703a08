import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { queuedEvent } from '../support/queued-event.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

const backends: Backend[] = ['embedded', 'postgres+redis'];

for (const backend of backends) {
  describe.skipIf(backend !== 'embedded' && !(postgresAvailable && redisAvailable))(
    `event_id reuse on ${backend}`,
    () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp(backend);
      });
      afterAll(async () => {
        await app?.stop();
      });

      const post = async (body: unknown, key = app.keys.admin) => {
        const response = await fetch(`${app.baseUrl}/log`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': key },
          body: JSON.stringify(body),
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const graphql = async (query: string, variables: Record<string, unknown>) => {
        const response = await fetch(`${app.baseUrl}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
          body: JSON.stringify({ query, variables }),
        });
        return (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
      };
      const stored = (ids: string[]) => app.running.backends.store.countByIds(ids);
      const storedOnce = (id: string) =>
        eventually(async () => ((await stored([id])) === 1 ? true : undefined), 10_000, `event ${id} stored`);
      const event = (id: string, payload: Record<string, unknown> = { file_count: 1 }) => ({
        event_id: id,
        session_id: 'reuse',
        event_type: 'review_started',
        payload,
      });

      it('answers an identical retry as a plain success, storing the event once', async () => {
        const id = randomUUID();
        expect(await post(event(id))).toEqual({ status: 202, body: { status: 'accepted', event_id: id } });
        await storedOnce(id);
        expect(await post(event(id))).toEqual({ status: 202, body: { status: 'accepted', event_id: id } });
        expect(await post([event(id)])).toMatchObject({ status: 202, body: { event_ids: [id] } });
        expect(await stored([id])).toBe(1);
      });

      it('refuses with 409, naming the id, an event reusing a stored id with another body or from another key', async () => {
        const id = randomUUID();
        expect((await post(event(id))).status).toBe(202);
        await storedOnce(id);
        const otherBody = await post(event(id, { file_count: 2 }));
        expect(otherBody.status).toBe(409);
        expect(otherBody.body).toMatchObject({
          error: { code: 'CONFLICT', fields: [{ field: 'event_id' }] },
        });
        expect(JSON.stringify(otherBody.body)).toContain(id);
        // The same body under another key is another event: it may not take over the id.
        expect((await post(event(id), app.keys.ingestOnly)).status).toBe(409);
        const batch = await post([event(randomUUID()), event(id, { file_count: 3 })]);
        expect(batch.status).toBe(409);
        expect(batch.body).toMatchObject({ error: { fields: [{ field: '[1].event_id' }] } });
        const [stillStored] = await app.running.backends.store
          .listEvents({ sessionId: 'reuse', limit: 1000 })
          .then((events) => events.filter((candidate) => candidate.id === id));
        expect(stillStored?.payload).toEqual({ file_count: 1 });
      });

      it('refuses with 409 an event reusing the id of one accepted a moment ago, on another API process too', async () => {
        // Embedded: one process holds the data folder, so both requests go to it.
        const second =
          backend === 'embedded' ? app : await startTestApp(backend, { role: 'serve', sameBackendsAs: app });
        try {
          const id = randomUUID();
          const [first, reused] = await Promise.all([
            post(event(id)),
            fetch(`${second.baseUrl}/log`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-api-key': second.keys.admin },
              body: JSON.stringify(event(id, { file_count: 7 })),
            }),
          ]);
          // One of the two wins the id, whichever arrives first, stored or not yet; never both accepted.
          expect([first.status, reused.status].sort()).toEqual([202, 409]);
          await storedOnce(id);
        } finally {
          if (second !== app) await second.stop();
        }
      });

      it('refuses a batch holding one id twice, naming the repeat, and stores none of it', async () => {
        const id = randomUUID();
        const other = randomUUID();
        const answer = await post([event(other), event(id), event(id)]);
        expect(answer.status).toBe(400);
        expect(answer.body).toMatchObject({
          error: { fields: [{ field: '[2].event_id', message: expect.stringContaining('[1]') }] },
        });
        expect(await stored([id, other])).toBe(0);
      });

      it('answers per item in GraphQL: a repeated or reused id is that item’s problem, the others are accepted', async () => {
        const storedId = randomUUID();
        expect((await post(event(storedId))).status).toBe(202);
        await storedOnce(storedId);
        const fresh = randomUUID();
        const input = (id: string, fileCount: number) => ({
          eventId: id,
          sessionId: 'reuse',
          eventType: 'review_started',
          payload: { file_count: fileCount },
        });
        const result = await graphql(
          'mutation ($inputs: [LogEventInput!]!) { logEvents(inputs: $inputs) { accepted rejected items { index eventId problems { field message } } } }',
          { inputs: [input(fresh, 1), input(fresh, 1), input(storedId, 9)] },
        );
        expect(result.data?.['logEvents']).toMatchObject({
          accepted: 1,
          rejected: 2,
          items: [
            { index: 0, eventId: fresh, problems: null },
            { index: 1, problems: [{ field: 'eventId', message: 'repeats the event_id of item 0' }] },
            { index: 2, problems: [{ field: 'eventId' }] },
          ],
        });
        const single = await graphql(
          'mutation ($input: LogEventInput!) { logEvent(input: $input) { eventId } }',
          { input: input(storedId, 10) },
        );
        expect(single.errors).toEqual([
          expect.objectContaining({ extensions: expect.objectContaining({ code: 'CONFLICT' }) }),
        ]);
      });

      it('sets aside, with the reason, the second of two different events queued with one id before either was stored', async () => {
        const id = randomUUID();
        const first = queuedEvent({ id, sessionId: 'race', payload: { n: 1 } });
        const second = queuedEvent({ id, sessionId: 'race', payload: { n: 2 } });
        const retried = queuedEvent({ id: randomUUID(), sessionId: 'race' });
        const { queue } = app.running.backends;
        const lettersBefore = (await queue.stats()).deadLetters;
        await queue.enqueue([first, second, retried, retried].map((item) => JSON.stringify(item)));
        await storedOnce(id);
        await storedOnce(retried.id);
        await eventually(async () =>
          (await queue.stats()).deadLetters === lettersBefore + 1 ? true : undefined,
        );
        const [letter] = await queue.listDeadLetters(1);
        expect(letter!.reason).toContain(`event_id ${id} already holds a different event`);
        expect(JSON.parse(letter!.body)).toMatchObject({ payload: { n: 2 } });
        const [kept] = (await app.running.backends.store.listEvents({ sessionId: 'race', limit: 10 })).filter(
          (candidate) => candidate.id === id,
        );
        expect(kept?.payload).toEqual({ n: 1 });
      });
    },
  );
}
