import type { KeyObject } from 'node:crypto';
import type { EventProof } from './verifier.js';

/**
 * The vocabulary of tamper evidence every layer above shares: what verification
 * reports, what a proof lookup answers, which key signs. No database, no I/O.
 */

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

/** Seq bounds of a verification, inclusive; an omitted bound means the whole log on that side. */
export interface VerifyWindow {
  from?: bigint | undefined;
  to?: bigint | undefined;
}

/**
 * Where an event sits in the log: its seq, and its proof once a checkpoint
 * covers it (`proof: null` while it is stored but not yet checkpointed).
 */
export interface LoggedProof {
  seq: string;
  proof: EventProof | null;
}

/** What one retention run removed: the events deleted and the new boundary (null when nothing was due). */
export interface RetentionResult {
  deleted: number;
  throughSeq: string | null;
}
