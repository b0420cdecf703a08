import type { KeyObject } from 'node:crypto';
import {
  signCheckpoint,
  verifyCheckpoint,
  ZERO_ROOT,
  chainRoot,
  type Checkpoint,
} from '../integrity/checkpoint.js';
import { leafHashOf, type EventLike } from '../integrity/leaf.js';
import { inclusionPath, merkleRoot } from '../integrity/merkle.js';
import type { EventProof } from '../integrity/verifier.js';
import type { Database, SqlSession } from './database.js';
import { createRollupFolder } from './analytics-store.js';

/**
 * All SQL of tamper evidence: the hash log's leaves (written by the event
 * store's insert), signed checkpoints, proofs, verification and retention.
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
export const MAX_CHECKPOINT_LEAVES = 65_536;
/** Rows per read while verifying: large enough to amortize the round trip, small enough for memory. */
const VERIFY_CHUNK = 10_000;

/** The key that signs checkpoints. */
export interface CheckpointSigner {
  privateKey: KeyObject;
  keyId: string;
}

export type IntegrityProblemKind =
  | 'modified'
  | 'deleted'
  | 'inserted'
  | 'reordered'
  | 'leaf_missing'
  | 'leaves_modified'
  | 'checkpoint_invalid';

export interface IntegrityProblem {
  kind: IntegrityProblemKind;
  /** The event at the broken position: the one the log expects there, or the row found where none is expected. */
  id: string | null;
  seq: string | null;
  /** For `reordered` and `inserted` at a known position: the row found where `id` belongs. */
  foundId: string | null;
  message: string;
}

export interface IntegrityReport {
  ok: boolean;
  /** The seq window verified (null bounds: the whole log). */
  from: string | null;
  to: string | null;
  /** Events whose hash was recomputed. */
  eventsChecked: number;
  leavesChecked: number;
  checkpointsChecked: number;
  /** False when no public key was given: the log's hashes were checked, signatures were not. */
  signaturesChecked: boolean;
  treeSize: string;
  /** Leaves not yet under a signed checkpoint. */
  uncheckpointedLeaves: string;
  /** Event bodies of seq ≤ this were removed by retention on purpose (their leaves remain). */
  retainedThroughSeq: string | null;
  problem: IntegrityProblem | null;
}

interface LeafRow {
  leaf_index: string;
  seq: string;
  event_id: string;
  leaf_hash: Buffer | Uint8Array;
}

interface EventRow {
  id: string;
  seq: string;
  event_type: string;
  session_id: string;
  payload: unknown;
  client_time: string | null;
  received_at: string;
  persisted_at: string;
  api_key_id: string | null;
}

interface CheckpointRow {
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

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

// ORDER BY names the table's column everywhere below: a bare name would sort by the ::text
// output column of the same name, in text order.
// Times as the leaf hashes them, formatted by PostgreSQL: no Date parsing per row while verifying.
const isoUtc = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const EVENT_COLUMNS = `id::text, seq::text, event_type, session_id, payload, ${isoUtc('client_time')} AS client_time,
  ${isoUtc('received_at')} AS received_at, ${isoUtc('persisted_at')} AS persisted_at, api_key_id`;
const CHECKPOINT_COLUMNS = `id::text, first_leaf::text, tree_size::text, last_seq::text, range_root, previous_root,
  root_hash, created_at, key_id, signature`;

function eventOf(row: EventRow): EventLike {
  return {
    id: row.id,
    seq: row.seq,
    eventType: row.event_type,
    sessionId: row.session_id,
    payload: row.payload,
    clientTime: row.client_time,
    receivedAt: row.received_at,
    persistedAt: row.persisted_at,
    apiKeyId: row.api_key_id,
  };
}

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

/** The position the next leaf takes. Call under the event store's insert lock. */
export async function nextLeaf(session: SqlSession): Promise<bigint> {
  const [row] = await session.query<{ next: string }>(
    'SELECT COALESCE(max(leaf_index) + 1, 0)::text AS next FROM audit_log_leaves',
  );
  return BigInt(row?.next ?? '0');
}

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
  let after = '-9223372036854775808';
  let leafIndex = 0n;
  for (;;) {
    const rows = await session.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq > $1::bigint ORDER BY audit_events.seq LIMIT ${VERIFY_CHUNK}`,
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
        rows.map((row) => leafHashOf(eventOf(row)).toString('hex')),
      ],
    );
    leafIndex += BigInt(rows.length);
    after = rows[rows.length - 1]!.seq;
  }
}

/**
 * Rows in chunks of {@link VERIFY_CHUNK}, keyset-paged by `load(last row of the previous chunk)`;
 * the next chunk is requested as soon as one arrives, so reading overlaps hashing.
 */
function prefetchingCursor<Row>(load: (last: Row | undefined) => Promise<Row[]>) {
  let buffer: Row[] = [];
  let at = 0;
  let pending: Promise<Row[]> | null = load(undefined);
  // Awaited later; a rejection until then must not count as unhandled.
  pending.catch(() => undefined);
  return {
    async peek(): Promise<Row | undefined> {
      if (at < buffer.length) return buffer[at];
      if (!pending) return undefined;
      buffer = await pending;
      at = 0;
      pending = buffer.length < VERIFY_CHUNK ? null : load(buffer[buffer.length - 1]);
      pending?.catch(() => undefined);
      return buffer[0];
    },
    advance(): void {
      at += 1;
    },
  };
}

export function createIntegrityStore(db: Database) {
  const rollups = createRollupFolder(db);
  async function checkpointsFrom(
    session: Pick<SqlSession, 'query'>,
    afterTreeSize: bigint,
  ): Promise<CheckpointRow[]> {
    return session.query<CheckpointRow>(
      `SELECT ${CHECKPOINT_COLUMNS} FROM integrity_checkpoints WHERE tree_size > $1::bigint ORDER BY integrity_checkpoints.id`,
      [afterTreeSize.toString()],
    );
  }

  async function retentionBoundary(
    session: Pick<SqlSession, 'query'>,
  ): Promise<{ treeSize: bigint; seq: string | null }> {
    const [row] = await session.query<{ tree_size: string | null; seq: string | null }>(
      'SELECT max(through_tree_size)::text AS tree_size, max(through_seq)::text AS seq FROM integrity_retention',
    );
    return { treeSize: BigInt(row?.tree_size ?? '0'), seq: row?.seq ?? null };
  }

  async function leafHashesOf(
    session: Pick<SqlSession, 'query'>,
    first: bigint,
    end: bigint,
  ): Promise<Buffer[]> {
    const rows = await session.query<{ leaf_hash: Buffer | Uint8Array }>(
      'SELECT leaf_hash FROM audit_log_leaves WHERE leaf_index >= $1::bigint AND leaf_index < $2::bigint ORDER BY audit_log_leaves.leaf_index',
      [first.toString(), end.toString()],
    );
    return rows.map((row) => Buffer.from(row.leaf_hash));
  }

  return {
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
    async proofOf(id: string): Promise<{ seq: string; proof: EventProof | null } | null> {
      const [leaf] = await db.query<LeafRow>(
        'SELECT leaf_index::text, seq::text, event_id::text, leaf_hash FROM audit_log_leaves WHERE event_id = $1::uuid',
        [id],
      );
      if (!leaf) return null;
      const [row] = await db.query<CheckpointRow>(
        `SELECT ${CHECKPOINT_COLUMNS} FROM integrity_checkpoints WHERE tree_size > $1::bigint ORDER BY integrity_checkpoints.tree_size LIMIT 1`,
        [leaf.leaf_index],
      );
      if (!row) return { seq: leaf.seq, proof: null };
      const checkpoint = toCheckpoint(row);
      const first = BigInt(checkpoint.firstLeaf);
      const hashes = await leafHashesOf(db, first, BigInt(checkpoint.treeSize));
      return {
        seq: leaf.seq,
        proof: {
          leafIndex: leaf.leaf_index,
          leafHash: hex(leaf.leaf_hash),
          auditPath: inclusionPath(hashes, Number(BigInt(leaf.leaf_index) - first)).map((hash) =>
            hash.toString('hex'),
          ),
          checkpoint,
        },
      };
    },

    /**
     * Recomputes the log against the stored events, in seq order, and every
     * checkpoint whose range meets the window: its range root from the leaves,
     * its link to the previous one and (with `publicKey`) its signature.
     * Stops at the first problem, which names the event (id and seq) and whether
     * it was modified, deleted, inserted or moved (reordered).
     * @param window seq bounds, inclusive; omitted bounds mean the whole log.
     */
    async verify(
      window: { from?: bigint | undefined; to?: bigint | undefined },
      publicKey: KeyObject | null,
    ): Promise<IntegrityReport> {
      const session: Pick<SqlSession, 'query'> = db;
      const from = window.from ?? null;
      const to = window.to ?? null;
      const inWindow = (seq: bigint) => (from === null || seq >= from) && (to === null || seq <= to);
      const retention = await retentionBoundary(session);
      // Read before the log's size: a checkpoint only ever covers leaves already committed.
      const checkpoints = (await checkpointsFrom(session, 0n)).map(toCheckpoint);
      // The log as of now: events committed while this runs are checked against it only at the end,
      // since each chunk read below sees a newer snapshot than the one before.
      const [sizeRow] = await session.query<{ size: string; last_seq: string | null }>(
        'SELECT COALESCE(max(leaf_index) + 1, 0)::text AS size, max(seq)::text AS last_seq FROM audit_log_leaves',
      );
      const treeSize = BigInt(sizeRow?.size ?? '0');
      const lastLoggedSeq = sizeRow?.last_seq == null ? null : BigInt(sizeRow.last_seq);
      const MIN_SEQ = -9223372036854775808n;
      const walkTo =
        lastLoggedSeq === null ? MIN_SEQ : to !== null && to < lastLoggedSeq ? to : lastLoggedSeq;
      const report: IntegrityReport = {
        ok: true,
        from: from?.toString() ?? null,
        to: to?.toString() ?? null,
        eventsChecked: 0,
        leavesChecked: 0,
        checkpointsChecked: 0,
        signaturesChecked: publicKey !== null,
        treeSize: treeSize.toString(),
        uncheckpointedLeaves: '0',
        retainedThroughSeq: retention.seq,
        problem: null,
      };
      const fail = (problem: Omit<IntegrityProblem, 'foundId'> & { foundId?: string | null }) => {
        report.ok = false;
        report.problem = { foundId: null, ...problem };
        return report;
      };

      // The checkpoint chain, every link: a few rows per hour of history.
      let expectedFirst = 0n;
      let previousRoot = ZERO_ROOT.toString('hex');
      for (const checkpoint of checkpoints) {
        const valid =
          BigInt(checkpoint.firstLeaf) === expectedFirst &&
          BigInt(checkpoint.treeSize) > expectedFirst &&
          checkpoint.previousRoot === previousRoot &&
          (publicKey === null
            ? chainRoot(Buffer.from(previousRoot, 'hex'), Buffer.from(checkpoint.rangeRoot, 'hex')).toString(
                'hex',
              ) === checkpoint.rootHash
            : verifyCheckpoint(checkpoint, publicKey));
        if (!valid) {
          return fail({
            kind: 'checkpoint_invalid',
            id: null,
            seq: checkpoint.lastSeq,
            message: `checkpoint ${checkpoint.index} (leaves ${checkpoint.firstLeaf}–${checkpoint.treeSize}) is not a valid link of the signed chain`,
          });
        }
        expectedFirst = BigInt(checkpoint.treeSize);
        previousRoot = checkpoint.rootHash;
      }
      report.checkpointsChecked = checkpoints.length;
      const checkpointed = expectedFirst;
      report.uncheckpointedLeaves = (treeSize > checkpointed ? treeSize - checkpointed : 0n).toString();
      if (treeSize < checkpointed) {
        return fail({
          kind: 'leaf_missing',
          id: null,
          seq: null,
          message: `checkpoints cover ${checkpointed} leaves but the log holds ${treeSize}: leaves were deleted`,
        });
      }

      // Leaves from the start of the first checkpoint range meeting the window, so its root can be recomputed.
      let startLeaf = 0n;
      if (from !== null) {
        const [row] = await session.query<{ first: string | null }>(
          'SELECT min(leaf_index)::text AS first FROM audit_log_leaves WHERE seq >= $1::bigint',
          [from.toString()],
        );
        const firstInWindow = row?.first === null || row?.first === undefined ? treeSize : BigInt(row.first);
        const covering = checkpoints.find((checkpoint) => BigInt(checkpoint.treeSize) > firstInWindow);
        startLeaf = covering ? BigInt(covering.firstLeaf) : firstInWindow;
      }
      let checkpointAt = checkpoints.findIndex((checkpoint) => BigInt(checkpoint.treeSize) > startLeaf);
      let rangeHashes: Buffer[] = [];

      // Events are read by seq and merged with the leaves; both streams advance in chunks, each
      // chunk's successor loading (on another pooled connection) while this one is hashed.
      const events = prefetchingCursor<EventRow>(async (last) => {
        const params: string[] = [];
        const conditions: string[] = [];
        const after = last ? BigInt(last.seq) : from === null ? null : from - 1n;
        if (after !== null) {
          params.push(after.toString());
          conditions.push(`seq > $${params.length}::bigint`);
        }
        params.push(walkTo.toString());
        conditions.push(`seq <= $${params.length}::bigint`);
        return session.query<EventRow>(
          `SELECT ${EVENT_COLUMNS} FROM audit_events ${conditions.length ? `WHERE ${conditions.join(' AND ')}` : ''}
            ORDER BY audit_events.seq LIMIT ${VERIFY_CHUNK}`,
          params,
        );
      });
      const peekEvent = () => events.peek();

      /** Where a row whose id is known to the log belongs, to tell a move from an insert or a deletion. */
      const leafOfId = async (id: string) =>
        (
          await session.query<{ seq: string }>(
            'SELECT seq::text FROM audit_log_leaves WHERE event_id = $1::uuid',
            [id],
          )
        )[0];
      const rowOfId = async (id: string) =>
        (
          await session.query<{ seq: string }>('SELECT seq::text FROM audit_events WHERE id = $1::uuid', [id])
        )[0];

      const strayProblem = async (event: EventRow): Promise<IntegrityProblem> => {
        const home = await leafOfId(event.id);
        return home
          ? {
              kind: 'reordered',
              id: event.id,
              seq: event.seq,
              foundId: null,
              message: `event ${event.id} is stored at seq ${event.seq}; the log holds it at seq ${home.seq}`,
            }
          : {
              kind: 'inserted',
              id: event.id,
              seq: event.seq,
              foundId: null,
              message: `event ${event.id} at seq ${event.seq} is not in the hash log: it was inserted around auditgraph`,
            };
      };

      let leafCursor = startLeaf;
      let lastLeafSeq: bigint | null = null;
      const leaves = prefetchingCursor<LeafRow>((last) =>
        session.query<LeafRow>(
          `SELECT leaf_index::text, seq::text, event_id::text, leaf_hash FROM audit_log_leaves
            WHERE leaf_index >= $1::bigint AND leaf_index < $2::bigint
            ORDER BY audit_log_leaves.leaf_index LIMIT ${VERIFY_CHUNK}`,
          [(last ? BigInt(last.leaf_index) + 1n : startLeaf).toString(), treeSize.toString()],
        ),
      );
      for (let leaf = await leaves.peek(); leaf; leaves.advance(), leaf = await leaves.peek()) {
        const index = BigInt(leaf.leaf_index);
        const seq = BigInt(leaf.seq);
        if (index !== leafCursor || (lastLeafSeq !== null && seq <= lastLeafSeq)) {
          return fail({
            kind: 'leaf_missing',
            id: leaf.event_id,
            seq: leaf.seq,
            message: `the hash log is broken before leaf ${index} (expected leaf ${leafCursor} in seq order)`,
          });
        }
        leafCursor += 1n;
        lastLeafSeq = seq;
        const hash = Buffer.from(leaf.leaf_hash);
        report.leavesChecked += 1;

        // Leaves past the window still complete the range of the checkpoint the window ends in.
        const checkpoint = checkpointAt >= 0 ? checkpoints[checkpointAt] : undefined;
        if (to !== null && seq > to && (!checkpoint || index < BigInt(checkpoint.firstLeaf))) break;
        if (inWindow(seq)) {
          const event = await peekEvent();
          // A row below this leaf's seq has no leaf of its own: inserted, or moved there from its position.
          if (event && BigInt(event.seq) < seq) return fail(await strayProblem(event));
          if (!event || BigInt(event.seq) !== seq) {
            // Retention may have run since the boundary was read: ask again before calling it tampering.
            if (index >= retention.treeSize && index >= (await retentionBoundary(session)).treeSize) {
              const moved = await rowOfId(leaf.event_id);
              return fail(
                moved
                  ? {
                      kind: 'reordered',
                      id: leaf.event_id,
                      seq: leaf.seq,
                      message: `event ${leaf.event_id} belongs at seq ${leaf.seq} but is stored at seq ${moved.seq}`,
                    }
                  : {
                      kind: 'deleted',
                      id: leaf.event_id,
                      seq: leaf.seq,
                      message: `event ${leaf.event_id} at seq ${leaf.seq} was deleted`,
                    },
              );
            }
          } else {
            events.advance();
            report.eventsChecked += 1;
            if (event.id !== leaf.event_id) {
              const home = await leafOfId(event.id);
              return fail({
                kind: home ? 'reordered' : 'inserted',
                id: leaf.event_id,
                seq: leaf.seq,
                foundId: event.id,
                message: home
                  ? `seq ${leaf.seq} holds event ${event.id} (logged at seq ${home.seq}) instead of ${leaf.event_id}`
                  : `seq ${leaf.seq} holds event ${event.id}, unknown to the log, instead of ${leaf.event_id}`,
              });
            }
            if (!leafHashOf(eventOf(event)).equals(hash)) {
              return fail({
                kind: 'modified',
                id: leaf.event_id,
                seq: leaf.seq,
                message: `event ${leaf.event_id} at seq ${leaf.seq} no longer matches its hash: it was modified`,
              });
            }
          }
        }

        if (checkpoint && index >= BigInt(checkpoint.firstLeaf)) {
          rangeHashes.push(hash);
          if (index + 1n === BigInt(checkpoint.treeSize)) {
            if (merkleRoot(rangeHashes).toString('hex') !== checkpoint.rangeRoot) {
              return fail({
                kind: 'leaves_modified',
                id: null,
                seq: checkpoint.lastSeq,
                message: `the leaves ${checkpoint.firstLeaf}–${checkpoint.treeSize} (seq up to ${checkpoint.lastSeq}) do not match checkpoint ${checkpoint.index}'s signed root: an event and its leaf were rewritten together`,
              });
            }
            rangeHashes = [];
            checkpointAt = checkpointAt + 1 < checkpoints.length ? checkpointAt + 1 : -1;
          }
        }
      }
      // A row after the last leaf (within the window) is unknown to the log at its position.
      const stray = await peekEvent();
      if (stray) return fail(await strayProblem(stray));
      // Rows past the log as it was at the start: those committed since come with their leaves
      // (one transaction); a row without its leaf is a forgery appended at the end.
      if (to === null || lastLoggedSeq === null || to > lastLoggedSeq) {
        const [late] = await session.query<EventRow>(
          `SELECT e.id::text, e.seq::text FROM audit_events e
            WHERE e.seq > $1::bigint AND e.seq <= $2::bigint
              AND NOT EXISTS (SELECT 1 FROM audit_log_leaves l WHERE l.event_id = e.id AND l.seq = e.seq)
            ORDER BY e.seq LIMIT 1`,
          [walkTo.toString(), (to ?? 9223372036854775807n).toString()],
        );
        if (late) return fail(await strayProblem(late));
      }
      return report;
    },

    /**
     * Removes the bodies of events received before `cutoff`, in whole
     * checkpoint ranges from the oldest, keeping leaves and checkpoints so
     * the rest still verifies. Only checkpointed ranges whose every event is
     * older than the cutoff go. Records the boundary, which verification reports.
     * @returns the events deleted and the new boundary (null when nothing was due).
     */
    async applyRetention(cutoff: Date): Promise<{ deleted: number; throughSeq: string | null }> {
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
            [through?.last_seq ?? boundary.seq ?? '-9223372036854775808', checkpoint.last_seq],
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
}

export type IntegrityStore = ReturnType<typeof createIntegrityStore>;
