import { readQueuedMessage, type QueuedEvent } from '../events/queue-message.js';
import type { QueueEntry } from '../queue/event-queue.js';

/** A queue entry's event, or why it is not one (the dead letter's reason). */
export function parseEntry(
  entry: QueueEntry,
): { ok: true; value: QueuedEvent } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(entry.body);
  } catch (error) {
    return { ok: false, reason: `not JSON: ${describe(error)}` };
  }
  const read = readQueuedMessage(json);
  return read.ok
    ? { ok: true, value: read.event }
    : { ok: false, reason: `not a queued event: ${read.problems}` };
}

/** An error as a dead letter's reason: its code (a SQLSTATE, a system error) and message. */
export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? `${code} ${error.message}` : error.message;
}
