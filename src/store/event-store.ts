import type { Database, SqlSession } from './database.js';
import type { Prisma } from './generated/prisma/client.js';
import { canonicalize } from '../integrity/canonical.js';
import { leafTime, prepareLeafHash } from '../integrity/leaf.js';
import { backfillLeaves } from './integrity-store.js';
import { createRollupFolder } from './analytics-store.js';

/** An event of a batch with what can be computed before the insert lock is taken. */
interface BatchCandidate {
  event: NewEvent;
  id: string;
  clientTime: string | null;
  receivedAt: string;
  payloadJson: string;
  leafHash: ReturnType<typeof prepareLeafHash>;
}

/**
 * A batch with the work that needs no database done (canonical payloads,
 * partial leaf hashes), so a worker can do it for its next batch while the
 * current one is being written.
 */
export class PreparedBatch {
  constructor(
    readonly candidates: readonly BatchCandidate[],
    /** The insert's parameters for every candidate, when already encoded. */
    readonly columns?: EncodedColumns,
  ) {}

  /** The parts as one batch, its parameters encoded: the last step a worker does ahead of time. */
  static join(parts: readonly PreparedBatch[]): PreparedBatch {
    const candidates = parts.flatMap((part) => part.candidates);
    return new PreparedBatch(candidates, encodeColumns(candidates));
  }
}

/**
 * The insert's per-event parameters as the text the driver would send: array
 * literals, and the payloads as one JSON array. Encoded ahead, they cost
 * nothing between the insert's round trips, when the database waits on us.
 * Valid for the whole batch, so used only when every candidate is new.
 */
interface EncodedColumns {
  ids: string;
  eventTypes: string;
  sessionIds: string;
  payloads: string;
  clientTimes: string;
  receivedAts: string;
  apiKeyIds: string;
  /** No id repeats within the batch. */
  distinct: boolean;
}

function encodeColumns(candidates: readonly BatchCandidate[]): EncodedColumns {
  const ids = candidates.map((candidate) => candidate.id);
  return {
    ids: textArray(ids),
    eventTypes: textArray(candidates.map((candidate) => candidate.event.eventType)),
    sessionIds: textArray(candidates.map((candidate) => candidate.event.sessionId)),
    payloads: `[${candidates.map((candidate) => candidate.payloadJson).join(',')}]`,
    clientTimes: textArray(candidates.map((candidate) => candidate.clientTime)),
    receivedAts: textArray(candidates.map((candidate) => candidate.receivedAt)),
    apiKeyIds: textArray(candidates.map((candidate) => candidate.event.apiKeyId)),
    distinct: new Set(ids).size === ids.length,
  };
}

/** A PostgreSQL array literal, each element quoted and escaped as node-postgres does. */
function textArray(values: ReadonlyArray<string | null>): string {
  let literal = '{';
  for (let index = 0; index < values.length; index += 1) {
    const value = values[index];
    if (index > 0) literal += ',';
    literal += value === null || value === undefined ? 'NULL' : `"${value.replace(/[\\"]/g, '\\$&')}"`;
  }
  return `${literal}}`;
}

/**
 * All that does not need the insert lock, done before taking it: the lock
 * serializes every worker's inserts, so work done while holding it is work no
 * other worker can overlap.
 */
export function prepareBatch(events: readonly NewEvent[]): PreparedBatch {
  return new PreparedBatch(
    events.map((event) => {
      const id = event.id.toLowerCase();
      // Normalized to what timestamptz(3) keeps, so the hash covers exactly what is stored.
      const clientTime = event.clientTime === null ? null : leafTime(event.clientTime);
      const receivedAt = leafTime(event.receivedAt);
      // The leaf hashes the payload's canonical JSON anyway; that text is also what the insert
      // sends (jsonb keeps no key order) and what the live feed announces.
      const payloadJson = canonicalize(event.payload);
      return {
        event,
        id,
        clientTime,
        receivedAt,
        payloadJson,
        leafHash: prepareLeafHash(
          {
            id,
            eventType: event.eventType,
            sessionId: event.sessionId,
            payload: event.payload,
            clientTime,
            receivedAt,
            apiKeyId: event.apiKeyId,
          },
          payloadJson,
        ),
      };
    }),
  );
}

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
  /**
   * The payload as JSON text, when the store had it at hand (events it just
   * wrote): the live feed's announcement reuses it instead of serializing again.
   */
  payloadJson?: string;
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
  /** Only events newer than this position: the live feed catching up. */
  afterSeq?: bigint | undefined;
  /** Oldest first instead of newest first. */
  ascending?: boolean;
}

/**
 * Serializes batch inserts across every worker, so `seq` values become visible
 * in the order they were assigned. Without it two concurrent batches can commit
 * out of order, and a reader paging by `seq` would skip the later-committed
 * lower positions for good.
 */
const SEQ_ORDER_LOCK_KEY = 0x61756469; // "audi"

// Every value explicit: seq, the leaf and persisted_at are fixed before the statement, because
// the leaf hash covers them. The leaves go in by the same statement as the events, so one round
// trip writes both.
// A batch's positions and leaf indexes are consecutive, so they travel as their first values and
// each row adds its ordinal: two fewer arrays for the driver to escape and the server to parse.
const INSERT_LEAVES_CTE = `leaves AS (
  INSERT INTO audit_log_leaves (leaf_index, seq, event_id, leaf_hash)
  SELECT $9::bigint + l.n - 1, $2::bigint + l.n - 1, l.event_id, substring($10::bytea FROM l.n::int * 32 - 31 FOR 32)
  FROM unnest($1::uuid[]) WITH ORDINALITY AS l(event_id, n)
)`;
const INSERT_BATCH = `
INSERT INTO audit_events (id, seq, event_type, session_id, payload, client_time, received_at, persisted_at, api_key_id)
SELECT u.id, $2::bigint + u.n - 1, u.event_type, u.session_id, p.payload, u.client_time, u.received_at, $8::timestamptz, u.api_key_id
FROM unnest($1::uuid[], $3::text[], $4::text[], $6::timestamptz[], $7::timestamptz[], $11::text[])
  WITH ORDINALITY AS u(id, event_type, session_id, client_time, received_at, api_key_id, n)
-- The payloads come as one JSON array: as a jsonb[] literal, every quote in them would be escaped
-- by the driver and unescaped by the server.
JOIN jsonb_array_elements($5::jsonb) WITH ORDINALITY AS p(payload, n) ON p.n = u.n`;

/**
 * The insert statement: leaves and events together. The analytics rollups are
 * not maintained here but folded in after commit (createRollupFolder in src/store/analytics-store.ts),
 * outside the lock that serializes every worker's inserts.
 */
function insertStatement(): string {
  return `WITH ${INSERT_LEAVES_CTE},
inserted AS (${INSERT_BATCH}
RETURNING 1)
SELECT count(*)::int AS inserted FROM inserted`;
}

// Run under the lock, in its own statement: a statement's snapshot is taken when it starts, so
// this one sees every batch committed before the lock was granted. The batch's seqs are one range
// taken from the sequence at once (every writer of audit_events holds the lock, so nothing takes
// values in between); duplicates leave gaps, which seq allows. `existing` is looked up only in the
// checked form: redelivery is rare, so a batch first goes in unchecked and a duplicate id fails it
// on a unique index (see insertBatch). Sent in one script with BEGIN and the lock, it is still its
// own statement, with its own snapshot, taken once the lock is granted.
const preparingSql = (existing: string, count: string) => `
SELECT
  ${existing} AS existing,
  (SELECT COALESCE(max(leaf_index) + 1, 0)::text FROM audit_log_leaves) AS next_leaf,
  (SELECT max(seq)::text FROM audit_events) AS max_seq,
  (SELECT setval(s, nextval(s) + ${count}::int - 1)::text
     FROM (SELECT pg_get_serial_sequence('audit_events', 'seq')::regclass AS s) sequence) AS last_seq,
  now()::timestamptz(3) AS now`;
const PREPARE_CHECKED = preparingSql(
  `(SELECT COALESCE(array_agg(event_id::text), '{}') FROM audit_log_leaves WHERE event_id = ANY($1::uuid[]))`,
  '$2',
);
/**
 * The unchecked form, with nothing to bind but the count, goes out with BEGIN
 * and the lock as the transaction's opening: one round trip fewer on the path
 * every worker waits on.
 */
function prepareUncheckedSql(count: number): string {
  if (!Number.isSafeInteger(count) || count < 1)
    throw new RangeError(`batch size must be a positive integer, not ${count}`);
  return preparingSql(`'{}'::text[]`, String(count));
}

interface PrepareState {
  existing: string[];
  next_leaf: string;
  max_seq: string | null;
  last_seq: string;
  now: Date;
}

/** PostgreSQL's unique_violation. */
const UNIQUE_VIOLATION = '23505';

class DuplicateInBatch extends Error {}

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
  const rollups = createRollupFolder(db);
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

  /** `opened`: the rows of {@link prepareUncheckedSql}, when the transaction opened with it. */
  async function writeBatch(
    tx: SqlSession,
    batch: PreparedBatch,
    checkExisting: boolean,
    opened: ReadonlyArray<Record<string, unknown>> = [],
  ): Promise<{ inserted: number; stored: StoredEvent[] }> {
    const { candidates } = batch;
    const encoded = batch.columns ?? encodeColumns(candidates);
    const prepare = async () => {
      const [row] = checkExisting
        ? await tx.query<PrepareState>(PREPARE_CHECKED, [encoded.ids, candidates.length])
        : await tx.query<PrepareState>(prepareUncheckedSql(candidates.length));
      if (!row) throw new Error('insertBatch: the prepare query returned no row');
      return row;
    };
    let state = (opened[0] as PrepareState | undefined) ?? (await prepare());
    if (state.next_leaf === '0' && state.max_seq !== null) {
      // Events stored before the hash log existed: give them leaves first, in seq order.
      await backfillLeaves(tx);
      state = await prepare();
    }
    const next = BigInt(state.next_leaf);
    const firstSeq = BigInt(state.last_seq) - BigInt(candidates.length) + 1n;

    // What runs from here to the insert's send is time the database (and every worker waiting for
    // the lock) waits on this process: the leaf hashes' last step, and nothing that could be done before.
    let fresh: readonly BatchCandidate[] = candidates;
    let columns = encoded;
    if (state.existing.length > 0 || !encoded.distinct) {
      const seen = new Set(state.existing.map((id) => id.toLowerCase()));
      // Skips ids stored already, and repeats of an id within the batch.
      fresh = candidates.filter((candidate) => {
        if (seen.has(candidate.id)) return false;
        seen.add(candidate.id);
        return true;
      });
      if (fresh.length === 0) return { inserted: 0, stored: [] };
      columns = encodeColumns(fresh);
    }
    const persistedAt = leafTime(state.now);
    const seqs = fresh.map((_, offset) => (firstSeq + BigInt(offset)).toString());
    // One bytea of every 32-byte hash, sliced by the statement: a text[] of 1,000 hex strings cost
    // the server an array parse and a decode per row. A Buffer, as PGlite takes no hex text for bytea.
    const leafHashes = Buffer.concat(
      fresh.map((candidate, index) => candidate.leafHash(seqs[index]!, persistedAt)),
      fresh.length * 32,
    );

    const inserting = tx.query<{ inserted: number }>(insertStatement(), [
      columns.ids,
      firstSeq.toString(),
      columns.eventTypes,
      columns.sessionIds,
      columns.payloads,
      columns.clientTimes,
      columns.receivedAts,
      state.now,
      next.toString(),
      leafHashes,
      columns.apiKeyIds,
    ]);
    // Built while the statement runs.
    const stored = fresh.map((candidate, index): StoredEvent => ({
      id: candidate.id,
      seq: seqs[index]!,
      eventType: candidate.event.eventType,
      sessionId: candidate.event.sessionId,
      payload: candidate.event.payload,
      payloadJson: candidate.payloadJson,
      clientTime: candidate.clientTime === null ? null : new Date(candidate.clientTime),
      receivedAt: new Date(candidate.receivedAt),
      persistedAt: state.now,
      apiKeyId: candidate.event.apiKeyId,
    }));
    try {
      const rows = await inserting;
      return { inserted: rows[0]?.inserted ?? 0, stored };
    } catch (error) {
      // Only an unchecked batch can hit a stored id; the caller writes it again, checked. Checked,
      // an id stored without a leaf (written around this store) still fails here, on the primary
      // key, rather than getting a leaf that does not match what is stored.
      if (!checkExisting && (error as { code?: unknown } | null)?.code === UNIQUE_VIOLATION) {
        throw new DuplicateInBatch('a stored event id in the batch');
      }
      throw error;
    }
  }

  return {
    /**
     * Persists a batch: the events and one hash-log leaf per new event
     * (src/integrity/leaf.ts), in one transaction; the rollups count them once
     * folded (createRollupFolder in analytics-store.ts: by the worker after commit, and by
     * every rollup read first). Idempotent on the event id: events already
     * stored (or stored and since removed by retention) are skipped, as is a
     * repeat of an id within the batch, so a redelivered batch never
     * duplicates and never adds a second leaf.
     *
     * Batches from every worker are serialized by an advisory lock, so `seq` and
     * the leaf positions are assigned, and become visible, in commit order.
     * @returns how many events were new, and those events as stored, in ascending seq order.
     */
    async insertBatch(
      batch: readonly NewEvent[] | PreparedBatch,
    ): Promise<{ inserted: number; stored: StoredEvent[] }> {
      const prepared = batch instanceof PreparedBatch ? batch : prepareBatch(batch);
      if (prepared.candidates.length === 0) return { inserted: 0, stored: [] };
      // Unchecked first; a duplicate id (a redelivery) fails the insert on a unique index, and
      // the batch is written again with each id looked up first.
      try {
        return await db.transaction((tx, opened) => writeBatch(tx, prepared, false, opened), {
          advisoryLock: SEQ_ORDER_LOCK_KEY,
          opening: prepareUncheckedSql(prepared.candidates.length),
        });
      } catch (error) {
        if (!(error instanceof DuplicateInBatch)) throw error;
        return db.transaction((tx) => writeBatch(tx, prepared, true), {
          advisoryLock: SEQ_ORDER_LOCK_KEY,
        });
      }
    },

    prepareBatch,

    /** Newest first. */ /** Newest first. */
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
