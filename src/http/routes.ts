import { z } from 'zod';
import { badRequest } from '../errors.js';
import { EVENT_TYPES, toFieldProblems } from '../ingest/event.js';
import type { IngestService } from '../ingest/ingest-service.js';
import type { StoredEvent } from '../store/event-store.js';
import type { Route } from './server.js';

export interface EventReader {
  listEvents(query: {
    eventType?: string | undefined;
    sessionId?: string | undefined;
    limit: number;
    offset?: number;
    beforeSeq?: bigint | undefined;
  }): Promise<StoredEvent[]>;
}

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

/** Offset paging past this many rows is refused: the keyset cursor costs the same at any depth. */
const MAX_OFFSET = 100_000;

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
  session_id: z.string().min(1).max(128).optional(),
  cursor: z
    .string()
    .regex(/^[0-9]{1,19}$/, 'must be a next_cursor value from an earlier page')
    .optional(),
});

/** The spec's REST endpoints, thin: parse, call a service, shape the answer in snake_case. */
export function createRestRoutes(deps: {
  ingest: IngestService;
  events: EventReader;
  readiness: readonly ReadinessCheck[];
  version: string;
}): Route[] {
  return [
    {
      method: 'POST',
      path: '/log',
      scope: 'ingest',
      async handle({ readJson, principal }) {
        const body = await readJson();
        if (Array.isArray(body)) {
          if (body.length === 0 || body.length > 1000)
            throw badRequest('A batch must hold 1 to 1000 events.');
          const accepted = await deps.ingest.acceptMany(body, principal!);
          return { status: 202, body: { status: 'accepted', event_ids: accepted.map((event) => event.id) } };
        }
        const accepted = await deps.ingest.accept(body, principal!);
        return { status: 202, body: { status: 'accepted', event_id: accepted.id } };
      },
    },
    {
      method: 'GET',
      path: '/events',
      scope: 'read',
      async handle({ url }) {
        const parsed = eventsQuerySchema.safeParse(Object.fromEntries(url.searchParams));
        if (!parsed.success) {
          const problems = toFieldProblems(parsed.error);
          throw badRequest(
            `Invalid query: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`,
            problems,
          );
        }
        const { limit, page, event_type, session_id, cursor } = parsed.data;
        const offset = cursor === undefined ? (page - 1) * limit : 0;
        if (offset > MAX_OFFSET) {
          throw badRequest(`page: too deep for page-based paging (over ${MAX_OFFSET} events); use cursor`, [
            { field: 'page', message: 'too deep; follow next_cursor instead' },
          ]);
        }
        const events = await deps.events.listEvents({
          eventType: event_type,
          sessionId: session_id,
          limit,
          offset,
          beforeSeq: cursor === undefined ? undefined : BigInt(cursor),
        });
        const last = events.at(-1);
        return {
          status: 200,
          body: {
            events: events.map(toRestEvent),
            count: events.length,
            limit,
            page: cursor === undefined ? page : null,
            next_cursor: events.length === limit && last ? last.seq : null,
          },
        };
      },
    },
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
              await withTimeout(check(), 2000);
              return [name, { ok: true }] as const;
            } catch (error) {
              return [name, { ok: false, error: error instanceof Error ? error.message : 'failed' }] as const;
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
  ];
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

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
