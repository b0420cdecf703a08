import { Redis } from 'ioredis';
import { queueFull, serviceUnavailable } from '../errors.js';
import { connectRedis } from './redis-connect.js';
import {
  ENTRY_ID,
  entryTimeMs,
  QUEUE_FULL_RETRY_AFTER_SECONDS,
  type DeadLetter,
  type EventQueue,
  type QueueEntry,
} from './event-queue.js';
import type { QueueStats } from '../events/queue-message.js';

export interface RedisQueueOptions {
  url: string;
  /** The variables `url` came from, named when Redis cannot be reached. */
  urlFrom?: string | undefined;
  stream: string;
  maxLength: number;
  group?: string;
}

// Checking the length and appending in one script makes the high-water mark
// exact across any number of API replicas. Acknowledged entries are deleted
// (see ack), so XLEN is the queue's depth. One call carries the enqueues a
// process gathered (see FLUSH_AT_BODIES): ARGV[1] is the high-water mark, then
// per enqueue its entry count and its bodies. Each enqueue is taken whole or
// refused whole, in order, as if called one by one; the answer holds 1 (taken)
// or 0 (refused: full) per enqueue.
const ENQUEUE_BOUNDED = `
local maxLength = tonumber(ARGV[1])
local length = redis.call('XLEN', KEYS[1])
local answer = {}
local at = 2
while at <= #ARGV do
  local count = tonumber(ARGV[at])
  if length + count > maxLength then
    answer[#answer + 1] = 0
  else
    for i = at + 1, at + count do redis.call('XADD', KEYS[1], '*', 'e', ARGV[i]) end
    length = length + count
    answer[#answer + 1] = 1
  end
  at = at + count + 1
end
return answer
`;

// Dead letters back into the live stream, as new entries, all or none: KEYS[1] the stream,
// KEYS[2] the dead-letter stream, ARGV[1] the high-water mark, then the dead letters' ids (in the
// stream id format: XRANGE refuses anything else). Answers {replayed ids, missing ids}, or
// {-1} when the stream cannot take them all.
const REPLAY_DEAD_LETTERS = `
local found = {}
local missing = {}
local seen = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local entry = redis.call('XRANGE', KEYS[2], id, id)[1]
    local body
    if entry then
      for f = 1, #entry[2], 2 do
        if entry[2][f] == 'e' then body = entry[2][f + 1] end
      end
    end
    if body then found[#found + 1] = {id, body} else missing[#missing + 1] = id end
  end
end
if redis.call('XLEN', KEYS[1]) + #found > tonumber(ARGV[1]) then return {-1} end
local replayed = {}
for _, letter in ipairs(found) do
  redis.call('XADD', KEYS[1], '*', 'e', letter[2])
  redis.call('XDEL', KEYS[2], letter[1])
  replayed[#replayed + 1] = letter[1]
end
return {replayed, missing}
`;

/**
 * Bodies gathered before their call goes out, without waiting for the end of the turn. Under load
 * one poll phase reads dozens of requests: sending the first ones while the rest are still being
 * read lets Redis work beside this process, where one call per turn left the API idle while Redis
 * ran it (in bench/ingest the API's process went from 92 % to 101 % of a core, see bench/ingest/history-2.md).
 * Calls on one connection run in the order sent, so enqueues are still taken in call order.
 */
const FLUSH_AT_BODIES = 16;

/** An id XRANGE takes: ENTRY_ID's shape with both parts within 64 bits (Redis refuses larger ones with an error). */
const isStreamId = (id: string): boolean =>
  ENTRY_ID.test(id) && id.split('-').every((part) => BigInt(part) <= 18_446_744_073_709_551_615n);

type StreamReply = Array<[stream: string, entries: Array<[id: string, fields: string[]] | null>]> | null;

interface BoundedRedis extends Redis {
  replayDeadLetters(
    stream: string,
    deadStream: string,
    maxLength: number,
    ...ids: string[]
  ): Promise<[replayed: string[], missing: string[]] | [-1]>;
  enqueueBounded(
    stream: string,
    maxLength: number,
    ...countsAndBodies: Array<string | number>
  ): Promise<number[]>;
}

interface PendingEnqueue {
  bodies: readonly string[];
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Redis Streams with one consumer group. Producers and the worker's commands
 * share one connection; blocking reads get their own, so a worker waiting for
 * entries never stalls a producer behind it. Not auto-pipelined: enqueues are
 * gathered already (see FLUSH_AT_BODIES), and ioredis's pipelining, measured
 * when there was one call per turn, cost the API more than it saved.
 */
export async function createRedisQueue(options: RedisQueueOptions): Promise<EventQueue> {
  const group = options.group ?? 'auditgraph-workers';
  const deadStream = `${options.stream}:dead`;
  const connection = {
    // Fail fast while Redis is away: the caller answers 503 and retries,
    // rather than piling requests up in an invisible offline buffer.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2000),
  };
  const commands = new Redis(options.url, connection) as BoundedRedis;
  commands.defineCommand('enqueueBounded', { numberOfKeys: 1, lua: ENQUEUE_BOUNDED });
  commands.defineCommand('replayDeadLetters', { numberOfKeys: 2, lua: REPLAY_DEAD_LETTERS });
  let blocking: Redis | undefined;
  // A connection error would otherwise be an unhandled 'error' event; the
  // failures that matter surface on the commands themselves.
  commands.on('error', () => undefined);

  await connectRedis(commands, options.url, options.urlFrom);
  await ensureGroup(commands, options.stream, group);

  const blockingConnection = async (): Promise<Redis> => {
    if (!blocking) {
      blocking = new Redis(options.url, {
        ...connection,
        maxRetriesPerRequest: null,
        enableOfflineQueue: true,
      });
      blocking.on('error', () => undefined);
      await blocking.connect();
    }
    return blocking;
  };

  const readGroup = async (client: Redis, consumer: string, max: number, from: string, blockMs?: number) => {
    const args: Array<string | number> = ['GROUP', group, consumer, 'COUNT', max];
    // BLOCK 0 would wait forever; a zero wait means "only what is there now".
    if (blockMs !== undefined && blockMs > 0) args.push('BLOCK', blockMs);
    args.push('STREAMS', options.stream, from);
    let reply: StreamReply;
    try {
      reply = (await client.call('XREADGROUP', ...args)) as StreamReply;
    } catch (error) {
      // The group vanishes when Redis restarted without persistence or the
      // stream was deleted; recreate it and let the caller read again.
      if (error instanceof Error && error.message.includes('NOGROUP')) {
        await ensureGroup(commands, options.stream, group);
        return [];
      }
      throw error;
    }
    return toEntries(reply?.[0]?.[1] ?? []);
  };

  // Enqueues gathered in the current event-loop turn, sent as one script call at its end or once
  // they hold FLUSH_AT_BODIES bodies, whichever comes first.
  let gathering: PendingEnqueue[] = [];
  let gatheredBodies = 0;
  let endOfTurnScheduled = false;

  const enqueueBatch = async (batch: readonly PendingEnqueue[]): Promise<void> => {
    const args: Array<string | number> = [];
    for (const item of batch) args.push(item.bodies.length, ...item.bodies);
    let answer: number[];
    try {
      answer = await commands.enqueueBounded(options.stream, options.maxLength, ...args);
    } catch (error) {
      for (const item of batch)
        item.reject(serviceUnavailable('The ingest queue is unavailable; retry later.', 1, error));
      return;
    }
    batch.forEach((item, index) => {
      if (answer[index] === 1) item.resolve();
      else item.reject(queueFull(QUEUE_FULL_RETRY_AFTER_SECONDS));
    });
  };

  const sendGathered = () => {
    if (gathering.length === 0) return;
    const batch = gathering;
    gathering = [];
    gatheredBodies = 0;
    void enqueueBatch(batch);
  };
  const endOfTurn = () => {
    endOfTurnScheduled = false;
    sendGathered();
  };

  return {
    enqueue(bodies) {
      if (bodies.length === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        if (!endOfTurnScheduled) {
          endOfTurnScheduled = true;
          // setImmediate rather than nextTick: requests read from different sockets in one
          // poll phase each finish their own tick, and should still share one call.
          setImmediate(endOfTurn);
        }
        gathering.push({ bodies, resolve, reject });
        gatheredBodies += bodies.length;
        if (gatheredBodies >= FLUSH_AT_BODIES) sendGathered();
      });
    },

    async read(consumer, max, blockMs) {
      return readGroup(await blockingConnection(), consumer, max, '>', blockMs);
    },

    async readPending(consumer, max) {
      return readGroup(commands, consumer, max, '0');
    },

    async claimStale(consumer, minIdleMs, max) {
      const claimed: QueueEntry[] = [];
      let cursor = '0-0';
      do {
        const reply = (await commands.call(
          'XAUTOCLAIM',
          options.stream,
          group,
          consumer,
          minIdleMs,
          cursor,
          'COUNT',
          max - claimed.length,
        )) as [string, Array<[string, string[]] | null>, string[]?];
        cursor = reply[0];
        claimed.push(...toEntries(reply[1]));
      } while (cursor !== '0-0' && claimed.length < max);
      return claimed;
    },

    async ack(ids) {
      if (ids.length === 0) return;
      await commands
        .multi()
        .xack(options.stream, group, ...ids)
        .xdel(options.stream, ...ids)
        .exec()
        .then(throwOnTransactionError);
    },

    async deadLetter(entry, reason) {
      await commands
        .multi()
        .xadd(
          deadStream,
          '*',
          'e',
          entry.body,
          'reason',
          reason,
          'original_id',
          entry.id,
          'failed_at',
          new Date().toISOString(),
        )
        .xack(options.stream, group, entry.id)
        .xdel(options.stream, entry.id)
        .exec()
        .then(throwOnTransactionError);
    },

    async listDeadLetters(limit) {
      const reply = (await commands.xrevrange(deadStream, '+', '-', 'COUNT', limit)) as Array<
        [string, string[]]
      >;
      return reply.map(([id, fields]): DeadLetter => {
        const field = fieldReader(fields);
        return {
          id,
          originalId: field('original_id'),
          body: field('e'),
          reason: field('reason'),
          failedAt: field('failed_at'),
        };
      });
    },

    async replayDeadLetters(ids) {
      const wellFormed = ids.filter(isStreamId);
      const malformed = ids.filter((id) => !isStreamId(id));
      if (wellFormed.length === 0) return { replayed: [], missing: [...new Set(malformed)] };
      const answer = await commands.replayDeadLetters(
        options.stream,
        deadStream,
        options.maxLength,
        ...wellFormed,
      );
      if (answer[0] === -1) throw queueFull(QUEUE_FULL_RETRY_AFTER_SECONDS);
      const [replayed, missing] = answer as [string[], string[]];
      return { replayed, missing: [...missing, ...new Set(malformed)] };
    },

    async stats(): Promise<QueueStats> {
      // Acknowledged entries are deleted, so the stream's first entry is the oldest unacknowledged one.
      const [depth, deadLetters, first] = await Promise.all([
        commands.xlen(options.stream),
        commands.xlen(deadStream),
        commands.xrange(options.stream, '-', '+', 'COUNT', 1),
      ]);
      const oldestId = first[0]?.[0];
      return {
        depth,
        deadLetters,
        oldestAgeMs: oldestId === undefined ? null : Math.max(0, Date.now() - entryTimeMs(oldestId)),
      };
    },

    async close() {
      // disconnect() rather than quit(): a blocked XREADGROUP would hold quit() for its whole timeout.
      blocking?.disconnect();
      await commands.quit().catch(() => commands.disconnect());
    },
  };
}

async function ensureGroup(client: Redis, stream: string, group: string): Promise<void> {
  try {
    // From id 0, so events enqueued before any worker existed are still consumed.
    await client.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
  } catch (error) {
    if (!(error instanceof Error && error.message.includes('BUSYGROUP'))) throw error;
  }
}

function toEntries(raw: Array<[string, string[]] | null>): QueueEntry[] {
  const entries: QueueEntry[] = [];
  for (const item of raw) {
    // Entries deleted while pending come back as null; there is nothing left to deliver.
    if (!item) continue;
    const [id, fields] = item;
    entries.push({ id, body: fieldReader(fields)('e') });
  }
  return entries;
}

function fieldReader(fields: string[]): (name: string) => string {
  return (name) => {
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1] ?? '';
    return '';
  };
}

function throwOnTransactionError(results: Array<[Error | null, unknown]> | null): void {
  if (!results) throw new Error('Redis transaction was discarded');
  for (const [error] of results) if (error) throw error;
}
