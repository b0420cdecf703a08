import { z } from 'zod';
import type { FieldProblem } from '../errors.js';
import { INSTANT_RANGE, isStorableInstant } from '../store/storable.js';

/** The spec's event types (logging-service v2, "Event Types"). */
export const EVENT_TYPES = [
  'review_started',
  'review_completed',
  'syntax_analysis_started',
  'syntax_analysis_completed',
  'llm_query_sent',
  'llm_feedback_received',
  'error_occurred',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export const isEventType = (value: string): value is EventType =>
  (EVENT_TYPES as readonly string[]).includes(value);

const MAX_SESSION_ID_LENGTH = 128;

/** An error message for a field: "is required" when it is absent, `message` otherwise. */
export const unlessMissing =
  (message: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined ? 'is required' : message;

/**
 * Why a client's ISO 8601 date-time (already of the right form) cannot be
 * stored as sent, or undefined: it is kept to the millisecond (timestamptz(3))
 * and in UTC, so finer digits that are not zeros, and instants outside years
 * 0001-9999 once the offset is applied (`0000-01-01T00:00:00Z`,
 * `0001-01-01T00:00:00+23:59`), would be changed or refused by the database.
 */
export function unstorableTimeProblem(value: string): string | undefined {
  const fraction = /\.(\d+)/.exec(value)?.[1];
  if (fraction !== undefined && fraction.length > 3 && !/^0+$/.test(fraction.slice(3)))
    return 'must have at most millisecond precision (3 fractional digits): times are stored to the millisecond';
  if (!isStorableInstant(Date.parse(value))) return `${INSTANT_RANGE} once its offset is applied`;
  return undefined;
}

const clientTimestampSchema = z.iso
  .datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-11-26T15:00:00Z' })
  .superRefine((value, context) => {
    const problem = unstorableTimeProblem(value);
    if (problem !== undefined) context.addIssue({ code: 'custom', message: problem });
  });

const sessionIdNumberSchema = z
  .number()
  .int('must be an integer or a string')
  .min(0, 'must not be negative')
  .max(Number.MAX_SAFE_INTEGER);
const sessionIdTextSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_SESSION_ID_LENGTH, 'must be at most 128 characters');

/** The body of `POST /log`, as the spec defines it, plus the optional idempotency key and client time. */
export const logRequestSchema = z.strictObject(
  {
    session_id: z.union(
      [
        sessionIdNumberSchema,
        sessionIdTextSchema
          // Refused rather than trimmed: a stored value is the value sent.
          .refine((value) => value.trim() === value, 'must not start or end with white space'),
      ],
      { error: unlessMissing('must be an integer or a string') },
    ),
    event_type: z.enum(EVENT_TYPES, {
      error: unlessMissing(`must be one of ${EVENT_TYPES.join(', ')}`),
    }),
    payload: z.record(z.string(), z.unknown(), { error: 'must be a JSON object' }).default({}),
    event_id: z.uuid({ error: 'must be a UUID (it is the idempotency key of the event)' }).optional(),
    timestamp: clientTimestampSchema.optional(),
  },
  { error: unlessMissing('must be a JSON object') },
);

export type LogRequest = z.infer<typeof logRequestSchema>;

const { event_id: eventIdSchema, timestamp: timestampSchema } = logRequestSchema.shape;

/**
 * The common case of {@link logRequestSchema}, without building zod's result:
 * returns what the schema would return when `body` is a plain JSON object whose
 * fields are all present in their simplest valid form, and `undefined` for
 * anything else, valid or not. Callers then parse with the schema, which stays
 * the one definition of the rules and the only source of error messages.
 */
export function readLogRequestFast(body: unknown): LogRequest | undefined {
  if (typeof body !== 'object' || body === null || Object.getPrototypeOf(body) !== Object.prototype) {
    return undefined;
  }
  const fields = body as Record<string, unknown>;
  for (const key in fields) {
    if (
      key !== 'session_id' &&
      key !== 'event_type' &&
      key !== 'payload' &&
      key !== 'event_id' &&
      key !== 'timestamp'
    ) {
      return undefined;
    }
  }
  const sessionId = fields['session_id'];
  if (typeof sessionId === 'string') {
    if (sessionId.length === 0 || sessionId.length > MAX_SESSION_ID_LENGTH || sessionId.trim() !== sessionId)
      return undefined;
  } else if (
    typeof sessionId !== 'number' ||
    !Number.isInteger(sessionId) ||
    sessionId < 0 ||
    sessionId > Number.MAX_SAFE_INTEGER
  ) {
    return undefined;
  }
  const eventType = fields['event_type'];
  if (typeof eventType !== 'string' || !isEventType(eventType)) return undefined;
  let payload = fields['payload'];
  if (payload === undefined) payload = {};
  else if (
    typeof payload !== 'object' ||
    payload === null ||
    Object.getPrototypeOf(payload) !== Object.prototype ||
    // zod's copy of a record drops this key; leave such payloads to it.
    Object.hasOwn(payload, '__proto__')
  ) {
    return undefined;
  }
  const request: LogRequest = {
    session_id: sessionId as string | number,
    event_type: eventType,
    payload: payload as Record<string, unknown>,
  };
  const eventId = fields['event_id'];
  if (eventId !== undefined) {
    if (!eventIdSchema.safeParse(eventId).success) return undefined;
    request.event_id = eventId as string;
  }
  const timestamp = fields['timestamp'];
  if (timestamp !== undefined) {
    if (!timestampSchema.safeParse(timestamp).success) return undefined;
    request.timestamp = timestamp as string;
  }
  return request;
}

/**
 * What travels through the queue from the API to the worker, in one of two
 * forms. Changes are additive only: messages already queued by an older API
 * must still parse, so a worker reads every form an API of its version or an
 * older one writes (upgrade workers before APIs).
 *
 * Form 1: the event, as the worker stores it.
 */
export const queuedEventSchema = z.object({
  v: z.literal(1),
  id: z.uuid(),
  eventType: z.string().min(1).max(64),
  sessionId: z.string().min(1).max(MAX_SESSION_ID_LENGTH),
  payload: z.record(z.string(), z.unknown()),
  clientTime: z.iso.datetime({ offset: true }).nullable(),
  receivedAt: z.iso.datetime({ offset: true }),
  apiKeyId: z.string().max(64).nullable(),
});

export type QueuedEvent = z.infer<typeof queuedEventSchema>;

/** What the API adds to a caller's request: the event's id, when it arrived, and whose key sent it. */
export interface Envelope {
  id: string;
  receivedAt: string;
  apiKeyId: string | null;
}

/**
 * Form 2: the caller's request as it arrived (its JSON text) in an envelope.
 * `POST /log` enqueues a body that {@link readLogRequestFast} vouched for this
 * way: serializing again the object just parsed from that text was the largest
 * single cost of the ingest path. The worker reads it back with the same
 * function and {@link queuedEventOf}, so both forms store the same event.
 */
export const queuedRequestSchema = z.object({
  v: z.literal(2),
  id: queuedEventSchema.shape.id,
  receivedAt: queuedEventSchema.shape.receivedAt,
  apiKeyId: queuedEventSchema.shape.apiKeyId,
  request: logRequestSchema.extend({
    // As APIs of earlier versions accepted requests (session ids trimmed, any ISO 8601 time): what they
    // queued keeps meaning what they answered 202 to. Newer APIs refuse such requests at the door.
    session_id: z.union([sessionIdNumberSchema, z.string().trim().pipe(sessionIdTextSchema)]),
    timestamp: z.iso.datetime({ offset: true }).optional(),
  }),
});

/** The queued event of a valid request; every front door and the worker's reading of form 2 build it here. */
export function queuedEventOf(request: LogRequest, envelope: Envelope): QueuedEvent {
  return {
    v: 1,
    id: envelope.id,
    eventType: request.event_type,
    sessionId: String(request.session_id),
    payload: request.payload,
    clientTime: request.timestamp === undefined ? null : new Date(request.timestamp).toISOString(),
    receivedAt: envelope.receivedAt,
    apiKeyId: envelope.apiKeyId,
  };
}

/**
 * Form 2's text. `requestText` must be the JSON text the request was parsed from
 * (one JSON value, so it embeds as it is); the envelope's values are a UUID, an
 * ISO time and a key id, and only the key id needs escaping.
 */
export function queuedRequestText(envelope: Envelope, requestText: string): string {
  const apiKeyId = envelope.apiKeyId === null ? 'null' : JSON.stringify(envelope.apiKeyId);
  return `{"v":2,"id":"${envelope.id}","receivedAt":"${envelope.receivedAt}","apiKeyId":${apiKeyId},"request":${requestText}}`;
}

// zod's own patterns, so the fast path below accepts exactly what the schema's checks accept.
const UUID_PATTERN = z.regexes.uuid();
const DATETIME_PATTERN = z.regexes.datetime({ offset: true });

/**
 * The common case of {@link queuedEventSchema} (what this service's API
 * enqueues) without zod's copy of every field: the worker reads each queued
 * event once, and zod's parse was a tenth of its CPU. Returns what the schema
 * would return, or `undefined` for anything it does not vouch for, which the
 * caller then parses with the schema (the only source of error messages).
 */
export function readQueuedEventFast(json: unknown): QueuedEvent | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const fields = json as Record<string, unknown>;
  if (fields['v'] === 2) return readQueuedRequestFast(fields);
  if (fields['v'] !== 1) return undefined;
  const envelope = readEnvelopeFast(fields);
  if (envelope === undefined) return undefined;
  const { eventType, sessionId, payload, clientTime } = fields;
  if (typeof eventType !== 'string' || eventType.length === 0 || eventType.length > 64) return undefined;
  if (typeof sessionId !== 'string' || sessionId.length === 0 || sessionId.length > MAX_SESSION_ID_LENGTH)
    return undefined;
  if (
    typeof payload !== 'object' ||
    payload === null ||
    Object.getPrototypeOf(payload) !== Object.prototype ||
    // zod's copy of a record drops this key; leave such payloads to it.
    Object.hasOwn(payload, '__proto__')
  ) {
    return undefined;
  }
  if (clientTime !== null && (typeof clientTime !== 'string' || !DATETIME_PATTERN.test(clientTime)))
    return undefined;
  return {
    v: 1,
    id: envelope.id,
    eventType,
    sessionId,
    payload: payload as Record<string, unknown>,
    clientTime,
    receivedAt: envelope.receivedAt,
    apiKeyId: envelope.apiKeyId,
  };
}

/** The envelope's fields of either form, as the schemas check them, or `undefined`. */
function readEnvelopeFast(fields: Record<string, unknown>): Envelope | undefined {
  const { id, receivedAt, apiKeyId } = fields;
  if (typeof id !== 'string' || !UUID_PATTERN.test(id)) return undefined;
  if (typeof receivedAt !== 'string' || !DATETIME_PATTERN.test(receivedAt)) return undefined;
  if (apiKeyId !== null && (typeof apiKeyId !== 'string' || apiKeyId.length > 64)) return undefined;
  return { id, receivedAt, apiKeyId };
}

/**
 * A queued message (either form) as the event to store, or what is wrong with
 * it: the fast path when it vouches, the schemas otherwise.
 */
export function readQueuedMessage(
  json: unknown,
): { ok: true; event: QueuedEvent } | { ok: false; problems: string } {
  const fast = readQueuedEventFast(json);
  if (fast !== undefined) return { ok: true, event: fast };
  const describe = (error: z.ZodError) =>
    error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
  if (typeof json === 'object' && json !== null && (json as { v?: unknown }).v === 2) {
    const parsed = queuedRequestSchema.safeParse(json);
    return parsed.success
      ? { ok: true, event: queuedEventOf(parsed.data.request, parsed.data) }
      : { ok: false, problems: describe(parsed.error) };
  }
  const parsed = queuedEventSchema.safeParse(json);
  return parsed.success ? { ok: true, event: parsed.data } : { ok: false, problems: describe(parsed.error) };
}

/** Form 2's common case, read as {@link queuedRequestSchema} would, or `undefined`. */
function readQueuedRequestFast(fields: Record<string, unknown>): QueuedEvent | undefined {
  const envelope = readEnvelopeFast(fields);
  if (envelope === undefined) return undefined;
  const request = readLogRequestFast(fields['request']);
  return request === undefined ? undefined : queuedEventOf(request, envelope);
}

/**
 * Flattens zod issues into field problems whose paths a caller can act on.
 * `unknownFieldHint` follows the message of an unknown field (what to do instead).
 */
export function toFieldProblems(error: z.ZodError, unknownFieldHint?: string): FieldProblem[] {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const names = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `'${key}'`).join(', ')}`;
      return {
        field: [...issue.path, ...issue.keys].map(String).join('.') || '(body)',
        message: unknownFieldHint === undefined ? names : `${names}; ${unknownFieldHint}`,
      };
    }
    return { field: issue.path.map(String).join('.') || '(body)', message: issue.message };
  });
}
