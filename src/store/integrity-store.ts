import type { KeyObject } from 'node:crypto';
import { signCheckpoint, ZERO_ROOT, chainRoot, type Checkpoint } from '../integrity/checkpoint.js';
import { leafHashOf } from '../integrity/leaf.js';
import { inclusionPath, merkleRoot } from '../integrity/merkle.js';
import type { IntegrityLedger, LoggedEvent, LogLeaf, Retention } from '../integrity/ports.js';
import type {
  CheckpointSigner,
  IntegrityReport,
  LoggedProof,
  RetentionResult,
  VerifyWindow,
} from '../integrity/report.js';
import { verifyLog } from '../integrity/verification.js';
import { MIN_SEQ } from '../validation.js';
import type { Database, SqlSession } from './database.js';
import type { RollupFolder } from './rollup-folder.js';
import { createIntegrityLog } from './integrity-log.js';
import {
  CHECKPOINT_COLUMNS,
  checkpointsFrom,
  EVENT_COLUMNS,
  hex,
  LEAF_COLUMNS,
  retentionBoundary,
  toCheckpoint,
  type CheckpointRow,
} from './integrity-rows.js';

/**
 * The SQL of tamper evidence that writes or answers one question: the hash
 * log's backfill, signed checkpoints, proofs and retention. Verification
 * itself is src/integrity/verification.ts, over the reads of ./integrity-log.ts.
 *
 * The log: leaf i (0, 1, 2… in seq order) is SHA-256(0x00 || canonical event)
 * (src/integrity/leaf.ts). A checkpoint covers the leaves added since the one
 * before, [firstLeaf, treeSize), with their RFC 9162 Merkle root, chained
 * (rootHash = H(0x02 || previous rootHash || rangeRoot)) and signed with Ed25519.
 */

/** Only one process writes checkpoints at a time; the others skip their turn. */
const CHECKPOINT_LOCK_KEY = 0x61756463; // "audc"
const RETENTION_LOCK_KEY = 0x61756472; // "audr"

/** Leaves per checkpoint at most, which bounds what one proof reads and hashes (2 MiB of hashes). */
const MAX_CHECKPOINT_LEAVES = 65_536;
/** Events per read while backfilling, as verification reads them. */
const BACKFILL_CHUNK = 10_000;

/**
 * Gives every event stored before the hash log existed (before the migration
 * that added it) its leaf, in seq order, once: called by the event store's
 * insert under its lock when the log is empty but events are not.
 * @throws Error when checkpoints exist: leaves then vanished, which is tampering, not an upgrade.
 */
export async function backfillLeaves(session: SqlSession): Promise<number> {
  const [checkpoints] = await session.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM integrity_checkpoints',
  );
  if ((checkpoints?.n ?? 0) > 0) {
    throw new Error(
      'the hash log is empty but checkpoints exist: leaves were removed; run auditgraph verify',
    );
  }
  let after = MIN_SEQ.toString();
  let leafIndex = 0n;
  for (;;) {
    const rows = await session.query<LoggedEvent>(
      `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq > $1::bigint ORDER BY audit_events.seq LIMIT ${BACKFILL_CHUNK}`,
      [after],
    );
    if (rows.length === 0) return Number(leafIndex);
    await session.query(
      `INSERT INTO audit_log_leaves (leaf_index, seq, event_id, leaf_hash)
       SELECT l.i, l.s, l.id, decode(l.h, 'hex') FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::text[]) AS l(i, s, id, h)`,
      [
        rows.map((_, offset) => (leafIndex + BigInt(offset)).toString()),
        rows.map((row) => row.seq),
        rows.map((row) => row.id),
        rows.map((row) => leafHashOf(row).toString('hex')),
      ],
    );
    leafIndex += BigInt(rows.length);
    after = rows[rows.length - 1]!.seq;
  }
}

export function createIntegrityStore(
  db: Database,
  // Folded before retention, so no event is deleted before the rollups count it.
  { rollups }: { rollups: Pick<RollupFolder, 'fold'> },
) {
  const log = createIntegrityLog(db);
  const leafHashesOf = async (first: bigint, end: bigint): Promise<Buffer[]> => {
    const rows = await db.query<{ leaf_hash: Buffer | Uint8Array }>(
      'SELECT leaf_hash FROM audit_log_leaves WHERE leaf_index >= $1::bigint AND leaf_index < $2::bigint ORDER BY audit_log_leaves.leaf_index',
      [first.toString(), end.toString()],
    );
    return rows.map((row) => Buffer.from(row.leaf_hash));
  };

  const store = {
    /** The reads verification walks (src/integrity/ports.ts). */
    log,

    /**
     * Signs checkpoints over the leaves added since the last one, at most
     * {@link MAX_CHECKPOINT_LEAVES} each, until every committed leaf is covered.
     * Leaves of committed batches always form a contiguous prefix (the insert
     * lock orders commits), so reading them needs no lock of the insert's.
     * @returns the checkpoints written; none when another process holds the turn or nothing is new.
     * @throws Error when a leaf position is missing: the log was tampered with.
     */
    async checkpoint(signer: CheckpointSigner, now: () => Date = () => new Date()): Promise<Checkpoint[]> {
      return db.transaction(async (tx) => {
        const [locked] = await tx.query<{ locked: boolean }>(
          'SELECT pg_try_advisory_xact_lock($1) AS locked',
          [CHECKPOINT_LOCK_KEY],
        );
        if (!locked?.locked) return [];
        const [last] = await tx.query<CheckpointRow>(
          `SELECT ${CHECKPOINT_COLUMNS} FROM integrity_checkpoints ORDER BY integrity_checkpoints.id DESC LIMIT 1`,
        );
        let index = last ? BigInt(last.id) : 0n;
        let treeSize = last ? BigInt(last.tree_size) : 0n;
        let previousRoot = last ? Buffer.from(last.root_hash) : ZERO_ROOT;
        const written: Checkpoint[] = [];
        for (;;) {
          const leaves = await tx.query<{ leaf_index: string; seq: string; leaf_hash: Buffer | Uint8Array }>(
            `SELECT leaf_index::text, seq::text, leaf_hash FROM audit_log_leaves
              WHERE leaf_index >= $1::bigint ORDER BY audit_log_leaves.leaf_index LIMIT ${MAX_CHECKPOINT_LEAVES}`,
            [treeSize.toString()],
          );
          if (leaves.length === 0) return written;
          const end = BigInt(leaves[leaves.length - 1]!.leaf_index) + 1n;
          if (end - treeSize !== BigInt(leaves.length)) {
            throw new Error(
              `hash log leaves are missing between ${treeSize} and ${end}: run auditgraph verify`,
            );
          }
          const rangeRoot = merkleRoot(leaves.map((leaf) => leaf.leaf_hash));
          index += 1n;
          const checkpoint = signCheckpoint(
            {
              index: index.toString(),
              firstLeaf: treeSize.toString(),
              treeSize: end.toString(),
              lastSeq: leaves[leaves.length - 1]!.seq,
              rangeRoot: rangeRoot.toString('hex'),
              previousRoot: previousRoot.toString('hex'),
              rootHash: chainRoot(previousRoot, rangeRoot).toString('hex'),
              createdAt: now().toISOString(),
              keyId: signer.keyId,
            },
            signer.privateKey,
          );
          await tx.query(
            `INSERT INTO integrity_checkpoints (id, first_leaf, tree_size, last_seq, range_root, previous_root, root_hash,
               created_at, key_id, signature)
             VALUES ($1, $2, $3, $4, decode($5, 'hex'), decode($6, 'hex'), decode($7, 'hex'), $8, $9, decode($10, 'base64'))`,
            [
              checkpoint.index,
              checkpoint.firstLeaf,
              checkpoint.treeSize,
              checkpoint.lastSeq,
              checkpoint.rangeRoot,
              checkpoint.previousRoot,
              checkpoint.rootHash,
              checkpoint.createdAt,
              checkpoint.keyId,
              checkpoint.signature,
            ],
          );
          written.push(checkpoint);
          treeSize = end;
          previousRoot = Buffer.from(checkpoint.rootHash, 'hex');
        }
      });
    },

    /** The newest checkpoint, or null before the first. */
    async latestCheckpoint(): Promise<Checkpoint | null> {
      const [row] = await db.query<CheckpointRow>(
        `SELECT ${CHECKPOINT_COLUMNS} FROM integrity_checkpoints ORDER BY integrity_checkpoints.id DESC LIMIT 1`,
      );
      return row ? toCheckpoint(row) : null;
    },

    /**
     * Staleness of the signed history, for the checkpoint-age metric: how many
     * leaves no checkpoint covers yet, and how long ago the oldest of them was persisted.
     */
    async checkpointLag(): Promise<{ uncheckpointed: number; oldestAgeSeconds: number }> {
      const [row] = await db.query<{ pending: string; age: number | null }>(
        `WITH covered AS (SELECT COALESCE(max(tree_size), 0) AS size FROM integrity_checkpoints)
         SELECT (SELECT COALESCE(max(leaf_index) + 1, 0) FROM audit_log_leaves) - covered.size AS pending,
                (SELECT extract(epoch FROM now() - e.persisted_at)::float8
                   FROM audit_log_leaves l JOIN audit_events e ON e.seq = l.seq
                  WHERE l.leaf_index = covered.size) AS age
           FROM covered`,
      );
      const uncheckpointed = Number(row?.pending ?? 0);
      return { uncheckpointed, oldestAgeSeconds: uncheckpointed > 0 ? Math.max(row?.age ?? 0, 0) : 0 };
    },

    /**
     * The proof that event `id` is in the signed log: its leaf, the audit path
     * within the first checkpoint covering it, and that checkpoint.
     * @returns null when no event with this id was ever stored; `checkpoint: null`
     *   when it is stored but not yet under a checkpoint.
     */
    async proofOf(id: string): Promise<LoggedProof | null> {
      const [leaf] = await db.query<LogLeaf>(
        `SELECT ${LEAF_COLUMNS} FROM audit_log_leaves WHERE event_id = $1::uuid`,
        [id],
      );
      if (!leaf) return null;
      const [row] = await db.query<CheckpointRow>(
        `SELECT ${CHECKPOINT_COLUMNS} FROM integrity_checkpoints WHERE tree_size > $1::bigint ORDER BY integrity_checkpoints.tree_size LIMIT 1`,
        [leaf.leafIndex],
      );
      if (!row) return { seq: leaf.seq, proof: null };
      const checkpoint = toCheckpoint(row);
      const first = BigInt(checkpoint.firstLeaf);
      const hashes = await leafHashesOf(first, BigInt(checkpoint.treeSize));
      return {
        seq: leaf.seq,
        proof: {
          leafIndex: leaf.leafIndex,
          leafHash: hex(leaf.leafHash),
          auditPath: inclusionPath(hashes, Number(BigInt(leaf.leafIndex) - first)).map((hash) =>
            hash.toString('hex'),
          ),
          checkpoint,
        },
      };
    },

    /**
     * Verification (src/integrity/verification.ts) over this database's log.
     * @param window seq bounds, inclusive; omitted bounds mean the whole log.
     */
    verify(window: VerifyWindow, publicKey: KeyObject | null): Promise<IntegrityReport> {
      return verifyLog(log, window, publicKey);
    },

    /**
     * Removes the bodies of events received before `cutoff`, in whole
     * checkpoint ranges from the oldest, keeping leaves and checkpoints so
     * the rest still verifies. Only checkpointed ranges whose every event is
     * older than the cutoff go. Records the boundary, which verification reports.
     * @returns the events deleted and the new boundary (null when nothing was due).
     */
    async applyRetention(cutoff: Date): Promise<RetentionResult> {
      await rollups.fold();
      return db.transaction(async (tx) => {
        const [locked] = await tx.query<{ locked: boolean }>(
          'SELECT pg_try_advisory_xact_lock($1) AS locked',
          [RETENTION_LOCK_KEY],
        );
        if (!locked?.locked) return { deleted: 0, throughSeq: null };
        const boundary = await retentionBoundary(tx);
        // Events the analytics rollups do not count yet stay until they are folded (createRollupFolder).
        const [folded] = await tx.query<{ through_seq: string }>(
          'SELECT through_seq::text FROM analytics_folded WHERE id = 1',
        );
        let through: CheckpointRow | undefined;
        for (const checkpoint of await checkpointsFrom(tx, boundary.treeSize)) {
          if (!folded || BigInt(checkpoint.last_seq) > BigInt(folded.through_seq)) break;
          const [row] = await tx.query<{ newest: Date | null }>(
            `SELECT max(received_at) AS newest FROM audit_events WHERE seq > $1::bigint AND seq <= $2::bigint`,
            [through?.last_seq ?? boundary.seq ?? MIN_SEQ.toString(), checkpoint.last_seq],
          );
          if (row?.newest && new Date(row.newest) >= cutoff) break;
          through = checkpoint;
        }
        if (!through) return { deleted: 0, throughSeq: null };
        // The trigger on audit_events lets DELETE through only with this set, for this transaction only.
        await tx.query(`SELECT set_config('auditgraph.retention', 'on', true)`);
        const [deleted] = await tx.query<{ n: number }>(
          'WITH gone AS (DELETE FROM audit_events WHERE seq <= $1::bigint RETURNING 1) SELECT count(*)::int AS n FROM gone',
          [through.last_seq],
        );
        await tx.query(
          'INSERT INTO integrity_retention (through_tree_size, through_seq, cutoff) VALUES ($1::bigint, $2::bigint, $3)',
          [through.tree_size, through.last_seq, cutoff],
        );
        return { deleted: deleted?.n ?? 0, throughSeq: through.last_seq };
      });
    },
  };
  return store satisfies IntegrityLedger & Retention;
}

export type IntegrityStore = ReturnType<typeof createIntegrityStore>;
