import type { Checkpoint } from '../integrity/checkpoint.js';
import type { RetentionBoundary } from '../integrity/ports.js';
import type { SqlSession } from './database.js';

/**
 * The SQL pieces the integrity tables share: column lists, the checkpoint row
 * and its domain form, and the two small reads both the log's reader and
 * retention make. Leaves and events are selected under the names of
 * src/integrity/ports.ts (LogLeaf, LoggedEvent), so rows need no mapping.
 */

export interface CheckpointRow {
  id: string;
  first_leaf: string;
  tree_size: string;
  last_seq: string;
  range_root: Buffer | Uint8Array;
  previous_root: Buffer | Uint8Array;
  root_hash: Buffer | Uint8Array;
  created_at: Date;
  key_id: string;
  signature: Buffer | Uint8Array;
}

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

// ORDER BY names the table's column everywhere: a bare name would sort by the ::text
// output column of the same name, in text order.
// Times as the leaf hashes them, formatted by PostgreSQL: no Date parsing per row while verifying.
const isoUtc = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
export const EVENT_COLUMNS = `id::text, seq::text, event_type AS "eventType", session_id AS "sessionId", payload,
  ${isoUtc('client_time')} AS "clientTime", ${isoUtc('received_at')} AS "receivedAt",
  ${isoUtc('persisted_at')} AS "persistedAt", api_key_id AS "apiKeyId"`;
export const LEAF_COLUMNS =
  'leaf_index::text AS "leafIndex", seq::text, event_id::text AS "eventId", leaf_hash AS "leafHash"';
export const CHECKPOINT_COLUMNS = `id::text, first_leaf::text, tree_size::text, last_seq::text, range_root, previous_root,
  root_hash, created_at, key_id, signature`;

export function toCheckpoint(row: CheckpointRow): Checkpoint {
  return {
    index: row.id,
    firstLeaf: row.first_leaf,
    treeSize: row.tree_size,
    lastSeq: row.last_seq,
    rangeRoot: hex(row.range_root),
    previousRoot: hex(row.previous_root),
    rootHash: hex(row.root_hash),
    createdAt: new Date(row.created_at).toISOString(),
    keyId: row.key_id,
    signature: Buffer.from(row.signature).toString('base64'),
  };
}

/** The checkpoints covering leaves past `afterTreeSize`, by number. */
export async function checkpointsFrom(
  session: Pick<SqlSession, 'query'>,
  afterTreeSize: bigint,
): Promise<CheckpointRow[]> {
  return session.query<CheckpointRow>(
    `SELECT ${CHECKPOINT_COLUMNS} FROM integrity_checkpoints WHERE tree_size > $1::bigint ORDER BY integrity_checkpoints.id`,
    [afterTreeSize.toString()],
  );
}

export async function retentionBoundary(session: Pick<SqlSession, 'query'>): Promise<RetentionBoundary> {
  const [row] = await session.query<{ tree_size: string | null; seq: string | null }>(
    'SELECT max(through_tree_size)::text AS tree_size, max(through_seq)::text AS seq FROM integrity_retention',
  );
  return { treeSize: BigInt(row?.tree_size ?? '0'), seq: row?.seq ?? null };
}
