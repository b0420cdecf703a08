import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { connectRedis } from '../queue/redis-connect.js';
import { serviceUnavailable } from '../errors.js';
import { canonicalize } from '../integrity/canonical.js';
import type { QueuedEvent } from '../events/queue-message.js';

/**
 * The event ids accepted lately, each with a digest of its event, shared by
 * every API process: so a second event reusing an id is refused at the door
 * while the first is still queued, not only once it is stored (the store
 * answers for older ones). A claim lasts `ttlMs`; an event queued longer than
 * that and reused meanwhile is still never lost silently: the worker sets the
 * second aside as a conflict.
 */
export interface IdClaims {
  /** For each claim, in order: `new` (now claimed), `same` (claimed by the same event) or `different`. */
  claim(claims: readonly IdClaim[]): Promise<ClaimVerdict[]>;
  /** Gives back claims made for events that were then not queued (the queue refused them). */
  release(claims: readonly IdClaim[]): Promise<void>;
  close(): Promise<void>;
}

export interface IdClaim {
  id: string;
  digest: string;
}

export type ClaimVerdict = 'new' | 'same' | 'different';

/** What identifies an event's content, as one short string: every field the caller sent, and its key. */
export function claimOf(event: QueuedEvent): IdClaim {
  const content = canonicalize({
    eventType: event.eventType,
    sessionId: event.sessionId,
    payload: event.payload,
    clientTime: event.clientTime === null ? null : new Date(event.clientTime).toISOString(),
    apiKeyId: event.apiKeyId,
  });
  return { id: event.id.toLowerCase(), digest: createHash('sha256').update(content).digest('base64url') };
}

/** The in-process claims of the embedded mode (one API process). */
export function createMemoryIdClaims(ttlMs: number, now: () => number = Date.now): IdClaims {
  const claims = new Map<string, { digest: string; until: number }>();
  let lastSweep = now();
  const sweep = (at: number) => {
    if (at - lastSweep < ttlMs) return;
    lastSweep = at;
    for (const [id, held] of claims) if (held.until <= at) claims.delete(id);
  };
  return {
    async claim(wanted) {
      const at = now();
      sweep(at);
      return wanted.map(({ id, digest }) => {
        const held = claims.get(id);
        if (held && held.until > at) return held.digest === digest ? 'same' : 'different';
        claims.set(id, { digest, until: at + ttlMs });
        return 'new';
      });
    },
    async release(given) {
      for (const { id, digest } of given) if (claims.get(id)?.digest === digest) claims.delete(id);
    },
    async close() {
      claims.clear();
    },
  };
}

// One round trip for a whole batch: SET NX per id, and the holder's digest where it was taken.
const CLAIM = `
local answers = {}
for index, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[index + 1], 'NX', 'PX', ARGV[1]) then
    answers[index] = 'new'
  elseif redis.call('GET', key) == ARGV[index + 1] then
    answers[index] = 'same'
  else
    answers[index] = 'different'
  end
end
return answers`;

// A claim is given back only by the event that made it.
const RELEASE = `
for index, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[index] then redis.call('DEL', key) end
end
return 0`;

type ClaimsRedis = Redis & {
  claimIds(keys: number, ...args: string[]): Promise<ClaimVerdict[]>;
  releaseIds(keys: number, ...args: string[]): Promise<number>;
};

/** Claims in Redis under `prefix`: one script call per request, only for events that name their own id. */
export async function createRedisIdClaims(
  url: string,
  prefix: string,
  ttlMs: number,
  urlFrom?: string,
): Promise<IdClaims> {
  // Fails fast while Redis is away, like the queue: the request is answered 503 and retried.
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2000),
  }) as ClaimsRedis;
  client.on('error', () => undefined);
  client.defineCommand('claimIds', { lua: CLAIM });
  client.defineCommand('releaseIds', { lua: RELEASE });
  await connectRedis(client, url, urlFrom);
  const keyOf = (id: string) => `${prefix}:${id}`;
  return {
    async claim(wanted) {
      if (wanted.length === 0) return [];
      return client
        .claimIds(
          wanted.length,
          ...wanted.map(({ id }) => keyOf(id)),
          String(ttlMs),
          ...wanted.map(({ digest }) => digest),
        )
        .catch((error: unknown) => {
          throw serviceUnavailable('The ingest queue is unavailable; retry later.', 1, error);
        });
    },
    async release(given) {
      if (given.length === 0) return;
      await client.releaseIds(
        given.length,
        ...given.map(({ id }) => keyOf(id)),
        ...given.map(({ digest }) => digest),
      );
    },
    async close() {
      client.disconnect();
    },
  };
}
