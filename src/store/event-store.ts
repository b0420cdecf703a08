import { insertWithRollupsSql } from './analytics-store.js';
import type { Database } from './database.js';
import type { Prisma } from './generated/prisma/client.js';

/** An event as the worker hands it to the store. */
export interface NewEvent {
  id: string;
  eventType: string;
  sessionId: string;
  payload: Record<string, unknown>;
  clientTime: string | null;
  receivedAt: string;
  apiKeyId: string | null;
}

export interface StoredEvent {
  id: string;
  /** Decimal string: a bigint that JSON and GraphQL carry safely. */
  seq: string;
  eventType: string;
  sessionId: string;
  payload: Record<string, unknown>;
  clientTime: Date | null;
  receivedAt: Date;
  persistedAt: Date;
  apiKeyId: string | null;
}

export interface EventQuery {
  /** Any of these types. */
  eventTypes?: readonly string[] | undefined;
  sessionId?: string | undefined;
  /** Received at or after this time. */
  from?: Date | undefined;
  /** Received before this time. */
  to?: Date | undefined;
  /** Payload values that must all match exactly, each at its path of keys. */
  payloadMatches?: ReadonlyArray<{ path: readonly string[]; value: unknown }> | undefined;
  limit: number;
  /** Rows to skip, for the spec's `page`. Prefer `beforeSeq`, which costs the same at any depth. */
  offset?: number;
  /** Only events older than this position (a keyset cursor). */
  beforeSeq?: bigint | undefined;
}

/**
 * Serializes batch inserts across every worker, so `seq` values become visible
 * in the order they were assigned. Without it two concurrent batches can commit
 * out of order, and a reader paging by `seq` would skip the later-committed
 * lower positions for good.
 */
const SEQ_ORDER_LOCK_KEY = 0x61756469; // "audi"

const INSERT_BATCH = `
INSERT INTO audit_events (id, event_type, session_id, payload, client_time, received_at, api_key_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::text[])
ON CONFLICT (id) DO NOTHING`;

const eventColumns = {
  id: true,
  seq: true,
  eventType: true,
  sessionId: true,
  payload: true,
  clientTime: true,
  receivedAt: true,
  persistedAt: true,
  apiKeyId: true,
} satisfies Prisma.AuditEventSelect;

type EventRow = Prisma.AuditEventGetPayload<{ select: typeof eventColumns }>;

/** Offsets the boundary query can find from an index alone: filters on type(s), session and position only. */
function offsetBoundaryCoverable(query: EventQuery): boolean {
  return query.from === undefined && query.to === undefined && (query.payloadMatches ?? []).length === 0;
}

export function createEventStore(db: Database) {
  /** The `seq` of the row `offset` places below the newest match, or null past the end. */
  async function offsetBoundary(query: EventQuery, offset: number): Promise<bigint | null> {
    const conditions: string[] = [];
    const params: unknown[] = [];
    const types = query.eventTypes ?? [];
    if (types.length === 1) {
      // A plain equality, so the (event_type, seq) index yields rows already in order.
      params.push(types[0]);
      conditions.push(`event_type = $${params.length}`);
    } else if (types.length > 1) {
      params.push([...types]);
      conditions.push(`event_type = ANY($${params.length}::text[])`);
    }
    if (query.sessionId !== undefined) {
      params.push(query.sessionId);
      conditions.push(`session_id = $${params.length}`);
    }
    if (query.beforeSeq !== undefined) {
      params.push(query.beforeSeq.toString());
      conditions.push(`seq < $${params.length}::bigint`);
    }
    params.push(offset);
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const rows = await db.query<{ position: string }>(
      `SELECT seq::text AS position FROM audit_events ${where} ORDER BY seq DESC OFFSET $${params.length} LIMIT 1`,
      params,
    );
    return rows[0] ? BigInt(rows[0].position) : null;
  }

  return {
    /**
     * Persists a batch in one statement. Idempotent on the event id: events
     * already stored are skipped, so a redelivered batch never duplicates.
     * The same statement adds the rows it inserted, and only those, to the
     * analytics rollups (src/store/analytics-store.ts), so they commit or roll
     * back with the events and a redelivery is never counted twice.
     * @returns how many rows were new.
     */
    async insertBatch(events: readonly NewEvent[]): Promise<{ inserted: number }> {
      if (events.length === 0) return { inserted: 0 };
      const params = [
        events.map((event) => event.id),
        events.map((event) => event.eventType),
        events.map((event) => event.sessionId),
        events.map((event) => JSON.stringify(event.payload)),
        events.map((event) => event.clientTime),
        events.map((event) => event.receivedAt),
        events.map((event) => event.apiKeyId),
      ];
      const inserted = await db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [SEQ_ORDER_LOCK_KEY]);
        const rows = await tx.query<{ inserted: number }>(insertWithRollupsSql(INSERT_BATCH), params);
        return rows[0]?.inserted ?? 0;
      });
      return { inserted };
    },

    /** Newest first. */
    async listEvents(query: EventQuery): Promise<StoredEvent[]> {
      const offset = query.offset ?? 0;
      if (offset > 0 && offsetBoundaryCoverable(query)) {
        // Deferred join: find the page's first position by walking the
        // (type|session, seq) index alone, then fetch the page by keyset. The
        // skipped rows are never read from the table, so deep pages stay cheap.
        const boundary = await offsetBoundary(query, offset);
        if (boundary === null) return [];
        return this.listEvents({ ...query, offset: 0, beforeSeq: boundary + 1n });
      }
      const rows = await db.prisma.auditEvent.findMany({
        select: eventColumns,
        where: {
          AND: [
            query.eventTypes === undefined ? {} : { eventType: { in: [...query.eventTypes] } },
            query.sessionId === undefined ? {} : { sessionId: query.sessionId },
            query.from === undefined ? {} : { receivedAt: { gte: query.from } },
            query.to === undefined ? {} : { receivedAt: { lt: query.to } },
            query.beforeSeq === undefined ? {} : { seq: { lt: query.beforeSeq } },
            ...(query.payloadMatches ?? []).map((match) => ({
              payload: { path: [...match.path], equals: match.value as Prisma.InputJsonValue },
            })),
          ],
        },
        orderBy: { seq: 'desc' },
        skip: offset,
        take: query.limit,
      });
      return rows.map(toStoredEvent);
    },

    async findById(id: string): Promise<StoredEvent | null> {
      const row = await db.prisma.auditEvent.findUnique({ select: eventColumns, where: { id } });
      return row ? toStoredEvent(row) : null;
    },

    /**
     * Each event type stored, with its count and when it was last received.
     * Counts come from the hourly rollup (a few rows per type and hour), and the
     * last-seen time from each type's newest row through the (event_type, seq)
     * index, so the cost does not grow with the number of events.
     */
    async eventTypeStats(): Promise<Array<{ eventType: string; count: number; lastSeenAt: Date }>> {
      const rows = await db.query<{ event_type: string; count: string; last_seen_at: Date }>(
        `SELECT counts.event_type, counts.events::text AS count, newest.received_at AS last_seen_at
           FROM (SELECT event_type, sum(events) AS events FROM analytics_event_counts GROUP BY event_type) counts
           CROSS JOIN LATERAL (
             -- Only seq in the inner query, so it can be answered from an index alone;
             -- selecting the row there made PostgreSQL walk recent rows of every type.
             SELECT e.received_at
               FROM (SELECT seq FROM audit_events WHERE event_type = counts.event_type ORDER BY seq DESC LIMIT 1) last
               JOIN audit_events e ON e.seq = last.seq
           ) newest
          ORDER BY counts.event_type`,
      );
      return rows.map((row) => ({
        eventType: row.event_type,
        count: Number(row.count),
        lastSeenAt: new Date(row.last_seen_at),
      }));
    },

    async countByIds(ids: readonly string[]): Promise<number> {
      return db.prisma.auditEvent.count({ where: { id: { in: [...ids] } } });
    },
  };
}

export type EventStore = ReturnType<typeof createEventStore>;

function toStoredEvent(row: EventRow): StoredEvent {
  return {
    ...row,
    seq: row.seq.toString(),
    payload: row.payload as Record<string, unknown>,
  };
}

/**
 * Whether retrying the same write later may succeed: lost connections,
 * PostgreSQL starting or shutting down, lock and serialization conflicts,
 * exhausted resources. Anything else (bad data, constraint violations) will
 * fail the same way every time.
 */
export function isTransientStoreError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return true; // network failures and timeouts carry no SQLSTATE
  if (/^E[A-Z]+$/.test(code)) return true; // Node socket errors: ECONNREFUSED, ECONNRESET, ETIMEDOUT…
  const sqlClass = code.slice(0, 2);
  return ['08', '53', '57', '58', '40', '55', 'XX'].includes(sqlClass) && code !== '57014';
}
