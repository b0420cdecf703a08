import type { QueueStats } from '../events/queue-message.js';
/**
 * The queue between the API (producers) and the worker (consumers). Redis
 * Streams and the in-process queue implement it with the same semantics, and
 * both pass `test/queue/event-queue.contract.ts`:
 *
 * - `enqueue` is all-or-nothing and bounded: past `maxLength` entries it
 *   throws QUEUE_FULL with a retry delay instead of growing without limit.
 * - An entry handed to a consumer stays pending until `ack` (called only after
 *   the database committed it) or `deadLetter`; a consumer that dies leaves its
 *   entries pending, and `claimStale` hands them to another consumer.
 * - Delivery is at-least-once; the store makes redelivery harmless.
 */
export interface EventQueue {
  /** @throws AppError QUEUE_FULL when full, SERVICE_UNAVAILABLE when the backend is unreachable. */
  enqueue(bodies: readonly string[]): Promise<void>;
  /** New entries for `consumer`, waiting up to `blockMs` when there are none. */
  read(consumer: string, max: number, blockMs: number): Promise<QueueEntry[]>;
  /** Entries already delivered to `consumer` and not acknowledged: a restart under the same name resumes them. */
  readPending(consumer: string, max: number): Promise<QueueEntry[]>;
  /** Takes over entries that any consumer has held unacknowledged for at least `minIdleMs`. */
  claimStale(consumer: string, minIdleMs: number, max: number): Promise<QueueEntry[]>;
  /** Removes entries for good. Call only once their events are committed. */
  ack(ids: readonly string[]): Promise<void>;
  /** Moves an entry that can never be stored aside, keeping its body and the reason. */
  deadLetter(entry: QueueEntry, reason: string): Promise<void>;
  /** The newest dead letters first. */
  listDeadLetters(limit: number): Promise<DeadLetter[]>;
  /**
   * Puts dead letters back in the live queue, each as a new entry with its
   * body, in the order asked, and removes them from the dead letters, atomically: for an operator,
   * once the cause is fixed. Safe to repeat, as the store is idempotent on the
   * event id. Ids that are not dead letters (or not ids) come back as `missing`.
   * @throws AppError QUEUE_FULL when the queue cannot take them all: none moves.
   */
  replayDeadLetters(ids: readonly string[]): Promise<{ replayed: string[]; missing: string[] }>;
  stats(): Promise<QueueStats>;
  /** Wakes blocked readers and releases connections. */
  close(): Promise<void>;
}

export interface QueueEntry {
  /** Queue-assigned, ordered id (a Redis stream id, or the same shape in memory). */
  id: string;
  body: string;
}

export interface DeadLetter {
  id: string;
  originalId: string;
  body: string;
  reason: string;
  failedAt: string;
}

/** The shape of an entry id, a Redis stream id: `<ms>-<seq>`. */
export const ENTRY_ID = /^\d{1,20}-\d{1,20}$/;

/** The time part of a stream-style entry id (`<ms>-<seq>`). */
export const entryTimeMs = (id: string): number => Number(id.slice(0, id.indexOf('-')));

/** Seconds a producer is told to wait when the queue is at its high-water mark. */
export const QUEUE_FULL_RETRY_AFTER_SECONDS = 1;
