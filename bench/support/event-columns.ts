/** The parameters of an `INSERT ... SELECT unnest(...)` of events: one array a column, as the store's insert takes them. */
export interface EventRow {
  id: string;
  eventType: string;
  sessionId: string;
  payload: unknown;
  clientTime: string | null;
  receivedAt: string;
  apiKeyId: string | null;
}

/**
 * id, event_type, session_id, payload, client_time, received_at, api_key_id.
 * Payloads as one JSON array (`$4::jsonb` read with jsonb_array_elements) or as
 * one JSON text an event (`$4::jsonb[]`).
 */
export function eventColumns(events: readonly EventRow[], payloads: 'json array' | 'jsonb[]'): unknown[] {
  return [
    events.map((event) => event.id),
    events.map((event) => event.eventType),
    events.map((event) => event.sessionId),
    payloads === 'json array'
      ? `[${events.map((event) => JSON.stringify(event.payload)).join(',')}]`
      : events.map((event) => JSON.stringify(event.payload)),
    events.map((event) => event.clientTime),
    events.map((event) => event.receivedAt),
    events.map((event) => event.apiKeyId),
  ];
}
