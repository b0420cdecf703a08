import type { EventQuery, NewEvent, StoredEvent } from '../events/stored-event.js';
import type { Database, ReservedSession, SqlSession } from './database.js';
import type { Prisma } from './generated/prisma/client.js';
import { canonicalize } from '../integrity/canonical.js';
import { leafTime, prepareLeafHash } from '../integrity/leaf.js';
import { backfillLeaves } from './integrity-store.js';
import { createRollupFolder } from './analytics-store.js';
import { UnstorableEventError } from '../failure-class.js';
import { compareWithStored, sameContent, type EventContent, type IdReuse } from './event-conflicts.js';

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
  return new PreparedBatch(events.map(prepareCandidate));
}

/** @throws UnstorableEventError when the event cannot be encoded (a value canonical JSON refuses). */
function prepareCandidate(event: NewEvent): BatchCandidate {
  try {
    return candidateOf(event);
  } catch (error) {
    throw new UnstorableEventError(event.id, error);
  }
}

function candidateOf(event: NewEvent): BatchCandidate {
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
}

/** What {@link EventStore.insertBatch} did with a batch. */
export interface BatchWritten {
  inserted: number;
  stored: StoredEvent[];
  /** Indexes (in the batch) of events not stored because their id holds another event. */
  conflicts: number[];
}

const contentOf = (candidate: BatchCandidate): EventContent => ({
  ...candidate.event,
  payloadJson: candidate.payloadJson,
});

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
// `condition`: a WHERE clause on the rows, which the leased statement adds.
const insertLeavesCte = (condition = '') => `leaves AS (
  INSERT INTO audit_log_leaves (leaf_index, seq, event_id, leaf_hash)
  SELECT $9::bigint + l.n - 1, $2::bigint + l.n - 1, l.event_id, substring($10::bytea FROM l.n::int * 32 - 31 FOR 32)
  FROM unnest($1::uuid[]) WITH ORDINALITY AS l(event_id, n)${condition}
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
const INSERT_STATEMENT = `WITH ${insertLeavesCte()},
inserted AS (${INSERT_BATCH}
RETURNING 1)
SELECT count(*)::int AS inserted FROM inserted`;

/**
 * The insert as a statement of its own (autocommit) under the write lease: the
 * same rows, written only if the hash log ends where the lease expects ($9 is
 * its next position; otherwise nothing is written and 0 is answered), and the
 * seq sequence moved to the batch's last position ($12, $13) so that it stays
 * ahead of every stored seq.
 */
const LEASED_INSERT_STATEMENT = `WITH expected AS (
  SELECT COALESCE(max(leaf_index) + 1, 0) = $9::bigint AS position_holds FROM audit_log_leaves
),
${insertLeavesCte('\n  WHERE (SELECT position_holds FROM expected)')},
inserted AS (${INSERT_BATCH}
WHERE (SELECT position_holds FROM expected)
RETURNING 1)
SELECT counted.n AS inserted, CASE WHEN counted.n > 0 THEN setval($12::regclass, $13::bigint) END AS last_seq
FROM (SELECT count(*)::int AS n FROM inserted) counted`;

// The checked path's opening, in a transaction on the lease's connection: the stored ids among the
// batch's, where the hash log and positions end, and the batch's seqs as one range taken from the
// sequence at once (nothing else takes values while the lease is held); duplicates leave gaps,
// which seq allows.
const PREPARE_CHECKED = `
SELECT
  (SELECT COALESCE(array_agg(event_id::text), '{}') FROM audit_log_leaves WHERE event_id = ANY($1::uuid[])) AS existing,
  (SELECT COALESCE(max(leaf_index) + 1, 0)::text FROM audit_log_leaves) AS next_leaf,
  (SELECT setval(s, nextval(s) + $2::int - 1)::text
     FROM (SELECT pg_get_serial_sequence('audit_events', 'seq')::regclass AS s) sequence) AS last_seq,
  now()::timestamptz(3) AS now`;

interface PrepareState {
  existing: string[];
  next_leaf: string;
  last_seq: string;
  now: Date;
}

/** PostgreSQL's unique_violation. */
const UNIQUE_VIOLATION = '23505';

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

/**
 * What a holder of the write lease knows of the tables, read once when it takes
 * the lease: nobody else writes events or leaves while it holds it.
 */
interface WriterState {
  nextLeaf: bigint;
  nextSeq: bigint;
  /** The seq column's sequence, as a regclass literal. */
  sequence: string;
  /** PostgreSQL's clock minus this process's, in milliseconds: persisted times follow the database's clock. */
  clockOffsetMs: number;
}

const WRITER_STATE_SQL = `
SELECT
  (SELECT COALESCE(max(leaf_index) + 1, 0)::text FROM audit_log_leaves) AS next_leaf,
  (SELECT max(seq)::text FROM audit_events) AS max_seq,
  s.sequence::text AS sequence,
  nextval(s.sequence)::text AS next_value,
  (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS clock_ms
FROM (SELECT pg_get_serial_sequence('audit_events', 'seq')::regclass AS sequence) s`;

async function readWriterState(session: ReservedSession): Promise<WriterState> {
  const read = async () => {
    const [row] = await session.query<{
      next_leaf: string;
      max_seq: string | null;
      sequence: string;
      next_value: string;
      clock_ms: number;
    }>(WRITER_STATE_SQL);
    if (!row) throw new Error('insertBatch: the writer state query returned no row');
    return { row, at: Date.now() };
  };
  let { row, at } = await read();
  if (row.next_leaf === '0' && row.max_seq !== null) {
    // Events stored before the hash log existed: give them leaves first, in seq order.
    await session.transaction((tx) => backfillLeaves(tx));
    ({ row, at } = await read());
  }
  const afterStored = row.max_seq === null ? 1n : BigInt(row.max_seq) + 1n;
  const fromSequence = BigInt(row.next_value);
  return {
    nextLeaf: BigInt(row.next_leaf),
    nextSeq: fromSequence > afterStored ? fromSequence : afterStored,
    sequence: row.sequence,
    clockOffsetMs: row.clock_ms - at,
  };
}

/** A lease with no statement under way and no batch to write for this long is given back, for other workers (and idle pools). */
const LEASE_IDLE_MS = 50;
/** A lease is given back after a batch once held this long, so a worker waiting for it gets its turn. */
const LEASE_TURN_MS = 1000;

interface HeldLease {
  session: ReservedSession;
  state: WriterState;
  since: number;
  /** Statements sent and not yet answered: the connection goes back only once they are. */
  inFlight: Set<Promise<unknown>>;
}

/**
 * The right to write events, held across batches: a session-level advisory lock
 * (the same key as the checked path's transactions) on a connection kept for it.
 * Its holder knows the next seq and leaf position without asking, so a batch
 * is one statement, committed on its own: no BEGIN, no opening query and no
 * COMMIT, each a round trip during which every worker waits. And the next
 * batch's statement can be sent while one runs (the connection answers them in
 * order): its positions assume the one before succeeded, and the statement's
 * guard writes nothing when that did not hold.
 *
 * Turns run one at a time in this process: sending a batch, recovering from a
 * failed one, giving the lease back. It is given back when idle, after a long
 * hold, and on any failure.
 */
function createWriteLease(db: Database) {
  let held: HeldLease | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let turns: Promise<unknown> = Promise.resolve();

  async function take(): Promise<HeldLease> {
    const session = await db.reserve();
    try {
      await session.query('SELECT pg_advisory_lock($1)', [SEQ_ORDER_LOCK_KEY]);
      return { session, state: await readWriterState(session), since: Date.now(), inFlight: new Set() };
    } catch (error) {
      // Closing the connection is the one sure way to end a lock it may hold.
      session.release(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
  }

  async function giveBack(): Promise<void> {
    const lease = held;
    held = undefined;
    if (!lease) return;
    await Promise.allSettled(lease.inFlight);
    try {
      await lease.session.query('SELECT pg_advisory_unlock($1)', [SEQ_ORDER_LOCK_KEY]);
      lease.session.release();
    } catch (error) {
      lease.session.release(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Gives the lease back once it has been idle for {@link LEASE_IDLE_MS}; a turn starting meanwhile cancels it. */
  function giveBackWhenIdle(): void {
    idleTimer = setTimeout(() => {
      if (held && held.inFlight.size > 0) giveBackWhenIdle();
      else void turn(giveBack);
    }, LEASE_IDLE_MS).unref();
  }

  function turn<T>(work: () => Promise<T>): Promise<T> {
    const run = turns.then(async () => {
      clearTimeout(idleTimer);
      try {
        return await work();
      } finally {
        if (held) giveBackWhenIdle();
      }
    });
    turns = run.catch(() => undefined);
    return run;
  }

  async function lease(): Promise<HeldLease> {
    if (held && Date.now() - held.since >= LEASE_TURN_MS) await giveBack();
    held ??= await take();
    return held;
  }

  return {
    /**
     * Sends a statement holding the lease (`send` runs in a turn, and should
     * only send) and resolves with its answer. `recover`, run in a turn of its
     * own, answers instead when `send`'s answer says it wrote nothing.
     */
    async write<T>(
      send: (session: ReservedSession, state: WriterState) => Promise<T | undefined>,
      recover: (session: ReservedSession, state: WriterState) => Promise<T>,
    ): Promise<T> {
      const sent = await turn(async () => {
        const current = await lease();
        const answer = send(current.session, current.state);
        current.inFlight.add(answer);
        void answer.then(
          () => current.inFlight.delete(answer),
          () => current.inFlight.delete(answer),
        );
        return { answer };
      });
      let answered: T | undefined;
      try {
        answered = await sent.answer;
      } catch (error) {
        await turn(giveBack);
        throw error;
      }
      if (answered !== undefined) return answered;
      return turn(async () => {
        const current = await lease();
        try {
          return await recover(current.session, current.state);
        } catch (error) {
          await giveBack();
          throw error;
        }
      });
    },
  };
}

export function createEventStore(db: Database) {
  const rollups = createRollupFolder(db);
  const lease = createWriteLease(db);
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

  /**
   * The parameters of {@link INSERT_STATEMENT} and {@link LEASED_INSERT_STATEMENT} (but the
   * latter's last two) for `fresh` at the positions given, and the events as stored, built on
   * demand: once the statement is sent, while the database runs it.
   */
  function rowsToInsert(
    fresh: readonly BatchCandidate[],
    columns: EncodedColumns,
    firstSeq: bigint,
    nextLeaf: bigint,
    persistedAt: string,
  ) {
    const seqs = fresh.map((_, offset) => (firstSeq + BigInt(offset)).toString());
    // One bytea of every 32-byte hash, sliced by the statement: a text[] of 1,000 hex strings cost
    // the server an array parse and a decode per row. A Buffer, as PGlite takes no hex text for bytea.
    const leafHashes = Buffer.concat(
      fresh.map((candidate, index) => candidate.leafHash(seqs[index]!, persistedAt)),
      fresh.length * 32,
    );
    return {
      params: [
        columns.ids,
        firstSeq.toString(),
        columns.eventTypes,
        columns.sessionIds,
        columns.payloads,
        columns.clientTimes,
        columns.receivedAts,
        persistedAt,
        nextLeaf.toString(),
        leafHashes,
        columns.apiKeyIds,
      ],
      lastSeq: seqs.at(-1)!,
      stored: (): StoredEvent[] => {
        const persistedAtValue = new Date(persistedAt);
        return fresh.map((candidate, index) => ({
          id: candidate.id,
          seq: seqs[index]!,
          eventType: candidate.event.eventType,
          sessionId: candidate.event.sessionId,
          payload: candidate.event.payload,
          payloadJson: candidate.payloadJson,
          clientTime: candidate.clientTime === null ? null : new Date(candidate.clientTime),
          receivedAt: new Date(candidate.receivedAt),
          persistedAt: persistedAtValue,
          apiKeyId: candidate.event.apiKeyId,
        }));
      },
    };
  }

  /**
   * The batch with each id looked up first, in a transaction: ids stored already
   * (a redelivery) and repeats within the batch are skipped. An id stored without
   * a leaf (written around this store) still fails, on the primary key, rather
   * than getting a leaf that does not match what is stored.
   */
  async function writeChecked(
    tx: SqlSession,
    batch: PreparedBatch,
    encoded: EncodedColumns,
  ): Promise<BatchWritten> {
    const { candidates } = batch;
    const [state] = await tx.query<PrepareState>(PREPARE_CHECKED, [encoded.ids, candidates.length]);
    if (!state) throw new Error('insertBatch: the prepare query returned no row');
    const firstSeq = BigInt(state.last_seq) - BigInt(candidates.length) + 1n;
    const existing = new Set(state.existing.map((id) => id.toLowerCase()));
    const reuse = await compareWithStored(
      tx,
      candidates.filter((candidate) => existing.has(candidate.id)).map(contentOf),
    );
    // The first of the batch's events with an id, stored or not, is the one the others must match.
    const first = new Map<string, BatchCandidate>();
    const conflicts: number[] = [];
    const fresh = candidates.filter((candidate, index) => {
      if (existing.has(candidate.id)) {
        if (reuse.get(candidate.id) === 'different') conflicts.push(index);
        return false;
      }
      const earlier = first.get(candidate.id);
      if (earlier) {
        if (!sameContent(contentOf(earlier), contentOf(candidate))) conflicts.push(index);
        return false;
      }
      first.set(candidate.id, candidate);
      return true;
    });
    if (fresh.length === 0) return { inserted: 0, stored: [], conflicts };
    const columns = fresh.length === candidates.length ? encoded : encodeColumns(fresh);
    const rows = rowsToInsert(fresh, columns, firstSeq, BigInt(state.next_leaf), leafTime(state.now));
    const inserting = tx.query<{ inserted: number }>(INSERT_STATEMENT, rows.params);
    const stored = rows.stored();
    return { inserted: (await inserting)[0]?.inserted ?? 0, stored, conflicts };
  }

  /**
   * Sends the batch as one statement under the lease, its leaf hashes finished
   * here (what runs from the turn's start to the send is time every worker
   * waits on), and moves the lease's positions past it. Answers undefined when
   * it wrote nothing: a stored id among its events (a redelivery) failed it on a
   * unique index, or the hash log was not where the lease expected (the batch
   * sent before failed, or something wrote around the lease).
   */
  function sendLeased(
    session: ReservedSession,
    state: WriterState,
    batch: PreparedBatch,
    columns: EncodedColumns,
  ): Promise<BatchWritten | undefined> {
    const { candidates } = batch;
    const persistedAt = leafTime(new Date(Date.now() + state.clockOffsetMs));
    const rows = rowsToInsert(candidates, columns, state.nextSeq, state.nextLeaf, persistedAt);
    const inserting = session.query<{ inserted: number }>(LEASED_INSERT_STATEMENT, [
      ...rows.params,
      state.sequence,
      rows.lastSeq,
    ]);
    state.nextSeq = BigInt(rows.lastSeq) + 1n;
    state.nextLeaf += BigInt(candidates.length);
    return inserting.then(
      ([row]) =>
        row?.inserted === candidates.length
          ? { inserted: row.inserted, stored: rows.stored(), conflicts: [] }
          : undefined,
      (error: unknown) => {
        if ((error as { code?: unknown } | null)?.code === UNIQUE_VIOLATION) return undefined;
        throw error;
      },
    );
  }

  /** The batch through {@link writeChecked}, after which the lease reads its positions again. */
  async function recoverLeased(
    session: ReservedSession,
    state: WriterState,
    batch: PreparedBatch,
    columns: EncodedColumns,
  ): Promise<BatchWritten> {
    const written = await session.transaction((tx) => writeChecked(tx, batch, columns));
    Object.assign(state, await readWriterState(session));
    return written;
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
     * Batches from every worker are serialized by an advisory lock (the write
     * lease, {@link createWriteLease}), so `seq` and the leaf positions are
     * assigned, and become visible, in commit order.
     *
     * An event reusing a stored id (or an earlier id of the batch) with other
     * content is not stored: its index is among `conflicts`, for the caller to
     * set aside (src/store/event-conflicts.ts).
     * @returns how many events were new, those events as stored, in ascending seq order, and
     * the indexes of the conflicting ones.
     */
    async insertBatch(batch: readonly NewEvent[] | PreparedBatch): Promise<BatchWritten> {
      const prepared = batch instanceof PreparedBatch ? batch : prepareBatch(batch);
      if (prepared.candidates.length === 0) return { inserted: 0, stored: [], conflicts: [] };
      const columns = prepared.columns ?? encodeColumns(prepared.candidates);
      return lease.write(
        // Repeats of an id within the batch go straight to the checked path, which skips them.
        async (session, state) =>
          columns.distinct ? sendLeased(session, state, prepared, columns) : undefined,
        (session, state) => recoverLeased(session, state, prepared, columns),
      );
    },

    prepareBatch,

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

    /** How each event relates to the stored one with its id (absent: not stored). See event-conflicts.ts. */
    compareWithStored(events: readonly EventContent[]): Promise<Map<string, IdReuse>> {
      return compareWithStored(db, events);
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
