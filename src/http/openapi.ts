import { EVENT_TYPES } from '../events/event-types.js';
import { PAYLOAD_CATALOG } from '../events/catalog.js';
import { integrityOpenApiPaths } from './integrity-routes.js';
import { errorResponse, jsonRequestBody, objectResponse, secured } from './openapi-parts.js';

const days = {
  name: 'days',
  in: 'query',
  description: 'Window ending now, in days.',
  schema: { type: 'integer', minimum: 1, maximum: 365, default: 7 },
};

const analyticsPath = (summary: string) => ({
  get: {
    summary,
    ...secured,
    parameters: [days],
    responses: {
      '200': objectResponse('Analytics over the window'),
      '400': errorResponse('A parameter is malformed or out of range; `fields` names it.'),
      '401': errorResponse('Missing or unknown API key.'),
      '403': errorResponse("The key lacks the 'read' scope."),
    },
  },
});

/** The REST shim's OpenAPI 3.1 description, served at `GET /openapi.json`. */
export function buildOpenApiDocument(version: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'auditgraph REST API',
      version,
      description:
        'The logging-service v2 endpoints, compatible with its callers. GraphQL at /graphql offers the same and more.',
    },
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: { type: 'http', scheme: 'bearer' },
      },
      schemas: {
        EventType: { type: 'string', enum: [...EVENT_TYPES] },
        LogRequest: {
          type: 'object',
          additionalProperties: false,
          required: ['session_id', 'event_type'],
          properties: {
            session_id: {
              oneOf: [
                { type: 'integer', minimum: 0 },
                { type: 'string', minLength: 1, maxLength: 128 },
              ],
            },
            event_type: { $ref: '#/components/schemas/EventType' },
            payload: {
              type: 'object',
              description: `Fields each type may carry (all optional, extra fields kept): ${Object.entries(
                PAYLOAD_CATALOG,
              )
                .map(([type, fields]) => `${type}: ${Object.keys(fields).join(', ')}`)
                .join('; ')}.`,
            },
            event_id: { type: 'string', format: 'uuid', description: 'Idempotency key.' },
            timestamp: { type: 'string', format: 'date-time', description: 'When it happened, if not now.' },
          },
        },
        Event: {
          type: 'object',
          properties: {
            id: { type: 'string', format: 'uuid' },
            seq: { type: 'string' },
            event_type: { $ref: '#/components/schemas/EventType' },
            session_id: { type: 'string' },
            payload: { type: 'object' },
            timestamp: { type: 'string', format: 'date-time' },
            client_time: { type: ['string', 'null'], format: 'date-time' },
            received_at: { type: 'string', format: 'date-time' },
            persisted_at: { type: 'string', format: 'date-time' },
            api_key_id: { type: ['string', 'null'] },
          },
        },
        Error: {
          type: 'object',
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: { type: 'string' },
                message: { type: 'string' },
                fields: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: { field: { type: 'string' }, message: { type: 'string' } },
                  },
                },
              },
            },
          },
        },
      },
    },
    paths: {
      '/log': {
        post: {
          summary: 'Accept one event (object) or up to 1000 (array, all or nothing)',
          ...secured,
          ...jsonRequestBody({
            oneOf: [
              { $ref: '#/components/schemas/LogRequest' },
              {
                type: 'array',
                minItems: 1,
                maxItems: 1000,
                items: { $ref: '#/components/schemas/LogRequest' },
              },
            ],
          }),
          responses: {
            '202': {
              description: 'Queued; stored shortly after.',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      status: { const: 'accepted' },
                      event_id: { type: 'string', format: 'uuid' },
                      event_ids: { type: 'array', items: { type: 'string', format: 'uuid' } },
                    },
                  },
                },
              },
            },
            '400': errorResponse('Malformed JSON, a missing or invalid field; `fields` names each.'),
            '401': errorResponse('Missing or unknown API key.'),
            '403': errorResponse("The key lacks the 'ingest' scope."),
            '413': errorResponse('The body is over the size limit.'),
            '415': errorResponse('The body is not JSON.'),
            '503': errorResponse('The queue is full or unreachable; retry after `Retry-After` seconds.'),
          },
        },
      },
      '/events': {
        get: {
          summary: 'Events, newest first',
          ...secured,
          parameters: [
            { name: 'event_type', in: 'query', schema: { $ref: '#/components/schemas/EventType' } },
            { name: 'session_id', in: 'query', schema: { type: 'string' } },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
            },
            { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, default: 1 } },
            {
              name: 'cursor',
              in: 'query',
              description: "The previous page's next_cursor; costs the same at any depth (page does not).",
              schema: { type: 'string' },
            },
          ],
          responses: {
            '200': {
              description: 'A page of events',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      events: { type: 'array', items: { $ref: '#/components/schemas/Event' } },
                      count: { type: 'integer' },
                      limit: { type: 'integer' },
                      page: { type: ['integer', 'null'] },
                      next_cursor: { type: ['string', 'null'] },
                    },
                  },
                },
              },
            },
            '400': errorResponse('A parameter is malformed or out of range; `fields` names it.'),
            '401': errorResponse('Missing or unknown API key.'),
            '403': errorResponse("The key lacks the 'read' scope."),
          },
        },
      },
      '/events/types': {
        get: {
          summary: 'Each event type stored, with its count and last-seen time',
          ...secured,
          responses: {
            '200': {
              description: 'Event types',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      event_types: {
                        type: 'array',
                        items: {
                          type: 'object',
                          properties: {
                            event_type: { $ref: '#/components/schemas/EventType' },
                            count: { type: 'integer' },
                            last_seen_at: { type: 'string', format: 'date-time' },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
            '401': errorResponse('Missing or unknown API key.'),
          },
        },
      },
      '/analytics/usage': analyticsPath('Events per type and day, sessions, completion and error rates'),
      '/analytics/llm': analyticsPath('LLM queries, responses, tokens, cost and latency per model'),
      '/analytics/performance': analyticsPath(
        'Review and syntax-analysis durations, events per hour, pipeline lag',
      ),
      ...integrityOpenApiPaths,
      '/dead-letters': {
        get: {
          summary:
            'Events a worker could never store, newest first: each with its id, original_id, failed_at, reason and the queued entry as it was (body)',
          ...secured,
          parameters: [
            {
              name: 'limit',
              in: 'query',
              required: false,
              schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
            },
          ],
          responses: {
            '200': objectResponse('`{ dead_letters, count, total }`'),
            '400': errorResponse('`limit` is malformed or out of range.'),
            '401': errorResponse('Missing or unknown API key.'),
            '403': errorResponse("The key lacks the 'admin' scope."),
          },
        },
      },
      '/dead-letters/replay': {
        post: {
          summary:
            'Put dead letters back in the queue, in the order given, once their cause is fixed (safe to repeat: storing is idempotent on the event id)',
          ...secured,
          ...jsonRequestBody({
            type: 'object',
            required: ['ids'],
            additionalProperties: false,
            properties: {
              ids: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string' } },
            },
          }),
          responses: {
            '200': objectResponse(
              '`{ replayed, missing }`: the ids put back, and those that are not dead letters',
            ),
            '400': errorResponse(
              'The body is not `{"ids": [...]}` with 1 to 1000 ids; `fields` names the problem.',
            ),
            '401': errorResponse('Missing or unknown API key.'),
            '403': errorResponse("The key lacks the 'admin' scope."),
            '503': errorResponse(
              'The queue cannot take them all (QUEUE_FULL, with Retry-After): none was moved.',
            ),
          },
        },
      },
      '/health': { get: { summary: 'Liveness', responses: { '200': { description: 'Alive' } } } },
      '/health/ready': {
        get: {
          summary: 'Readiness: database and queue reachable',
          responses: {
            '200': { description: 'Ready' },
            '503': { description: 'Not ready; `checks` says which part' },
          },
        },
      },
    },
  };
}
