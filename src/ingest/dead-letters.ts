import { badRequest } from '../errors.js';
import type { DeadLetter, EventQueue } from '../queue/event-queue.js';

/** At most this many dead letters per listing or replay. */
const MAX_DEAD_LETTERS_PER_CALL = 1000;

/**
 * The dead letters for an operator, behind REST and GraphQL alike: events a
 * worker could never store, set aside with the reason, and put back once the
 * cause is fixed. Served by API processes, so the embedded mode's in-process
 * queue can be inspected too.
 */
export function createDeadLetterService(queue: EventQueue) {
  return {
    /**
     * The newest `limit` dead letters, and how many are held in all.
     * @throws AppError BAD_REQUEST for a limit outside 1..1000.
     */
    async list(limit: number): Promise<{ letters: DeadLetter[]; total: number }> {
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_DEAD_LETTERS_PER_CALL) {
        throw badRequest(`limit must be between 1 and ${MAX_DEAD_LETTERS_PER_CALL}`, [
          { field: 'limit', message: `must be between 1 and ${MAX_DEAD_LETTERS_PER_CALL}` },
        ]);
      }
      const [letters, stats] = await Promise.all([queue.listDeadLetters(limit), queue.stats()]);
      return { letters, total: stats.deadLetters };
    },

    /**
     * Puts the letters back in the queue, in the order given (see EventQueue.replayDeadLetters).
     * @throws AppError BAD_REQUEST for no ids or more than 1000, QUEUE_FULL when they do not all fit.
     */
    async replay(ids: readonly string[]): Promise<{ replayed: string[]; missing: string[] }> {
      if (ids.length < 1 || ids.length > MAX_DEAD_LETTERS_PER_CALL) {
        throw badRequest(`ids must hold 1 to ${MAX_DEAD_LETTERS_PER_CALL} ids`, [
          { field: 'ids', message: `must hold 1 to ${MAX_DEAD_LETTERS_PER_CALL} ids` },
        ]);
      }
      return queue.replayDeadLetters(ids);
    },
  };
}

export type DeadLetterService = ReturnType<typeof createDeadLetterService>;
