import { z } from 'zod';
import type { FieldProblem } from '../errors.js';

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

/** The body of `POST /log`, as the spec defines it, plus the optional idempotency key and client time. */
export const logRequestSchema = z.strictObject(
  {
    session_id: z.union(
      [
        z
          .number()
          .int('must be an integer or a string')
          .min(0, 'must not be negative')
          .max(Number.MAX_SAFE_INTEGER),
        z
          .string()
          .trim()
          .min(1, 'must not be empty')
          .max(MAX_SESSION_ID_LENGTH, 'must be at most 128 characters'),
      ],
      { error: unlessMissing('must be an integer or a string') },
    ),
    event_type: z.enum(EVENT_TYPES, {
      error: unlessMissing(`must be one of ${EVENT_TYPES.join(', ')}`),
    }),
    payload: z.record(z.string(), z.unknown(), { error: 'must be a JSON object' }).default({}),
    event_id: z.uuid({ error: 'must be a UUID (it is the idempotency key of the event)' }).optional(),
    timestamp: z.iso
      .datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-11-26T15:00:00Z' })
      .optional(),
  },
  { error: unlessMissing('must be a JSON object') },
);

export type LogRequest = z.infer<typeof logRequestSchema>;

/**
 * What travels through the queue from the API to the worker. Changes are
 * additive only: messages already queued by an older API must still parse.
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

/** Flattens zod issues into field problems whose paths a caller can act on. */
export function toFieldProblems(error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return {
        field: [...issue.path, ...issue.keys].map(String).join('.') || '(body)',
        message: `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `'${key}'`).join(', ')}; put custom data in payload`,
      };
    }
    return { field: issue.path.map(String).join('.') || '(body)', message: issue.message };
  });
}

const MAX_PAYLOAD_DEPTH = 32;

/**
 * What JSON allows but PostgreSQL's jsonb and text refuse (NUL characters,
 * unpaired surrogates), and nesting too deep to index or render. Caught at the
 * door, these are a 400 for the caller instead of an accepted event that the
 * worker could never store.
 */
export function storabilityProblems(value: unknown, field: string, depth = 0): FieldProblem[] {
  if (typeof value === 'string')
    return unstorableString(value) ? [{ field, message: unstorableMessage }] : [];
  if (value === null || typeof value !== 'object') return [];
  if (depth >= MAX_PAYLOAD_DEPTH)
    return [{ field, message: `nests deeper than ${MAX_PAYLOAD_DEPTH} levels` }];
  const problems: FieldProblem[] = [];
  if (Array.isArray(value)) {
    value.forEach((item, index) =>
      problems.push(...storabilityProblems(item, `${field}.${index}`, depth + 1)),
    );
    return problems;
  }
  for (const [key, item] of Object.entries(value)) {
    const path = `${field}.${key}`;
    if (unstorableString(key)) problems.push({ field: path, message: `key ${unstorableMessage}` });
    problems.push(...storabilityProblems(item, path, depth + 1));
  }
  return problems;
}

const unstorableMessage = 'contains a NUL character or an unpaired surrogate, which cannot be stored';

const unstorableString = (text: string): boolean => text.includes('\u0000') || !text.isWellFormed();
