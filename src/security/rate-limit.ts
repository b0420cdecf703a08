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
 * limit, exactly: each request is one atomic increment of one counter.
 */
export interface RateLimiter {
  /** Counts one request by `id` and says whether it is within `limit`. */
  hit(id: string, limit: number): Promise<RateLimitDecision>;
  /** graphql-rate-limit's store for field-level limits, on the same backend. */
  readonly fieldStore: Store;
  close(): Promise<void>;
}

const WINDOW_MS = 60_000;

// The window comes from Redis's clock, not each replica's, so replicas whose
// clocks differ still count into the same window.
const HIT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = math.floor(now / tonumber(ARGV[1]))
local key = KEYS[1] .. ':' .. window
local count = redis.call('INCR', key)
if count == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
return { count, (window + 1) * tonumber(ARGV[1]) - now }
`;

interface HitRedis extends Redis {
  rateLimitHit(key: string, windowMs: number): Promise<[number, number]>;
}

const decide = (count: number, limit: number, resetMs: number): RateLimitDecision => ({
  allowed: count <= limit,
  limit,
  remaining: Math.max(0, limit - count),
  resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)),
});

export async function createRedisRateLimiter(url: string, prefix: string): Promise<RateLimiter> {
  const redis = new Redis(url, {
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2000),
  }) as HitRedis;
  redis.on('error', () => undefined);
  redis.defineCommand('rateLimitHit', { numberOfKeys: 1, lua: HIT });
  await redis.connect();

  const fieldKey = (identity: Identity) =>
    `${prefix}:field:${identity.contextIdentity}:${identity.fieldIdentity}`;
  return {
    async hit(id, limit) {
      try {
        const [count, resetMs] = await redis.rateLimitHit(`${prefix}:${id}`, WINDOW_MS);
        return decide(count, limit, resetMs);
      } catch (error) {
        // Without the shared counter there is no limit to enforce; refusing is safer than letting floods through.
        throw serviceUnavailable('The rate limiter is unavailable; retry later.', 1, error);
      }
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
    async hit(id, limit) {
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
  return {
    'x-ratelimit-limit': String(decision.limit),
    'x-ratelimit-remaining': String(decision.remaining),
    'x-ratelimit-reset': String(decision.resetSeconds),
  };
}

/** @throws AppError RATE_LIMITED, with Retry-After and X-RateLimit-* headers, when the decision refuses. */
export function enforce(decision: RateLimitDecision): void {
  if (decision.allowed) return;
  throw new AppError('RATE_LIMITED', `Rate limit of ${decision.limit} requests per minute exceeded.`, {
    retryAfterSeconds: decision.resetSeconds,
    headers: rateLimitHeaders(decision),
  });
}

/** Applies a key's limit to one request: returns the X-RateLimit-* headers, or throws RATE_LIMITED. */
export type RequestLimiter = (principal: {
  keyId: string;
  rateLimitPerMinute?: number | undefined;
}) => Promise<Record<string, string>>;

export function createRequestLimiter(options: {
  limiter: RateLimiter;
  defaultPerMinute: number;
  onLimited?: () => void;
}): RequestLimiter {
  return async (principal) => {
    const decision = await options.limiter.hit(
      principal.keyId,
      principal.rateLimitPerMinute ?? options.defaultPerMinute,
    );
    if (!decision.allowed) options.onLimited?.();
    enforce(decision);
    return rateLimitHeaders(decision);
  };
}
