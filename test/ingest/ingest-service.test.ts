import { describe, expect, it } from 'vitest';
import { readQueuedMessage, type QueuedEvent } from '../../src/events/queue-message.js';
import { createIngestService } from '../../src/ingest/ingest-service.js';
import { createMemoryQueue } from '../../src/queue/memory-queue.js';
import { createMemoryIdClaims } from '../../src/ingest/id-claims.js';
import { queueFull } from '../../src/errors.js';
import type { Principal } from '../../src/security/authenticate.js';

const principal: Principal = { keyId: 'key_1', scopes: ['ingest'] };

async function acceptOne(body: string, withText: boolean) {
  const queue = createMemoryQueue({ maxLength: 10 });
  const reported: QueuedEvent[] = [];
  const ingest = createIngestService({
    queue,
    loggingEnabled: true,
    nowIso: () => '2026-11-26T15:00:00.000Z',
    onAccepted: (event) => reported.push(event),
  });
  const accepted = await ingest.accept(JSON.parse(body), principal, withText ? body : undefined);
  const [entry, ...rest] = await queue.read('test', 10, 0);
  await queue.close();
  expect(rest).toEqual([]);
  const queued = JSON.parse(entry!.body) as { v: number; request?: unknown };
  const read = readQueuedMessage(queued);
  // Whatever the form, the worker reads the event the service reported and answered.
  expect(read).toEqual({ ok: true, event: reported[0] });
  expect(reported[0]!.id).toBe(accepted.id);
  return { form: queued.v, text: entry!.body, event: reported[0]! };
}

describe('the ingest service', () => {
  it('queues a body its fast path read as the text it arrived in (a request message)', async () => {
    const body = '{ "session_id": "42", "event_type": "review_started", "payload": {"file_count": 3} }';
    const { form, text, event } = await acceptOne(body, true);
    expect(form).toBe(2);
    expect(text.endsWith(`"request":${body}}`)).toBe(true);
    expect(event).toMatchObject({ sessionId: '42', payload: { file_count: 3 }, apiKeyId: 'key_1' });
  });

  it('refuses a payload key "__proto__" (copies drop it) instead of storing the payload without it', async () => {
    const ingest = createIngestService({ queue: createMemoryQueue({ maxLength: 10 }), loggingEnabled: true });
    const body = '{"session_id":1,"event_type":"review_started","payload":{"__proto__":{"x":1},"a":1}}';
    await expect(ingest.accept(JSON.parse(body), principal, body)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      problems: [{ field: 'payload.__proto__', message: "key '__proto__' is not allowed" }],
    });
  });

  it('queues the event itself (an event message) when no text was given', async () => {
    const withoutText = await acceptOne('{"session_id":1,"event_type":"review_started"}', false);
    expect(withoutText.form).toBe(1);
  });

  it('gives back the id an event claimed when the queue refused it, so another event may take it', async () => {
    const queue = createMemoryQueue({ maxLength: 10 });
    let full = true;
    const ingest = createIngestService({
      queue: {
        ...queue,
        enqueue: async (bodies) => {
          if (full) throw queueFull(1);
          return queue.enqueue(bodies);
        },
      },
      loggingEnabled: true,
      idClaims: createMemoryIdClaims(60_000),
    });
    const body = (fileCount: number) => ({
      session_id: 1,
      event_type: 'review_started',
      event_id: '019ac0de-0000-7000-8000-000000000001',
      payload: { file_count: fileCount },
    });
    await expect(ingest.accept(body(1), principal)).rejects.toMatchObject({ code: 'QUEUE_FULL' });
    full = false;
    await expect(ingest.accept(body(2), principal)).resolves.toEqual({ id: body(2).event_id });
    await expect(ingest.accept(body(3), principal)).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(ingest.accept(body(2), principal)).resolves.toEqual({ id: body(2).event_id });
    await queue.close();
  });

  it('accepts an event naming its own id when the database cannot answer whether it is stored (down, or slow)', async () => {
    for (const compareWithStored of [
      () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
      () => new Promise<never>(() => undefined),
    ]) {
      const queue = createMemoryQueue({ maxLength: 10 });
      const ingest = createIngestService({
        queue,
        loggingEnabled: true,
        storedEvents: { compareWithStored },
      });
      const id = '019ac0de-0000-7000-8000-000000000002';
      await expect(
        ingest.accept({ session_id: 1, event_type: 'review_started', event_id: id }, principal),
      ).resolves.toEqual({ id });
      expect((await queue.stats()).depth).toBe(1);
      await queue.close();
    }
  });
});
