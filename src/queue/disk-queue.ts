import { mkdir, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { queueFull, serviceUnavailable } from '../errors.js';
import { createReadWaiters } from './read-waiters.js';
import { lockDataFolder } from '../store/data-dir-lock.js';
import {
  createSegmentFile,
  DEFAULT_SEGMENT_BYTES,
  encodeRecord,
  RecordType,
  scanSegments,
  segmentFileName,
  SYNC_AFTER_WRITE,
  syncFile,
  writeAllAt,
} from './disk-log.js';
import { createDeferredAcks } from './deferred-acks.js';
import { createQueueState } from './disk-queue-state.js';
import { QUEUE_FULL_RETRY_AFTER_SECONDS, type DeadLetter, type EventQueue } from './event-queue.js';
import type { QueueStats } from '../events/queue-message.js';

export interface DiskQueueOptions {
  /** The queue's own folder (`<data folder>/queue`), created if missing. */
  dir: string;
  maxLength: number;
  /** A new segment file starts once the current one holds this many bytes. */
  segmentBytes?: number;
  /**
   * For a store whose commits are not durable when they return (PGlite): resolves once everything
   * it committed before the call is on disk. Acknowledgements are then recorded only after it
   * (see deferred-acks.ts), gathered for `ackBarrierIntervalMs` (default 1000).
   */
  ackBarrier?: () => Promise<void>;
  ackBarrierIntervalMs?: number;
  now?: () => number;
}

interface Job {
  record: Buffer;
  /** Runs once the record is durable, with the segment it went into. */
  apply(segment: number): void;
  /** Runs when it could not be written: nothing of it is applied. */
  fail(): void;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * The embedded mode's queue: the EventQueue contract, kept in an append-only log in the data
 * folder (record format in `disk-log.ts`). Every change is a record; `enqueue` resolves only once
 * its record is fsynced, so a 202 survives SIGKILL and power loss. Writes gathered while the
 * previous one is being synced share the next write and fsync (group commit), which keeps
 * `POST /log` near the in-memory queue's rate. The live entries and dead letters are also held in
 * memory; opening the queue rebuilds them by reading the files.
 *
 * The log is cut into segment files; the oldest is deleted once nothing in it is still live,
 * and when only a little of it is (a few long-held entries, dead letters), that little is copied
 * to the newest segment first. The folder is locked to one process: at open, every entry not
 * acknowledged is waiting again, since the consumers that held it were in a process now gone.
 * @throws DataFolderInUseError (a ConfigError) when another live process has the folder open.
 */
export async function openDiskQueue(options: DiskQueueOptions): Promise<EventQueue> {
  const { dir, maxLength } = options;
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  const now = options.now ?? Date.now;
  await mkdir(dir, { recursive: true });
  // As PGlite's folder is: two processes appending to one queue would lose entries.
  const lock = await lockDataFolder(dir);

  const state = createQueueState(now);
  const { items, letters, segments, order } = state;

  let active: { number: number; handle: FileHandle };
  /** The segment after the active one, made ahead so that moving to it never waits on the disk. */
  let upcoming: Promise<{ number: number; handle: FileHandle } | undefined> | undefined;
  try {
    state.load(await scanSegments(dir));
    // Appends go to a fresh segment: the last one's tail was cut to its last whole record.
    active = activate(await createSegment((order.at(-1) ?? 0) + 1));
  } catch (error) {
    await lock.release();
    throw error;
  }

  function createSegment(number: number) {
    return createSegmentFile(dir, number, segmentBytes);
  }
  function activate(segment: { number: number; handle: FileHandle }) {
    state.addSegment(segment.number, 0);
    return segment;
  }

  const readers = createReadWaiters();
  const wake = readers.wakeAll;

  // The writer: one write and one fsync at a time; whatever arrives meanwhile goes in the next.
  let gathering: Job[] = [];
  let writing = false;
  let writerIdle: Promise<void> = Promise.resolve();
  let closing = false;
  /** Set when a failed write could not be undone: the file's end is unknown, so nothing more is written. */
  let broken: unknown;
  /** Entries accepted and being written: they count against the high-water mark already. */
  let reserved = 0;

  const unavailable = (cause?: unknown) =>
    serviceUnavailable('The ingest queue cannot write to its files; retry later.', 1, cause);

  const submit = (record: Buffer, apply: Job['apply'], fail: Job['fail'] = () => undefined) =>
    new Promise<void>((resolve, reject) => {
      if (closing || broken !== undefined) {
        fail();
        reject(unavailable(broken));
        return;
      }
      gathering.push({ record, apply, fail, resolve, reject });
      if (!writing) {
        writing = true;
        // Not before the end of the turn: requests read from different sockets in one poll
        // phase then share the first write too.
        writerIdle = new Promise((done) => setImmediate(() => void writeLoop().then(done)));
      }
    });

  async function writeLoop(): Promise<void> {
    for (;;) {
      if (gathering.length === 0) {
        writing = false;
        return;
      }
      const batch = gathering;
      gathering = [];
      await writeBatch(batch);
      await maintain().catch(() => undefined);
    }
  }

  /** Resolves false when nothing of the batch was written. */
  async function writeBatch(batch: Job[]): Promise<boolean> {
    const data = batch.length === 1 ? batch[0]!.record : Buffer.concat(batch.map((job) => job.record));
    const segment = segments.get(active.number)!;
    try {
      if (broken !== undefined) throw broken;
      // O_DSYNC: the write returns once its bytes are on the disk.
      await writeAllAt(active.handle, data, segment.size);
      if (SYNC_AFTER_WRITE) await active.handle.datasync();
    } catch (error) {
      // Undo whatever part reached the file, so no caller refused here finds its entry later.
      if (broken === undefined) {
        try {
          await writeAllAt(active.handle, Buffer.alloc(data.length), segment.size);
        } catch (undoError) {
          broken = undoError;
        }
      }
      for (const job of batch) {
        job.fail();
        job.reject(unavailable(error));
      }
      return false;
    }
    segment.size += data.length;
    for (const job of batch) {
      job.apply(active.number);
      job.resolve();
    }
    wake();
    return true;
  }

  /** Starts a new segment when the current one is full; deletes (compacting first) the oldest. */
  async function maintain(): Promise<void> {
    const size = segments.get(active.number)!.size;
    if (!upcoming && size * 2 >= segmentBytes) {
      // In the background: the writer goes on meanwhile. A failure is tried again at the switch.
      upcoming = createSegment(active.number + 1).catch(() => undefined);
    }
    if (size >= segmentBytes) {
      const next = (await upcoming) ?? (await createSegment(active.number + 1));
      upcoming = undefined;
      const previous = active.handle;
      active = activate(next);
      await previous.close();
    }
    while (order.length > 1) {
      const oldest = segments.get(order[0]!)!;
      if (oldest.live > 0) {
        // Mostly live (a backlog): keep it; it empties as the backlog drains.
        if (oldest.liveSize * 8 > segmentBytes) return;
        await copyForward(oldest.number);
        if (oldest.live > 0) return;
      }
      await unlink(path.join(dir, segmentFileName(oldest.number)));
      // Durable before the next deletion: the files left must be a suffix of the log.
      await syncFile(dir);
      order.shift();
      segments.delete(oldest.number);
    }
  }

  /** Appends the live entries and dead letters of segment `from` to the newest, so `from` can go. */
  async function copyForward(from: number): Promise<void> {
    const moving = [...items.values()].filter((item) => item.segment === from);
    const movingLetters = [...letters.values()].filter((held) => held.segment === from);
    const records: Buffer[] = [];
    if (moving.length > 0)
      records.push(
        encodeRecord(
          RecordType.Enqueue,
          moving.flatMap((item) => [item.id, item.body]),
        ),
      );
    for (const { letter } of movingLetters) {
      records.push(
        encodeRecord(RecordType.DeadLetter, [
          letter.id,
          letter.originalId,
          letter.body,
          letter.reason,
          letter.failedAt,
        ]),
      );
    }
    const written = await writeBatch(
      records.map((record) => ({
        record,
        apply: () => undefined,
        fail: () => undefined,
        resolve: () => undefined,
        reject: () => undefined,
      })),
    );
    if (!written) return;
    // Whatever was acknowledged or replayed meanwhile is gone, and its record follows the copy.
    for (const item of moving)
      if (items.get(item.id) === item) state.addItem(item.id, item.body, active.number);
    for (const held of movingLetters)
      if (letters.get(held.letter.id) === held) state.addLetter(held.letter, active.number);
  }

  const deferredAcks =
    options.ackBarrier &&
    createDeferredAcks({
      barrier: options.ackBarrier,
      intervalMs: options.ackBarrierIntervalMs ?? 1000,
      write: (acknowledged) =>
        submit(
          encodeRecord(
            RecordType.Ack,
            acknowledged.map((item) => item.id),
          ),
          () => {
            for (const item of acknowledged) state.release(item);
          },
        ),
    });

  const { replayDeadLetters, stats } = createLetterOperations();

  return {
    enqueue(bodies) {
      if (bodies.length === 0) return Promise.resolve();
      if (items.size + reserved + bodies.length > maxLength)
        return Promise.reject(queueFull(QUEUE_FULL_RETRY_AFTER_SECONDS));
      const fields: string[] = [];
      for (const body of bodies) fields.push(state.nextId(), body);
      reserved += bodies.length;
      return submit(
        encodeRecord(RecordType.Enqueue, fields),
        (segment) => {
          reserved -= bodies.length;
          for (let at = 0; at < fields.length; at += 2)
            state.addWaiting(fields[at]!, fields[at + 1]!, segment);
        },
        () => (reserved -= bodies.length),
      );
    },

    async read(consumer, max, blockMs) {
      if (state.waitingCount() === 0 && !closing && blockMs > 0) await readers.wait(blockMs);
      return state.deliver(consumer, max);
    },

    async readPending(consumer, max) {
      return state.readPending(consumer, max);
    },

    async claimStale(consumer, minIdleMs, max) {
      return state.claimStale(consumer, minIdleMs, max);
    },

    async ack(ids) {
      // Forgotten at once, durable with the next write (or after the barrier): an acknowledgement
      // lost to a crash only means a redelivery, which the store skips.
      const known = ids.filter((id) => state.pending.has(id));
      if (deferredAcks) {
        deferredAcks.add(known.flatMap((id) => state.removeItem(id, true) ?? []));
        return;
      }
      for (const id of known) state.removeItem(id);
      if (known.length > 0) await submit(encodeRecord(RecordType.Ack, known), () => undefined);
    },

    async deadLetter(entry, reason) {
      const letter: DeadLetter = {
        id: state.nextId(),
        originalId: entry.id,
        body: entry.body,
        reason,
        failedAt: new Date(now()).toISOString(),
      };
      // The entry stays pending until its dead letter is durable: a crash before means a redelivery.
      await submit(
        encodeRecord(RecordType.DeadLetter, [letter.id, entry.id, entry.body, reason, letter.failedAt]),
        (segment) => {
          state.removeItem(entry.id);
          state.addLetter(letter, segment);
        },
      );
    },

    async listDeadLetters(limit) {
      return [...letters.values()]
        .slice(-limit)
        .reverse()
        .map((held) => held.letter);
    },

    replayDeadLetters,
    stats,

    async close() {
      await deferredAcks?.close();
      closing = true;
      wake();
      while (writing) await writerIdle;
      await active.handle.close();
      const unused = await upcoming;
      if (unused) {
        await unused.handle.close();
        await unlink(path.join(dir, segmentFileName(unused.number)));
      }
      await lock.release();
    },
  };

  function createLetterOperations(): Pick<EventQueue, 'replayDeadLetters' | 'stats'> {
    /** Dead letters being replayed: a concurrent replay of the same ids finds them missing. */
    const replaying = new Set<string>();
    return {
      async replayDeadLetters(ids) {
        const wanted = [...new Set(ids)];
        const found = wanted.filter((id) => letters.has(id) && !replaying.has(id));
        const missing = wanted.filter((id) => !found.includes(id));
        if (found.length === 0) return { replayed: [], missing };
        if (items.size + reserved + found.length > maxLength) throw queueFull(QUEUE_FULL_RETRY_AFTER_SECONDS);
        const fresh = found.map((id) => ({ id: state.nextId(), body: letters.get(id)!.letter.body }));
        reserved += found.length;
        for (const id of found) replaying.add(id);
        const settle = () => {
          reserved -= found.length;
          for (const id of found) replaying.delete(id);
        };
        // One record: after a crash the letters are either all replayed or all still dead letters.
        await submit(
          encodeRecord(RecordType.Replay, [
            String(found.length),
            ...found,
            ...fresh.flatMap((entry) => [entry.id, entry.body]),
          ]),
          (segment) => {
            settle();
            for (const id of found) state.removeLetter(id);
            for (const entry of fresh) state.addWaiting(entry.id, entry.body, segment);
          },
          settle,
        );
        return { replayed: found, missing };
      },

      async stats(): Promise<QueueStats> {
        // Readiness asks this: a queue that can no longer write is not ready.
        if (broken !== undefined) throw unavailable(broken);
        const oldest = state.oldestMs();
        return {
          depth: items.size,
          deadLetters: letters.size,
          oldestAgeMs: oldest === null ? null : Math.max(0, now() - oldest),
        };
      },
    };
  }
}
