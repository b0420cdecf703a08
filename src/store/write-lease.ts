import type { Database, ReservedSession } from './database.js';
import { backfillLeaves } from './integrity-store.js';

/**
 * Serializes batch inserts across every worker, so `seq` values become visible
 * in the order they were assigned. Without it two concurrent batches can commit
 * out of order, and a reader paging by `seq` would skip the later-committed
 * lower positions for good.
 */
const SEQ_ORDER_LOCK_KEY = 0x61756469; // "audi"

/**
 * What a holder of the write lease knows of the tables, read once when it takes
 * the lease: nobody else writes events or leaves while it holds it.
 */
export interface WriterState {
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

export async function readWriterState(session: ReservedSession): Promise<WriterState> {
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
export function createWriteLease(db: Database) {
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
