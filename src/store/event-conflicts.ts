import { canonicalize } from '../integrity/canonical.js';
import { leafTime } from '../integrity/leaf.js';
import type { SqlSession } from './database.js';

/**
 * Whether an event reusing a stored event's id is that event again (a retry,
 * a redelivery) or a different one. Event ids are global, not per key: the
 * first event stored under an id keeps it, a later identical one is a no-op,
 * and a different one (another body, or another key) is a conflict, refused at
 * the door (409) or, when both were queued before either was stored, set aside
 * by the worker with the reason. Never silently dropped.
 */
export type IdReuse = 'same' | 'different';

/** What identifies an event's content: everything the caller sent, and whose key sent it. */
export interface EventContent {
  id: string;
  eventType: string;
  sessionId: string;
  payload: Record<string, unknown>;
  clientTime: string | null;
  apiKeyId: string | null;
  /** The payload's canonical JSON, when already computed. */
  payloadJson?: string;
}

interface StoredContentRow {
  id: string;
  event_type: string;
  session_id: string;
  payload: Record<string, unknown>;
  client_time: Date | null;
  api_key_id: string | null;
}

const STORED_CONTENT = `
SELECT id::text AS id, event_type, session_id, payload, client_time, api_key_id
  FROM audit_events WHERE id = ANY($1::uuid[])`;

const clientTimeKey = (value: Date | string | null) => (value === null ? null : leafTime(value));

/** Whether two events' contents are the same event. */
export function sameContent(a: EventContent, b: EventContent): boolean {
  return (
    a.eventType === b.eventType &&
    a.sessionId === b.sessionId &&
    a.apiKeyId === b.apiKeyId &&
    clientTimeKey(a.clientTime) === clientTimeKey(b.clientTime) &&
    (a.payloadJson ?? canonicalize(a.payload)) === (b.payloadJson ?? canonicalize(b.payload))
  );
}

/**
 * How each of `events` relates to the stored event with its id; events whose
 * id is not stored are absent from the answer. An id whose row retention
 * removed cannot be compared and is absent too.
 */
export async function compareWithStored(
  session: Pick<SqlSession, 'query'>,
  events: readonly EventContent[],
): Promise<Map<string, IdReuse>> {
  const answer = new Map<string, IdReuse>();
  if (events.length === 0) return answer;
  const rows = await session.query<StoredContentRow>(STORED_CONTENT, [
    events.map((event) => event.id.toLowerCase()),
  ]);
  const stored = new Map(
    rows.map((row) => [
      row.id.toLowerCase(),
      {
        id: row.id,
        eventType: row.event_type,
        sessionId: row.session_id,
        payload: row.payload,
        clientTime: row.client_time === null ? null : row.client_time.toISOString(),
        apiKeyId: row.api_key_id,
      },
    ]),
  );
  for (const event of events) {
    const id = event.id.toLowerCase();
    const row = stored.get(id);
    if (row) answer.set(id, sameContent(event, row) ? 'same' : 'different');
  }
  return answer;
}
