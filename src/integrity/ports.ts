import type { StoredEvent } from '../events/stored-event.js';
import type { Checkpoint } from './checkpoint.js';
import type { CheckpointSigner, LoggedProof, RetentionResult } from './report.js';

/**
 * What tamper evidence asks of storage, declared here so the core
 * (src/integrity/verification.ts, the service, the checkpoint loop) never
 * imports the store: src/store/integrity-log.ts and integrity-store.ts implement them.
 * Positions (leaf indexes, seqs) travel as decimal text, as the database gives them.
 */

/** One leaf of the hash log: an event's position and SHA-256(0x00 || canonical event). */
export interface LogLeaf {
  leafIndex: string;
  seq: string;
  eventId: string;
  leafHash: Uint8Array;
}

/** A stored event with its times as its leaf hashes them (ISO 8601, UTC, milliseconds). */
export interface LoggedEvent {
  id: string;
  seq: string;
  eventType: string;
  sessionId: string;
  payload: unknown;
  clientTime: string | null;
  receivedAt: string;
  persistedAt: string;
  apiKeyId: string | null;
}

/** How far retention has gone: leaves below `treeSize` may have lost their event on purpose. */
export interface RetentionBoundary {
  treeSize: bigint;
  /** The last seq whose body retention removed; null before the first run. */
  seq: string | null;
}

/**
 * The hash log, events and checkpoints as verification reads them. Each call
 * reads its own snapshot, and two calls may run at once (verification reads
 * the next page of leaves and of events while it hashes the current ones).
 */
export interface IntegrityLog {
  retentionBoundary(): Promise<RetentionBoundary>;
  /** Every checkpoint, by number. */
  checkpoints(): Promise<Checkpoint[]>;
  /** The log's size (the next leaf index) and the seq of its last leaf (null while it is empty). */
  extent(): Promise<{ size: bigint; lastSeq: bigint | null }>;
  /** The first leaf with seq ≥ `seq`; null when there is none. */
  firstLeafFrom(seq: bigint): Promise<bigint | null>;
  /** Up to `limit` leaves with `first` ≤ leaf index < `end`, by index. */
  leaves(first: bigint, end: bigint, limit: number): Promise<LogLeaf[]>;
  /** Up to `limit` events with `after` < seq ≤ `through` (no lower bound when `after` is null), by seq. */
  events(after: bigint | null, through: bigint, limit: number): Promise<LoggedEvent[]>;
  /** The seq the log holds event `id` at; null when no leaf names it. */
  loggedSeqOf(id: string): Promise<string | null>;
  /** The seq a row with id `id` is stored at; null when there is none. */
  storedSeqOf(id: string): Promise<string | null>;
  /** The first event with `after` < seq ≤ `through` that no leaf names at its seq. */
  firstUnlogged(after: bigint, through: bigint): Promise<{ id: string; seq: string } | null>;
}

/** What the integrity service keeps in storage: the log it verifies, proofs and signed checkpoints. */
export interface IntegrityLedger {
  readonly log: IntegrityLog;
  /** Null when no event with this id was ever stored. */
  proofOf(id: string): Promise<LoggedProof | null>;
  /** Signs checkpoints over the leaves not yet covered; none when another process holds the turn. */
  checkpoint(signer: CheckpointSigner): Promise<Checkpoint[]>;
  /** The newest checkpoint, or null before the first. */
  latestCheckpoint(): Promise<Checkpoint | null>;
}

/** Removes the bodies of events received before `cutoff`, in whole checkpoint ranges. */
export interface Retention {
  applyRetention(cutoff: Date): Promise<RetentionResult>;
}

/** The event a proof is about, as the API returns it. */
export interface EventLookup {
  findById(id: string): Promise<StoredEvent | null>;
}
