import type { Store } from 'graphql-rate-limit';
import { AppError } from '../errors.js';
import { BUCKETS_PER_WINDOW, MINUTE_MS, WindowTable } from './sliding-window.js';

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Requests left in the window now. */
  remaining: number;
  /**
   * Allowed: seconds until the oldest request counted leaves the window (`remaining` grows then).
   * Refused: seconds until a request would be allowed (Retry-After).
   */
  resetSeconds: number;
}

/**
 * Requests per key per minute, in a sliding window (src/security/sliding-window.ts): no interval
 * of a minute ever holds more than the limit, whatever its edges, and a request stops counting
 * 60-61 s after it was made. The Redis implementation is shared by every API replica, so N
 * replicas enforce one limit: together they never allow more than it.
 */
export interface RateLimiter {
  /**
   * Counts one request by `id` and says whether it is within `limit`: at once when the answer is
   * known in this process (a lease, the embedded window), else once the shared window answered.
   * Rejects with SERVICE_UNAVAILABLE when the shared window cannot be reached.
   */
  hit(id: string, limit: number): RateLimitDecision | Promise<RateLimitDecision>;
  /** graphql-rate-limit's store for field-level limits, on the same backend. */
  readonly fieldStore: Store;
  close(): Promise<void>;
}

/** The embedded mode's limiter: the same sliding window, in this process. */
export function createMemoryRateLimiter(now: () => number = Date.now): RateLimiter {
  const windows = new WindowTable(MINUTE_MS / BUCKETS_PER_WINDOW);
  const fields = new Map<string, { timestamps: readonly number[]; until: number }>();
  return {
    hit(id, limit) {
      const at = now();
      const taken = windows.of(id, at).take(at, limit, windows.bucketMs);
      return {
        allowed: taken.allowed,
        limit,
        remaining: taken.allowed ? Math.max(0, limit - taken.before - 1) : 0,
        resetSeconds: Math.max(1, Math.ceil(taken.waitMs / 1000)),
      };
    },
    fieldStore: {
      getForIdentity(identity) {
        const entry = fields.get(`${identity.contextIdentity}:${identity.fieldIdentity}`);
        return entry && entry.until > now() ? entry.timestamps : [];
      },
      setForIdentity(identity, timestamps, windowMs) {
        if (fields.size >= 100_000) {
          const at = now();
          for (const [key, entry] of fields) if (entry.until <= at) fields.delete(key);
        }
        fields.set(`${identity.contextIdentity}:${identity.fieldIdentity}`, {
          timestamps,
          until: now() + (windowMs ?? MINUTE_MS),
        });
      },
    },
    async close() {},
  };
}

function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
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
function enforce(decision: RateLimitDecision): void {
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
