/**
 * Readers of an in-process queue blocked until entries arrive (or the queue
 * closes), each for at most its own time, as `XREADGROUP BLOCK` waits.
 */
export function createReadWaiters() {
  let waiting: Array<() => void> = [];
  return {
    /** Resolves when {@link wakeAll} is called or after `blockMs`, whichever comes first. */
    wait(blockMs: number): Promise<void> {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          waiting = waiting.filter((wake) => wake !== woken);
          resolve();
        }, blockMs);
        const woken = () => {
          clearTimeout(timer);
          resolve();
        };
        waiting.push(woken);
      });
    },
    wakeAll(): void {
      const readers = waiting;
      waiting = [];
      for (const wake of readers) wake();
    },
  };
}
