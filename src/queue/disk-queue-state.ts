import { RecordType, type ScannedSegment } from './disk-log.js';
import { entryTimeMs, type DeadLetter, type QueueEntry } from './event-queue.js';
import { createEntryIds } from './entry-ids.js';

/**
 * What the on-disk queue (disk-queue.ts) holds in memory: its live entries and dead letters, and
 * for each segment file how much of it is still live. The files are the truth; this is rebuilt
 * from them at open (`load`) and kept in step with every record written after.
 */
export interface Item {
  id: string;
  body: string;
  /** The segment holding the item's latest copy: it cannot be deleted while the item lives. */
  segment: number;
  size: number;
  state: 'waiting' | 'pending' | 'gone';
  consumer: string;
  deliveredAt: number;
}

export interface Letter {
  letter: DeadLetter;
  segment: number;
  size: number;
}

export interface Segment {
  number: number;
  /** Entries and dead letters whose latest copy is here. */
  live: number;
  liveSize: number;
  /** Bytes in the file. */
  size: number;
}

export function createQueueState(now: () => number) {
  const items = new Map<string, Item>();
  const letters = new Map<string, Letter>();
  const segments = new Map<number, Segment>();
  /** Segment numbers, oldest first; the last is the one appended to. */
  const order: number[] = [];
  /** Delivered and not acknowledged, in delivery order. */
  const pending = new Map<string, Item>();
  // Undelivered entries: consumed from `head`, compacted now and then (as in memory-queue.ts).
  let waiting: Item[] = [];
  let head = 0;
  let waitingCount = 0;
  const ids = createEntryIds(now);
  const noteId = ids.observe;
  const count = (segment: number, size: number, sign: 1 | -1) => {
    const held = segments.get(segment);
    if (!held) return;
    held.live += sign;
    held.liveSize += sign * size;
  };

  const state = {
    items,
    letters,
    segments,
    order,
    pending,
    waitingCount: () => waitingCount,

    addSegment(number: number, size: number) {
      segments.set(number, { number, live: 0, liveSize: 0, size });
      order.push(number);
    },

    /** A stream-style id after every id seen, also those read from the files. */
    nextId: ids.next,

    /** Records an entry written to `segment`, or moves one copied there by compaction. */
    addItem(id: string, body: string, segment: number): Item {
      const old = items.get(id);
      if (old) {
        count(old.segment, old.size, -1);
        old.segment = segment;
        count(segment, old.size, 1);
        return old;
      }
      const item: Item = {
        id,
        body,
        segment,
        size: id.length + body.length,
        state: 'waiting',
        consumer: '',
        deliveredAt: 0,
      };
      items.set(id, item);
      count(segment, item.size, 1);
      return item;
    },

    /** A new entry, durable now: readers may have it. */
    addWaiting(id: string, body: string, segment: number): void {
      waiting.push(state.addItem(id, body, segment));
      waitingCount += 1;
    },

    /**
     * Forgets an entry. With `keepSegment`, its segment still counts it as live until `release`:
     * for an acknowledgement not yet durable, whose entry must stay in the files meanwhile.
     */
    removeItem(id: string, keepSegment = false): Item | undefined {
      const item = items.get(id);
      if (!item) return undefined;
      items.delete(id);
      if (!keepSegment) count(item.segment, item.size, -1);
      if (item.state === 'waiting') waitingCount -= 1;
      else pending.delete(id);
      // Left in `waiting` if it is there; delivery skips it.
      item.state = 'gone';
      return item;
    },

    /** The segment of an item removed with `keepSegment` may go now. */
    release(item: Item): void {
      count(item.segment, item.size, -1);
    },

    addLetter(letter: DeadLetter, segment: number): void {
      const old = letters.get(letter.id);
      if (old) count(old.segment, old.size, -1);
      const size = letter.id.length + letter.body.length + letter.reason.length;
      letters.set(letter.id, { letter, segment, size });
      count(segment, size, 1);
    },

    removeLetter(id: string): void {
      const held = letters.get(id);
      if (!held) return;
      letters.delete(id);
      count(held.segment, held.size, -1);
    },

    /**
     * Replays the files' records. Every entry not acknowledged ends up waiting: the consumers
     * that held some were in the process that wrote the files, which is gone.
     */
    load(scanned: readonly ScannedSegment[]): void {
      for (const { number, records, size } of scanned) {
        state.addSegment(number, size);
        for (const { type, fields } of records) {
          if (type === RecordType.Enqueue || type === RecordType.Replay) {
            const replayed = type === RecordType.Replay ? Number(fields[0]) : 0;
            const first = type === RecordType.Replay ? 1 + replayed : 0;
            for (const id of fields.slice(1, first)) state.removeLetter(id);
            for (let at = first; at + 1 < fields.length; at += 2) {
              noteId(fields[at]!);
              state.addItem(fields[at]!, fields[at + 1]!, number);
            }
          } else if (type === RecordType.Ack) {
            for (const id of fields) state.removeItem(id);
          } else {
            const [id, originalId, body, reason, failedAt] = fields as [
              string,
              string,
              string,
              string,
              string,
            ];
            noteId(id);
            state.removeItem(originalId);
            state.addLetter({ id, originalId, body, reason, failedAt }, number);
          }
        }
      }
      // Compaction copies records forward, so the files' order is not the ids' order; ids are.
      waiting = [...items.values()].sort((a, b) => compareIds(a.id, b.id));
      waitingCount = waiting.length;
      const sortedLetters = [...letters.entries()].sort(([a], [b]) => compareIds(a, b));
      letters.clear();
      for (const [id, held] of sortedLetters) letters.set(id, held);
    },

    deliver(consumer: string, max: number): QueueEntry[] {
      const batch: QueueEntry[] = [];
      const at = now();
      while (batch.length < max && head < waiting.length) {
        const item = waiting[head]!;
        head += 1;
        if (item.state !== 'waiting') continue;
        item.state = 'pending';
        item.consumer = consumer;
        item.deliveredAt = at;
        pending.set(item.id, item);
        waitingCount -= 1;
        batch.push({ id: item.id, body: item.body });
      }
      if (head > 1024 && head * 2 > waiting.length) {
        waiting = waiting.slice(head);
        head = 0;
      }
      return batch;
    },

    readPending(consumer: string, max: number): QueueEntry[] {
      const mine: QueueEntry[] = [];
      for (const item of pending.values()) {
        if (mine.length >= max) break;
        if (item.consumer === consumer) mine.push({ id: item.id, body: item.body });
      }
      return mine;
    },

    claimStale(consumer: string, minIdleMs: number, max: number): QueueEntry[] {
      const claimed: QueueEntry[] = [];
      const at = now();
      for (const item of pending.values()) {
        if (claimed.length >= max) break;
        if (at - item.deliveredAt >= minIdleMs) {
          item.consumer = consumer;
          item.deliveredAt = at;
          claimed.push({ id: item.id, body: item.body });
        }
      }
      return claimed;
    },

    /** The time of the oldest entry not acknowledged, or null when there is none. */
    oldestMs(): number | null {
      while (head < waiting.length && waiting[head]!.state !== 'waiting') head += 1;
      // Pending entries keep their delivery order, so the first is the oldest of them.
      const ids = [pending.keys().next().value, waiting[head]?.id].filter((id) => id !== undefined);
      return ids.length === 0 ? null : Math.min(...ids.map(entryTimeMs));
    },
  };
  return state;
}

export type QueueState = ReturnType<typeof createQueueState>;

function compareIds(a: string, b: string): number {
  const byTime = entryTimeMs(a) - entryTimeMs(b);
  return byTime !== 0 ? byTime : Number(a.slice(a.indexOf('-') + 1)) - Number(b.slice(b.indexOf('-') + 1));
}
