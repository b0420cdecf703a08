import type { Checkpoint } from '../integrity/checkpoint.js';
import type { IntegrityLog, LoggedEvent, LogLeaf } from '../integrity/ports.js';
import type { SqlSession } from './database.js';
import {
  checkpointsFrom,
  EVENT_COLUMNS,
  LEAF_COLUMNS,
  retentionBoundary,
  toCheckpoint,
} from './integrity-rows.js';

/** A page size written into the SQL text: a literal LIMIT, so the planner plans for that many rows. */
function limitOf(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`not a page size: ${limit}`);
  return limit;
}

/**
 * The SQL behind {@link IntegrityLog}: the reads verification makes
 * (src/integrity/verification.ts). Each runs on its own pooled connection when
 * `db` is a pool, which is what lets the next page load while one is hashed.
 */
export function createIntegrityLog(db: Pick<SqlSession, 'query'>): IntegrityLog {
  return {
    retentionBoundary: () => retentionBoundary(db),

    async checkpoints(): Promise<Checkpoint[]> {
      return (await checkpointsFrom(db, 0n)).map(toCheckpoint);
    },

    async extent() {
      const [row] = await db.query<{ size: string; last_seq: string | null }>(
        'SELECT COALESCE(max(leaf_index) + 1, 0)::text AS size, max(seq)::text AS last_seq FROM audit_log_leaves',
      );
      return {
        size: BigInt(row?.size ?? '0'),
        lastSeq: row?.last_seq == null ? null : BigInt(row.last_seq),
      };
    },

    async firstLeafFrom(seq) {
      const [row] = await db.query<{ first: string | null }>(
        'SELECT min(leaf_index)::text AS first FROM audit_log_leaves WHERE seq >= $1::bigint',
        [seq.toString()],
      );
      return row?.first === null || row?.first === undefined ? null : BigInt(row.first);
    },

    leaves(first, end, limit) {
      return db.query<LogLeaf>(
        `SELECT ${LEAF_COLUMNS} FROM audit_log_leaves
          WHERE leaf_index >= $1::bigint AND leaf_index < $2::bigint
          ORDER BY audit_log_leaves.leaf_index LIMIT ${limitOf(limit)}`,
        [first.toString(), end.toString()],
      );
    },

    events(after, through, limit) {
      const params: string[] = [];
      const conditions: string[] = [];
      if (after !== null) {
        params.push(after.toString());
        conditions.push(`seq > $${params.length}::bigint`);
      }
      params.push(through.toString());
      conditions.push(`seq <= $${params.length}::bigint`);
      return db.query<LoggedEvent>(
        `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE ${conditions.join(' AND ')}
          ORDER BY audit_events.seq LIMIT ${limitOf(limit)}`,
        params,
      );
    },

    async loggedSeqOf(id) {
      const [row] = await db.query<{ seq: string }>(
        'SELECT seq::text FROM audit_log_leaves WHERE event_id = $1::uuid',
        [id],
      );
      return row?.seq ?? null;
    },

    async storedSeqOf(id) {
      const [row] = await db.query<{ seq: string }>(
        'SELECT seq::text FROM audit_events WHERE id = $1::uuid',
        [id],
      );
      return row?.seq ?? null;
    },

    async firstUnlogged(after, through) {
      const [row] = await db.query<{ id: string; seq: string }>(
        `SELECT e.id::text, e.seq::text FROM audit_events e
          WHERE e.seq > $1::bigint AND e.seq <= $2::bigint
            AND NOT EXISTS (SELECT 1 FROM audit_log_leaves l WHERE l.event_id = e.id AND l.seq = e.seq)
          ORDER BY e.seq LIMIT 1`,
        [after.toString(), through.toString()],
      );
      return row ?? null;
    },
  };
}
