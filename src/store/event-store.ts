import type { Database } from './database.js';
import { createEventReader, type EventReaderDeps } from './event-reader.js';
import { createEventWriter } from './event-writer.js';

// The worker hands the store batches it prepared ahead (src/worker/worker.ts).
export { PreparedBatch } from './prepared-batch.js';

/**
 * The event store: the writer (batches under the write lease, src/store/event-writer.ts)
 * and the reader (src/store/event-reader.ts) over one database.
 */
export function createEventStore(db: Database, deps: EventReaderDeps) {
  return { ...createEventWriter(db), ...createEventReader(db, deps) };
}

export type EventStore = ReturnType<typeof createEventStore>;
