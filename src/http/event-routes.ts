import { z } from 'zod';
import { badRequest } from '../errors.js';
import { EVENT_TYPES } from '../events/event-types.js';
import { PAYLOAD_CATALOG } from '../events/catalog.js';
import { logRequestSchema } from '../events/log-request.js';
import { storableText } from '../events/storable.js';
import type { IngestService } from '../ingest/ingest-service.js';
import type { EventQueries } from '../query/event-queries.js';
import { wholeNumberBetween } from '../validation.js';
import {
  errorResponse,
  jsonRequestBody,
  jsonResponse,
  keyedErrors,
  nameSchema,
  parametersOf,
  secured,
} from './openapi-parts.js';
import { parseQuery } from './query-params.js';
import { eventTypeSchema, restEventSchema, toRestEvent } from './rest-event.js';
import type { Route } from './server.js';

/** The most events one `POST /log` may carry. */
const MAX_BATCH = 1000;

const eventsQuerySchema = z.strictObject({
  limit: wholeNumberBetween(1, 1000).default(50),
  page: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be 1 or more')
    .default(1),
  event_type: z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(', ')}` }).optional(),
  session_id: storableText(128).min(1, 'must not be empty').optional(),
  cursor: z
    .string()
    .min(1, 'must not be empty')
    .max(64, 'is not a cursor returned by an earlier page')
    .optional()
    .describe("The previous page's next_cursor; costs the same at any depth (page does not)."),
});

const logRequestComponent = nameSchema(
  'LogRequest',
  logRequestSchema.meta({
    description: `Fields each type's payload may carry (all optional, extra fields kept): ${Object.entries(
      PAYLOAD_CATALOG,
    )
      .map(([type, fields]) => `${type}: ${Object.keys(fields).join(', ')}`)
      .join('; ')}.`,
  }),
  'input',
);

/** What `POST /log` reads: one event, or a batch stored all or nothing (the ingest service parses each). */
const logBodySchema = z.union([logRequestComponent, z.array(logRequestComponent).min(1).max(MAX_BATCH)]);

const acceptedSchema = z.object({
  status: z.literal('accepted'),
  event_id: z.uuid().optional().describe('For one event.'),
  event_ids: z.array(z.uuid()).optional().describe('For a batch, in the order sent.'),
});

const eventsPageSchema = z.object({
  events: z.array(restEventSchema),
  count: z.number().int(),
  limit: z.number().int(),
  page: z.number().int().nullable().describe('null when the page was asked by cursor.'),
  next_cursor: z.string().nullable(),
});

const eventTypesSchema = z.object({
  event_types: z.array(
    z.object({ event_type: eventTypeSchema, count: z.number().int(), last_seen_at: z.iso.datetime() }),
  ),
});

/** The spec's event endpoints, thin: parse, call a service, shape the answer in snake_case. */
export function createEventRoutes(deps: { ingest: IngestService; events: EventQueries }): Route[] {
  return [
    {
      method: 'POST',
      path: '/log',
      scope: 'ingest',
      async handle(context) {
        const { principal } = context;
        const { value: body, text } = await context.readJsonWithText();
        if (Array.isArray(body)) {
          if (body.length === 0 || body.length > MAX_BATCH)
            throw badRequest('A batch must hold 1 to 1000 events.');
          const accepted = await deps.ingest.acceptMany(body, principal!);
          const answer: z.infer<typeof acceptedSchema> = {
            status: 'accepted',
            event_ids: accepted.map((event) => event.id),
          };
          return { status: 202, body: answer };
        }
        const accepted = await deps.ingest.accept(body, principal!, text);
        const answer: z.infer<typeof acceptedSchema> = { status: 'accepted', event_id: accepted.id };
        return { status: 202, body: answer };
      },
    },
    {
      method: 'GET',
      path: '/events',
      scope: 'read',
      async handle({ url }) {
        const { limit, page, event_type, session_id, cursor } = parseQuery(
          eventsQuerySchema,
          url.searchParams,
        );
        const filter = { eventTypes: event_type ? [event_type] : undefined, sessionId: session_id };
        const result =
          cursor === undefined
            ? await deps.events.listPage(filter, limit, page)
            : await deps.events.list(filter, limit, cursor, { first: 'limit', after: 'cursor' });
        const answer: z.infer<typeof eventsPageSchema> = {
          events: result.events.map(toRestEvent),
          count: result.events.length,
          limit,
          page: cursor === undefined ? page : null,
          next_cursor: result.hasNextPage ? result.endCursor : null,
        };
        return { status: 200, body: answer };
      },
    },
    {
      method: 'GET',
      path: '/events/types',
      scope: 'read',
      async handle() {
        const types = await deps.events.eventTypes();
        const answer: z.infer<typeof eventTypesSchema> = {
          event_types: types.map((type) => ({
            event_type: type.eventType,
            count: type.count,
            last_seen_at: type.lastSeenAt.toISOString(),
          })),
        };
        return { status: 200, body: answer };
      },
    },
  ];
}

/** The OpenAPI paths of {@link createEventRoutes}, assembled by src/http/openapi.ts. */
export const eventOpenApiPaths = {
  '/log': {
    post: {
      operationId: 'logEvents',
      summary: 'Accept one event (object) or up to 1000 (array, all or nothing)',
      ...secured,
      ...jsonRequestBody(logBodySchema),
      responses: {
        '202': jsonResponse('Queued; stored shortly after.', acceptedSchema),
        '400': errorResponse('Malformed JSON, a missing or invalid field; `fields` names each.'),
        ...keyedErrors('ingest'),
        '413': errorResponse('The body is over the size limit.'),
        '415': errorResponse('The body is not JSON.'),
        '503': errorResponse('The queue is full or unreachable; retry after `Retry-After` seconds.'),
      },
    },
  },
  '/events': {
    get: {
      operationId: 'listEvents',
      summary: 'Events, newest first',
      ...secured,
      parameters: parametersOf(eventsQuerySchema),
      responses: {
        '200': jsonResponse('A page of events', eventsPageSchema),
        '400': errorResponse('A parameter is malformed or out of range; `fields` names it.'),
        ...keyedErrors('read'),
      },
    },
  },
  '/events/types': {
    get: {
      operationId: 'listEventTypes',
      summary: 'Each event type stored, with its count and last-seen time',
      ...secured,
      responses: {
        '200': jsonResponse('Event types', eventTypesSchema),
        ...keyedErrors('read'),
      },
    },
  },
};
