import { v7 as uuidv7 } from 'uuid';
import type { QueuedEvent } from '../../src/events/queue-message.js';

/** A queue entry's event as the API writes it: a fresh id, received now, with `overrides` applied. */
export const queuedEvent = (overrides: Partial<QueuedEvent> = {}): QueuedEvent => ({
  v: 1,
  id: uuidv7(),
  eventType: 'review_started',
  sessionId: 'worker-test',
  payload: { n: 1 },
  clientTime: null,
  receivedAt: new Date().toISOString(),
  apiKeyId: 'admin',
  ...overrides,
});
