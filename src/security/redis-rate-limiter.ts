import { Redis } from 'ioredis';
import type { Identity } from 'graphql-rate-limit';
import { serviceUnavailable } from '../errors.js';
import type { RateLimitDecision, RateLimiter } from './rate-limit.js';
import { BUCKETS_PER_WINDOW, MINUTE_MS, SPAN } from './sliding-window.js';
import { TAKE } from './redis-window-script.js';

/** Distinct entries per script call; a larger turn is split into several calls. */
const MAX_KEYS_PER_CALL = 500;
/** A lease is at most this share of the room left in the window (1/LEASE_SHARE_DIVISOR)... */
const LEASE_SHARE_DIVISOR = 32;
/** ...and never more than this many units. */
const MAX_LEASE = 256;

interface TakeRedis extends Redis {
  rateLimitTake(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<number[]>;
}

interface Waiter {
  limit: number;
  resolve(decision: RateLimitDecision): void;
  reject(error: unknown): void;
}

/**
 * Units of a key's window this process counted ahead and has not handed out yet. Far below a
 * limit, a call to Redis per request buys nothing: a call takes a few units ahead (a share of
 * the room left, sized by the script, which knows the room), and the next requests are decided
 * here, at once. Units are counted in the bucket of the call and only handed out until that
 * bucket ends (by this process's clock, started before the call, so never later than Redis's):
 * every request still counts in the bucket it was made in, and the window's bound holds
 * exactly. Units left when the bucket ends, or when the lease is replaced, are given back to
 * their bucket, so other replicas can use them: a lease costs them at most a refusal or two
 * while it is held, never capacity for the rest of the window.
 */
interface Lease {
  limit: number;
  /** The Redis bucket the units are counted in. */
  bucket: number;
  /** Units not handed out yet. */
  held: number;
  /** What the window held at the last call, without the units held, plus those handed out since. */
  used: number;
  /** When the bucket ends, by the local clock. */
  expiresAt: number;
  /** When the oldest request counted leaves the window, by the local clock (X-RateLimit-Reset). */
  oldestLeavesAt: number;
}

interface Entry {
  key: string;
  limit: number;
  waiters: Waiter[];
  cap: number;
  givenBucket: number | '';
  given: number;
}

const decision = (allowed: boolean, limit: number, remaining: number, waitMs: number): RateLimitDecision => ({
  allowed,
  limit,
  remaining: Math.max(0, remaining),
  resetSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
});

export interface RedisRateLimiterOptions {
  /**
   * The time in milliseconds, for tests: windows are then counted by it instead of Redis's own
   * clock, and leases expire by it. Default: Redis's clock for windows, `performance.now()` for leases.
   */
  now?: () => number;
  /** The window's length (one minute); its buckets are a sixtieth of it. */
  windowMs?: number;
}

/**
 * The shared limiter. Hits are gathered for one event-loop turn and counted in one script call;
 * the hits on one key are granted in arrival order, so every request learns where it falls, and
 * all replicas share one window per key: together they never allow more than the limit in any
 * window's length of time.
 */
export async function createRedisRateLimiter(
  url: string,
  prefix: string,
  options: RedisRateLimiterOptions = {},
): Promise<RateLimiter> {
  const windowMs = options.windowMs ?? MINUTE_MS;
  const bucketMs = windowMs / BUCKETS_PER_WINDOW;
  const clock = options.now ?? (() => performance.now());
  const redisTime = options.now === undefined ? () => '' : () => String(options.now!());
  // Not auto-pipelined: hits are gathered per event-loop turn already (as enqueues are, see redis-queue.ts).
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2000),
  }) as TakeRedis;
  redis.on('error', () => undefined);
  redis.defineCommand('rateLimitTake', { lua: TAKE });
  await redis.connect();

  let gathering: Map<string, Waiter[]> | undefined;
  const leases = new Map<string, Lease>();
  /** Keys with a lease asked for and not answered yet: one at a time, or the second sits unused. */
  const leasing = new Set<string>();
  /** Unused units to give back with the next call. */
  const giveBack: Array<{ key: string; bucket: number; count: number }> = [];
  let sweepTimer: NodeJS.Timeout | undefined;
  let closed = false;

  const release = (key: string, lease: Lease) => {
    if (lease.held > 0) {
      giveBack.push({ key, bucket: lease.bucket, count: lease.held });
      scheduleSweep(clock()); // soon, should no call come first
    }
    lease.held = 0;
    leases.delete(key);
  };

  const call = async (entries: Entry[]): Promise<void> => {
    const args: Array<string | number> = entries.map((entry) => entry.key);
    args.push(redisTime(), bucketMs, SPAN, LEASE_SHARE_DIVISOR);
    for (const entry of entries) {
      args.push(entry.waiters.length, entry.cap, entry.limit, entry.givenBucket, entry.given);
      if (entry.cap > 0) leasing.add(entry.key);
    }
    const sentAt = clock();
    let answer: number[];
    try {
      answer = await redis.rateLimitTake(entries.length, ...args);
    } catch (error) {
      // Units given back in a failed call stay counted until their bucket leaves: refused early, never over.
      for (const entry of entries) {
        if (entry.cap > 0) leasing.delete(entry.key);
        // Without the shared window there is no limit to enforce; refusing is safer than letting floods through.
        for (const waiter of entry.waiters)
          waiter.reject(serviceUnavailable('The rate limiter is unavailable; retry later.', 1, error));
      }
      return;
    }
    const bucket = answer[entries.length * 4]!;
    const expiresAt = sentAt + answer[entries.length * 4 + 1]!;
    entries.forEach((entry, index) => {
      const granted = answer[index * 4]!;
      const leased = answer[index * 4 + 1]!;
      const before = answer[index * 4 + 2]!;
      const waitMs = answer[index * 4 + 3]!;
      entry.waiters.forEach((waiter, at) => {
        waiter.resolve(
          at < granted
            ? decision(true, waiter.limit, waiter.limit - (before + at + 1), waitMs)
            : decision(false, waiter.limit, 0, waitMs),
        );
      });
      if (entry.cap > 0) leasing.delete(entry.key);
      if (leased === 0) return;
      const held = leases.get(entry.key);
      if (held && held.bucket === bucket && held.limit === entry.limit) {
        held.held += leased;
        held.used = Math.max(held.used, before + granted);
        return;
      }
      if (held) release(entry.key, held);
      if (leases.size >= 100_000) {
        const now = clock();
        for (const [key, lease] of leases) if (lease.expiresAt <= now) release(key, lease);
      }
      leases.set(entry.key, {
        limit: entry.limit,
        bucket,
        held: leased,
        used: before + granted,
        expiresAt,
        oldestLeavesAt: sentAt + waitMs,
      });
      scheduleSweep(expiresAt);
    });
  };

  /** Sends what is to be given back (with the next call, else on its own). */
  const returns = (): Entry[] =>
    giveBack.splice(0).map(({ key, bucket, count }) => ({
      key,
      limit: 0,
      waiters: [],
      cap: 0,
      givenBucket: bucket,
      given: count,
    }));

  const send = (entries: Entry[]) => {
    for (let from = 0; from < entries.length; from += MAX_KEYS_PER_CALL)
      void call(entries.slice(from, from + MAX_KEYS_PER_CALL));
  };

  // One timer for all leases: at the end of a bucket, expired leases give their unused units back.
  let sweepAt = Number.POSITIVE_INFINITY;
  function scheduleSweep(at: number) {
    if (closed || (sweepTimer !== undefined && sweepAt <= at)) return;
    if (sweepTimer !== undefined) clearTimeout(sweepTimer);
    sweepAt = at;
    // Bounded by a bucket: a test's clock need not move with the timers'.
    sweepTimer = setTimeout(sweep, Math.min(bucketMs, Math.max(0, at - clock())) + 1);
    sweepTimer.unref();
  }
  function sweep() {
    sweepTimer = undefined;
    sweepAt = Number.POSITIVE_INFINITY;
    const now = clock();
    let next = Number.POSITIVE_INFINITY;
    for (const [key, lease] of leases) {
      if (lease.expiresAt <= now) release(key, lease);
      else if (lease.held > 0) next = Math.min(next, lease.expiresAt);
    }
    if (giveBack.length > 0) send(returns());
    if (next !== Number.POSITIVE_INFINITY) scheduleSweep(next);
  }

  const flush = () => {
    const gathered = gathering!;
    gathering = undefined;
    const now = clock();
    const entries: Entry[] = [];
    for (const [key, waiters] of gathered) {
      // A lease that ran out of time gives its units back in the same call, before the hits are counted.
      const lease = leases.get(key);
      let givenBucket: number | '' = '';
      let given = 0;
      if (lease && lease.expiresAt <= now) {
        givenBucket = lease.bucket;
        given = lease.held;
        lease.held = 0;
        leases.delete(key);
      }
      const cap = leasing.has(key) ? 0 : MAX_LEASE;
      const limit = waiters[0]!.limit;
      if (waiters.every((waiter) => waiter.limit === limit)) {
        entries.push({ key, limit, waiters, cap, givenBucket, given });
        continue;
      }
      // The key's limit changed between requests of one turn: one entry per limit, in order.
      let from = 0;
      for (let at = 1; at <= waiters.length; at += 1) {
        if (at < waiters.length && waiters[at]!.limit === waiters[from]!.limit) continue;
        const first = from === 0;
        entries.push({
          key,
          limit: waiters[from]!.limit,
          waiters: waiters.slice(from, at),
          cap: first ? cap : 0,
          givenBucket: first ? givenBucket : '',
          given: first ? given : 0,
        });
        from = at;
      }
    }
    entries.push(...returns());
    send(entries);
  };

  /** A decision from this process's lease, when it holds a unit of the key's current bucket. */
  const fromLease = (key: string, limit: number): RateLimitDecision | undefined => {
    const lease = leases.get(key);
    if (lease === undefined || lease.held === 0 || lease.limit !== limit) return undefined;
    const now = clock();
    if (now >= lease.expiresAt) return undefined;
    lease.held -= 1;
    lease.used += 1;
    return decision(true, limit, limit - lease.used, lease.oldestLeavesAt - now);
  };

  const fieldKey = (identity: Identity) =>
    `${prefix}:field:${identity.contextIdentity}:${identity.fieldIdentity}`;
  return {
    hit(id, limit) {
      const key = `${prefix}:${id}`;
      const leased = fromLease(key, limit);
      if (leased) return leased;
      return new Promise<RateLimitDecision>((resolve, reject) => {
        if (gathering === undefined) {
          gathering = new Map();
          // setImmediate rather than nextTick: requests read from different sockets in one
          // poll phase each finish their own tick, and should still share one call.
          setImmediate(flush);
        }
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
      async setForIdentity(identity, timestamps, fieldWindowMs) {
        await redis.set(
          fieldKey(identity),
          JSON.stringify(timestamps),
          'PX',
          Math.max(1, fieldWindowMs ?? windowMs),
        );
      },
    },
    async close() {
      closed = true;
      if (sweepTimer !== undefined) clearTimeout(sweepTimer);
      // Units held are given back, so a replica that stops leaves its share to the others.
      for (const [key, lease] of leases) release(key, lease);
      const entries = returns();
      if (entries.length > 0 && redis.status === 'ready') {
        await Promise.allSettled(
          Array.from({ length: Math.ceil(entries.length / MAX_KEYS_PER_CALL) }, (_, index) =>
            call(entries.slice(index * MAX_KEYS_PER_CALL, (index + 1) * MAX_KEYS_PER_CALL)),
          ),
        );
      }
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
