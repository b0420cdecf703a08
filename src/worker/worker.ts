import { setTimeout as sleep } from 'node:timers/promises';
import type { QueuedEvent } from '../events/queue-message.js';
import { describe, parseEntry } from './entries.js';
import type { Logger } from '../observability/logger.js';
import type { EventQueue, QueueEntry } from '../queue/event-queue.js';
import { PreparedBatch, type EventStore } from '../store/event-store.js';
import type { StoredEvent } from '../events/stored-event.js';
import { classifyStoreError, type FailureClass } from '../failure-class.js';

/** Events parsed and prepared between two yields to I/O: about a millisecond of work. */
const PREPARE_SLICE = 100;
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Attempts at an operation failing in a way not known to pass or to repeat, before it counts as repeating. */
const MAX_UNKNOWN_ATTEMPTS = 3;
/** The queue's failures are all taken to pass: its operations hold no event data that could be at fault. */
const queueFailure = (): FailureClass => 'transient';

export interface WorkerOptions {
  queue: EventQueue;
  store: Pick<EventStore, 'insertBatch'> & Partial<Pick<EventStore, 'prepareBatch'>>;
  /**
   * Resolves when the database answers. Asked before an event is set aside for
   * a failure of unknown cause: while the database itself is failing, the
   * failure is not the event's, and the event waits instead.
   */
  probe?: () => Promise<void>;
  logger: Logger;
  consumerName: string;
  batchSize: number;
  /** Entries held unacknowledged this long by any consumer are taken over. */
  claimIdleMs: number;
  /** How long one read waits for new entries; also bounds how long `stop()` waits for a read. */
  blockMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** Called after each committed batch with its size and the insert's duration (metrics, tests). */
  onPersisted?: (count: number, seconds: number) => void;
  /**
   * Called after each commit with the events it stored (not the redelivered ones
   * skipped), in seq order: the live feed's announcement. It must not throw.
   * Called on the next turn of the event loop, once the next batch's write has
   * gone out: building an announcement of a whole batch is milliseconds of work
   * the database would otherwise wait on.
   */
  onCommitted?: (stored: StoredEvent[]) => void;
  onDeadLetter?: (reason: string, cause: DeadLetterCause) => void;
  /** Called before each retry of a transiently failed operation. */
  onRetry?: (operation: string) => void;
  /**
   * Keep reading after `stop()` until the queue is empty. For the in-process
   * queue, whose entries die with the process; a Redis queue keeps them.
   */
  drainQueueOnStop?: boolean;
}

/** Why an entry was set aside: not an event, refused by the store, or its id holds another event. */
export type DeadLetterCause = 'unparseable' | 'unstorable' | 'conflict';

interface Parsed {
  entry: QueueEntry;
  event: QueuedEvent;
}

/** A batch as read, parsed and prepared for the store, before anything is written. */
interface Batch {
  entries: QueueEntry[];
  parsed: Parsed[];
  unparseable: Array<{ entry: QueueEntry; reason: string }>;
  prepared: PreparedBatch | undefined;
}

/**
 * Moves events from the queue into the store: read a batch, insert it in one
 * statement, and only then acknowledge it. A crash anywhere before the
 * acknowledgement leaves the batch pending for redelivery; the insert skips
 * what was already stored, so redelivery never duplicates.
 */
export function createWorker(options: WorkerOptions) {
  const { queue, store, logger, consumerName, batchSize, claimIdleMs } = options;
  const blockMs = options.blockMs ?? 1000;
  const backoff = options.backoff ?? { initialMs: 100, maxMs: 5000 };
  let stopping = false;
  let abandonAt = Number.POSITIVE_INFINITY;
  let running: Promise<void> | undefined;
  /** Acknowledgements of committed batches, chained in commit order. */
  let acknowledging: Promise<void> = Promise.resolve();
  /** The latest commit callback not yet run; callbacks run in commit order. */
  let announcing: Promise<void> = Promise.resolve();

  /** When each batch in hand (read, not yet stored or set aside) was read: how long the worker has not moved. */
  const heldSince = new Map<object, number>();

  /**
   * Retries `operation` while it fails transiently, and a failure of unknown
   * cause up to {@link MAX_UNKNOWN_ATTEMPTS} times; rethrows a permanent one at
   * once. Gives up on transient failures only when a draining stop's deadline passes.
   */
  async function withRetry<T>(
    what: string,
    operation: () => Promise<T>,
    classify: (error: unknown) => FailureClass,
  ) {
    let unknownFailures = 0;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await operation();
      } catch (error) {
        const kind = classify(error);
        if (kind === 'permanent') throw error;
        if (kind === 'unknown' && (unknownFailures += 1) >= MAX_UNKNOWN_ATTEMPTS) throw error;
        if (Date.now() >= abandonAt) throw new AbandonedError(what, error);
        const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt) * (0.5 + Math.random() / 2);
        logger.warn(
          { err: error, attempt: attempt + 1, delayMs: Math.round(delay) },
          `${what} failed; retrying`,
        );
        options.onRetry?.(what);
        await sleep(delay);
      }
    }
  }

  async function persist(items: Parsed[], prepared?: PreparedBatch): Promise<void> {
    let seconds = 0;
    let conflicts: number[] = [];
    try {
      await withRetry(
        'insert',
        async () => {
          const startedAt = performance.now();
          const written = await store.insertBatch(prepared ?? items.map((item) => item.event));
          const { stored } = written;
          conflicts = written.conflicts;
          seconds = (performance.now() - startedAt) / 1000;
          const { onCommitted } = options;
          if (stored.length > 0 && onCommitted) {
            announcing = new Promise((resolve) =>
              setImmediate(() => {
                try {
                  onCommitted(stored);
                } finally {
                  resolve();
                }
              }),
            );
          }
        },
        classifyStoreError,
      );
    } catch (error) {
      if (error instanceof AbandonedError) throw error;
      // Some row can never be stored. Split the batch until the culprit stands
      // alone, so the events around it are stored and only it is set aside.
      const [only] = items;
      if (items.length === 1 && only) {
        if (classifyStoreError(error) !== 'permanent' && !(await databaseAnswers())) {
          // The database is failing, not (as far as anyone can tell) this event: it waits for it.
          options.onRetry?.('insert');
          await sleep(backoff.maxMs);
          if (Date.now() >= abandonAt) throw new AbandonedError('insert', error);
          return persist(items);
        }
        await deadLetter(only.entry, `insert failed: ${describe(error)}`, 'unstorable');
        return;
      }
      const middle = Math.ceil(items.length / 2);
      await persist(items.slice(0, middle));
      await persist(items.slice(middle));
      return;
    }
    // An id reused for another event is never dropped silently: it is set aside, saying so.
    for (const index of conflicts) {
      const { entry, event } = items[index]!;
      await deadLetter(
        entry,
        `event_id ${event.id} already holds a different event (another body or another key); not stored`,
        'conflict',
      );
    }
    const conflicting = new Set(conflicts);
    const ids = items.filter((_, index) => !conflicting.has(index)).map((item) => item.entry.id);
    // Acknowledged in the background, in order: the next batch's insert need not wait for Redis.
    // Until an ack lands its entries stay pending, so a crash meanwhile means redelivery, which
    // the store skips.
    acknowledging = acknowledging.then(async () => {
      try {
        await withRetry('acknowledge', () => queue.ack(ids), queueFailure);
        options.onPersisted?.(items.length, seconds);
      } catch (error) {
        logger.error({ err: error, count: ids.length }, 'stored batch left unacknowledged for redelivery');
      }
    });
  }

  async function databaseAnswers(): Promise<boolean> {
    if (!options.probe) return true;
    try {
      await options.probe();
      return true;
    } catch {
      return false;
    }
  }

  async function deadLetter(entry: QueueEntry, reason: string, cause: DeadLetterCause): Promise<void> {
    logger.error({ entryId: entry.id, reason }, 'event moved to the dead-letter queue');
    await withRetry('dead-letter', () => queue.deadLetter(entry, reason), queueFailure);
    options.onDeadLetter?.(reason, cause);
  }

  /**
   * Parses and prepares a batch in slices, yielding between them: it runs while
   * the previous batch is being written, whose next step (its COMMIT, say) must
   * not wait behind a whole batch of parsing and hashing.
   */
  async function prepare(entries: QueueEntry[]): Promise<Batch> {
    const batch: Batch = { entries, parsed: [], unparseable: [], prepared: undefined };
    for (let start = 0; start < entries.length; start += PREPARE_SLICE) {
      if (start > 0) await yieldToIo();
      for (const entry of entries.slice(start, start + PREPARE_SLICE)) {
        const event = parseEntry(entry);
        if (event.ok) batch.parsed.push({ entry, event: event.value });
        else batch.unparseable.push({ entry, reason: event.reason });
      }
    }
    if (!store.prepareBatch) return batch;
    const parts: PreparedBatch[] = [];
    for (let start = 0; start < batch.parsed.length; start += PREPARE_SLICE) {
      await yieldToIo();
      try {
        parts.push(
          store.prepareBatch(batch.parsed.slice(start, start + PREPARE_SLICE).map((item) => item.event)),
        );
      } catch {
        // Left to insertBatch, which prepares what it is given unprepared: there a failure isolates
        // the event causing it (split, dead-letter) instead of ending this loop.
        return batch;
      }
    }
    batch.prepared = PreparedBatch.join(parts);
    return batch;
  }

  async function processBatch(batch: Batch): Promise<void> {
    for (const { entry, reason } of batch.unparseable) await deadLetter(entry, reason, 'unparseable');
    if (batch.parsed.length > 0) await persist(batch.parsed, batch.prepared);
  }

  /** Resolves false when the loop must end: the batch was abandoned at a stop's deadline. */
  function settle(batch: Batch): Promise<boolean> {
    return processBatch(batch)
      .finally(() => heldSince.delete(batch.entries))
      .then(
        () => true,
        (error: unknown) => {
          // Abandoned during a stop: the entries stay pending and another consumer takes them over.
          logger.error(
            { err: error, count: batch.entries.length },
            'batch left unacknowledged for redelivery',
          );
          return !(error instanceof AbandonedError);
        },
      );
  }

  async function nextBatch(
    lastClaimAt: { value: number },
    resumeOwn: { value: boolean },
  ): Promise<QueueEntry[]> {
    if (resumeOwn.value) {
      const own = await queue.readPending(consumerName, batchSize);
      if (own.length > 0) return own;
      resumeOwn.value = false;
    }
    const now = Date.now();
    if (now - lastClaimAt.value >= Math.min(claimIdleMs / 2, 5000)) {
      lastClaimAt.value = now;
      const claimed = await queue.claimStale(consumerName, claimIdleMs, batchSize);
      if (claimed.length > 0) {
        logger.info({ count: claimed.length }, 'took over entries of an unresponsive consumer');
        return claimed;
      }
    }
    return queue.read(consumerName, batchSize, blockMs);
  }

  async function loop(): Promise<void> {
    const lastClaimAt = { value: 0 };
    const resumeOwn = { value: true };
    // Batches are written while the next is read and prepared (parsing, canonical JSON, hashing),
    // so the worker's own work overlaps the database's. Two writes may be under way: the store sends
    // the second while the first runs, so the database does not wait for this process between them.
    let writing: Promise<boolean> | undefined;
    let writingBefore: Promise<boolean> | undefined;
    /** At most one write under way once this resolves. */
    const finishWritingBefore = async () => {
      const continues = writingBefore ? await writingBefore : true;
      writingBefore = undefined;
      return continues;
    };
    const finishWriting = async () => {
      const before = await finishWritingBefore();
      const continues = writing ? await writing : true;
      writing = undefined;
      return before && continues;
    };
    /** The batches in hand written and every written batch acknowledged. */
    const settleAll = async () => {
      const continues = await finishWriting();
      await acknowledging;
      return continues;
    };
    for (;;) {
      const draining = stopping && options.drainQueueOnStop === true;
      if (stopping && !draining) break;
      // Own pending entries include those being written or acknowledged; reading them again would
      // write them twice.
      if (resumeOwn.value && !(await settleAll())) return;
      let entries: QueueEntry[];
      try {
        entries = draining
          ? await queue.read(consumerName, batchSize, 0)
          : await nextBatch(lastClaimAt, resumeOwn);
      } catch (error) {
        if (stopping) break;
        logger.warn({ err: error }, 'reading the queue failed; retrying');
        options.onRetry?.('read');
        await sleep(Math.min(backoff.maxMs, 500));
        continue;
      }
      if (entries.length === 0) {
        if (draining) break;
        continue;
      }
      heldSince.set(entries, Date.now());
      const batch = await prepare(entries);
      if (!(await finishWritingBefore())) {
        // Abandoned at a stop's deadline: the write behind it ends too before the loop does.
        await finishWriting();
        return;
      }
      writingBefore = writing;
      writing = settle(batch);
    }
    await finishWriting();
  }

  return {
    start(): void {
      if (running) return;
      logger.info({ consumer: consumerName, batchSize }, 'worker started');
      // Stopped once every committed batch's acknowledgement has landed or been given up on, and its
      // commit callback has run.
      running = loop()
        .then(() => acknowledging)
        .then(() => announcing);
    },
    /**
     * How long the oldest batch this worker holds has waited to be stored or
     * set aside, in milliseconds; 0 when it holds none. Past a threshold the
     * worker is stalled (readiness, metrics).
     */
    heldForMs(): number {
      let oldest = Number.POSITIVE_INFINITY;
      for (const since of heldSince.values()) oldest = Math.min(oldest, since);
      return oldest === Number.POSITIVE_INFINITY ? 0 : Date.now() - oldest;
    },
    /**
     * Stops reading, finishes the batch in hand, and resolves. A batch still
     * failing when `timeoutMs` has passed is left unacknowledged (it is
     * redelivered), never half-acknowledged.
     */
    async stop(timeoutMs: number): Promise<void> {
      stopping = true;
      abandonAt = Date.now() + timeoutMs;
      await running;
      logger.info({ consumer: consumerName }, 'worker stopped');
    },
  };
}

export type Worker = ReturnType<typeof createWorker>;

class AbandonedError extends Error {
  constructor(what: string, cause: unknown) {
    super(`${what} abandoned at the shutdown deadline`, { cause });
  }
}
