import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { digestSecret } from '../security/authenticate.js';
import { badRequest, unauthenticated } from '../errors.js';
import { EVENT_TYPES } from '../events/event-types.js';
import type { IngestService } from '../ingest/ingest-service.js';
import type { EventQueries } from '../query/event-queries.js';
import type { StoredEvent } from '../events/stored-event.js';
import { buildOpenApiDocument } from './openapi.js';
import { parseQuery } from './query-params.js';
import { storableText } from '../events/storable.js';
import type { Metrics } from '../observability/metrics.js';
import type { Route } from './server.js';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

const eventsQuerySchema = z.strictObject({
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be between 1 and 1000')
    .max(1000, 'must be between 1 and 1000')
    .default(50),
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
    .optional(),
});

/** The spec's REST endpoints, thin: parse, call a service, shape the answer in snake_case. */
export function createRestRoutes(deps: {
  ingest: IngestService;
  events: EventQueries;
  version: string;
}): Route[] {
  const openApiDocument = buildOpenApiDocument(deps.version);
  return [
    {
      method: 'POST',
      path: '/log',
      scope: 'ingest',
      async handle(context) {
        const { principal } = context;
        const { value: body, text } = await context.readJsonWithText();
        if (Array.isArray(body)) {
          if (body.length === 0 || body.length > 1000)
            throw badRequest('A batch must hold 1 to 1000 events.');
          const accepted = await deps.ingest.acceptMany(body, principal!);
          return { status: 202, body: { status: 'accepted', event_ids: accepted.map((event) => event.id) } };
        }
        const accepted = await deps.ingest.accept(body, principal!, text);
        return { status: 202, body: { status: 'accepted', event_id: accepted.id } };
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
        return {
          status: 200,
          body: {
            events: result.events.map(toRestEvent),
            count: result.events.length,
            limit,
            page: cursor === undefined ? page : null,
            next_cursor: result.hasNextPage ? result.endCursor : null,
          },
        };
      },
    },
    {
      method: 'GET',
      path: '/events/types',
      scope: 'read',
      async handle() {
        const types = await deps.events.eventTypes();
        return {
          status: 200,
          body: {
            event_types: types.map((type) => ({
              event_type: type.eventType,
              count: type.count,
              last_seen_at: type.lastSeenAt.toISOString(),
            })),
          },
        };
      },
    },
    {
      method: 'GET',
      path: '/openapi.json',
      scope: null,
      handle: () => ({ status: 200, body: openApiDocument }),
    },
  ];
}

/**
 * Routes for operators, open without a key: liveness, readiness, metrics.
 * `/health/ready` answers 503 naming each part that is down (`checks.<name>.error` is
 * `unavailable` or `timeout`), never its address or the driver's error.
 */
export function createOperationalRoutes(deps: {
  version: string;
  readiness: readonly ReadinessCheck[];
  metrics: Metrics;
  /** When set, /metrics answers only `Authorization: Bearer <token>`. */
  metricsToken?: string | undefined;
}): Route[] {
  return [
    {
      method: 'GET',
      path: '/health',
      scope: null,
      handle: () => ({
        status: 200,
        body: { status: 'healthy', service: 'auditgraph', version: deps.version },
      }),
    },
    {
      method: 'GET',
      path: '/health/ready',
      scope: null,
      async handle() {
        const results = await Promise.all(
          deps.readiness.map(async ({ name, check }) => {
            try {
              await withTimeout(check(), READINESS_TIMEOUT_MS);
              return [name, { ok: true }] as const;
            } catch (error) {
              // Open without a key: which part is down, never the driver's words, which name hosts,
              // ports, URLs and users. The process's own logs and metrics carry the cause.
              const reason = error instanceof ReadinessTimeout ? 'timeout' : 'unavailable';
              return [name, { ok: false, error: reason }] as const;
            }
          }),
        );
        const ready = results.every(([, result]) => result.ok);
        return {
          status: ready ? 200 : 503,
          body: { status: ready ? 'ready' : 'not_ready', checks: Object.fromEntries(results) },
        };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      scope: null,
      async handle({ request }) {
        if (
          deps.metricsToken !== undefined &&
          !bearerMatches(request.headers.authorization, deps.metricsToken)
        ) {
          throw unauthenticated('/metrics needs the METRICS_TOKEN as a Bearer token.');
        }
        return {
          status: 200,
          body: await deps.metrics.registry.metrics(),
          headers: { 'content-type': deps.metrics.registry.contentType },
          raw: true,
        };
      },
    },
  ];
}

/** Constant-time comparison of a Bearer token with the expected one. */
function bearerMatches(authorization: string | undefined, expected: string): boolean {
  const presented = /^Bearer\s+(.+)$/i.exec(authorization?.trim() ?? '')?.[1] ?? '';
  return timingSafeEqual(digestSecret(presented), digestSecret(expected));
}

export function toRestEvent(event: StoredEvent) {
  return {
    id: event.id,
    seq: event.seq,
    event_type: event.eventType,
    session_id: event.sessionId,
    payload: event.payload,
    timestamp: (event.clientTime ?? event.receivedAt).toISOString(),
    client_time: event.clientTime?.toISOString() ?? null,
    received_at: event.receivedAt.toISOString(),
    persisted_at: event.persistedAt.toISOString(),
    api_key_id: event.apiKeyId,
  };
}

const READINESS_TIMEOUT_MS = 2000;

class ReadinessTimeout extends Error {}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ReadinessTimeout(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
