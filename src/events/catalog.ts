import { z } from 'zod';
import type { EventType } from './event-types.js';

/**
 * The payload fields each event type may carry. Every field is optional, since
 * the spec's callers send what they know; a field that is present must have the
 * documented type, so analytics can rely on it. Fields not listed are kept as
 * they are. The README's event catalog is written from this table.
 */
const count = z
  .number({ error: 'must be a number' })
  .int('must be a whole number')
  .min(0, 'must not be negative');
const milliseconds = z.number({ error: 'must be a number' }).min(0, 'must not be negative').finite();
const text = (max: number) =>
  z.string({ error: 'must be a string' }).max(max, `must be at most ${max} characters`);
const usd = z.number({ error: 'must be a number' }).min(0, 'must not be negative').finite();

const tokenUsage = {
  prompt_tokens: count.optional(),
  completion_tokens: count.optional(),
  cached_tokens: count.optional(),
  reasoning_tokens: count.optional(),
};

export const PAYLOAD_CATALOG = {
  review_started: {
    code_language: text(64).optional(),
    file_count: count.optional(),
  },
  review_completed: {
    duration_ms: milliseconds.optional(),
    issues_found: count.optional(),
    file_count: count.optional(),
  },
  syntax_analysis_started: {
    code_language: text(64).optional(),
    file_count: count.optional(),
  },
  syntax_analysis_completed: {
    duration_ms: milliseconds.optional(),
    errors_found: count.optional(),
  },
  llm_query_sent: {
    model: text(128).optional(),
    ...tokenUsage,
  },
  llm_feedback_received: {
    model: text(128).optional(),
    ...tokenUsage,
    latency_ms: milliseconds.optional(),
    cost_usd: usd.optional(),
    success: z.boolean({ error: 'must be true or false' }).optional(),
  },
  error_occurred: {
    error_type: text(128).optional(),
    message: text(4096).optional(),
    stage: text(64).optional(),
  },
} satisfies Record<EventType, z.ZodRawShape>;

/** One loose object schema per type: documented fields checked, others passed through. */
export const payloadSchemas: Record<EventType, z.ZodType<Record<string, unknown>>> = {
  review_started: z.looseObject(PAYLOAD_CATALOG.review_started),
  review_completed: z.looseObject(PAYLOAD_CATALOG.review_completed),
  syntax_analysis_started: z.looseObject(PAYLOAD_CATALOG.syntax_analysis_started),
  syntax_analysis_completed: z.looseObject(PAYLOAD_CATALOG.syntax_analysis_completed),
  llm_query_sent: z.looseObject(PAYLOAD_CATALOG.llm_query_sent),
  llm_feedback_received: z.looseObject(PAYLOAD_CATALOG.llm_feedback_received),
  error_occurred: z.looseObject(PAYLOAD_CATALOG.error_occurred),
};

/** Each type's documented fields with their schemas, for {@link payloadFieldsValid}. */
const documentedFields = {} as Record<EventType, ReadonlyArray<{ field: string; schema: z.ZodType }>>;
for (const [type, shape] of Object.entries(PAYLOAD_CATALOG) as Array<[EventType, Record<string, z.ZodType>]>)
  documentedFields[type] = Object.entries(shape).map(([field, schema]) => ({ field, schema }));

/**
 * True when `payloadSchemas[eventType]` would accept `payload`, checking only
 * the documented fields it holds instead of copying the whole object: the
 * common case on the ingest path. On false, parse with the schema for the errors.
 */
export function payloadFieldsValid(eventType: EventType, payload: Record<string, unknown>): boolean {
  for (const { field, schema } of documentedFields[eventType]) {
    const value = payload[field];
    if (value !== undefined && !schema.safeParse(value).success) return false;
  }
  return true;
}
