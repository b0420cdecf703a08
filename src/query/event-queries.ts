import { badRequest } from '../errors.js';
import { isEventType, type EventType } from '../events/event-types.js';
import { storabilityProblems } from '../events/storability.js';
import type { EventQuery, StoredEvent } from '../events/stored-event.js';
import type { EventStore } from '../store/event-store.js';
import { checkInstant, checkText } from '../events/storable.js';
import { MAX_SEQ } from '../validation.js';

/** Cursors are opaque to clients; inside they are a `seq`, so any page costs the same as the first. */
export function encodeCursor(seq: string): string {
  return Buffer.from(`seq:${seq}`, 'utf8').toString('base64url');
}

/**
 * @throws AppError BAD_REQUEST naming `parameter` when the cursor was not made by
 * {@link encodeCursor}: any other text, including a forged one past int8's range.
 */
export function decodeCursor(cursor: string, parameter: string): bigint {
  const match = /^seq:([0-9]{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match?.[1] || BigInt(match[1]) > MAX_SEQ) {
    throw badRequest(`${parameter}: not a cursor returned by an earlier page`, [
      { field: parameter, message: 'is not a cursor returned by an earlier page' },
    ]);
  }
  return BigInt(match[1]);
}

export interface EventFilter {
  eventTypes?: readonly string[] | undefined;
  sessionId?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
  payload?: ReadonlyArray<{ path: string; value: unknown }> | undefined;
}

export interface EventPage {
  events: StoredEvent[];
  hasNextPage: boolean;
  endCursor: string | null;
}

/** A Relay connection page: newest first, whichever direction it was read in. */
export interface EventConnectionPage {
  events: StoredEvent[];
  /** Events older than the last one exist (exact for `first`; for `last`, whether `before` cuts any off). */
  hasNextPage: boolean;
  /** Events newer than the first one exist (exact for `last`; for `first`, whether `after` cuts any off). */
  hasPreviousPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}

/** Relay paging arguments: exactly one of `first` and `last`; either cursor, or both. */
export interface ConnectionArgs {
  first?: number | null | undefined;
  after?: string | null | undefined;
  last?: number | null | undefined;
  before?: string | null | undefined;
}

export const MAX_PAGE_SIZE = 1000;
/** Each payload match is a condition of the query: a few describe any real search. */
const MAX_PAYLOAD_MATCHES = 32;
/** Offset paging past this many rows is refused: the keyset cursor costs the same at any depth. */
export const MAX_OFFSET = 100_000;

/** What an {@link EventFilter} selects, checked once: the store queries by it and the live feed matches by it. */
export type CompiledFilter = Pick<EventQuery, 'eventTypes' | 'sessionId' | 'from' | 'to' | 'payloadMatches'>;

/**
 * Field names in errors are GraphQL's (`filter.sessionId`): REST checks its own
 * parameters before, and the live feed takes the same filter input.
 * @throws AppError BAD_REQUEST for an empty time window, an instant outside years 1..9999,
 *   text PostgreSQL cannot hold, or a malformed payload path or value.
 */
export function compileFilter(filter: EventFilter): CompiledFilter {
  if (filter.sessionId !== undefined) checkText(filter.sessionId, 'filter.sessionId', 256);
  if (filter.from) checkInstant(filter.from, 'filter.from');
  if (filter.to) checkInstant(filter.to, 'filter.to');
  if (filter.payload && filter.payload.length > MAX_PAYLOAD_MATCHES) {
    throw badRequest(`filter.payload: at most ${MAX_PAYLOAD_MATCHES} matches`, [
      { field: 'filter.payload', message: `must hold at most ${MAX_PAYLOAD_MATCHES} matches` },
    ]);
  }
  if (filter.from && filter.to && filter.from >= filter.to) {
    throw badRequest('filter.from must be before filter.to', [
      { field: 'filter.from', message: 'must be before filter.to' },
    ]);
  }
  return {
    eventTypes: filter.eventTypes && filter.eventTypes.length > 0 ? filter.eventTypes : undefined,
    sessionId: filter.sessionId,
    from: filter.from,
    to: filter.to,
    payloadMatches: filter.payload?.map((match, index) => ({
      path: payloadPath(match.path, `filter.payload.${index}.path`),
      value: payloadValue(match.value, `filter.payload.${index}.value`),
    })),
  };
}

/**
 * Reading events back, for REST and GraphQL alike: newest first, filtered, in
 * keyset pages (`after`) or, for the spec's `page`, offset pages kept shallow.
 */
export function createEventQueries({ store }: { store: EventStore }) {
  async function page(query: EventQuery): Promise<EventPage> {
    // One row more than asked tells whether another page exists, without a count.
    const rows = await store.listEvents({ ...query, limit: query.limit + 1 });
    const events = rows.slice(0, query.limit);
    const last = events.at(-1);
    const hasNextPage = rows.length > query.limit;
    return { events, hasNextPage, endCursor: last ? encodeCursor(last.seq) : null };
  }

  return {
    /**
     * Keyset page: `first` newest events older than the `after` cursor.
     * `names` are the caller's parameter names, for error messages.
     */
    async list(
      filter: EventFilter,
      first: number,
      after?: string | null,
      names = { first: 'first', after: 'after' },
    ): Promise<EventPage> {
      checkPageSize(first, names.first);
      const beforeSeq = after ? decodeCursor(after, names.after) : undefined;
      return page({ ...compileFilter(filter), limit: first, beforeSeq });
    },

    /**
     * A Relay connection page (newest first). `first` reads the events older than
     * `after`; `last` the events just newer than `before`, still newest first. With
     * both cursors, only events between them. The flag the spec leaves optional
     * (hasPreviousPage for `first`, hasNextPage for `last`) is exact: one indexed
     * `LIMIT 1` read, made only when the cursor that decides it was given.
     * @throws AppError BAD_REQUEST for `first` with `last`, neither, a size outside
     *   1..{@link MAX_PAGE_SIZE}, or a cursor not made by {@link encodeCursor}.
     */
    async connection(filter: EventFilter, args: ConnectionArgs): Promise<EventConnectionPage> {
      const { first, last } = args;
      if (first != null && last != null) {
        throw badRequest('first and last: give one of them, not both', [
          { field: 'first', message: 'cannot be combined with last' },
          { field: 'last', message: 'cannot be combined with first' },
        ]);
      }
      if (first == null && last == null) {
        throw badRequest('first or last: give one of them', [
          { field: 'first', message: 'or last is required' },
        ]);
      }
      const compiled = compileFilter(filter);
      const afterSeq = args.after ? decodeCursor(args.after, 'after') : undefined;
      const beforeSeq = args.before ? decodeCursor(args.before, 'before') : undefined;
      // Newest first, `after` keeps older events (smaller seq) and `before` newer ones.
      const window = { ...compiled, beforeSeq: afterSeq, afterSeq: beforeSeq };
      const exists = async (query: Omit<EventQuery, 'limit'>) =>
        (await store.listEvents({ ...query, limit: 1 })).length > 0;
      let events: StoredEvent[];
      let hasNextPage: boolean;
      let hasPreviousPage: boolean;
      const size = first ?? last ?? 0;
      checkPageSize(size, first != null ? 'first' : 'last');
      if (first != null) {
        const rows = await store.listEvents({ ...window, limit: size + 1 });
        events = rows.slice(0, size);
        hasNextPage = rows.length > size;
        // The event at `after` itself counts: it is prior to this page.
        hasPreviousPage =
          afterSeq !== undefined && (await exists({ ...compiled, afterSeq: afterSeq - 1n, ascending: true }));
      } else {
        // The `size` events nearest `before`, read oldest first, then put newest first.
        const rows = await store.listEvents({ ...window, ascending: true, limit: size + 1 });
        events = rows.slice(0, size).reverse();
        hasPreviousPage = rows.length > size;
        // Likewise the event at `before`; past int8's top there is no bound to set.
        const through = beforeSeq !== undefined && beforeSeq < MAX_SEQ ? beforeSeq + 1n : undefined;
        hasNextPage = beforeSeq !== undefined && (await exists({ ...compiled, beforeSeq: through }));
      }
      const start = events[0];
      const end = events.at(-1);
      return {
        events,
        hasNextPage,
        hasPreviousPage,
        startCursor: start ? encodeCursor(start.seq) : null,
        endCursor: end ? encodeCursor(end.seq) : null,
      };
    },

    /** The spec's `limit` and `page` (from 1). */
    async listPage(filter: EventFilter, limit: number, pageNumber: number): Promise<EventPage> {
      checkPageSize(limit, 'limit');
      const offset = (pageNumber - 1) * limit;
      if (offset > MAX_OFFSET) {
        throw badRequest(`page: too deep for page-based paging (over ${MAX_OFFSET} events); use cursor`, [
          { field: 'page', message: 'is too deep; follow next_cursor instead' },
        ]);
      }
      return page({ ...compileFilter(filter), limit, offset });
    },

    async get(id: string): Promise<StoredEvent | null> {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
        throw badRequest('id: must be a UUID', [{ field: 'id', message: 'must be a UUID' }]);
      }
      return store.findById(id);
    },

    /**
     * Oldest first: up to `limit` events matching `filter` stored after `afterSeq`
     * (and before `beforeSeq`). The live feed catches up with it.
     */
    async since(
      filter: CompiledFilter,
      afterSeq: bigint,
      limit: number,
      beforeSeq?: bigint,
    ): Promise<StoredEvent[]> {
      return store.listEvents({ ...filter, afterSeq, beforeSeq, ascending: true, limit });
    },

    /** The newest stored position (0 when empty). */
    latestSeq: (): Promise<bigint> => store.latestSeq(),

    /** Counts and last-seen times of the known types; rows of types since retired are left out. */
    async eventTypes(): Promise<Array<{ eventType: EventType; count: number; lastSeenAt: Date }>> {
      const stats = await store.eventTypeStats();
      return stats.flatMap((stat) =>
        isEventType(stat.eventType) ? [{ ...stat, eventType: stat.eventType }] : [],
      );
    },
  };
}

export type EventQueries = ReturnType<typeof createEventQueries>;

function checkPageSize(size: number, parameter: string): void {
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
    throw badRequest(`${parameter}: must be between 1 and ${MAX_PAGE_SIZE}`, [
      { field: parameter, message: `must be between 1 and ${MAX_PAGE_SIZE}` },
    ]);
  }
}

/** `a.b.0` → ['a', 'b', '0']; a JSON path of object keys (and array indexes) inside the payload. */
function payloadPath(path: string, field: string): string[] {
  checkText(path, field, 256);
  const keys = path.split('.');
  if (path.length === 0 || path.length > 256 || keys.some((key) => key.length === 0) || keys.length > 16) {
    throw badRequest(`payload path '${path}' is not a dotted path of keys`, [
      { field, message: 'must be a dotted path of keys, e.g. model or usage.tokens' },
    ]);
  }
  return keys;
}

/** A value compared as jsonb: what an event's payload could hold (see storabilityProblems), or a 400. */
function payloadValue(value: unknown, field: string): unknown {
  const problems = storabilityProblems(value, field);
  if (problems.length > 0) {
    throw badRequest(`${field}: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems);
  }
  return value;
}
