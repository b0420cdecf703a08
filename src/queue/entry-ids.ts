import { entryTimeMs } from './event-queue.js';

/**
 * Stream-style entry ids (`<ms>-<seq>`) as Redis assigns them: increasing, even
 * when the clock stands still or steps back, so the in-process queues order and
 * age their entries the way Redis Streams does.
 */
export function createEntryIds(now: () => number) {
  let lastMs = 0;
  let sequence = -1;
  return {
    next(): string {
      const ms = now();
      if (ms > lastMs) {
        lastMs = ms;
        sequence = 0;
      } else {
        sequence += 1;
      }
      return `${lastMs}-${sequence}`;
    },
    /** Makes every later id come after `id` (one read back from disk). */
    observe(id: string): void {
      const ms = entryTimeMs(id);
      const seq = Number(id.slice(id.indexOf('-') + 1));
      if (ms > lastMs || (ms === lastMs && seq > sequence)) {
        lastMs = ms;
        sequence = seq;
      }
    },
  };
}
