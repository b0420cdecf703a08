import { z } from 'zod';
import { unlessMissing } from '../validation.js';
import { EVENT_TYPES, isEventType } from './event-types.js';
import { INSTANT_RANGE, isStorableInstant } from './storable.js';

export const MAX_SESSION_ID_LENGTH = 128;

/**
 * Why a client's ISO 8601 date-time (already of the right form) cannot be
 * stored as sent, or undefined: it is kept to the millisecond (timestamptz(3))
 * and in UTC, so finer digits that are not zeros, and instants outside years
 * 0001-9999 once the offset is applied (`0000-01-01T00:00:00Z`,
 * `0001-01-01T00:00:00+23:59`), would be changed or refused by the database.
 */
function unstorableTimeProblem(value: string): string | undefined {
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

export const sessionIdNumberSchema = z
  .number()
  .int('must be an integer or a string')
  .min(0, 'must not be negative')
  .max(Number.MAX_SAFE_INTEGER);
export const sessionIdTextSchema = z
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
