import { describe, expect, it } from 'vitest';
import { createFanout } from '../../src/live/fanout.js';
import type { FeedSource, LiveFeed } from '../../src/live/live-feed.js';
import { createLogger } from '../../src/observability/logger.js';
import type { StoredEvent } from '../../src/events/stored-event.js';

let nextSeq = 1;
const event = (sessionId: string, eventType = 'review_started', payload = {}): StoredEvent => ({
  id: `id-${nextSeq}`,
  seq: String(nextSeq++),
  eventType,
  sessionId,
  payload,
  clientTime: null,
  receivedAt: new Date(),
  persistedAt: new Date(),
  apiKeyId: null,
});

/**
 * A feed driven by the test: `push` delivers a batch to the fanout as the real feed would. Awake,
 * unless `wakeAt` is given: then subscribers learn where they start when it resolves.
 */
function scriptedFeed(wakeAt?: Promise<bigint>) {
  const listeners = new Set<(events: StoredEvent[]) => void>();
  let position = 0n;
  const feed = {
    start: async () => undefined,
    stop: async () => undefined,
    position: () => position,
    attend: () => ({ startAfter: wakeAt ?? position, release: () => undefined }),
    listen(listener: (events: StoredEvent[]) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  } satisfies LiveFeed;
  return {
    feed,
    push(events: StoredEvent[]) {
      position = BigInt(events.at(-1)?.seq ?? position);
      for (const listener of listeners) listener(events);
    },
  };
}

const noHistory: FeedSource = { since: async () => [], latestSeq: async () => 0n };

describe('fanout', () => {
  it('renders a broadcast once per event for subscribers that render alike, and sends it to each', () => {
    const { feed, push } = scriptedFeed();
    const fanout = createFanout({ feed, source: noHistory, logger: createLogger({ level: 'silent' }) });
    let renders = 0;
    const inboxes = Array.from({ length: 100 }, () => [] as string[]);
    for (const inbox of inboxes) {
      fanout.subscribe({
        filter: {},
        renderKey: 'same document and variables',
        render: (stored) => {
          renders += 1;
          return stored.id;
        },
        sink: { send: (rendered) => inbox.push(rendered) },
      });
    }
    const batch = [event('a'), event('b'), event('c')];
    push(batch);
    expect(renders).toBe(3);
    for (const inbox of inboxes) expect(inbox).toEqual(batch.map((stored) => stored.id));
  });

  it('matches each event against the groups indexed under its session or type only', () => {
    const { feed, push } = scriptedFeed();
    const fanout = createFanout({ feed, source: noHistory, logger: createLogger({ level: 'silent' }) });
    const received = new Map<string, string[]>();
    const subscribe = (name: string, filter: Parameters<typeof fanout.subscribe>[0]['filter']) => {
      received.set(name, []);
      return fanout.subscribe({
        filter,
        renderKey: undefined,
        render: (stored) => stored.id,
        sink: { send: (rendered) => received.get(name)?.push(rendered) },
      });
    };
    for (let i = 0; i < 1000; i += 1) subscribe(`session-${i}`, { sessionId: `s${i}` });
    subscribe('completed', { eventTypes: ['review_completed'] });
    subscribe('rust', { payloadMatches: [{ path: ['code_language'], value: 'rust' }] });
    expect(fanout.stats()).toEqual({ filters: 1002, subscriptions: 1002 });

    const one = event('s7', 'review_completed', { code_language: 'rust' });
    const two = event('s8', 'review_started', { code_language: 'go' });
    push([one, two]);
    expect(received.get('session-7')).toEqual([one.id]);
    expect(received.get('session-8')).toEqual([two.id]);
    expect(received.get('session-9')).toEqual([]);
    expect(received.get('completed')).toEqual([one.id]);
    expect(received.get('rust')).toEqual([one.id]);
  });

  it('sends a resuming subscriber its history, then the live events that arrived meanwhile, without duplicates', async () => {
    const { feed, push } = scriptedFeed();
    const history = [event('r'), event('r'), event('r')];
    const overlapping = event('r');
    let release: () => void = () => undefined;
    const source: FeedSource = {
      latestSeq: async () => 0n,
      async since(_filter, afterSeq) {
        await new Promise<void>((resolve) => (release = resolve));
        // The read sees the event that also arrives live while it runs.
        return [...history, overlapping].filter((stored) => BigInt(stored.seq) > afterSeq);
      },
    };
    const fanout = createFanout({ feed, source, logger: createLogger({ level: 'silent' }) });
    const inbox: string[] = [];
    const subscription = fanout.subscribe({
      filter: { sessionId: 'r' },
      renderKey: undefined,
      render: (stored) => stored.seq,
      sink: { send: (rendered) => inbox.push(rendered) },
      afterSeq: BigInt(history[0]?.seq ?? 0) - 1n,
    });
    const live = event('r');
    push([overlapping, live]); // arrives while the history is being read
    expect(inbox).toEqual([]);
    release();
    await subscription.caughtUp;
    expect(inbox).toEqual([...history, overlapping, live].map((stored) => stored.seq));
  });

  it('starts a subscriber of a waking feed after the newest stored event, holding live events until it is known', async () => {
    let wake: (seq: bigint) => void = () => undefined;
    const { feed, push } = scriptedFeed(new Promise<bigint>((resolve) => (wake = resolve)));
    const fanout = createFanout({ feed, source: noHistory, logger: createLogger({ level: 'silent' }) });
    const inbox: string[] = [];
    const subscription = fanout.subscribe({
      filter: { sessionId: 'w' },
      renderKey: undefined,
      render: (stored) => stored.seq,
      sink: { send: (rendered) => inbox.push(rendered) },
    });
    const storedBefore = event('w');
    const newest = event('w');
    const after = event('w');
    push([storedBefore, newest, after]); // recovered by the waking feed: the first two precede the subscriber
    expect(inbox).toEqual([]);
    wake(BigInt(newest.seq));
    await subscription.caughtUp;
    expect(inbox).toEqual([after.seq]);
    const live = event('w');
    push([live]);
    expect(inbox).toEqual([after.seq, live.seq]);
  });

  it("reads a resuming subscriber's history only once a waking feed knows where it starts", async () => {
    let wake: (seq: bigint) => void = () => undefined;
    const { feed, push } = scriptedFeed(new Promise<bigint>((resolve) => (wake = resolve)));
    const history = [event('h'), event('h')];
    const reads: bigint[] = [];
    let woken = false;
    const source: FeedSource = {
      latestSeq: async () => 0n,
      async since(_filter, afterSeq) {
        // A read before the wake could miss events stored between it and the feed's start.
        expect(woken).toBe(true);
        reads.push(afterSeq);
        return history.filter((stored) => BigInt(stored.seq) > afterSeq);
      },
    };
    const fanout = createFanout({ feed, source, logger: createLogger({ level: 'silent' }) });
    const inbox: string[] = [];
    const subscription = fanout.subscribe({
      filter: { sessionId: 'h' },
      renderKey: undefined,
      render: (stored) => stored.seq,
      sink: { send: (rendered) => inbox.push(rendered) },
      afterSeq: BigInt(history[0]!.seq) - 1n,
    });
    const live = event('h');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(reads).toEqual([]);
    woken = true;
    wake(BigInt(history[1]!.seq));
    push([live]);
    await subscription.caughtUp;
    expect(inbox).toEqual([...history, live].map((stored) => stored.seq));
  });
});
