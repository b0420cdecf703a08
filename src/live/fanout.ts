import type { Logger } from '../observability/logger.js';
import type { CompiledFilter } from '../query/event-queries.js';
import { filterKey, matchesFilter } from '../query/event-match.js';
import type { StoredEvent } from '../events/stored-event.js';
import type { FeedSource, LiveFeed } from './live-feed.js';

/** Where one subscription's messages go (a graphql-ws subscription on a socket). */
export interface LiveSink {
  /** Sends one rendered result. The sink closes its connection itself when it falls too far behind. */
  send(rendered: string): void;
}

export interface LiveSubscriptionRequest {
  filter: CompiledFilter;
  /**
   * Subscribers whose requests render identically share one rendering per event
   * (e.g. the same document and variables); undefined renders per subscriber.
   */
  renderKey: string | undefined;
  /** Turns a stored event into the text the sink sends (the GraphQL result); synchronous. */
  render(event: StoredEvent): string;
  sink: LiveSink;
  /** Resume after this position: first every matching event stored since, then live. */
  afterSeq?: bigint | undefined;
}

export interface LiveSubscription {
  /** Settles when the subscription has caught up and is live; rejects if catching up failed. */
  readonly caughtUp: Promise<void>;
  close(): void;
}

interface Member {
  sink: LiveSink;
  /** Seq of the last event sent: anything at or before it is never sent again. */
  lastSeq: number;
  /** While catching up from the database, live events wait here (seq, rendered). */
  waiting: Array<[number, string]> | null;
  overflowed: boolean;
  closed: boolean;
}

interface RenderGroup {
  render(event: StoredEvent): string;
  members: Set<Member>;
}

interface FilterGroup {
  key: string;
  filter: CompiledFilter;
  renderGroups: Map<string, RenderGroup>;
  size: number;
}

const CATCH_UP_PAGE = 500;

/**
 * Fans the feed out to subscriptions. Subscriptions with the same filter form
 * one group, indexed by session or event type, so each event is matched once
 * per group that could want it, not once per subscriber; subscribers that also
 * render alike share one rendering, so a broadcast to many is one execution and
 * one serialization, then a send per socket.
 */
export function createFanout(options: {
  feed: LiveFeed;
  source: FeedSource;
  logger: Logger;
  /** Live events held for one subscriber while it catches up; past this it reads them from the database again. */
  maxWaiting?: number;
  onSent?: (count: number) => void;
}) {
  const { feed, source } = options;
  const maxWaiting = options.maxWaiting ?? 10_000;
  const groups = new Map<string, FilterGroup>();
  const bySession = new Map<string, Set<FilterGroup>>();
  const byType = new Map<string, Set<FilterGroup>>();
  const unindexed = new Set<FilterGroup>();
  let sent = 0;
  let ownRenderings = 0;

  function indexOf(group: FilterGroup): Array<[Map<string, Set<FilterGroup>>, string]> | null {
    const { sessionId, eventTypes } = group.filter;
    if (sessionId !== undefined) return [[bySession, sessionId]];
    if (eventTypes !== undefined) return eventTypes.map((type) => [byType, type]);
    return null;
  }

  function addGroup(group: FilterGroup): void {
    const index = indexOf(group);
    if (!index) return void unindexed.add(group);
    for (const [map, key] of index) {
      const set = map.get(key) ?? new Set();
      set.add(group);
      map.set(key, set);
    }
  }

  function removeGroup(group: FilterGroup): void {
    groups.delete(group.key);
    const index = indexOf(group);
    if (!index) return void unindexed.delete(group);
    for (const [map, key] of index) {
      const set = map.get(key);
      set?.delete(group);
      if (set?.size === 0) map.delete(key);
    }
  }

  function offer(group: FilterGroup, event: StoredEvent, seq: number): void {
    if (!matchesFilter(event, group.filter)) return;
    for (const renderGroup of group.renderGroups.values()) {
      let rendered: string | undefined;
      for (const member of renderGroup.members) {
        if (seq <= member.lastSeq) continue;
        rendered ??= renderGroup.render(event);
        if (member.waiting) {
          if (member.waiting.length >= maxWaiting) {
            // The database holds these too: the catch-up reads them again rather than grow memory.
            member.waiting.length = 0;
            member.overflowed = true;
          }
          member.waiting.push([seq, rendered]);
        } else {
          member.lastSeq = seq;
          member.sink.send(rendered);
          sent += 1;
        }
      }
    }
  }

  function onEvents(events: StoredEvent[]): void {
    for (const event of events) {
      const seq = Number(event.seq);
      const forSession = bySession.get(event.sessionId);
      if (forSession) for (const group of forSession) offer(group, event, seq);
      const forType = byType.get(event.eventType);
      if (forType) for (const group of forType) offer(group, event, seq);
      for (const group of unindexed) offer(group, event, seq);
    }
    if (sent > 0) {
      options.onSent?.(sent);
      sent = 0;
    }
  }

  const unlisten = feed.listen(onEvents);

  async function catchUp(member: Member, filter: CompiledFilter, render: (event: StoredEvent) => string) {
    for (;;) {
      member.overflowed = false;
      for (;;) {
        const page = await source.since(filter, BigInt(member.lastSeq), CATCH_UP_PAGE);
        if (member.closed) return;
        for (const event of page) {
          member.sink.send(render(event));
          member.lastSeq = Number(event.seq);
        }
        options.onSent?.(page.length);
        if (page.length < CATCH_UP_PAGE) break;
      }
      if (!member.overflowed) break;
    }
    flushWaiting(member);
  }

  function flushWaiting(member: Member): void {
    const waiting = member.waiting ?? [];
    member.waiting = null;
    if (member.closed) return;
    for (const [seq, rendered] of waiting) {
      if (seq <= member.lastSeq) continue;
      member.sink.send(rendered);
      member.lastSeq = seq;
    }
  }

  /** Sends what waited past `start` and goes live (reading from the database what overflowed). */
  async function startLive(member: Member, start: number, request: LiveSubscriptionRequest) {
    if (start > member.lastSeq) member.lastSeq = start;
    if (member.overflowed) await catchUp(member, request.filter, request.render);
    else flushWaiting(member);
  }

  return {
    subscribe(request: LiveSubscriptionRequest): LiveSubscription {
      const key = filterKey(request.filter);
      let group = groups.get(key);
      if (!group) {
        group = { key, filter: request.filter, renderGroups: new Map(), size: 0 };
        groups.set(key, group);
        addGroup(group);
      }
      const renderKey = request.renderKey ?? `own:${(ownRenderings += 1)}`;
      let renderGroup = group.renderGroups.get(renderKey);
      if (!renderGroup) {
        renderGroup = { render: request.render, members: new Set() };
        group.renderGroups.set(renderKey, renderGroup);
      }
      const resuming = request.afterSeq !== undefined;
      const attendance = feed.attend();
      const { startAfter } = attendance;
      const waking = typeof startAfter !== 'bigint';
      // Live events wait while the member does not know where it starts (the feed was asleep and
      // reads where the stored events end) or reads its history.
      const member: Member = {
        sink: request.sink,
        lastSeq: Number(request.afterSeq ?? (waking ? feed.position() : startAfter)),
        waiting: resuming || waking ? [] : null,
        overflowed: false,
        closed: false,
      };
      renderGroup.members.add(member);
      group.size += 1;
      const ownGroup = group;
      const ownRenderGroup = renderGroup;
      const caughtUp = !waking
        ? resuming
          ? catchUp(member, request.filter, request.render)
          : Promise.resolve()
        : startAfter.then((start) =>
            resuming
              ? catchUp(member, request.filter, request.render)
              : startLive(member, Number(start), request),
          );
      return {
        caughtUp,
        close() {
          if (member.closed) return;
          member.closed = true;
          attendance.release();
          ownRenderGroup.members.delete(member);
          if (ownRenderGroup.members.size === 0) ownGroup.renderGroups.delete(renderKey);
          ownGroup.size -= 1;
          if (ownGroup.size === 0) removeGroup(ownGroup);
        },
      };
    },

    /** Subscriptions and distinct filters, for metrics and tests. */
    stats: () => ({
      filters: groups.size,
      subscriptions: [...groups.values()].reduce((sum, group) => sum + group.size, 0),
    }),

    stop(): void {
      unlisten();
    },
  };
}

export type Fanout = ReturnType<typeof createFanout>;
