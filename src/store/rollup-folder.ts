import type { Database } from './database.js';
import { foldRollupsSql } from './rollup-sql.js';

/** Serializes folds across every process: two folds must not count the same range. */
const FOLD_LOCK_KEY = 0x666f6c64; // "fold"
/** Positions folded per statement: bounds one transaction's work after a long pause. */
const FOLD_WINDOW = 20_000;
/**
 * Background folds start at most this often: at a high commit rate a fold per
 * commit would add a transaction per batch; spaced, each folds several batches
 * at once. Readers fold what is left first, so answers never lag.
 */
const FOLD_SPACING_MS = 200;

/**
 * Keeps the analytics rollups up to date with the stored events. The insert
 * does not maintain them (that work would sit inside the insert lock, which
 * serializes every worker); instead the events above the folded position are
 * added in bulk: by the worker after each commit, off its insert path, and by
 * every reader of the rollups first, so an answer always counts every event
 * stored before it was asked for.
 *
 * One per process, built where the stores are (src/app/backends.ts) and handed
 * to each store that folds: the background fold's spacing is this object's state.
 */
export function createRollupFolder(db: Database, options: { spacingMs?: number } = {}) {
  const spacingMs = options.spacingMs ?? FOLD_SPACING_MS;
  const foldStatement = foldRollupsSql();
  let running: Promise<void> | undefined;
  let requestedAgain = false;
  /** When the last background fold started: the spacing holds across idle moments too. */
  let lastStartedAt = Number.NEGATIVE_INFINITY;

  /** Folds everything stored so far; resolves when the rollups count it all. */
  async function fold(): Promise<number> {
    let folded = 0;
    for (;;) {
      const [row] = await db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [FOLD_LOCK_KEY]);
        return tx.query<{ folded: number; caught_up: boolean | null }>(foldStatement, [FOLD_WINDOW]);
      });
      folded += row?.folded ?? 0;
      // No row: the position is missing (a database the migrations have not reached).
      if (!row || row.caught_up !== false) return folded;
    }
  }

  return {
    fold,

    /** Folds unless the rollups already count every stored event: one indexed read when they do. */
    async foldIfBehind(): Promise<void> {
      const [state] = await db.query<{ behind: boolean | null }>(
        `SELECT (SELECT max(seq) FROM audit_events) > through_seq AS behind FROM analytics_folded WHERE id = 1`,
      );
      if (state?.behind === true) await fold();
    },

    /**
     * Starts a fold in the background, at most one every {@link FOLD_SPACING_MS}
     * (a request inside the spacing waits for it; requests meanwhile share that
     * fold): the worker calls this after each commit and never waits for it.
     * Failures go to `onError`; the next request, or the next reader, folds what was left.
     */
    request(onError: (error: unknown) => void): void {
      if (running) {
        requestedAgain = true;
        return;
      }
      running = (async () => {
        do {
          // Spaced from the previous fold's start even when nothing was requested during it: a fold
          // takes less than a batch, so the next commit would otherwise always find none running.
          const wait = spacingMs - (Date.now() - lastStartedAt);
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          // Requests until now are served by this fold; those during it need one more.
          requestedAgain = false;
          lastStartedAt = Date.now();
          await fold().catch(onError);
        } while (requestedAgain);
        running = undefined;
      })();
    },

    /** Resolves when no background fold is running (before the database is closed). */
    async idle(): Promise<void> {
      while (running) await running;
    },
  };
}

export type RollupFolder = ReturnType<typeof createRollupFolder>;
