import { Redis } from 'ioredis';
import type { Identity, Store } from 'graphql-rate-limit';
import { AppError, serviceUnavailable } from '../errors.js';

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Requests left in the current window. */
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
}

/**
 * Requests per key per minute, in fixed one-minute windows. The Redis
 * implementation is shared by every API replica, so N replicas enforce one
 * limit: never more than the limit is allowed per window, whatever the number
 * of replicas (each allowed request holds its own value of one atomically
 * incremented counter).
 */
export interface RateLimiter {
  /**
   * Counts one request by `id` and says whether it is within `limit`: at once when the answer is
   * known in this process (a lease, the embedded counters), else once the shared counter answered.
   */
  hit(id: string, limit: number): RateLimitDecision | Promise<RateLimitDecision>;
  /** graphql-rate-limit's store for field-level limits, on the same backend. */
  readonly fieldStore: Store;
  close(): Promise<void>;
}

const WINDOW_MS = 60_000;

// The window comes from Redis's clock, not each replica's, so replicas whose
// clocks differ still count into the same window. One call counts every hit a
// process gathered in one event-loop turn: KEYS are the counters' prefixes,
// ARGV[1] the window, ARGV[i + 1] the values to take on KEYS[i] (its hits, and
// a lease: see Lease). It answers each counter's new value, then the
// milliseconds left in the window.
const HIT_MANY = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local windowMs = tonumber(ARGV[1])
local window = math.floor(now / windowMs)
local answer = {}
for i = 1, #KEYS do
  local key = KEYS[i] .. ':' .. window
  local hits = tonumber(ARGV[i + 1])
  local count = redis.call('INCRBY', key, hits)
  if count == hits then redis.call('PEXPIRE', key, windowMs) end
  answer[i] = count
end
answer[#KEYS + 1] = (window + 1) * windowMs - now
return answer
`;

/** Distinct counters per script call; a larger turn is split into several calls. */
const MAX_KEYS_PER_CALL = 500;

interface HitRedis extends Redis {
  rateLimitHitMany(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<number[]>;
}

interface Waiter {
  limit: number;
  resolve(decision: RateLimitDecision): void;
  reject(error: unknown): void;
}

/**
 * Counter values this process took ahead for a key and has not handed out yet.
 * Far below a limit, a call to Redis per request buys nothing: each call also
 * takes a few values ahead, and the next requests are decided here, at once.
 * The values are counted in Redis when taken, so all replicas together still
 * never allow more than the limit; a replica holding values it does not use
 * makes the others refuse that many requests early, which is why a lease is a
 * small share of what is left (none near the limit: there every request asks
 * Redis, and the count is exact).
 */
interface Lease {
  limit: number;
  /** The counter's value after this process's last call: what every replica had taken by then. */
  counted: number;
  /** The next value to hand out. */
  next: number;
  /** One past the last value held. */
  end: number;
  /** When the window these values belong to closes, by this process's clock. */
  expiresAt: number;
}

/** A lease is at most this share of what is left of a limit, and never above MAX_LEASE. */
const LEASE_SHARE = 1 / 32;
const MAX_LEASE = 256;

const leaseSize = (limit: number, counted: number): number =>
  Math.min(MAX_LEASE, Math.max(0, Math.floor((limit - counted) * LEASE_SHARE)));

const decide = (count: number, limit: number, resetMs: number): RateLimitDecision => ({
  allowed: count <= limit,
  limit,
  remaining: Math.max(0, limit - count),
  resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)),
});

/**
 * The shared limiter. Hits are gathered for one event-loop turn and counted in
 * one script call (INCRBY by the number of hits per key); the hits on one key
 * take consecutive values of its counter, in arrival order, so every request
 * still learns exactly where it falls and replicas still share one limit.
 */
export async function createRedisRateLimiter(url: string, prefix: string): Promise<RateLimiter> {
  // Not auto-pipelined: hits are gathered per event-loop turn already (as enqueues are, see redis-queue.ts).
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2000),
  }) as HitRedis;
  redis.on('error', () => undefined);
  redis.defineCommand('rateLimitHitMany', { lua: HIT_MANY });
  await redis.connect();

  // Waiters by key, in arrival order, for the turn being gathered.
  let gathering: Map<string, Waiter[]> | undefined;
  const leases = new Map<string, Lease>();
  const leasing = new Set<string>();

  const count = async (batch: ReadonlyArray<[key: string, waiters: Waiter[]]>): Promise<void> => {
    const args: Array<string | number> = batch.map(([key]) => key);
    args.push(WINDOW_MS);
    // One lease in flight per key: a second would arrive while the first is in use, and its values
    // would sit unused.
    const extra = batch.map(([key, waiters]) => {
      if (leasing.has(key)) return 0;
      const held = leases.get(key);
      const counted = held && held.expiresAt > Date.now() ? held.counted : 0;
      const size = leaseSize(waiters[waiters.length - 1]!.limit, counted);
      if (size > 0) leasing.add(key);
      return size;
    });
    batch.forEach(([, waiters], index) => args.push(waiters.length + extra[index]!));
    let answer: number[];
    try {
      answer = await redis.rateLimitHitMany(batch.length, ...args);
    } catch (error) {
      batch.forEach(([key], index) => {
        if (extra[index]! > 0) leasing.delete(key);
      });
      // Without the shared counter there is no limit to enforce; refusing is safer than letting floods through.
      for (const [, waiters] of batch)
        for (const waiter of waiters)
          waiter.reject(serviceUnavailable('The rate limiter is unavailable; retry later.', 1, error));
      return;
    }
    const resetMs = answer[batch.length]!;
    const expiresAt = Date.now() + resetMs;
    batch.forEach(([key, waiters], index) => {
      // The counter reached answer[index] with this call; the hits took the first values it added,
      // in order, and the lease the rest.
      const counted = answer[index]!;
      const first = counted - extra[index]! - waiters.length + 1;
      for (let i = 0; i < waiters.length; i += 1) {
        const waiter = waiters[i]!;
        waiter.resolve(decide(first + i, waiter.limit, resetMs));
      }
      const held = leases.get(key);
      if (extra[index] === 0) {
        if (held) held.counted = Math.max(held.counted, counted);
        return;
      }
      leasing.delete(key);
      if (leases.size >= 100_000) {
        for (const [stale, lease] of leases) if (lease.expiresAt <= Date.now()) leases.delete(stale);
      }
      // Only values within the limit are worth holding.
      const limit = waiters[waiters.length - 1]!.limit;
      const next = first + waiters.length;
      leases.set(key, { limit, counted, next, end: Math.max(next, Math.min(counted, limit) + 1), expiresAt });
    });
  };

  /** A decision from this process's lease, when it holds a value for the key in the current window. */
  const fromLease = (key: string, limit: number): RateLimitDecision | undefined => {
    const lease = leases.get(key);
    if (!lease || lease.limit !== limit || lease.next >= lease.end) return undefined;
    const leftMs = lease.expiresAt - Date.now();
    if (leftMs <= 0) return undefined;
    const value = lease.next;
    lease.next += 1;
    return decide(value, limit, leftMs);
  };

  const flush = () => {
    const entries = [...gathering!];
    gathering = undefined;
    for (let from = 0; from < entries.length; from += MAX_KEYS_PER_CALL)
      void count(entries.slice(from, from + MAX_KEYS_PER_CALL));
  };

  const fieldKey = (identity: Identity) =>
    `${prefix}:field:${identity.contextIdentity}:${identity.fieldIdentity}`;
  return {
    hit(id, limit) {
      const leased = fromLease(`${prefix}:${id}`, limit);
      if (leased) return leased;
      return new Promise<RateLimitDecision>((resolve, reject) => {
        if (gathering === undefined) {
          gathering = new Map();
          // setImmediate rather than nextTick: requests read from different sockets in one
          // poll phase each finish their own tick, and should still share one call.
          setImmediate(flush);
        }
        const key = `${prefix}:${id}`;
        const waiters = gathering.get(key);
        if (waiters) waiters.push({ limit, resolve, reject });
        else gathering.set(key, [{ limit, resolve, reject }]);
      });
    },
    fieldStore: {
      async getForIdentity(identity) {
        const stored = await redis.get(fieldKey(identity));
        return stored ? (JSON.parse(stored) as number[]) : [];
      },
      async setForIdentity(identity, timestamps, windowMs) {
        await redis.set(
          fieldKey(identity),
          JSON.stringify(timestamps),
          'PX',
          Math.max(1, windowMs ?? WINDOW_MS),
        );
      },
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** The embedded mode's limiter: the same windows, in this process. */
export function createMemoryRateLimiter(now: () => number = Date.now): RateLimiter {
  const counters = new Map<string, { window: number; count: number }>();
  const fields = new Map<string, { timestamps: readonly number[]; until: number }>();
  return {
    hit(id, limit) {
      const at = now();
      const window = Math.floor(at / WINDOW_MS);
      const counter = counters.get(id);
      const current = counter && counter.window === window ? counter : { window, count: 0 };
      current.count += 1;
      counters.set(id, current);
      if (counters.size > 100_000) {
        for (const [key, value] of counters) if (value.window !== window) counters.delete(key);
      }
      return decide(current.count, limit, (window + 1) * WINDOW_MS - at);
    },
    fieldStore: {
      getForIdentity(identity) {
        const entry = fields.get(`${identity.contextIdentity}:${identity.fieldIdentity}`);
        return entry && entry.until > now() ? entry.timestamps : [];
      },
      setForIdentity(identity, timestamps, windowMs) {
        fields.set(`${identity.contextIdentity}:${identity.fieldIdentity}`, {
          timestamps,
          until: now() + (windowMs ?? WINDOW_MS),
        });
      },
    },
    async close() {},
  };
}

export function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
  return addRateLimitHeaders({}, decision);
}

/** Sets the X-RateLimit-* headers on `headers` (a response's own object, filled in place) and returns it. */
export function addRateLimitHeaders(
  headers: Record<string, string>,
  decision: RateLimitDecision,
): Record<string, string> {
  headers['x-ratelimit-limit'] = String(decision.limit);
  headers['x-ratelimit-remaining'] = String(decision.remaining);
  headers['x-ratelimit-reset'] = String(decision.resetSeconds);
  return headers;
}

/** @throws AppError RATE_LIMITED, with Retry-After and X-RateLimit-* headers, when the decision refuses. */
export function enforce(decision: RateLimitDecision): void {
  if (decision.allowed) return;
  throw new AppError('RATE_LIMITED', `Rate limit of ${decision.limit} requests per minute exceeded.`, {
    retryAfterSeconds: decision.resetSeconds,
    headers: rateLimitHeaders(decision),
  });
}

/**
 * Applies a key's limit to one request: the decision, once it is allowed (a value at once when
 * {@link RateLimiter.hit} had one), or throws RATE_LIMITED (or rejects with it).
 */
export type RequestLimiter = (principal: {
  keyId: string;
  rateLimitPerMinute?: number | undefined;
}) => RateLimitDecision | Promise<RateLimitDecision>;

export function createRequestLimiter(options: {
  limiter: RateLimiter;
  defaultPerMinute: number;
  onLimited?: () => void;
}): RequestLimiter {
  const allowedOnly = (decision: RateLimitDecision): RateLimitDecision => {
    if (!decision.allowed) options.onLimited?.();
    enforce(decision);
    return decision;
  };
  return (principal) => {
    const decision = options.limiter.hit(
      principal.keyId,
      principal.rateLimitPerMinute ?? options.defaultPerMinute,
    );
    return decision instanceof Promise ? decision.then(allowedOnly) : allowedOnly(decision);
  };
}
