import { z } from 'zod';
import { EVENT_TYPES } from '../events/event-types.js';
import type { StoredEvent } from '../events/stored-event.js';
import { nameSchema } from './openapi-parts.js';

/** An event type of the spec (components.schemas.EventType). */
export const eventTypeSchema = nameSchema('EventType', z.enum(EVENT_TYPES));

/** A stored event as the REST shim answers it (the spec's shape, snake_case, ISO 8601 times). */
export const restEventSchema = nameSchema(
  'Event',
  z.object({
    id: z.uuid().describe('The event id, its idempotency key.'),
    seq: z.string().describe('Its position in the log: a decimal int8, as text.'),
    event_type: eventTypeSchema,
    session_id: z.string(),
    payload: z.record(z.string(), z.unknown()),
    timestamp: z.iso.datetime().describe('client_time when the client gave one, else received_at.'),
    client_time: z.iso.datetime().nullable(),
    received_at: z.iso.datetime(),
    persisted_at: z.iso.datetime(),
    api_key_id: z.string().nullable(),
  }),
);

export type RestEvent = z.infer<typeof restEventSchema>;

/** The one shaping of a stored event for REST (events, proofs). */
export function toRestEvent(event: StoredEvent): RestEvent {
  return {
    id: event.id,
    seq: event.seq,
    // Stored types are the spec's: ingest accepts no other.
    event_type: event.eventType as RestEvent['event_type'],
    session_id: event.sessionId,
    payload: event.payload,
    timestamp: (event.clientTime ?? event.receivedAt).toISOString(),
    client_time: event.clientTime?.toISOString() ?? null,
    received_at: event.receivedAt.toISOString(),
    persisted_at: event.persistedAt.toISOString(),
    api_key_id: event.apiKeyId,
  };
}
