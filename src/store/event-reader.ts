import type { EventQuery, StoredEvent } from '../events/stored-event.js';
import type { Database } from './database.js';
import { compareWithStored, type EventContent, type IdReuse } from './event-conflicts.js';
import type { Prisma } from './generated/prisma/client.js';
import type { RollupFolder } from './rollup-folder.js';

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

export interface EventReaderDeps {
  /** Folded first by {@link createEventReader}'s `eventTypeStats`, so its counts include every stored event. */
  rollups: Pick<RollupFolder, 'foldIfBehind'>;
}

/** Reads stored events: by id, by query (newest first, paged by offset or position), and per type. */
export function createEventReader(db: Database, { rollups }: EventReaderDeps) {
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

  /** Newest first. */
  async function listEvents(query: EventQuery): Promise<StoredEvent[]> {
    const offset = query.offset ?? 0;
    if (offset > 0 && offsetBoundaryCoverable(query)) {
      // Deferred join: find the page's first position by walking the
      // (type|session, seq) index alone, then fetch the page by keyset. The
      // skipped rows are never read from the table, so deep pages stay cheap.
      const boundary = await offsetBoundary(query, offset);
      if (boundary === null) return [];
      return listEvents({ ...query, offset: 0, beforeSeq: boundary + 1n });
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
          query.afterSeq === undefined ? {} : { seq: { gt: query.afterSeq } },
          ...(query.payloadMatches ?? []).map((match) => ({
            payload: { path: [...match.path], equals: match.value as Prisma.InputJsonValue },
          })),
        ],
      },
      orderBy: { seq: query.ascending === true ? 'asc' : 'desc' },
      skip: offset,
      take: query.limit,
    });
    return rows.map(toStoredEvent);
  }

  return {
    listEvents,

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
      await rollups.foldIfBehind();
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

    /** The newest committed position; 0 when nothing is stored. */
    async latestSeq(): Promise<bigint> {
      const newest = await db.prisma.auditEvent.findFirst({
        select: { seq: true },
        orderBy: { seq: 'desc' },
      });
      return newest?.seq ?? 0n;
    },

    /** How each event relates to the stored one with its id (absent: not stored). See event-conflicts.ts. */
    compareWithStored(events: readonly EventContent[]): Promise<Map<string, IdReuse>> {
      return compareWithStored(db, events);
    },

    async countByIds(ids: readonly string[]): Promise<number> {
      return db.prisma.auditEvent.count({ where: { id: { in: [...ids] } } });
    },
  };
}

function toStoredEvent(row: EventRow): StoredEvent {
  return {
    ...row,
    seq: row.seq.toString(),
    payload: row.payload as Record<string, unknown>,
  };
}
