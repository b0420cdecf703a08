import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';
import type { CompiledFilter } from '../query/event-queries.js';
import type { StoredEvent } from '../events/stored-event.js';
import type { EventBus } from './event-bus.js';

/** Where the feed reads what announcements did not bring. */
export interface FeedSource {
  /** Oldest first: events after `afterSeq` (and before `beforeSeq`) matching `filter`. */
  since(filter: CompiledFilter, afterSeq: bigint, limit: number, beforeSeq?: bigint): Promise<StoredEvent[]>;
  latestSeq(): Promise<bigint>;
}

export interface LiveFeedOptions {
  bus: EventBus;
  source: FeedSource;
  logger: Logger;
  /** With no announcement for this long, the feed asks the database whether it missed the last ones. */
  idleCheckMs?: number;
  /** Events read from the database instead of an announcement (metrics). */
  onRecovered?: (count: number) => void;
}

type Task = { events: StoredEvent[] } | { catchUpTo: bigint };

const RECOVERY_PAGE = 1000;
/** Announcements waiting beyond this many are replaced by one read from the database. */
const MAX_WAITING = 1000;

/** One live subscriber's hold on the feed (see LiveFeed.attend). */
export interface Attendance {
  /**
   * The feed delivers every event after this seq: at once when it was awake, else once it has
   * read where the stored events end. A new subscriber starts here; a resuming one reads its
   * history from the database after this is known, so nothing falls between the two.
   */
  readonly startAfter: bigint | Promise<bigint>;
  release(): void;
}

/**
 * This process's view of the stored events: every event, once, in seq order,
 * shortly after its commit. Announcements from the bus are the fast path; the
 * database fills whatever they miss. Seq values become visible in commit order
 * (inserts are serialized, the write lease, src/store/write-lease.ts), so when an announcement
 * starts past the position delivered last, every event in between is already
 * committed and one range read recovers it: a lost, late or reordered message
 * never becomes a gap. A lost last message is found by the idle check.
 *
 * Only while the process has live subscribers (attend) does the feed tell the bus
 * so, and read missed events: without any, workers stop announcing (src/live/event-bus.ts,
 * announce) and the feed moves its position to the newest stored event without
 * reading what it skips. The first subscriber after such a time starts after the
 * newest event read then; what was stored after it reaches the feed by recovery
 * until the workers announce again.
 */
export function createLiveFeed(options: LiveFeedOptions) {
  const { bus, source, logger } = options;
  const idleCheckMs = options.idleCheckMs ?? 1000;
  const listeners = new Set<(events: StoredEvent[]) => void>();
  const tasks: Task[] = [];
  let position = 0n;
  let draining = false;
  let stopped = false;
  let lastAnnouncementAt = Date.now();
  let unsubscribe: (() => void) | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let attending = 0;
  let releaseBus: (() => void) | undefined;
  /** While the feed wakes: where subscribers start. */
  let waking: Promise<bigint> | undefined;
  let awake = false;

  function deliver(events: StoredEvent[]): void {
    // A page read before an attendance moved the position ahead may hold events at or before it.
    const fresh = events.filter((event) => BigInt(event.seq) > position);
    const last = fresh.at(-1);
    if (!last) return;
    position = BigInt(last.seq);
    for (const listener of listeners) listener(fresh);
  }

  /** Reads (position, untilSeq] from the database, or everything after position. */
  async function recover(untilSeq: bigint | undefined): Promise<void> {
    if (attending === 0) {
      // Nobody to deliver to: skip ahead without reading.
      const target = untilSeq ?? (await source.latestSeq());
      if (target > position) position = target;
      return;
    }
    for (;;) {
      const beforeSeq = untilSeq === undefined ? undefined : untilSeq + 1n;
      const page = await source.since({}, position, RECOVERY_PAGE, beforeSeq);
      if (page.length > 0) {
        options.onRecovered?.(page.length);
        deliver(page);
      }
      if (page.length < RECOVERY_PAGE) break;
    }
    // Seq values consumed by rolled-back or duplicate inserts leave holes: nothing will fill them.
    if (untilSeq !== undefined && untilSeq > position) position = untilSeq;
  }

  async function handle(task: Task): Promise<void> {
    if ('catchUpTo' in task) {
      if (task.catchUpTo > position) await recover(task.catchUpTo);
      return;
    }
    const { events } = task;
    const first = events[0];
    const last = events.at(-1);
    if (!first || !last || BigInt(last.seq) <= position) return;
    if (BigInt(first.seq) > position + 1n) await recover(BigInt(first.seq) - 1n);
    deliver(events);
  }

  async function drain(): Promise<void> {
    if (draining) return;
    draining = true;
    try {
      while (tasks.length > 0 && !stopped) {
        const task = tasks[0] as Task;
        try {
          await handle(task);
          tasks.shift();
        } catch (error) {
          logger.warn({ err: error }, 'live feed could not read missed events; retrying');
          await sleep(500);
        }
      }
    } finally {
      draining = false;
    }
  }

  function enqueue(task: Task): void {
    tasks.push(task);
    if (tasks.length > MAX_WAITING) {
      // Far behind (the database is slow or down): one range read replaces the backlog.
      const newest = tasks.reduce((max, waiting) => {
        const seq = 'catchUpTo' in waiting ? waiting.catchUpTo : BigInt(waiting.events.at(-1)?.seq ?? 0);
        return seq > max ? seq : max;
      }, 0n);
      tasks.splice(draining ? 1 : 0, tasks.length, { catchUpTo: newest });
    }
    void drain();
  }

  return {
    /** Starts at the newest stored event: listeners get what is stored from now on. */
    async start(): Promise<void> {
      position = await source.latestSeq();
      unsubscribe = await bus.subscribe((events) => {
        lastAnnouncementAt = Date.now();
        enqueue({ events });
      });
      idleTimer = setInterval(() => {
        if (tasks.length > 0 || Date.now() - lastAnnouncementAt < idleCheckMs) return;
        source
          .latestSeq()
          .then((latest) => {
            if (latest > position) enqueue({ catchUpTo: latest });
          })
          .catch((error: unknown) => logger.debug({ err: error }, 'live feed idle check failed'));
      }, idleCheckMs);
      idleTimer.unref();
    },

    /** The seq of the last event delivered: listeners added now receive only later ones. */
    position: (): bigint => position,

    /**
     * Holds the feed awake for one live subscriber: announced and missed events are delivered
     * while anyone attends. The first attendance after none reads where the stored events end.
     */
    attend(): Attendance {
      attending += 1;
      if (attending === 1) releaseBus = bus.attend();
      if (!awake && waking === undefined) {
        const wake: Promise<bigint> = source.latestSeq().then(
          (latest) => {
            if (latest > position) position = latest;
            if (waking === wake) {
              waking = undefined;
              awake = attending > 0;
            }
            return position;
          },
          (error: unknown) => {
            if (waking === wake) waking = undefined;
            throw error;
          },
        );
        waking = wake;
      }
      let released = false;
      return {
        startAfter: waking ?? position,
        release() {
          if (released) return;
          released = true;
          attending -= 1;
          if (attending > 0) return;
          releaseBus?.();
          releaseBus = undefined;
          awake = false;
          waking = undefined;
        },
      };
    },

    /** @returns the function that removes `listener`. */
    listen(listener: (events: StoredEvent[]) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async stop(): Promise<void> {
      stopped = true;
      if (idleTimer) clearInterval(idleTimer);
      releaseBus?.();
      unsubscribe?.();
      listeners.clear();
    },
  };
}

export type LiveFeed = ReturnType<typeof createLiveFeed>;
