import type { Item } from './disk-queue-state.js';

/**
 * Acknowledgements of the on-disk queue made durable only after a barrier: for a store that does
 * not fsync its own commits (PGlite's fsync is a no-op), the barrier flushes the store's files,
 * and only then are the entries it stored marked acknowledged in the queue's files. Until then
 * the entries stay in those files, so after a power cut they are delivered again (the store
 * skips what it already has) instead of being lost with the store's unflushed commits.
 * Acknowledgements are gathered for `intervalMs`, so one barrier serves many batches.
 */
export function createDeferredAcks(options: {
  barrier: () => Promise<void>;
  intervalMs: number;
  /** Writes the acknowledgement record of `items`; resolves once it is durable. */
  write(items: Item[]): Promise<void>;
}) {
  let waiting: Item[] = [];
  let round: Promise<void> | undefined;
  let cutShort: (() => void) | undefined;
  let closing = false;

  async function settle(): Promise<void> {
    const batch = waiting;
    waiting = [];
    if (batch.length === 0) return;
    try {
      await options.barrier();
      await options.write(batch);
    } catch {
      // Tried again next round; meanwhile the entries stay in the files, which is safe.
      waiting = batch.concat(waiting);
    }
  }

  function schedule(): void {
    if (round || closing) return;
    round = (async () => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.intervalMs);
        cutShort = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      cutShort = undefined;
      await settle();
      round = undefined;
      if (waiting.length > 0) schedule();
    })();
  }

  return {
    add(items: Item[]): void {
      if (items.length === 0) return;
      waiting.push(...items);
      schedule();
    },
    /** Settles what is waiting now, and stops scheduling rounds. */
    async close(): Promise<void> {
      closing = true;
      cutShort?.();
      await round;
      await settle();
    },
  };
}
