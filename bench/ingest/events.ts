/** The events the persistence scenarios store, and the stream they are queued in as `POST /log` queues them. */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { EVENT_TYPES } from '../../src/events/event-types.js';
import { requestMessageText, type QueuedEvent } from '../../src/events/queue-message.js';
import { seconds } from './log.js';

const LANGUAGES = ['python', 'typescript', 'go', 'rust'];

/** Events as the worker stores them; {@link fillStream} queues them as `POST /log` does. */
export function makeEvents(count: number): QueuedEvent[] {
  const events: QueuedEvent[] = [];
  const receivedAt = new Date().toISOString();
  for (let i = 0; i < count; i += 1) {
    events.push({
      v: 1,
      id: uuidv7(),
      eventType: EVENT_TYPES[i % EVENT_TYPES.length]!,
      sessionId: String(1 + Math.floor(Math.random() * 100_000)),
      payload: {
        code_language: LANGUAGES[i % LANGUAGES.length],
        file_count: i % 50,
        repo: `github.com/example/repo-${i % 500}`,
        commit: randomBytes(20).toString('hex'),
        user: `user${i % 1000}@example.com`,
      },
      clientTime: null,
      receivedAt,
      apiKeyId: 'admin',
    });
  }
  return events;
}

export async function fillStream(
  redis: Redis,
  stream: string,
  events: readonly QueuedEvent[],
): Promise<number> {
  const started = performance.now();
  const CHUNK = 2000;
  for (let from = 0; from < events.length; from += CHUNK) {
    const pipeline = redis.pipeline();
    // The request text in its envelope (form 2), as `POST /log` queues a body like these.
    for (const event of events.slice(from, from + CHUNK)) {
      const request = {
        session_id: Number(event.sessionId),
        event_type: event.eventType,
        payload: event.payload,
      };
      pipeline.xadd(stream, '*', 'e', requestMessageText(event, JSON.stringify(request)));
    }
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0]!;
  }
  return seconds(started);
}
