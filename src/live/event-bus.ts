import { PubSub, type PubSubEngine } from 'graphql-subscriptions';
import { RedisPubSub } from 'graphql-redis-subscriptions';
import { Redis } from 'ioredis';
import type { StoredEvent } from '../events/stored-event.js';

/**
 * Announces events after the worker committed them, to every API process that
 * serves the live feed. Announcements are best effort by design: the database
 * is the record, and the feed (src/live/live-feed.ts) reads from it whatever an
 * announcement failed to bring, so a lost message delays events, never drops them.
 */
export interface EventBus {
  /** @throws when the bus is unreachable; callers log and carry on. */
  publish(events: readonly StoredEvent[]): Promise<void>;
  /** Calls `onEvents` with each announced batch, in seq order within the batch. @returns the unsubscribe. */
  subscribe(onEvents: (events: StoredEvent[]) => void): Promise<() => void>;
  /**
   * Declares that this process has live subscribers, so workers announce what they store
   * (see announce). Held until the returned release is called, or the process's connection ends.
   */
  attend(): () => void;
  /** Whether any process declared live subscribers. @throws when the bus is unreachable. */
  hasAudience(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Publishes `events` if some process has live subscribers. Announcing is most of
 * a worker's cost after the insert (the events' JSON built and sent, about a fifth
 * of its CPU in bench/ingest), and nobody reads it while no dashboard is open: the
 * feeds of processes without subscribers skip what they miss (src/live/live-feed.ts),
 * and a feed that gains one reads the events it was not told about from the database.
 * @throws when the bus is unreachable; callers log and carry on.
 */
export async function announce(bus: EventBus, events: readonly StoredEvent[]): Promise<void> {
  if (events.length > 0 && (await bus.hasAudience())) await bus.publish(events);
}

/** How an event crosses the bus: dates become ISO strings on the way through JSON. */
interface WireEvent extends Omit<StoredEvent, 'clientTime' | 'receivedAt' | 'persistedAt'> {
  clientTime: string | Date | null;
  receivedAt: string | Date;
  persistedAt: string | Date;
}

function fromWire(event: WireEvent): StoredEvent {
  return {
    ...event,
    clientTime: event.clientTime === null ? null : new Date(event.clientTime),
    receivedAt: new Date(event.receivedAt),
    persistedAt: new Date(event.persistedAt),
  };
}

/**
 * The text of an announcement, `JSON.stringify({ events })` in effect, but
 * written by hand so each payload's JSON is reused when the store kept it
 * (`payloadJson`): the worker announces every event it stores, and serializing
 * the payloads again was most of that cost.
 */
function announcementJson(events: readonly StoredEvent[]): string {
  let text = '{"events":[';
  for (let index = 0; index < events.length; index += 1) {
    const event = events[index]!;
    text +=
      `${index === 0 ? '' : ','}{"id":${JSON.stringify(event.id)},"seq":${JSON.stringify(event.seq)}` +
      `,"eventType":${JSON.stringify(event.eventType)},"sessionId":${JSON.stringify(event.sessionId)}` +
      `,"payload":${event.payloadJson ?? JSON.stringify(event.payload)}` +
      `,"clientTime":${event.clientTime === null ? 'null' : `"${event.clientTime.toISOString()}"`}` +
      `,"receivedAt":"${event.receivedAt.toISOString()}","persistedAt":"${event.persistedAt.toISOString()}"` +
      `,"apiKeyId":${event.apiKeyId === null ? 'null' : JSON.stringify(event.apiKeyId)}}`;
  }
  return `${text}]}`;
}

/** One adapter over graphql-subscriptions' engine interface: in-process PubSub or RedisPubSub. */
function busOver(
  engine: PubSubEngine,
  channel: string,
  audience: Pick<EventBus, 'attend' | 'hasAudience'>,
  close: () => Promise<void>,
): EventBus {
  return {
    ...audience,
    async publish(events) {
      if (events.length > 0) await engine.publish(channel, { events });
    },
    async subscribe(onEvents) {
      const id = await engine.subscribe(
        channel,
        (message: { events?: WireEvent[] }) => {
          if (Array.isArray(message.events) && message.events.length > 0)
            onEvents(message.events.map(fromWire));
        },
        {},
      );
      return () => engine.unsubscribe(id);
    },
    close,
  };
}

/** For the embedded mode: one process, so the bus is an in-process emitter. */
export function createMemoryEventBus(): EventBus {
  let attending = 0;
  const audience = {
    attend() {
      attending += 1;
      let released = false;
      return () => {
        if (!released) attending -= 1;
        released = true;
      };
    },
    hasAudience: async () => attending > 0,
  };
  return busOver(new PubSub(), 'persisted', audience, async () => undefined);
}

/**
 * Redis pub/sub through graphql-redis-subscriptions, on `channel` (namespaced by
 * the queue's stream, so deployments sharing a Redis stay apart). The publisher
 * has no offline queue: while Redis is down a publish fails at once instead of
 * piling up in memory, and the feeds catch up from the database.
 */
export function createRedisEventBus(url: string, channel: string): EventBus {
  const publisher = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: false,
  });
  // Subscriptions are re-established by ioredis after a reconnect (autoResubscribe).
  const subscriber = new Redis(url, { maxRetriesPerRequest: null });
  // Errors surface as failed publishes (logged by the caller) and as reconnects; without a
  // listener ioredis would print every connection error itself.
  publisher.on('error', () => undefined);
  subscriber.on('error', () => undefined);
  const engine = new RedisPubSub({
    publisher,
    subscriber,
    // Only busOver publishes on this engine, and only { events }.
    serializer: (message: { events: readonly StoredEvent[] }) => announcementJson(message.events),
  });
  // A process with live subscribers stays subscribed to a second channel; PUBSUB NUMSUB counts
  // them across processes, and a subscription ends with its connection, so a process that died
  // holding one leaves no trace that would keep workers announcing.
  const audienceChannel = `${channel}:audience`;
  const audience = {
    attend() {
      const subscribed = engine.subscribe(audienceChannel, () => undefined, {});
      let released = false;
      return () => {
        if (released) return;
        released = true;
        subscribed.then((id) => engine.unsubscribe(id)).catch(() => undefined);
      };
    },
    async hasAudience() {
      const reply = (await publisher.call('PUBSUB', 'NUMSUB', audienceChannel)) as [string, number];
      return Number(reply[1]) > 0;
    },
  };
  return busOver(engine, channel, audience, async () => {
    await engine.close().catch(() => undefined);
  });
}
