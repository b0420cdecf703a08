import type { NewEvent, StoredEvent } from '../events/stored-event.js';
import { leafTime } from '../integrity/leaf.js';
import type { Database, ReservedSession, SqlSession } from './database.js';
import { compareWithStored, sameContent, type EventContent } from './event-conflicts.js';
import {
  INSERT_STATEMENT,
  LEASED_INSERT_STATEMENT,
  PREPARE_CHECKED,
  UNIQUE_VIOLATION,
  type PrepareState,
} from './insert-sql.js';
import {
  encodeColumns,
  prepareBatch,
  PreparedBatch,
  type BatchCandidate,
  type EncodedColumns,
} from './prepared-batch.js';
import { createWriteLease, readWriterState, type WriterState } from './write-lease.js';

/** What `insertBatch` did with a batch. */
interface BatchWritten {
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

/** Writes batches of events under the write lease (src/store/write-lease.ts), one lease per writer. */
export function createEventWriter(db: Database) {
  const lease = createWriteLease(db);
  return {
    /**
     * Persists a batch: the events and one hash-log leaf per new event
     * (src/integrity/leaf.ts), in one transaction; the rollups count them once
     * folded (createRollupFolder in rollup-folder.ts: by the worker after commit, and by
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
  };
}
