import { queueFull } from '../errors.js';
import {
  entryTimeMs,
  QUEUE_FULL_RETRY_AFTER_SECONDS,
  type DeadLetter,
  type EventQueue,
  type QueueEntry,
} from './event-queue.js';
import type { QueueStats } from '../events/queue-message.js';
import { createEntryIds } from './entry-ids.js';
import { createReadWaiters } from './read-waiters.js';

interface Pending {
  entry: QueueEntry;
  consumer: string;
  deliveredAt: number;
}

/**
 * The embedded mode's queue: same contract as Redis Streams, held in this
 * process. Entries are lost if the process dies before the worker commits them;
 * the README says so.
 */
export function createMemoryQueue(options: { maxLength: number; now?: () => number }): EventQueue {
  const now = options.now ?? Date.now;
  // Undelivered entries: an array consumed from `head`, compacted now and then,
  // so reading a batch is O(batch) rather than O(queue).
  let waiting: QueueEntry[] = [];
  let head = 0;
  const pending = new Map<string, Pending>();
  const deadLetters: DeadLetter[] = [];
  const readers = createReadWaiters();
  const ids = createEntryIds(now);
  let closed = false;

  const depth = () => waiting.length - head + pending.size;

  const deliver = (consumer: string, max: number): QueueEntry[] => {
    const batch = waiting.slice(head, head + max);
    head += batch.length;
    if (head > 1024 && head * 2 > waiting.length) {
      waiting = waiting.slice(head);
      head = 0;
    }
    const deliveredAt = now();
    for (const entry of batch) pending.set(entry.id, { entry, consumer, deliveredAt });
    return batch;
  };

  /** @throws AppError QUEUE_FULL, having appended none of them. */
  const append = (bodies: readonly string[]) => {
    if (depth() + bodies.length > options.maxLength) throw queueFull(QUEUE_FULL_RETRY_AFTER_SECONDS);
    for (const body of bodies) waiting.push({ id: ids.next(), body });
    readers.wakeAll();
  };

  return {
    async enqueue(bodies) {
      append(bodies);
    },

    async read(consumer, max, blockMs) {
      if (waiting.length - head === 0 && !closed && blockMs > 0) await readers.wait(blockMs);
      return deliver(consumer, max);
    },

    async readPending(consumer, max) {
      const mine: QueueEntry[] = [];
      for (const held of pending.values()) {
        if (mine.length >= max) break;
        if (held.consumer === consumer) mine.push(held.entry);
      }
      return mine;
    },

    async claimStale(consumer, minIdleMs, max) {
      const claimed: QueueEntry[] = [];
      const at = now();
      for (const held of pending.values()) {
        if (claimed.length >= max) break;
        if (at - held.deliveredAt >= minIdleMs) {
          held.consumer = consumer;
          held.deliveredAt = at;
          claimed.push(held.entry);
        }
      }
      return claimed;
    },

    async ack(ids) {
      for (const id of ids) pending.delete(id);
    },

    async deadLetter(entry, reason) {
      deadLetters.push({
        id: ids.next(),
        originalId: entry.id,
        body: entry.body,
        reason,
        failedAt: new Date(now()).toISOString(),
      });
      pending.delete(entry.id);
    },

    async listDeadLetters(limit) {
      return deadLetters.slice(-limit).reverse();
    },

    async replayDeadLetters(ids) {
      const wanted = new Set(ids);
      const byId = new Map(deadLetters.map((letter) => [letter.id, letter]));
      const replaying = [...wanted].flatMap((id) => byId.get(id) ?? []);
      append(replaying.map((letter) => letter.body));
      const replayed = new Set(replaying.map((letter) => letter.id));
      for (let index = deadLetters.length - 1; index >= 0; index -= 1) {
        if (replayed.has(deadLetters[index]!.id)) deadLetters.splice(index, 1);
      }
      return { replayed: [...replayed], missing: [...wanted].filter((id) => !replayed.has(id)) };
    },

    async stats(): Promise<QueueStats> {
      // Pending entries keep their delivery order, so the first is the oldest of them.
      const oldestIds = [pending.keys().next().value, waiting[head]?.id].filter((id) => id !== undefined);
      const oldest = oldestIds.length === 0 ? null : Math.min(...oldestIds.map(entryTimeMs));
      return {
        depth: depth(),
        deadLetters: deadLetters.length,
        oldestAgeMs: oldest === null ? null : now() - oldest,
      };
    },

    async close() {
      closed = true;
      readers.wakeAll();
    },
  };
}
