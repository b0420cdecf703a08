import type { KeyObject } from 'node:crypto';
import { MAX_SEQ, MIN_SEQ } from '../validation.js';
import { chainRoot, verifyCheckpoint, ZERO_ROOT, type Checkpoint } from './checkpoint.js';
import { leafHashOf } from './leaf.js';
import { merkleRoot } from './merkle.js';
import { prefetchingCursor } from './paged-cursor.js';
import type { IntegrityLog, LoggedEvent, LogLeaf } from './ports.js';
import type { IntegrityProblem, IntegrityReport, VerifyWindow } from './report.js';

/**
 * Verification: the log recomputed against the stored events, read through
 * {@link IntegrityLog}. Leaf i (0, 1, 2… in seq order) is SHA-256(0x00 ||
 * canonical event) (leaf.ts); a checkpoint covers [firstLeaf, treeSize) with its
 * RFC 9162 Merkle root, chained to the one before and signed (checkpoint.ts).
 */

/** Rows per read while verifying: large enough to amortize the round trip, small enough for memory. */
const VERIFY_CHUNK = 10_000;

/** The first checkpoint that is not a valid link of the chain from the zero root; null when all are. */
function brokenLink(checkpoints: readonly Checkpoint[], publicKey: KeyObject | null): Checkpoint | null {
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
    if (!valid) return checkpoint;
    expectedFirst = BigInt(checkpoint.treeSize);
    previousRoot = checkpoint.rootHash;
  }
  return null;
}

type Problem = Omit<IntegrityProblem, 'foundId'> & { foundId?: string | null };

/** A row with no leaf at its seq: moved there from the position the log holds it at, or inserted. */
async function strayProblem(log: IntegrityLog, event: { id: string; seq: string }): Promise<Problem> {
  const home = await log.loggedSeqOf(event.id);
  return home !== null
    ? {
        kind: 'reordered',
        id: event.id,
        seq: event.seq,
        message: `event ${event.id} is stored at seq ${event.seq}; the log holds it at seq ${home}`,
      }
    : {
        kind: 'inserted',
        id: event.id,
        seq: event.seq,
        message: `event ${event.id} at seq ${event.seq} is not in the hash log: it was inserted around auditgraph`,
      };
}

/** A leaf whose event is not at its seq, retention aside: moved elsewhere, or deleted. */
async function missingProblem(log: IntegrityLog, leaf: LogLeaf): Promise<Problem> {
  const moved = await log.storedSeqOf(leaf.eventId);
  return moved !== null
    ? {
        kind: 'reordered',
        id: leaf.eventId,
        seq: leaf.seq,
        message: `event ${leaf.eventId} belongs at seq ${leaf.seq} but is stored at seq ${moved}`,
      }
    : {
        kind: 'deleted',
        id: leaf.eventId,
        seq: leaf.seq,
        message: `event ${leaf.eventId} at seq ${leaf.seq} was deleted`,
      };
}

/** Another row at a leaf's seq: one the log holds elsewhere (reordered), or one it never saw (inserted). */
async function swappedProblem(log: IntegrityLog, leaf: LogLeaf, event: LoggedEvent): Promise<Problem> {
  const home = await log.loggedSeqOf(event.id);
  return {
    kind: home !== null ? 'reordered' : 'inserted',
    id: leaf.eventId,
    seq: leaf.seq,
    foundId: event.id,
    message:
      home !== null
        ? `seq ${leaf.seq} holds event ${event.id} (logged at seq ${home}) instead of ${leaf.eventId}`
        : `seq ${leaf.seq} holds event ${event.id}, unknown to the log, instead of ${leaf.eventId}`,
  };
}

/**
 * Recomputes the log against the stored events, in seq order, and every
 * checkpoint whose range meets the window: its range root from the leaves,
 * its link to the previous one and (with `publicKey`) its signature.
 * Stops at the first problem, which names the event (id and seq) and whether
 * it was modified, deleted, inserted or moved (reordered).
 * @param window seq bounds, inclusive; omitted bounds mean the whole log.
 */
export async function verifyLog(
  log: IntegrityLog,
  window: VerifyWindow,
  publicKey: KeyObject | null,
): Promise<IntegrityReport> {
  const from = window.from ?? null;
  const to = window.to ?? null;
  const inWindow = (seq: bigint) => (from === null || seq >= from) && (to === null || seq <= to);
  const retention = await log.retentionBoundary();
  // Read before the log's size: a checkpoint only ever covers leaves already committed.
  const checkpoints = await log.checkpoints();
  // The log as of now: events committed while this runs are checked against it only at the end,
  // since each page read below sees a newer snapshot than the one before.
  const { size: treeSize, lastSeq: lastLoggedSeq } = await log.extent();
  const walkTo = lastLoggedSeq === null ? MIN_SEQ : to !== null && to < lastLoggedSeq ? to : lastLoggedSeq;
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
  const fail = (problem: Problem) => {
    report.ok = false;
    report.problem = { foundId: null, ...problem };
    return report;
  };

  // The checkpoint chain, every link: a few rows per hour of history.
  const broken = brokenLink(checkpoints, publicKey);
  if (broken) {
    return fail({
      kind: 'checkpoint_invalid',
      id: null,
      seq: broken.lastSeq,
      message: `checkpoint ${broken.index} (leaves ${broken.firstLeaf}–${broken.treeSize}) is not a valid link of the signed chain`,
    });
  }
  report.checkpointsChecked = checkpoints.length;
  const lastCheckpoint = checkpoints[checkpoints.length - 1];
  const checkpointed = lastCheckpoint ? BigInt(lastCheckpoint.treeSize) : 0n;
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
    const firstInWindow = (await log.firstLeafFrom(from)) ?? treeSize;
    const covering = checkpoints.find((checkpoint) => BigInt(checkpoint.treeSize) > firstInWindow);
    startLeaf = covering ? BigInt(covering.firstLeaf) : firstInWindow;
  }
  let checkpointAt = checkpoints.findIndex((checkpoint) => BigInt(checkpoint.treeSize) > startLeaf);
  let rangeHashes: Buffer[] = [];

  // Events are read by seq and merged with the leaves; both streams advance in pages, each
  // page's successor loading (on another pooled connection) while this one is hashed.
  const events = prefetchingCursor<LoggedEvent>(VERIFY_CHUNK, (last) =>
    log.events(last ? BigInt(last.seq) : from === null ? null : from - 1n, walkTo, VERIFY_CHUNK),
  );
  let leafCursor = startLeaf;
  let lastLeafSeq: bigint | null = null;
  const leaves = prefetchingCursor<LogLeaf>(VERIFY_CHUNK, (last) =>
    log.leaves(last ? BigInt(last.leafIndex) + 1n : startLeaf, treeSize, VERIFY_CHUNK),
  );
  for (let leaf = await leaves.peek(); leaf; leaves.advance(), leaf = await leaves.peek()) {
    const index = BigInt(leaf.leafIndex);
    const seq = BigInt(leaf.seq);
    if (index !== leafCursor || (lastLeafSeq !== null && seq <= lastLeafSeq)) {
      return fail({
        kind: 'leaf_missing',
        id: leaf.eventId,
        seq: leaf.seq,
        message: `the hash log is broken before leaf ${index} (expected leaf ${leafCursor} in seq order)`,
      });
    }
    leafCursor += 1n;
    lastLeafSeq = seq;
    const hash = Buffer.from(leaf.leafHash);
    report.leavesChecked += 1;

    // Leaves past the window still complete the range of the checkpoint the window ends in.
    const checkpoint = checkpointAt >= 0 ? checkpoints[checkpointAt] : undefined;
    if (to !== null && seq > to && (!checkpoint || index < BigInt(checkpoint.firstLeaf))) break;
    if (inWindow(seq)) {
      const event = await events.peek();
      // A row below this leaf's seq has no leaf of its own: inserted, or moved there from its position.
      if (event && BigInt(event.seq) < seq) return fail(await strayProblem(log, event));
      if (!event || BigInt(event.seq) !== seq) {
        // Retention may have run since the boundary was read: ask again before calling it tampering.
        if (index >= retention.treeSize && index >= (await log.retentionBoundary()).treeSize) {
          return fail(await missingProblem(log, leaf));
        }
      } else {
        events.advance();
        report.eventsChecked += 1;
        if (event.id !== leaf.eventId) return fail(await swappedProblem(log, leaf, event));
        if (!leafHashOf(event).equals(hash)) {
          return fail({
            kind: 'modified',
            id: leaf.eventId,
            seq: leaf.seq,
            message: `event ${leaf.eventId} at seq ${leaf.seq} no longer matches its hash: it was modified`,
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
  const stray = await events.peek();
  if (stray) return fail(await strayProblem(log, stray));
  // Rows past the log as it was at the start: those committed since come with their leaves
  // (one transaction); a row without its leaf is a forgery appended at the end.
  if (to === null || lastLoggedSeq === null || to > lastLoggedSeq) {
    const late = await log.firstUnlogged(walkTo, to ?? MAX_SEQ);
    if (late) return fail(await strayProblem(log, late));
  }
  return report;
}
